"""What a :class:`~hybridml.DeepEnsemble` returns: its prediction with the interval and the
consistency report, the split-conformal calibration, and the record of a failed member."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import ConsistencyReport
from ..exceptions import HybridMLWarning, InvalidArgumentError

__all__ = ["Calibration", "EnsemblePrediction", "MemberFailure"]


@dataclass(frozen=True)
class MemberFailure:
    """A member of an ensemble whose training failed.

    Attributes:
        index: the member's index.
        seed: the seed it was given.
        error: the exception type, e.g. ``"NonFiniteLossError"``.
        message: the exception message (with where it was raised).
    """

    index: int
    seed: int
    error: str
    message: str


@dataclass(frozen=True)
class Calibration:
    """Split-conformal calibration of an ensemble's intervals.

    Attributes:
        coverage: the requested coverage, e.g. 0.9.
        scores: sorted normalised errors ``|y - mean| / std`` of the calibration points,
            one array per output column (only measured targets).
        quantile: the interval multiplier ``q`` per output: ``mean ± q·std``.
        achieved: the fraction of calibration points inside their interval, per output
            (at least ``coverage`` by construction; see :meth:`DeepEnsemble.coverage_score`
            for the coverage achieved on new data).
    """

    coverage: float
    scores: tuple[np.ndarray, ...]
    quantile: np.ndarray
    achieved: np.ndarray

    @property
    def n(self) -> int:
        """Number of calibration points (of the least measured output that has any)."""
        return min((s.size for s in self.scores if s.size), default=0)

    def multiplier(self, coverage: float) -> np.ndarray:
        """The multiplier ``q`` per output for another coverage level (NaN for an output
        with no measured calibration point: it has no calibrated interval)."""
        return np.array([_quantile_or_nan(s, coverage) for s in self.scores])


def _quantile_or_nan(sorted_scores: np.ndarray, coverage: float) -> float:
    """The conformal quantile, or NaN for an output that was never measured."""
    return float("nan") if sorted_scores.size == 0 else _conformal_quantile(sorted_scores, coverage)


def _conformal_quantile(sorted_scores: np.ndarray, coverage: float) -> float:
    n = sorted_scores.size
    k = math.ceil((n + 1) * coverage)
    if k > n:
        need = math.ceil(coverage / (1.0 - coverage))
        raise InvalidArgumentError(
            f"DeepEnsemble: {n} calibration point(s) cannot certify a coverage of {coverage}; "
            f"split conformal needs at least {need}. Hold out more points (calibration=) or "
            "ask for a lower coverage."
        )
    return float(sorted_scores[k - 1])


@dataclass(frozen=True)
class EnsemblePrediction:
    """An ensemble's prediction: mean, spread and calibrated interval.

    ``np.asarray(prediction)`` gives the mean, shape ``(n, k)``.

    Attributes:
        mean: the members' mean, shape ``(n, k)``.
        std: the members' standard deviation, shape ``(n, k)``.
        lower: lower end of the interval, shape ``(n, k)``.
        upper: upper end of the interval, shape ``(n, k)``.
        coverage: the coverage the interval is calibrated for (None: the interval is the
            uncalibrated ``mean ± 2·std``).
        members: every member's prediction, shape ``(n_members, n, k)``.
        report: the :class:`~hybridml.ConsistencyReport` of the members' checks (e.g. a
            :class:`~hybridml.HybridRegressor`'s) run once on the mean, under their
            ``check_policy``; None when the members run no checks.
        columns: the output names (empty when the members do not name them).
        units: column name -> unit of the inputs and outputs (as the members were fitted).
    """

    mean: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    coverage: float | None
    members: np.ndarray
    report: ConsistencyReport | None = None
    columns: tuple[str, ...] = ()
    units: Mapping[str, str] = field(default_factory=dict)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.mean if dtype is None else self.mean.astype(dtype)

    def to_frame(self) -> Any:
        """The mean, std, lower and upper end per output as a pandas DataFrame (columns
        ``name``, ``std name``, ``lower name``, ``upper name``; needs pandas)."""
        import pandas as pd

        from ..data._frames import ensemble_columns

        return pd.DataFrame(ensemble_columns(self))

    def to_dataset(self) -> Any:
        """The columns of :meth:`to_frame` as a :class:`~hybridml.Dataset`, with units."""
        from ..data._frames import ensemble_columns, prediction_dataset
        from ..data._validate import parse_unit

        cols = ensemble_columns(self)
        units = {k: self.units.get(k, "") or parse_unit(k) for k in cols}
        return prediction_dataset(cols, units, None, "<ensemble prediction>")

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dataset` as a CSV file (atomically; floats read back exactly)."""
        self.to_dataset().to_csv(path)


def calibrated_quantiles(
    scores: list[np.ndarray], coverage: float, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The multiplier and the achieved calibration coverage per output.

    An output with no measured calibration point (one that is never measured) gets NaN,
    with a warning naming it: it has no calibrated interval. If no output is measured,
    nothing can be calibrated: an error.
    """
    unmeasured = [j for j, s in enumerate(scores) if s.size == 0]
    if len(unmeasured) == len(scores):
        raise InvalidArgumentError(
            "DeepEnsemble.calibrate: no target is measured among the calibration points; "
            "give calibration points with measured values."
        )
    if unmeasured:
        which = [names[j] if j < len(names) else f"column {j}" for j in unmeasured]
        warnings.warn(
            f"DeepEnsemble.calibrate: output(s) {which} have no measured value among the "
            "calibration points, so they get no calibrated interval (lower/upper NaN); "
            "the other outputs are calibrated as usual.",
            HybridMLWarning,
            stacklevel=3,
        )
    q = np.array([_quantile_or_nan(s, coverage) for s in scores])
    achieved = np.array(
        [
            float(np.mean(s <= qj)) if s.size else float("nan")
            for s, qj in zip(scores, q, strict=True)
        ]
    )
    return q, achieved
