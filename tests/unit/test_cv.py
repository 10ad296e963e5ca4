"""Grouped cross-validation: groups are never split, folds and metrics are right, bad input
gets clear errors, scikit-learn splitters and executors work."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import hybridml as hm
from hybridml import (
    CVResult,
    GroupKFold,
    LeaveOneGroupOut,
    cross_validate,
)


class LeastSquares:
    """A real (tiny) estimator: ordinary least squares with an intercept."""

    def __init__(self, *, fail_below: float | None = None) -> None:
        self.fail_below = fail_below

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"fail_below": self.fail_below}

    def fit(self, X: Any, y: Any) -> LeastSquares:
        x = np.asarray(X, dtype=float)
        if self.fail_below is not None and x.min() < self.fail_below:
            raise FloatingPointError("inputs below the limit")
        a = np.column_stack([np.ones(len(x)), x])
        self.coef_, *_ = np.linalg.lstsq(a, np.asarray(y, dtype=float), rcond=None)
        return self

    def predict(self, X: Any) -> np.ndarray:
        x = np.asarray(X, dtype=float)
        return np.column_stack([np.ones(len(x)), x]) @ self.coef_


def grouped_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y = 2x + 1 + offset(group); groups of unequal size; offsets 0, 0, 0, 3."""
    sizes = {"a": 5, "b": 3, "c": 4, "d": 6}
    offsets = {"a": 0.0, "b": 0.0, "c": 0.0, "d": 3.0}
    groups = np.concatenate([[g] * n for g, n in sizes.items()])
    x = np.linspace(0.0, 1.0, groups.size)[:, None]
    y = 2 * x + 1 + np.array([offsets[g] for g in groups])[:, None]
    return x, y, groups


@pytest.mark.parametrize("splitter", [GroupKFold(3), GroupKFold(4), LeaveOneGroupOut()])
def test_folds_keep_groups_whole_and_cover_every_row_once(splitter: Any) -> None:
    x, y, groups = grouped_data()
    seen = np.zeros(len(x), dtype=int)
    folds = list(splitter.split(x, y, groups))
    assert len(folds) == splitter.get_n_splits(x, y, groups)
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == len(x)
        # no group on both sides of a split
        assert not set(groups[train]) & set(groups[test])
        seen[test] += 1
    assert (seen == 1).all()


def test_group_kfold_balances_rows() -> None:
    # sizes 5, 3, 4, 6 into 2 folds: largest-first into the emptier fold -> {6, 3} and {5, 4}
    x, y, groups = grouped_data()
    sizes = sorted(len(test) for _, test in GroupKFold(2).split(x, y, groups))
    assert sizes == [9, 9]


def test_fewer_groups_than_folds_is_a_clear_error() -> None:
    x, y, groups = grouped_data()
    with pytest.raises(ValueError, match=r"4 group\(s\).*n_splits=5.*GroupKFold\(n_splits=4\)"):
        cross_validate(LeastSquares(), x, y, groups=groups, cv=5)
    with pytest.raises(ValueError, match="at least 2"):
        list(LeaveOneGroupOut().split(x, y, np.zeros(len(x))))
    with pytest.raises(ValueError, match="pass `groups`"):
        cross_validate(LeastSquares(), x, y, cv=2)
    with pytest.raises(ValueError, match="groups has 3 labels but X has 18 rows"):
        cross_validate(LeastSquares(), x, y, groups=groups[:3], cv=2)
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        GroupKFold(1)


def test_leave_one_group_out_metrics_are_exact() -> None:
    # Least squares recovers y = 2x + 1 exactly from groups a, b, c (offset 0), so:
    # testing on d (offset 3) gives rmse = mae = 3 exactly; testing on a, b or c, the fit
    # includes d's offset and the error is > 0. Tolerance 1e-9: float rounding only.
    x, y, groups = grouped_data()
    res = cross_validate(LeastSquares(), x, y, groups=groups, cv=LeaveOneGroupOut())
    assert isinstance(res, CVResult)
    assert [f.test_groups for f in res.folds] == [("a",), ("b",), ("c",), ("d",)]
    fold_d = res.folds[3]
    assert fold_d.metrics["rmse"] == pytest.approx(3.0, abs=1e-9)
    assert fold_d.metrics["mae"] == pytest.approx(3.0, abs=1e-9)
    assert all(f.metrics["rmse"] > 0.1 for f in res.folds[:3])
    summary = res.summary()
    np.testing.assert_allclose(summary["rmse"]["mean"], res.metric("rmse").mean())
    np.testing.assert_allclose(summary["rmse"]["std"], res.metric("rmse").std(ddof=1))
    # out-of-fold predictions: each row predicted by the model that never saw its group
    np.testing.assert_allclose(res.predictions[groups == "d"], y[groups == "d"] - 3.0, atol=1e-9)
    assert "summary" in res.to_dict() and len(res.to_dict()["folds"]) == 4
    assert "mean" in str(res)


def test_scikit_learn_splitter_is_accepted() -> None:
    sklearn_ms = pytest.importorskip("sklearn.model_selection")
    x, y, groups = grouped_data()
    res = cross_validate(LeastSquares(), x, y, groups=groups, cv=sklearn_ms.LeaveOneGroupOut())
    ours = cross_validate(LeastSquares(), x, y, groups=groups, cv=LeaveOneGroupOut())
    # same folds (both leave each group out, in sorted label order = first appearance here)
    np.testing.assert_allclose(res.metric("rmse"), ours.metric("rmse"), rtol=1e-12)
    shuffled = cross_validate(
        LeastSquares(),
        x,
        y,
        groups=groups,
        cv=sklearn_ms.GroupShuffleSplit(n_splits=3, test_size=1, random_state=0),
    )
    assert len(shuffled.folds) == 3
    for f in shuffled.folds:
        assert len(f.test_groups) == 1


def test_failed_fold_recorded_with_warning_or_raised() -> None:
    x, y, groups = grouped_data()
    # fails when the training rows include x < 0.25: all folds but the one leaving out "a"
    # (which holds every x < 0.25)
    est = LeastSquares(fail_below=0.25)
    with pytest.raises(RuntimeError, match=r"fold 1 .*FloatingPointError"):
        cross_validate(est, x, y, groups=groups, cv=LeaveOneGroupOut())
    with pytest.warns(RuntimeWarning, match=r"3 of 4 folds failed"):
        res = cross_validate(est, x, y, groups=groups, cv=LeaveOneGroupOut(), raise_on_error=False)
    assert [f.error is None for f in res.folds] == [True, False, False, False]
    assert np.isnan(res.folds[1].metrics["rmse"])
    assert np.isfinite(res.summary()["rmse"]["mean"])  # summary over the folds that ran


def test_executor_gives_the_serial_result() -> None:
    x, y, groups = grouped_data()
    serial = cross_validate(LeastSquares(), x, y, groups=groups, cv=GroupKFold(3))
    with ThreadPoolExecutor(2) as pool:
        threaded = cross_validate(
            LeastSquares(), x, y, groups=groups, cv=GroupKFold(3), executor=pool
        )
    np.testing.assert_array_equal(serial.predictions, threaded.predictions)


def test_hybrid_regressor_on_a_dataset_with_cells() -> None:
    # Three "cells" measuring y = sin(3x) on different x ranges; the Dataset's group column
    # gives the groups and the estimator's outputs the targets.
    xs = [np.linspace(0.0, 0.4, 8), np.linspace(0.3, 0.7, 8), np.linspace(0.6, 1.0, 8)]
    x = np.concatenate(xs)
    ds = hm.Dataset(
        {"cell": np.repeat(["c1", "c2", "c3"], 8), "x [m]": x, "y [m]": np.sin(3 * x)},
        group="cell",
        coordinate="x [m]",
    )
    est = hm.HybridRegressor(
        inputs=["x [m]"],
        outputs=["y [m]"],
        hidden=(16,),
        adam_steps=200,
        lbfgs_steps=30,
        progress=False,
    )
    res = cross_validate(est, ds, cv=LeaveOneGroupOut())
    assert not hasattr(est, "model_")  # the estimator passed in is left unfitted
    assert [f.test_groups for f in res.folds] == [("c1",), ("c2",), ("c3",)]
    assert all(f.consistency_passed is True for f in res.folds)  # no checks -> passed
    assert np.isfinite(res.predictions).all()
    # the middle cell is interpolated between its neighbours' ranges (which overlap it),
    # the outer ones extrapolated: interpolation is the easier task. sin(3x) varies by
    # about 1 over [0, 1]; an interpolation error below 0.1 is a loose bound for a fitted net.
    assert res.folds[1].metrics["rmse"] < 0.1


def test_folds_carry_the_report_and_groups_come_from_a_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    x, y, groups = grouped_data()
    frame = pd.DataFrame({"g": groups, "x": x[:, 0], "y": y[:, 0]})
    est = hm.HybridRegressor(
        inputs=["x"],
        outputs=["y"],
        hidden=(4,),
        adam_steps=5,
        lbfgs_steps=0,
        checks=[hm.Bounds("y", lower=100.0, name="high")],  # impossible: y < 6
        check_policy="record",
        progress=False,
    )
    res = cross_validate(est, frame, groups="g", cv=LeaveOneGroupOut())
    assert [f.test_groups for f in res.folds] == [("a",), ("b",), ("c",), ("d",)]
    for f in res.folds:
        assert f.report is not None and not f.report.passed
        assert f.consistency_passed is False
        assert f.report["high"].n_points == f.test_index.size
    assert res.to_dict()["folds"][0]["report"]["passed"] is False
    # an estimator without checks: no report
    plain = cross_validate(LeastSquares(), x, y, groups=groups, cv=LeaveOneGroupOut())
    assert all(f.report is None and f.consistency_passed is None for f in plain.folds)
