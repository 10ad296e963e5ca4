"""Deep ensembles: members differ, intervals are conformally calibrated and achieve their
coverage on new data, a failing member is recorded, members train on a real Dask cluster."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import hybridml as hm
from hybridml import (
    DeepEnsemble,
    EnsembleMemberWarning,
    EnsemblePrediction,
    LeaveOneGroupOut,
    cross_validate,
)


def small(**kw: object) -> hm.HybridRegressor:
    settings: dict = {
        "hidden": (16, 16),
        "adam_steps": 150,
        "lr": 1e-2,
        "lbfgs_steps": 0,
        "progress": False,
    }
    settings.update(kw)
    return hm.HybridRegressor(**settings)


def noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, 1))
    return x, np.sin(3 * x) + 0.1 * rng.standard_normal((n, 1))


def test_members_differ_by_seed_and_bootstrap() -> None:
    x, y = noisy(30, 0)
    ens = DeepEnsemble(small(), n_members=3, calibration=None, seed=5).fit(x, y)
    assert ens.member_seeds_ == [5, 6, 7]
    assert [m.seed for m in ens.members_] == [5, 6, 7]
    pred = ens.predict(x)
    assert isinstance(pred, EnsemblePrediction)
    assert pred.members.shape == (3, 30, 1)
    assert (pred.std > 0).all()  # the members disagree everywhere
    np.testing.assert_allclose(np.asarray(pred), pred.members.mean(axis=0))
    # without calibration the interval is the plain mean ± 2 std
    np.testing.assert_allclose(pred.upper - pred.lower, 4 * pred.std)
    # same settings, same numbers (seeded bootstrap and members)
    again = DeepEnsemble(small(), n_members=3, calibration=None, seed=5).fit(x, y)
    np.testing.assert_array_equal(again.predict(x).members, pred.members)


def test_conformal_intervals_reach_their_coverage_on_new_data() -> None:
    # 80 noisy points, half held out for calibration; split conformal guarantees an expected
    # coverage >= 0.9 on new exchangeable points. With 40 calibration points the coverage of
    # one calibration draw is Beta(37, 4)-distributed: mean 0.90, sd 0.046; the bound 0.75 is
    # over 3 sd below, and 400 test points add only ~0.015 of sampling noise.
    x, y = noisy(80, 1)
    ens = DeepEnsemble(small(), n_members=4, calibration=0.5, coverage=0.9, seed=0).fit(x, y)
    cal = ens.calibration_
    assert cal is not None and cal.n == 40 and ens.calibration_index_.size == 40
    assert (cal.achieved >= 0.9).all()  # by construction on the calibration points
    x_test, y_test = noisy(400, 2)
    achieved = ens.coverage_score(x_test, y_test)
    assert 0.75 <= achieved <= 1.0
    # a higher coverage widens the interval; its multiplier is recomputed from the scores
    p90, p50 = ens.predict(x_test), ens.predict(x_test, coverage=0.5)
    assert ((p90.upper - p90.lower) >= (p50.upper - p50.lower)).all()
    assert ens.coverage_score(x_test, y_test, coverage=0.5) < achieved


def test_too_small_calibration_set_is_a_clear_error() -> None:
    x, y = noisy(10, 0)
    with pytest.raises(ValueError, match=r"cannot certify a coverage of 0.95.*at least 19"):
        DeepEnsemble(small(adam_steps=5), n_members=2, calibration=0.3, coverage=0.95).fit(x, y)
    with pytest.raises(ValueError, match="member_params has 1 entries but n_members=2"):
        DeepEnsemble(small(), n_members=2, member_params=[{}]).fit(x, y)
    with pytest.raises(ValueError, match="coverage must lie in"):
        DeepEnsemble(small(), coverage=1.0).fit(x, y)


def test_failing_member_is_recorded_and_the_rest_are_used() -> None:
    x, y = noisy(30, 0)
    # lr=1e30 blows the weights up on the first Adam step: the data loss becomes inf and the
    # trainer raises NonFiniteLossError for that member only
    with pytest.warns(EnsembleMemberWarning, match="1 of 3 members failed.*NonFiniteLossError"):
        ens = DeepEnsemble(
            small(), n_members=3, calibration=None, member_params=[{}, {"lr": 1e30}, {}]
        ).fit(x, y)
    assert len(ens.members_) == 2 and ens.member_seeds_ == [0, 2]
    (fail,) = ens.failures_
    assert fail.index == 1 and fail.seed == 1 and fail.error == "NonFiniteLossError"
    assert "'data'" in fail.message  # the message names the loss term
    assert np.isfinite(np.asarray(ens.predict(x))).all()
    with pytest.raises(RuntimeError, match="all 2 members failed"):
        DeepEnsemble(small(lr=1e30), n_members=2, calibration=None).fit(x, y)


def test_fitted_hybrid_regressor_pickles() -> None:
    # process pools and Dask send members back to the caller by pickling them
    x, y = noisy(20, 0)
    est = small(adam_steps=20).fit(x, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(np.asarray(back.predict(x)), np.asarray(est.predict(x)))


def test_members_train_on_a_thread_pool() -> None:
    # Threads work, but are not bitwise reproducible yet: HybridRegressor seeds torch's
    # *global* generator (fork_rng + manual_seed) to initialise the network, and concurrent
    # threads race on it. So only validity is asserted here; process pools and Dask (below)
    # are reproducible.
    x, y = noisy(20, 0)
    with ThreadPoolExecutor(2) as pool:
        threaded = DeepEnsemble(
            small(adam_steps=30), n_members=2, calibration=None, executor=pool
        ).fit(x, y)
    assert len(threaded.members_) == 2 and not threaded.failures_
    assert np.isfinite(threaded.predict(x).members).all()


def test_ensemble_in_grouped_cross_validation() -> None:
    # a DeepEnsemble is itself an estimator: cross_validate clones and fits it per fold
    x, y = noisy(24, 3)
    groups = np.repeat(["a", "b", "c"], 8)
    res = cross_validate(
        DeepEnsemble(small(adam_steps=50), n_members=2, calibration=None),
        x,
        y,
        groups=groups,
        cv=LeaveOneGroupOut(),
    )
    assert len(res.folds) == 3 and np.isfinite(res.predictions).all()


def test_members_train_on_a_dask_local_cluster() -> None:
    # a real LocalCluster with 2 worker processes: members and the template are pickled
    # there and back; a failing member (lr=1e30) is recorded across process boundaries
    distributed = pytest.importorskip("distributed")
    x, y = noisy(30, 0)
    template = small(adam_steps=60)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with pytest.warns(EnsembleMemberWarning, match="1 of 3"):
            ens = DeepEnsemble(
                template,
                n_members=3,
                calibration=None,
                executor=client.get_executor(),
                member_params=[{}, {}, {"lr": 1e30}],
            ).fit(x, y)
    assert len(ens.members_) == 2 and ens.failures_[0].error == "NonFiniteLossError"
    serial = DeepEnsemble(template, n_members=2, calibration=None).fit(x, y)
    # Members fitted in worker processes match the serial fit: same seeds and data, and
    # Dask's nanny starts workers with OMP_NUM_THREADS=1, like this test's one torch thread,
    # so the arithmetic is the same; the tolerance 1e-6 only allows for a
    # different reduction order on another platform.
    np.testing.assert_allclose(
        ens.predict(x).members, serial.predict(x).members, rtol=1e-6, atol=1e-6
    )


def test_ensemble_prediction_carries_the_report_of_the_checks_on_the_mean() -> None:
    x, y = noisy(20, 0)
    seen: list[torch.nn.Module] = []

    def mean_model_matches(data: object, model: torch.nn.Module) -> bool:
        seen.append(model)
        return True

    checks = [
        hm.Bounds("y0", lower=10.0, name="high"),  # impossible on purpose: sin(3x) + noise < 10
        hm.CustomCheck(mean_model_matches, name="model"),
    ]
    ens = DeepEnsemble(
        small(adam_steps=20, checks=checks, check_policy="record"), n_members=3, calibration=None
    ).fit(x, y)
    pred = ens.predict(x)
    assert pred.report is not None and not pred.report.passed
    assert [r.name for r in pred.report.failures] == ["high"]
    assert pred.report["high"].fraction_violating == 1.0
    assert pred.columns == ("y0",)
    # the checks ran once, on a model of the members' mean
    (model,) = seen
    with torch.no_grad():
        xt = torch.as_tensor(x, dtype=torch.float32)
        means = torch.stack([m.model_(xt) for m in ens.members_]).mean(dim=0)
        np.testing.assert_array_equal(model(xt).numpy(), means.numpy())
    # the members' check policy applies once to the ensemble, overridable per call
    with pytest.raises(hm.ConsistencyError):
        ens.predict(x, policy="raise")
    ens.members_[0].check_policy = "warn"  # the first member's policy is the ensemble's
    with pytest.warns(hm.ConsistencyWarning) as record:
        ens.predict(x)
    assert sum(issubclass(w.category, hm.ConsistencyWarning) for w in record) == 1


def test_a_dataset_brings_its_groups_and_units_to_the_ensemble() -> None:
    x, y = noisy(24, 4)
    ds = hm.Dataset(
        {"cell": np.repeat(["a", "b", "c", "d"], 6), "x [s]": x[:, 0], "y [V]": y[:, 0]},
        group="cell",
    )
    est = small(adam_steps=10, inputs=["x [s]"], outputs=["y [V]"])
    ens = DeepEnsemble(est, n_members=2, calibration=0.25, coverage=0.5).fit(ds)
    # calibration holds out one whole cell (a quarter of the 4 groups): 6 rows of one label
    held = ds["cell"][ens.calibration_index_]
    assert ens.calibration_index_.size == 6 and len(set(held.tolist())) == 1
    pred = ens.predict(ds)
    assert pred.columns == ("y [V]",) and pred.units == {"x [s]": "s", "y [V]": "V"}
    assert pred.report is not None and pred.report.passed  # no checks: an empty report


def test_an_output_never_measured_gets_no_calibrated_interval_and_a_warning() -> None:
    # v is never measured (as in the README's oscillator): the measured output is
    # calibrated as usual, v's interval is NaN (no interval can be calibrated without
    # measurements) and a warning names it
    import hybridml as hm

    x = np.linspace(0.0, 1.0, 40)[:, None]
    y = np.column_stack([np.sin(3 * x[:, 0]), np.full(40, np.nan)])
    est = hm.HybridRegressor(
        inputs=["t"], outputs=["x", "v"], hidden=(8,), adam_steps=40, lbfgs_steps=0,
        progress=False,
    )  # fmt: skip
    ens = hm.DeepEnsemble(est, n_members=3, calibration=0.5, coverage=0.8, progress=False)
    with pytest.warns(hm.HybridMLWarning, match=r"\['v'\].*no calibrated interval"):
        ens.fit(x, y)
    pred = ens.predict(x, policy="record")
    assert np.isfinite(pred.lower[:, 0]).all() and np.isnan(pred.lower[:, 1]).all()
    assert ens.calibration_.n > 0 and np.isnan(ens.calibration_.quantile[1])
