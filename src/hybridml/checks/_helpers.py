"""Helpers shared by the built-in checks: reading columns, locating and tallying
violations, and building results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..data._dataset import Dataset
from ..data._validate import parse_unit
from ..exceptions import InvalidArgumentError, MissingColumnError, did_you_mean
from ._base import CheckResult


def _column(data: Mapping[str, Any], name: str, check: str) -> np.ndarray:
    """Column ``name`` of ``data`` as a 1-d float array; a clear error if it is missing."""
    if name not in data:
        available = list(data)
        hint = did_you_mean(name, available, cutoff=0.5)
        raise MissingColumnError(
            f"check {check!r}: column {name!r} is not in the data.{hint} Available columns: "
            f"{', '.join(map(repr, available)) or 'none'}."
        )
    arr = np.asarray(data[name])
    if arr.ndim != 1:
        raise InvalidArgumentError(
            f"check {check!r}: column {name!r} has shape {arr.shape}; expected a 1-d array."
        )
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"check {check!r}: column {name!r} does not hold numbers (dtype {arr.dtype}); "
            "check a numeric column, or use it as group=."
        ) from None


def _labels(data: Mapping[str, Any], name: str, check: str, n: int) -> np.ndarray:
    if name not in data:
        _column(data, name, check)  # raises the missing-column error
    arr = np.asarray(data[name])
    if arr.shape != (n,):
        raise InvalidArgumentError(
            f"check {check!r}: group column {name!r} has shape {arr.shape}; expected ({n},)."
        )
    return arr


def _n_rows(check: str, *arrays: np.ndarray) -> int:
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise InvalidArgumentError(
            f"check {check!r}: the columns have different lengths {[a.shape[0] for a in arrays]}."
        )
    if n == 0:
        raise InvalidArgumentError(
            f"check {check!r}: the data has no rows; there is nothing to check."
        )
    return n


def _unit(data: Mapping[str, Any], name: str) -> str:
    unit = data.units.get(name, "") if isinstance(data, Dataset) else parse_unit(name)
    return f" {unit}" if unit else ""


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _coords(data: Mapping[str, Any], row: int, *extra: str | None) -> dict[str, Any]:
    """The group and coordinate columns (and ``extra`` ones) of one row, plus its index."""
    names: list[str] = []
    if isinstance(data, Dataset):
        names += [c for c in (data.group, data.coordinate) if c is not None]
    names += [c for c in extra if c is not None and c not in names]
    where = {c: _py(np.asarray(data[c])[row]) for c in names}
    where["row"] = row
    return where


def _tally(magnitude: np.ndarray, tolerance: float) -> tuple[np.ndarray, int, float]:
    """Violating mask, index of the worst point, and the worst magnitude (>= 0)."""
    magnitude = np.where(np.isnan(magnitude), np.inf, magnitude)
    violating = magnitude > tolerance
    worst = int(np.argmax(magnitude))
    return violating, worst, max(float(magnitude[worst]), 0.0)


def _result(
    name: str,
    magnitude: np.ndarray,
    tolerance: float,
    where: Callable[[int], dict[str, Any]],
    describe: Callable[[int, float], str],
    points: str = "points",
) -> CheckResult:
    """A :class:`CheckResult` from per-point violation magnitudes (NaN counts as infinite)."""
    n = magnitude.shape[0]
    if n == 0:
        return CheckResult(name, True, 0.0, {}, 0.0, 0, "no points to check")
    violating, worst_i, worst = _tally(magnitude, tolerance)
    k = int(violating.sum())
    frac = k / n
    status = "PASS" if k == 0 else "FAIL"
    tail = f"{k} of {n} {points} ({100 * frac:.1f}%) violate"
    return CheckResult(
        name=name,
        passed=k == 0,
        worst_violation=worst,
        where=where(worst_i) if worst > 0 else {},
        fraction_violating=frac,
        n_points=n,
        message=f"{status} {name}: {describe(worst_i, worst)}; {tail}.",
    )


def _nonneg(value: float, what: str, cls: str) -> float:
    value = float(value)
    if not value >= 0:  # also rejects NaN
        raise InvalidArgumentError(f"{cls}: {what} must be >= 0, got {value}")
    return value


def _rows_of(data: Mapping[str, Any]) -> int | None:
    if isinstance(data, Dataset):
        return data.n_rows
    for v in data.values():
        return int(np.shape(v)[0]) if np.ndim(v) >= 1 else None
    return None
