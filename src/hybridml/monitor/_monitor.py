"""Watching a fitted model in use: :class:`Monitor`.

A monitor is fitted with a model and the inputs it was trained on (and measurements to
learn the size of its errors). For each new batch of inputs, and measurements when they
arrive, it flags, row by row:

* ``outside_range``: an input outside its training range (widened by ``range_margin``);
* ``far_from_training``: an input far from every training input (k-nearest-neighbour
  distance above a conformal threshold: see ``hybridml.monitor._domain``);
* ``disagreement``: for a :class:`~hybridml.DeepEnsemble`, members that disagree more than
  on the reference inputs (the same conformal threshold, per output);
* ``drift_alarm``: the prediction errors have drifted (a two-sided :class:`CUSUM` on the
  standardised errors, in the order the rows arrive, kept across batches);

and it runs the model's consistency checks on the batch's predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..checks import Policy
from ..data._input import InputData, as_inputs
from ..exceptions import DataError, InvalidArgumentError, InvalidTypeError
from ._domain import Domain, check_quantile, conformal_threshold
from ._drift import CUSUM
from ._report import MonitorReport

__all__ = ["Monitor"]


def _tabular(X: Any) -> bool:
    from ..estimators._base import _is_dataset, _is_frame

    return _is_dataset(X) or _is_frame(X)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


class Monitor:
    """Flags new inputs and measurements a fitted model should not be trusted on.

    Args:
        model: a fitted :class:`~hybridml.HybridRegressor` or
            :class:`~hybridml.DeepEnsemble` (of regressors).
        quantile: the conformal level of the distance and disagreement thresholds: a row
            drawn like the reference rows is flagged with probability at most
            ``1 - quantile`` (once there are ``quantile / (1 - quantile)`` reference rows;
            the bound actually reached is in ``false_flag_rates_``).
        neighbours: ``k`` of the k-nearest-neighbour distance (at most the number of
            training rows minus 1).
        range_margin: widens each input's training range by this fraction of it on both
            sides before a value counts as outside.
        drift: the :class:`CUSUM` test of the errors (its false-alarm probability and
            horizon are the stated rate of false drift alarms).

    Attributes:
        domain_threshold_: the distance threshold.
        std_threshold_: per-output ensemble-spread threshold (None for a single model).
        error_mean_, error_std_: the reference errors' mean and standard deviation per
            output (None without reference measurements).
        false_flag_rates_: the stated bound for each flag (see :class:`MonitorReport`).
        n_seen_: the number of rows checked since ``fit`` or :meth:`reset`.

    Example::

        monitor = hm.Monitor(model).fit(X_train, y_train, errors=(X_val, y_val))
        report = monitor.check(X_new, y_new)   # call again as more rows arrive
        print(report.summary()); report.to_json("monitor.json")
    """

    def __init__(
        self,
        model: Any,
        *,
        quantile: float = 0.99,
        neighbours: int = 5,
        range_margin: float = 0.0,
        drift: CUSUM | None = None,
    ) -> None:
        self.model = model
        self.quantile = quantile
        self.neighbours = neighbours
        self.range_margin = range_margin
        self.drift = drift

    # ------------------------------------------------------------------ helpers
    def _model_names(self) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
        members = getattr(self.model, "members_", None)
        first = members[0] if members else self.model
        names = getattr(first, "input_names_", None)
        outputs = getattr(first, "output_names_", None)
        if names is None or outputs is None:
            if not callable(getattr(self.model, "predict", None)):
                raise InvalidTypeError(
                    f"Monitor: model must be a fitted HybridRegressor or DeepEnsemble; got "
                    f"{type(self.model).__name__}."
                )
            raise InvalidArgumentError(
                f"Monitor: this {type(self.model).__name__} is not fitted (or its members do "
                "not name their inputs and outputs); fit it first."
            )
        return tuple(names), tuple(outputs), bool(getattr(first, "named_inputs_", False))

    def _read(self, X: Any, y: Any, what: str) -> InputData:
        tab = _tabular(X)
        return as_inputs(
            X,
            y,
            inputs=self.inputs_ if tab and self.named_ else None,
            outputs=self.outputs_ if (tab or y is not None) else None,
            what=what,
        )

    def _predict(self, X: Any, extra: Mapping[str, Any] | None = None) -> Any:
        if extra is None:  # a BatchedEnsemble's checks need no extra columns
            return self.model.predict(X, policy=Policy.RECORD)
        return self.model.predict(X, policy=Policy.RECORD, extra=extra)

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None, *, errors: tuple[Any, Any] | None = None) -> Monitor:
        """Learn the training domain, the ensemble's usual spread and the errors' scale.

        Args:
            X: the model's training inputs (arrays, a Dataset or a DataFrame, read like the
                model reads them).
            y: their targets; their prediction errors are the reference of the drift test
                when ``errors`` is not given. Errors on training rows understate the
                errors on new data (the model was fitted to them), so the test alarms
                sooner than stated; pass held-out measurements as ``errors`` when you can.
            errors: held-out ``(X, y)`` (e.g. an ensemble's calibration data) whose
                prediction errors are the reference of the drift test; their inputs also
                join the reference of the disagreement threshold.

        Returns:
            ``self``.

        Raises:
            InvalidArgumentError: a setting out of range.
            DataError: fewer than 2 training rows, or reference errors that are all equal.
        """
        what = "Monitor.fit"
        quantile = check_quantile(self.quantile, what)
        k = self.neighbours
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidArgumentError(f"{what}: neighbours must be an integer >= 1, got {k!r}.")
        margin = self.range_margin
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin >= 0:
            raise InvalidArgumentError(f"{what}: range_margin must be >= 0, got {margin!r}.")
        drift = CUSUM() if self.drift is None else self.drift
        if not isinstance(drift, CUSUM):
            raise InvalidTypeError(f"{what}: drift must be a hybridml.CUSUM, got {drift!r}.")
        self.drift_ = drift
        self.inputs_, self.outputs_, self.named_ = self._model_names()
        train = self._read(X, y, what)
        self.domain_ = Domain(
            train.X, self.inputs_, neighbours=k, quantile=quantile, range_margin=float(margin)
        )
        self.domain_threshold_ = self.domain_.threshold
        rates = {"far_from_training": self.domain_.false_flag_rate}

        reference = [(X, train)]
        if errors is not None:
            reference.append((errors[0], self._read(errors[0], errors[1], f"{what} (errors)")))
        preds = [self._predict(Xr) for Xr, _ in reference]
        self.std_threshold_: np.ndarray | None = None
        if all(hasattr(p, "std") for p in preds):  # an ensemble: members' spread
            spread = np.concatenate([np.asarray(p.std, dtype=float) for p in preds])
            fitted = [conformal_threshold(spread[:, j], quantile) for j in range(spread.shape[1])]
            self.std_threshold_ = np.array([t for t, _ in fitted])
            rates["disagreement"] = max(r for _, r in fitted)

        # the reference errors: held-out ones if given, else the training rows'
        ref_data, ref_pred = (reference[-1][1], preds[-1])
        self.error_mean_: np.ndarray | None = None
        self.error_std_: np.ndarray | None = None
        if ref_data.y is not None and np.isfinite(ref_data.y).any():
            resid = ref_data.y - np.asarray(ref_pred, dtype=float)
            self.error_mean_, self.error_std_ = _error_scale(resid, self.outputs_, what)
            rates["drift_alarm"] = float(drift.false_alarm)
        self.false_flag_rates_ = rates
        self.reset()
        return self

    def reset(self) -> Monitor:
        """Start the drift test again (statistics 0, step 0), e.g. after recalibrating."""
        m = len(self.outputs_)
        self._state = (np.zeros(m), np.zeros(m))
        self.n_seen_ = 0
        return self

    # ------------------------------------------------------------------ check
    def check(
        self, X: Any, y: Any = None, *, extra: Mapping[str, Any] | None = None
    ) -> MonitorReport:
        """Check a batch of new rows, in the order they arrived.

        Args:
            X: the new inputs (arrays, a Dataset or a DataFrame). A Dataset or DataFrame
                that has output columns gives the measurements (NaN: not measured).
            y: measurements at ``X``, shape ``(n, n_outputs)`` (NaN: not measured); they
                feed the drift test, which keeps its state across calls.
            extra: extra columns the model's checks may need (as for ``predict``).

        Returns:
            A :class:`MonitorReport`.

        Raises:
            DataError: measurements were given but the monitor was fitted without any
                (it has no scale for the errors), or inputs it cannot read.
        """
        what = "Monitor.check"
        if not hasattr(self, "domain_"):
            raise InvalidArgumentError("this Monitor is not fitted yet; call fit(X_train) first.")
        data = self._read(X, y, what)
        x, n, m = data.X, data.n_rows, len(self.outputs_)
        pred = self._predict(X, extra)
        values = np.asarray(pred, dtype=float).reshape(n, m)
        reasons: list[list[str]] = [[] for _ in range(n)]

        out: np.ndarray = self.domain_.outside(x)
        for i, j in zip(*np.nonzero(out), strict=True):
            reasons[i].append(
                f"input {self.inputs_[j]!r} = {_fmt(x[i, j])} outside the training range "
                f"[{_fmt(self.domain_.lower[j])}, {_fmt(self.domain_.upper[j])}]"
            )
        dist = self.domain_.distances(x)
        far = dist > self.domain_.threshold
        limit = _fmt(self.domain_.threshold)
        for i in np.flatnonzero(far):
            reasons[i].append(f"distance {_fmt(dist[i])} to the training inputs above {limit}")

        std = None
        disagree: np.ndarray = np.zeros(n, dtype=bool)
        if self.std_threshold_ is not None and hasattr(pred, "std"):
            std = np.asarray(pred.std, dtype=float).reshape(n, m)
            over = std > self.std_threshold_
            disagree = np.asarray(over.any(axis=1))
            for i, j in zip(*np.nonzero(over), strict=True):
                reasons[i].append(
                    f"ensemble spread of {self.outputs_[j]!r} = {_fmt(std[i, j])} above "
                    f"{_fmt(self.std_threshold_[j])} (the reference rows')"
                )

        z = stat = None
        alarm: np.ndarray = np.zeros(n, dtype=bool)
        yy = data.y if data.y is not None else np.full((n, m), np.nan)
        if np.isfinite(yy).any():
            if self.error_mean_ is None or self.error_std_ is None:
                raise DataError(
                    f"{what}: measurements were given, but the monitor was fitted without any, "
                    "so it has no scale for the errors; fit it with y= or errors=(X, y)."
                )
            z = (yy - values - self.error_mean_) / self.error_std_
            per_stream, stat, self._state = self.drift_.run(z, state=self._state)
            alarm = np.asarray(per_stream.any(axis=1))
            h = self.drift_.threshold(m)
            for i, j in zip(*np.nonzero(per_stream), strict=True):
                reasons[i].append(
                    f"drift alarm: the CUSUM of the errors of {self.outputs_[j]!r} reached its "
                    f"threshold {_fmt(h)}"
                )
        steps = self.n_seen_ + np.arange(n)
        self.n_seen_ += n
        return MonitorReport(
            inputs=self.inputs_,
            outputs=self.outputs_,
            steps=steps,
            outside_range=np.asarray(out.any(axis=1)),
            distance=dist,
            far_from_training=far,
            distance_threshold=self.domain_.threshold,
            std=std,
            disagreement=disagree,
            std_threshold=self.std_threshold_,
            errors=z,
            drift_statistic=stat,
            drift_alarm=alarm,
            consistency=getattr(pred, "report", None),
            reasons=tuple(tuple(r) for r in reasons),
            false_flag_rates=dict(self.false_flag_rates_),
        )


def _error_scale(
    resid: np.ndarray, outputs: tuple[str, ...], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per output: the mean and standard deviation of the measured reference errors (NaN
    for an output with fewer than 2, which the drift test then leaves out)."""
    mean = np.full(resid.shape[1], np.nan)
    std = np.full(resid.shape[1], np.nan)
    for j in range(resid.shape[1]):
        r = resid[np.isfinite(resid[:, j]), j]
        if r.size < 2:
            continue
        mean[j], std[j] = r.mean(), r.std(ddof=1)
        if not std[j] > 0:
            raise DataError(
                f"{what}: the reference errors of {outputs[j]!r} are all equal, so they give "
                "no scale for the drift test; pass held-out measurements as errors=(X, y)."
            )
    return mean, std
