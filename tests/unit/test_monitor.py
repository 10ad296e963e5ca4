"""hybridml.monitor: the CUSUM's stated false-alarm rate and detection delay (by
simulation), the domain flags' stated false-flag rate, and a Monitor on a regressor and an
ensemble: range, distance, disagreement, consistency, drift across batches, reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import hybridml as hm

X_NAME, Y_NAME = "x [m]", "y [V]"


def line(x: np.ndarray, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """The measured quantity: y = 2 x + 1 plus Gaussian noise of sd ``noise``."""
    return 2.0 * x + 1.0 + noise * rng.standard_normal(x.shape)


def regressor(**kwargs: object) -> hm.HybridRegressor:
    options: dict = {
        "inputs": [X_NAME],
        "outputs": [Y_NAME],
        "hidden": (16,),
        "adam_steps": 300,
        "lr": 1e-2,
        "quasi_newton_steps": 30,
        "progress": False,
        **kwargs,
    }
    return hm.HybridRegressor(**options)


def frame(x: np.ndarray, y: np.ndarray | None = None) -> hm.Dataset:
    cols = {X_NAME: x} if y is None else {X_NAME: x, Y_NAME: y}
    return hm.Dataset(cols)


@pytest.fixture(scope="module")
def fitted() -> tuple[hm.HybridRegressor, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x, xv = rng.uniform(0.0, 1.0, 60), rng.uniform(0.0, 1.0, 40)
    y, yv = line(x, rng), line(xv, rng)
    # the predictions of y = 2x + 1 on [0, 1] lie in [1, 3]: half of them break [0, 2]
    model = regressor(checks=[hm.Bounds(Y_NAME, 0.0, 2.0)], check_policy="record")
    model.fit(frame(x, y))
    return model, x, y, xv, yv


# ----------------------------------------------------------------------------- CUSUM


@pytest.mark.parametrize("false_alarm", [0.01, 0.2])
def test_cusum_false_alarm_rate_is_within_the_stated_bound(false_alarm: float) -> None:
    test = hm.CUSUM(shift=1.0, false_alarm=false_alarm, horizon=1000)
    z = np.random.default_rng(0).standard_normal((1000, 4000))  # 4000 runs of 1000 steps
    rate = float(np.mean(test.first_alarm(z) >= 0))
    # the bound is a union bound over Ville's inequality, so it holds for every run length
    # up to the horizon; the measured rate is far below it (0.1 % and 3 % at 0.01 and 0.2).
    assert rate <= false_alarm
    # the union over the horizon's start points matters: a threshold stated for one step
    # (ln(2/alpha)/shift) breaks the bound over 1000 steps, so this test can fail
    naive = hm.CUSUM(shift=1.0, false_alarm=false_alarm, horizon=1)
    assert float(np.mean(naive.first_alarm(z) >= 0)) > false_alarm


def test_cusum_threshold_formula_and_errors() -> None:
    test = hm.CUSUM(shift=1.0, false_alarm=0.01, horizon=1000)
    assert math.isclose(test.threshold(), math.log(2e5))
    assert math.isclose(test.threshold(streams=3), math.log(6e5))
    assert test.allowance == 0.5
    for bad in ({"shift": 0.0}, {"false_alarm": 1.0}, {"horizon": 0}, {"horizon": 2.5}):
        with pytest.raises(hm.InvalidArgumentError):
            hm.CUSUM(**bad)  # type: ignore[arg-type]


def test_cusum_detects_a_one_sigma_shift_within_the_stated_delay() -> None:
    test = hm.CUSUM(shift=1.0, false_alarm=0.01, horizon=1000)
    stated = test.expected_delay(1.0)  # Siegmund's approximation: 24.7 steps
    z = np.random.default_rng(1).standard_normal((300, 2000)) + 1.0  # shifted from step 0
    delay = test.first_alarm(z) + 1  # steps until the alarm, the alarm's step included
    assert (delay > 0).all(), "a 1-sigma shift went undetected for 300 steps"
    # 2000 runs: the standard error of the mean delay is about 0.2 steps; Siegmund's
    # approximation is within a few percent of the truth for thresholds this high
    assert abs(delay.mean() - stated) < 0.1 * stated
    # the slowest of 2000 runs: the sum of 4 * stated steps has mean 2 * stated and sd
    # 10 steps, 5 sd above the threshold
    assert delay.max() <= 4 * stated
    # a shift of 2 sigma is detected faster than one of 1 sigma
    assert test.expected_delay(2.0) < stated / 2


def test_cusum_run_keeps_its_state_across_batches() -> None:
    test = hm.CUSUM(shift=1.0, false_alarm=0.05, horizon=500)
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.standard_normal((150, 2)), rng.standard_normal((150, 2)) + 1.5])
    z[10, 1] = np.nan  # not measured: leaves that stream's statistics as they are
    whole, stat, _ = test.run(z)
    first, stat1, state = test.run(z[:170])
    second, stat2, _ = test.run(z[170:], state=state)
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)
    np.testing.assert_allclose(np.concatenate([stat1, stat2]), stat)
    assert whole.shape == (300, 2) and whole[150:].any() and not whole[:150].any()
    assert (stat[whole.any(axis=1)] >= 1.0).all()  # an alarm is a statistic at its threshold


# ----------------------------------------------------------------------------- Monitor


def test_in_distribution_inputs_are_flagged_at_most_at_the_stated_rate(fitted) -> None:
    # the distance flag does not depend on the model: fit many monitors on fresh training
    # inputs and count how often new inputs drawn the same way are called far
    model = fitted[0]
    rng = np.random.default_rng(3)
    rates, bounds = [], []
    for _ in range(200):
        train, new = rng.uniform(0.0, 1.0, 100), rng.uniform(0.0, 1.0, 50)
        monitor = hm.Monitor(model, quantile=0.9, neighbours=3).fit(frame(train))
        rates.append(monitor.check(frame(new)).far_from_training.mean())
        bounds.append(monitor.false_flag_rates_["far_from_training"])
    # conformal: at most 1 - r/(n+1) = 1 - 91/101 on average over training sets; 200 x 50
    # rows give a standard error of about 0.004, so 0.015 is over 3 standard errors
    assert bounds[0] == pytest.approx(1 - 91 / 101)
    assert float(np.mean(rates)) <= bounds[0] + 0.015


def test_outside_range_and_far_inputs_are_flagged_with_reasons(fitted) -> None:
    model, x, y, _, _ = fitted
    monitor = hm.Monitor(model).fit(frame(x, y))
    report = monitor.check(np.array([[0.5], [1.6], [-2.0]]))
    assert report.outside_range.tolist() == [False, True, True]
    assert report.far_from_training.tolist() == [False, True, True]
    assert report.flagged.tolist() == [False, True, True]
    assert any(f"{X_NAME!r} = 1.6 outside the training range" in r for r in report.reasons[1])
    assert report.std is None and not report.disagreement.any()  # a single model
    assert report.errors is None and not report.drift_alarm.any()  # no measurements


def test_consistency_failures_are_reported(fitted) -> None:
    model, x, y, _, _ = fitted
    monitor = hm.Monitor(model).fit(frame(x, y))
    low = monitor.check(frame(np.linspace(0.1, 0.3, 5)))  # predictions near 1.2-1.6
    high = monitor.check(frame(np.linspace(0.7, 0.9, 5)))  # predictions near 2.4-2.8
    assert low.consistency is not None and low.consistency.passed and low.passed
    assert high.consistency is not None and not high.consistency.passed
    assert not high.passed and f"{Y_NAME} bounds" in high.summary()


def test_drift_of_the_errors_raises_an_alarm_kept_across_batches(fitted) -> None:
    model, x, y, xv, yv = fitted
    monitor = hm.Monitor(model, drift=hm.CUSUM(false_alarm=0.01, horizon=1000))
    monitor.fit(frame(x, y), errors=(frame(xv), yv[:, None]))
    assert monitor.error_std_ is not None
    rng = np.random.default_rng(4)
    new_x = rng.uniform(0.0, 1.0, 400)
    shifted = line(new_x, rng)
    shifted[200:] += 4.0 * float(monitor.error_std_[0])  # the sensor drifts by 4 sd at 200
    steady = monitor.check(frame(new_x[:100], shifted[:100]))  # measurements as a column
    assert not steady.drift_alarm.any(), steady.summary()
    rest = monitor.check(frame(new_x[100:]), shifted[100:, None])  # measurements as y
    assert rest.steps[0] == 100 and monitor.n_seen_ == 400
    assert rest.first_alarm is not None and 200 <= rest.first_alarm < 200 + 20
    assert any("drift alarm" in r for r in rest.reasons[rest.first_alarm - 100])
    # the same rows in one batch give the same alarms: the test kept its state
    monitor.reset()
    whole = monitor.check(frame(new_x), shifted[:, None])
    np.testing.assert_array_equal(whole.drift_alarm[100:], rest.drift_alarm)


def test_ensemble_disagreement_is_flagged(fitted) -> None:
    _, x, y, xv, yv = fitted
    ensemble = hm.DeepEnsemble(regressor(adam_steps=150), n_members=3, calibration=None)
    ensemble.fit(frame(x, y))
    monitor = hm.Monitor(ensemble).fit(frame(x, y), errors=(frame(xv), yv[:, None]))
    assert monitor.std_threshold_ is not None and monitor.std_threshold_.shape == (1,)
    report = monitor.check(frame(np.array([0.5, 4.0])))
    assert report.std is not None and report.std.shape == (2, 1)
    assert report.disagreement.tolist() == [False, True]
    assert any("ensemble spread" in r for r in report.reasons[1])


def test_report_json_is_complete_and_written_atomically(fitted, tmp_path: Path) -> None:
    model, x, y, xv, yv = fitted
    monitor = hm.Monitor(model).fit(frame(x, y), errors=(frame(xv), yv[:, None]))
    report = monitor.check(frame(np.array([0.2, 3.0]), np.array([1.4, 7.0])))
    path = tmp_path / "out" / "monitor.json"
    report.to_json(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["monitor.json"]  # no temp file
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["n_rows"] == 2 and data["counts"]["outside_range"] == 1
    assert data["rows"][1]["flags"][:2] == ["outside_range", "far_from_training"]
    assert data["rows"][0]["flags"] == [] and len(data["rows"][0]["error"]) == 1
    assert set(data["false_flag_rates"]) == {"far_from_training", "drift_alarm"}
    assert "2 row(s), 1 flagged" in report.summary()


def test_monitor_errors_are_clear(fitted) -> None:
    model, x, y, _, _ = fitted
    with pytest.raises(hm.InvalidArgumentError, match="not fitted"):
        hm.Monitor(model).check(frame(x))
    with pytest.raises(hm.InvalidArgumentError, match="quantile"):
        hm.Monitor(model, quantile=1.5).fit(frame(x))
    with pytest.raises(hm.InvalidArgumentError, match="not fitted"):
        hm.Monitor(regressor()).fit(frame(x))
    with pytest.raises(hm.InvalidTypeError, match="CUSUM"):
        hm.Monitor(model, drift=0.01).fit(frame(x))  # type: ignore[arg-type]
    no_errors = hm.Monitor(model).fit(frame(x))  # inputs only: no scale for the errors
    with pytest.raises(hm.DataError, match="no scale for the errors"):
        no_errors.check(frame(x[:3], y[:3]))
    with pytest.raises(hm.DataError, match="at least 2"):
        hm.Monitor(model).fit(frame(x[:1]))


def test_monitor_command_prints_and_writes_a_report(
    fitted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybridml.cli import main

    _, x, y, _, _ = fitted
    model = regressor(adam_steps=100, quasi_newton_steps=0).fit(frame(x, y))
    model.save(tmp_path / "model.pt")
    ref = "\n".join(f"{a:.17g},{b:.17g}" for a, b in zip(x, y, strict=True))
    (tmp_path / "train.csv").write_text(f"{X_NAME},{Y_NAME}\n{ref}\n", encoding="utf-8")
    (tmp_path / "new.csv").write_text(f"{X_NAME}\n0.5\n0.52\n1.8\n", encoding="utf-8")
    args = ["monitor", str(tmp_path / "model.pt"), str(tmp_path / "new.csv")]
    assert main([*args, "--reference", str(tmp_path / "train.csv")]) == 1  # a row flagged
    out = capsys.readouterr().out
    assert "3 row(s), 1 flagged" in out and "outside the training range" in out
    data = json.loads((tmp_path / "new.monitor.json").read_text(encoding="utf-8"))
    assert [row["flags"] for row in data["rows"]][2][:1] == ["outside_range"]
    assert data["counts"]["flagged"] == 1
    record = [*args, "--reference", str(tmp_path / "train.csv"), "--policy", "record"]
    assert main([*record, "--json", str(tmp_path / "r.json")]) == 0
    assert (tmp_path / "r.json").exists()
    # a file that is not a model file: one line, status 2
    bad = ["monitor", str(tmp_path / "train.csv"), str(tmp_path / "new.csv")]
    assert main([*bad, "--reference", str(tmp_path / "train.csv")]) == 2
    assert capsys.readouterr().err.startswith("hybridml monitor: error: ")


def test_monitor_command_reads_a_batched_ensemble_model_file(
    fitted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybridml.cli import main

    _, x, y, _, _ = fitted
    model = hm.BatchedEnsemble(
        inputs=[X_NAME], outputs=[Y_NAME], n_members=3, phases=(hm.Adam(50),), progress=False
    ).fit(frame(x, y))
    model.save(tmp_path / "batched.pt")
    ref = "\n".join(f"{a:.17g},{b:.17g}" for a, b in zip(x, y, strict=True))
    (tmp_path / "train.csv").write_text(f"{X_NAME},{Y_NAME}\n{ref}\n", encoding="utf-8")
    (tmp_path / "new.csv").write_text(f"{X_NAME}\n0.5\n1.8\n", encoding="utf-8")
    args = ["monitor", str(tmp_path / "batched.pt"), str(tmp_path / "new.csv")]
    assert main([*args, "--reference", str(tmp_path / "train.csv"), "--policy", "record"]) == 0
    assert "2 row(s), 1 flagged" in capsys.readouterr().out
