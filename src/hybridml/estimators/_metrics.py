"""Regression metrics over the measured (finite) targets: rmse, mae, r2."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..exceptions import InvalidArgumentError
from ._base import _as_2d

__all__ = ["mae", "r2", "rmse"]


def _pairs(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yt, yp = _as_2d(y_true, "y_true"), _as_2d(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise InvalidArgumentError(f"y_true has shape {yt.shape} but y_pred has {yp.shape}.")
    mask = np.isfinite(yt)
    return yt[mask], yp[mask]


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error over the measured (finite) targets."""
    yt, yp = _pairs(y_true, y_pred)
    return float(np.sqrt(np.mean((yp - yt) ** 2))) if yt.size else math.nan


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over the measured (finite) targets."""
    yt, yp = _pairs(y_true, y_pred)
    return float(np.mean(np.abs(yp - yt))) if yt.size else math.nan


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination R² over the measured targets (NaN for constant targets)."""
    yt, yp = _pairs(y_true, y_pred)
    total = float(np.sum((yt - yt.mean()) ** 2)) if yt.size else 0.0
    return 1.0 - float(np.sum((yp - yt) ** 2)) / total if total > 0 else math.nan


DEFAULT_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
}
