"""Grouped cross-validation: how well a model generalises to a cell it has never seen.

Rows of one group (a cell, an experiment) are correlated; splitting rows at random leaks a
group's information into its own test fold and flatters the model. :func:`cross_validate`
keeps every group whole: :class:`GroupKFold` makes ``K`` folds of whole groups and
:class:`LeaveOneGroupOut` tests on one group at a time. Any splitter with a scikit-learn
style ``split(X, y, groups)`` method works as well (scikit-learn is not needed).

Estimators are duck-typed: anything with ``fit``, ``predict`` and ``get_params`` (a
:class:`~hybridml.HybridRegressor`, a :class:`~hybridml.DeepEnsemble`, a scikit-learn
regressor). A fresh copy, ``type(est)(**est.get_params())``, is fitted on each fold, so the
estimator passed in is never changed.
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..checks import ConsistencyReport
from ..exceptions import InvalidArgumentError, InvalidTypeError, TrainingError, UnknownNameError
from ._base import _is_dataset, _is_frame, _n_rows, _predict_array, _read, _take, clone
from ._metrics import DEFAULT_METRICS, mae, r2, rmse

__all__ = [
    "CVResult",
    "FoldResult",
    "GroupKFold",
    "LeaveOneGroupOut",
    "Splitter",
    "cross_validate",
    "mae",
    "r2",
    "rmse",
]


# ----------------------------------------------------------------------------- splitters


@runtime_checkable
class Splitter(Protocol):
    """What :func:`cross_validate` needs from a splitter (scikit-learn's convention).

    ``split(X, y, groups)`` yields ``(train_index, test_index)`` pairs of integer arrays.
    """

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Any]:
        """Yield ``(train_index, test_index)`` pairs."""
        ...


def _py(label: Any) -> Any:
    """A NumPy scalar label as a Python value (labels of an object array already are)."""
    return label.item() if isinstance(label, np.generic) else label


def _group_codes(groups: Any, n: int | None, owner: str) -> tuple[np.ndarray, list[Any]]:
    if groups is None:
        raise InvalidArgumentError(
            f"{owner}: pass `groups` (one label per row: the cell or experiment of each row), "
            "or a Dataset with a group column."
        )
    g = np.asarray(groups)
    if g.ndim != 1:
        raise InvalidArgumentError(
            f"{owner}: groups must be 1-d (one label per row); got shape {g.shape}."
        )
    if n is not None and g.shape[0] != n:
        raise InvalidArgumentError(f"{owner}: groups has {g.shape[0]} labels but X has {n} rows.")
    labels, first, codes = np.unique(g, return_index=True, return_inverse=True)
    # relabel in order of first appearance, so fold assignment follows the data's order
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[codes.reshape(-1)], [_py(labels[i]) for i in order]


@dataclass(frozen=True)
class GroupKFold:
    """K folds of whole groups, balanced by number of rows.

    Groups are taken largest first and each is put into the fold that has the fewest rows so
    far (the assignment is deterministic, like scikit-learn's ``GroupKFold``). Every group is
    in exactly one test fold.

    Args:
        n_splits: number of folds ``K`` (at least 2, at most the number of groups).
    """

    n_splits: int = 5

    def __post_init__(self) -> None:
        n = self.n_splits
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise InvalidArgumentError(f"GroupKFold: n_splits must be an integer >= 2, got {n!r}.")

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds."""
        return self.n_splits

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_index, test_index)`` for each fold.

        Raises:
            ValueError: without ``groups``, or with fewer distinct groups than folds.
        """
        codes, labels = _group_codes(groups, _n_rows(X) if X is not None else None, "GroupKFold")
        n_groups = len(labels)
        if n_groups < self.n_splits:
            raise InvalidArgumentError(
                f"GroupKFold: {n_groups} group(s) ({', '.join(map(repr, labels[:10]))}) but "
                f"n_splits={self.n_splits}; each fold needs at least one whole group. Use "
                f"GroupKFold(n_splits={max(n_groups, 2)}) or LeaveOneGroupOut()."
                if n_groups >= 2
                else f"GroupKFold: only {n_groups} group(s) but n_splits={self.n_splits}; "
                "cross-validation over groups needs at least 2 groups."
            )
        sizes = np.bincount(codes, minlength=n_groups)
        fold_of_group = np.empty(n_groups, dtype=int)
        fold_rows = np.zeros(self.n_splits, dtype=int)
        for gi in np.argsort(-sizes, kind="stable"):
            k = int(np.argmin(fold_rows))
            fold_of_group[gi] = k
            fold_rows[k] += sizes[gi]
        fold_of_row = fold_of_group[codes]
        for k in range(self.n_splits):
            test = np.flatnonzero(fold_of_row == k)
            yield np.flatnonzero(fold_of_row != k), test


@dataclass(frozen=True)
class LeaveOneGroupOut:
    """One fold per group: train on all other groups, test on that one (leave one cell out)."""

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds: the number of distinct groups."""
        _, labels = _group_codes(groups, None, "LeaveOneGroupOut")
        return len(labels)

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_index, test_index)`` for each group in order of first appearance.

        Raises:
            ValueError: without ``groups``, or with fewer than 2 groups.
        """
        codes, labels = _group_codes(
            groups, _n_rows(X) if X is not None else None, "LeaveOneGroupOut"
        )
        if len(labels) < 2:
            raise InvalidArgumentError(
                f"LeaveOneGroupOut: only {len(labels)} group(s); leaving one out needs at least 2."
            )
        for k in range(len(labels)):
            yield np.flatnonzero(codes != k), np.flatnonzero(codes == k)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FoldResult:
    """The outcome of one fold.

    Attributes:
        fold: index of the fold.
        train_index: rows the model was fitted on.
        test_index: rows it was tested on.
        test_groups: the group labels of the test rows.
        metrics: metric name -> value on the test rows (NaN if the fold failed).
        predictions: predicted values for the test rows, shape ``(n_test, k)`` (NaN if failed).
        consistency_passed: whether the prediction passed the model's consistency checks
            (None when the estimator's prediction carries no consistency report).
        error: ``"ExceptionType: message"`` if fitting or predicting failed, else None.
        report: the :class:`~hybridml.ConsistencyReport` of the estimator's checks on the
            test rows' prediction (for an ensemble: on its mean), applied under the
            estimator's check policy; None when the estimator runs no checks or failed.
    """

    fold: int
    train_index: np.ndarray
    test_index: np.ndarray
    test_groups: tuple[Any, ...]
    metrics: dict[str, float]
    predictions: np.ndarray
    consistency_passed: bool | None = None
    error: str | None = None
    report: ConsistencyReport | None = None


@dataclass
class CVResult:
    """Per-fold results of :func:`cross_validate` and their summary.

    Attributes:
        folds: one :class:`FoldResult` per fold, in order.
        predictions: out-of-fold predictions, shape ``(n, k)``: each row predicted by the
            model that did not see its group (NaN for rows in no test fold or a failed fold).
        y: the targets, shape ``(n, k)``.
    """

    folds: list[FoldResult]
    predictions: np.ndarray
    y: np.ndarray
    metric_names: tuple[str, ...] = field(default=())

    @property
    def failures(self) -> list[FoldResult]:
        """The folds whose fitting or prediction failed."""
        return [f for f in self.folds if f.error is not None]

    def metric(self, name: str) -> np.ndarray:
        """The per-fold values of one metric (NaN for failed folds)."""
        if name not in self.metric_names:
            raise UnknownNameError(
                f"no metric {name!r}; the metrics are {list(self.metric_names)}."
            )
        return np.array([f.metrics[name] for f in self.folds], dtype=float)

    def summary(self) -> dict[str, dict[str, float]]:
        """Metric name -> ``{"mean", "std", "min", "max"}`` over the folds that succeeded.

        ``std`` is the sample standard deviation (``ddof=1``; NaN with one fold).
        """
        out: dict[str, dict[str, float]] = {}
        for name in self.metric_names:
            v = self.metric(name)
            v = v[np.isfinite(v)]
            out[name] = {
                "mean": float(v.mean()) if v.size else math.nan,
                "std": float(v.std(ddof=1)) if v.size > 1 else math.nan,
                "min": float(v.min()) if v.size else math.nan,
                "max": float(v.max()) if v.size else math.nan,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready per-fold metrics, test groups, errors and the summary."""
        return {
            "folds": [
                {
                    "fold": f.fold,
                    "test_groups": [str(g) for g in f.test_groups],
                    "n_train": int(f.train_index.size),
                    "n_test": int(f.test_index.size),
                    "metrics": dict(f.metrics),
                    "consistency_passed": f.consistency_passed,
                    "report": None if f.report is None else f.report.to_dict(),
                    "error": f.error,
                }
                for f in self.folds
            ],
            "summary": self.summary(),
        }

    def __str__(self) -> str:
        names = list(self.metric_names)
        head = f"{'fold':>4}  {'test groups':<24}" + "".join(f"{n:>12}" for n in names)
        lines = [head]
        for f in self.folds:
            groups = ", ".join(map(str, f.test_groups))
            groups = groups if len(groups) <= 24 else groups[:21] + "..."
            vals = "".join(f"{f.metrics[n]:>12.4g}" for n in names)
            lines.append(
                f"{f.fold:>4}  {groups:<24}{vals}" + (f"  FAILED: {f.error}" if f.error else "")
            )
        s = self.summary()
        lines.append(f"{'mean':>4}  {'':<24}" + "".join(f"{s[n]['mean']:>12.4g}" for n in names))
        lines.append(f"{'std':>4}  {'':<24}" + "".join(f"{s[n]['std']:>12.4g}" for n in names))
        return "\n".join(lines)


# ----------------------------------------------------------------------------- driver


def clone_with_own_checkpoint(estimator: Any, tag: str) -> Any:
    """A clone whose checkpoint path (its own ``checkpoint`` setting, or that of the
    estimator it wraps, e.g. a DeepEnsemble's) gets ``tag``: ``ckpt.pt`` becomes
    ``ckpt.<tag>.pt``. Copies that fit other data (folds, active-learning rounds) then
    each resume their own fit, never another's."""
    params = estimator.get_params()
    overrides: dict[str, Any] = {}
    if params.get("checkpoint") is not None:
        path = Path(params["checkpoint"])
        overrides["checkpoint"] = str(path.with_name(f"{path.stem}.{tag}{path.suffix}"))
    inner = params.get("estimator")
    if inner is not None and hasattr(inner, "get_params") and hasattr(inner, "fit"):
        overrides["estimator"] = clone_with_own_checkpoint(inner, tag)
    copy = clone(estimator)
    return copy.set_params(**overrides) if overrides else copy


def _fit_predict(
    estimator: Any, X_train: Any, y_train: Any, X_test: Any, fold: int = 0, device: Any = None
) -> tuple[bool, Any]:
    """Fit a fresh copy and predict; runs in a worker. Errors become values."""
    try:
        est = clone_with_own_checkpoint(estimator, f"fold{fold}")
        if device is not None:
            est.set_params(device=device)
        est.fit(X_train, y_train)
        pred, raw = _predict_array(est, X_test)
        report = getattr(raw, "report", None)
        passed = None if report is None else bool(getattr(report, "passed", True))
        return True, (pred, passed, report)
    except Exception as exc:  # recorded per fold, reported in the result and a warning
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return False, f"{type(exc).__name__}: {exc}{where}"


def cross_validate(
    estimator: Any,
    X: Any,
    y: Any = None,
    *,
    groups: Any = None,
    cv: int | Splitter = 5,
    metrics: Mapping[str, Callable[[np.ndarray, np.ndarray], float]] | None = None,
    executor: Executor | None = None,
    raise_on_error: bool = True,
    device: Any = None,
) -> CVResult:
    """Cross-validate ``estimator`` over groups (cells, experiments), never splitting a group.

    Args:
        estimator: anything with ``fit``/``predict``/``get_params``; a fresh copy is fitted
            per fold (the one passed in is not changed).
        X: inputs, shape ``(n, d)`` (anything :func:`~hybridml.as_inputs` reads), or a
            :class:`~hybridml.Dataset` or DataFrame (then ``y`` may be omitted: the
            estimator's ``outputs`` columns are the targets, and a dataset's group column
            the groups).
        y: targets, shape ``(n, k)``; NaN marks a value that was not measured.
        groups: one group label per row, or the name of the column of ``X`` holding them
            (default: the Dataset's group column).
        cv: the number of folds for :class:`GroupKFold`, or a splitter: a
            :class:`GroupKFold`, :class:`LeaveOneGroupOut`, or any object with a scikit-learn
            style ``split(X, y, groups)`` (e.g. ``sklearn.model_selection.GroupShuffleSplit``).
        metrics: metric name -> ``f(y_true, y_pred) -> float`` (default: rmse, mae, r2);
            targets that are NaN are passed through, the built-ins skip them.
        executor: a ``concurrent.futures.Executor`` to run the folds on (serial when None);
            with a process pool or a Dask cluster the estimator and data must pickle.
        raise_on_error: if True (default) the first failing fold raises; if False, failures
            are recorded in the result (metrics NaN) and a warning names them.
        device: the ``device`` setting of each fold's copy (``"auto"``, ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``, a :class:`torch.device`); ``None`` keeps the
            estimator's. Checked here without an executor; with one, each fold resolves
            it where it runs (a client without a GPU may send ``"cuda"`` to GPU workers).

    Returns:
        A :class:`CVResult` with per-fold metrics, out-of-fold predictions and a summary.

    Raises:
        ValueError: for missing groups, fewer groups than folds, or a splitter that yields
            an empty fold.
    """
    if device is not None:
        from .._device import check_device_setting

        check_device_setting(estimator, device, executor, "cross_validate")
    data = _read(estimator, X, y, groups=groups, what="cross_validate")
    assert data.y is not None
    n, yy, groups = data.n_rows, data.y, data.groups
    splitter: Any = GroupKFold(cv) if isinstance(cv, int) and not isinstance(cv, bool) else cv
    if not callable(getattr(splitter, "split", None)):
        raise InvalidTypeError(
            "cross_validate: cv must be a number of folds or a splitter with "
            f"split(X, y, groups), e.g. LeaveOneGroupOut(); got {cv!r}."
        )
    if groups is not None and np.asarray(groups).shape[0] != n:
        raise InvalidArgumentError(
            f"cross_validate: groups has {np.asarray(groups).shape[0]} labels but X has {n} rows."
        )
    metric_fns = dict(DEFAULT_METRICS if metrics is None else metrics)
    if not metric_fns:
        raise InvalidArgumentError("cross_validate: metrics is empty; give at least one metric.")
    # scikit-learn splitters check len(X): give them an array, not a Dataset (a Mapping)
    x_for_split = data.X
    splits = [
        (np.asarray(tr, dtype=np.intp), np.asarray(te, dtype=np.intp))
        for tr, te in splitter.split(x_for_split, yy, groups)
    ]
    if not splits:
        raise InvalidArgumentError(f"cross_validate: the splitter {splitter!r} yielded no folds.")
    for k, (tr, te) in enumerate(splits):
        if tr.size == 0 or te.size == 0:
            raise InvalidArgumentError(
                f"cross_validate: fold {k} has {tr.size} training and {te.size} test rows; "
                "every fold needs both."
            )
    labels = np.asarray(groups) if groups is not None else None
    y_arg = None if (y is None and (_is_dataset(X) or _is_frame(X))) else yy

    def args(k: int, tr: np.ndarray, te: np.ndarray) -> tuple[Any, Any, Any, Any, int, Any]:
        y_tr = None if y_arg is None else y_arg[tr]
        return estimator, _take(X, tr), y_tr, _take(X, te), k, device

    if executor is None:
        outcomes = [_fit_predict(*args(k, tr, te)) for k, (tr, te) in enumerate(splits)]
    else:
        futures: list[Future[tuple[bool, Any]]] = [
            executor.submit(_fit_predict, *args(k, tr, te)) for k, (tr, te) in enumerate(splits)
        ]
        outcomes = [f.result() for f in futures]

    oof = np.full(yy.shape, np.nan)
    folds: list[FoldResult] = []
    for k, ((tr, te), (ok, value)) in enumerate(zip(splits, outcomes, strict=True)):
        test_groups: tuple[Any, ...] = ()
        if labels is not None:
            _, first = np.unique(labels[te], return_index=True)
            test_groups = tuple(_py(labels[te][i]) for i in sorted(first))
        if not ok:
            if raise_on_error:
                raise TrainingError(
                    f"cross_validate: fold {k} (test groups {list(test_groups)}) failed: {value}. "
                    "Pass raise_on_error=False to record failed folds and continue."
                )
            nan_pred = np.full((te.size, yy.shape[1]), np.nan)
            folds.append(
                FoldResult(
                    k,
                    tr,
                    te,
                    test_groups,
                    dict.fromkeys(metric_fns, math.nan),
                    nan_pred,
                    None,
                    str(value),
                )
            )
            continue
        pred, passed, report = value
        if pred.shape != (te.size, yy.shape[1]):
            raise InvalidArgumentError(
                f"cross_validate: fold {k}: the estimator predicted shape {pred.shape} for "
                f"{te.size} rows with {yy.shape[1]} target column(s)."
            )
        oof[te] = pred
        scores = {name: float(fn(yy[te], pred)) for name, fn in metric_fns.items()}
        folds.append(FoldResult(k, tr, te, test_groups, scores, pred, passed, None, report))
    failed = [f for f in folds if f.error is not None]
    if failed:
        warnings.warn(
            f"cross_validate: {len(failed)} of {len(folds)} folds failed: "
            + "; ".join(f"fold {f.fold}: {f.error}" for f in failed),
            RuntimeWarning,
            stacklevel=2,
        )
    return CVResult(folds, oof, yy, tuple(metric_fns))
