"""The scikit-learn style facade: settings in __init__, fit returns self, learned state
ends in _, get_params/set_params, predict attaches the consistency report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hybridml as hm


def data(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(0.0, 1.0, n)[:, None]
    return x, np.sin(3 * x)


def test_init_stores_settings_only_and_params_round_trip() -> None:
    est = hm.HybridRegressor(hidden=(8,), adam_steps=5)
    assert not any(k.endswith("_") for k in vars(est))
    params = est.get_params()
    assert params["hidden"] == (8,) and params["adam_steps"] == 5
    assert est.set_params(lr=0.1) is est and est.lr == 0.1
    with pytest.raises(ValueError, match="no parameter 'lrr'"):
        est.set_params(lrr=1)
    clone = hm.HybridRegressor(**est.get_params())
    assert clone.get_params() == est.get_params()


def test_fit_returns_self_and_predict_before_fit_errors() -> None:
    x, y = data()
    est = hm.HybridRegressor(hidden=(16, 16), adam_steps=300, lbfgs_steps=50, progress=False)
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict(x)
    assert est.fit(x, y) is est
    assert hasattr(est, "model_") and hasattr(est, "history_")
    # 20 exact points of sin(3x) on [0, 1]: a small net with L-BFGS fits them closely
    assert est.score(x, y) > 0.99


def test_same_seed_same_numbers() -> None:
    x, y = data()
    preds = [
        np.asarray(
            hm.HybridRegressor(hidden=(8,), adam_steps=50, lbfgs_steps=5, seed=7, progress=False)
            .fit(x, y)
            .predict(x)
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(preds[0], preds[1])


def test_predict_runs_checks_with_policy() -> None:
    x, y = data()
    est = hm.HybridRegressor(
        hidden=(8,),
        adam_steps=100,
        lbfgs_steps=0,
        checks=[hm.Bounds("y0", lower=10.0)],  # impossible on purpose: sin(3x) < 10
        check_policy="record",
        progress=False,
    ).fit(x, y)
    pred = est.predict(x)
    assert not pred.report.passed
    assert pred.report.failures[0].fraction_violating == 1.0
    with pytest.raises(hm.ConsistencyError):
        est.predict(x, policy="raise")
    with pytest.warns(hm.ConsistencyWarning):
        est.predict(x, policy="warn")


def test_missing_outputs_are_learned_from_physics_only() -> None:
    # y1 is never measured (NaN): the data term ignores it; the loss stays finite
    x, y = data()
    yy = np.concatenate([y, np.full_like(y, np.nan)], axis=1)
    est = hm.HybridRegressor(hidden=(8,), adam_steps=20, lbfgs_steps=0, progress=False)
    est.fit(x, yy)
    assert np.isfinite(est.history_.loss[-1])
    assert np.asarray(est.predict(x)).shape == (20, 2)


def test_default_dtype_is_left_alone() -> None:
    x, y = data()
    before = torch.get_default_dtype()
    hm.HybridRegressor(hidden=(8,), adam_steps=5, lbfgs_steps=5, progress=False).fit(x, y)
    assert torch.get_default_dtype() == before


def test_quasi_newton_bfgs_runs_a_bfgs_phase_and_bad_values_are_refused() -> None:
    x, y = data()
    common = {"hidden": (16, 16), "adam_steps": 300, "lbfgs_steps": 50, "progress": False}
    est = hm.HybridRegressor(quasi_newton="bfgs", **common).fit(x, y)
    assert est.history_.phase.count("bfgs") == 50 and "lbfgs" not in est.history_.phase
    # the same small fit as with L-BFGS above: 20 exact points are matched closely
    assert est.score(x, y) > 0.99
    with pytest.raises(ValueError, match="quasi_newton must be 'lbfgs' or 'bfgs', got 'newton'"):
        hm.HybridRegressor(quasi_newton="newton", **common).fit(x, y)


def cells(measured: list[bool] | None = None) -> hm.Dataset:
    x = np.linspace(0.0, 1.0, 12)
    return hm.Dataset(
        {"cell": np.repeat(["a", "b", "c"], 4), "x [m]": x, "y [V]": np.sin(3 * x)},
        group="cell",
        measured=measured,
    )


def test_a_dataset_or_dataframe_fit_gives_the_array_fit_and_named_predictions() -> None:
    pd = pytest.importorskip("pandas")
    ds = cells()
    settings = {"hidden": (8,), "adam_steps": 30, "lbfgs_steps": 5, "progress": False}
    named = {"inputs": ["x [m]"], "outputs": ["y [V]"], **settings}
    x, y = ds.array(["x [m]"]), ds.array(["y [V]"])
    ref = np.asarray(hm.HybridRegressor(**settings).fit(x, y).predict(x))
    est = hm.HybridRegressor(**named).fit(ds)
    pred = est.predict(ds)
    # same rows, same seed, same arithmetic: identical numbers from arrays and a Dataset
    np.testing.assert_array_equal(np.asarray(pred), ref)
    assert pred.columns == ("y [V]",)
    assert pred.units == {"x [m]": "m", "y [V]": "V"} and est.units_ == pred.units
    frame = pred.to_frame()
    assert list(frame.columns) == ["x [m]", "y [V]", "cell"]
    np.testing.assert_array_equal(frame["y [V]"].to_numpy(), ref[:, 0])
    # a DataFrame is read by column name (its column order does not matter)
    df = pd.DataFrame({"y [V]": y[:, 0], "x [m]": x[:, 0]})
    from_frame = hm.HybridRegressor(**named).fit(df)
    np.testing.assert_array_equal(np.asarray(from_frame.predict(df)), ref)
    np.testing.assert_array_equal(np.asarray(from_frame.predict(x)), ref)  # by position
    with pytest.raises(hm.MissingColumnError, match=r"no column 'x \[m\]'.*mean 'x \[mm\]'"):
        from_frame.predict(df.rename(columns={"x [m]": "x [mm]"}))
    with pytest.raises(hm.DataError, match="X has 2 columns; the model was fitted on 1"):
        est.predict(np.ones((3, 2)))


def test_synthetic_rows_get_their_own_data_weight() -> None:
    # rows 0-3 are synthetic (measured=False); the default weight 1 keeps the plain mean
    # squared error, synthetic_weight=0 leaves them out of the data term
    mask = [False] * 4 + [True] * 8
    settings = {"inputs": ["x [m]"], "outputs": ["y [V]"], "hidden": (8,), "progress": False}
    plain = hm.HybridRegressor(adam_steps=1, lbfgs_steps=0, **settings).fit(cells(mask))
    assert plain.losses_["data"].w is None
    est = hm.HybridRegressor(adam_steps=1, lbfgs_steps=0, synthetic_weight=0.0, **settings)
    est.fit(cells(mask))
    term = est.losses_["data"]
    assert term.w is not None and (term.w[:4] == 0).all() and (term.w[4:] > 0).all()
    ds = cells(mask)
    with torch.no_grad():
        pred = est.model_(torch.as_tensor(ds.array(["x [m]"]), dtype=torch.float32)).numpy()
        loss = float(term(est.model_))
    mse_measured = float(np.mean((pred[4:, 0] - ds["y [V]"][4:]) ** 2))
    # float32 arithmetic: agreement to 1e-5 relative
    assert loss == pytest.approx(mse_measured, rel=1e-5)
    with pytest.raises(ValueError, match="synthetic_weight must be a finite number >= 0"):
        hm.HybridRegressor(synthetic_weight=-1.0, **settings).fit(cells(mask))
    with pytest.raises(hm.DataError, match="every row is marked not measured"):
        hm.HybridRegressor(synthetic_weight=0.0, **settings).fit(cells([False] * 12))


def test_fit_input_errors_name_the_row_and_column() -> None:
    x, y = data()
    x[3, 0] = np.nan
    with pytest.raises(hm.DataError, match=r"HybridRegressor.fit: X has the value nan at row 3"):
        hm.HybridRegressor(progress=False).fit(x, y)
    with pytest.raises(hm.DataError, match="X has 20 rows but y has 19"):
        hm.HybridRegressor(progress=False).fit(data()[0], y[:19])
