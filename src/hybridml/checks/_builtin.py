"""The built-in checks of data columns: :class:`Bounds`, :class:`Monotone` and
:class:`Conservation`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

import numpy as np

from ..data._dataset import Dataset
from ..exceptions import InvalidArgumentError
from ._base import Check, CheckResult
from ._helpers import _column, _coords, _labels, _n_rows, _nonneg, _result, _unit

__all__ = ["Bounds", "Conservation", "Direction", "Monotone"]

#: direction of a :class:`Monotone` trend
Direction = Literal["increasing", "decreasing"]


class Bounds(Check):
    """Every value of a column lies within ``[lower, upper]`` (up to ``tolerance``).

    The violation of a point is its distance outside the interval, in the column's units;
    a point violates when that exceeds ``tolerance``. NaN or infinite values violate
    with an infinite violation.

    Args:
        column: the column to check, e.g. ``"Voltage [V]"``.
        lower: the lower bound (None: unbounded below).
        upper: the upper bound (None: unbounded above).
        tolerance: allowed excursion outside the bounds, in the column's units (>= 0).
        name: the check's name in reports; ``"<column> bounds"`` by default.

    Raises:
        ValueError: if neither bound is given, ``lower > upper`` or ``tolerance < 0``.
    """

    def __init__(
        self,
        column: str,
        lower: float | None = None,
        upper: float | None = None,
        *,
        tolerance: float = 0.0,
        name: str | None = None,
    ) -> None:
        if lower is None and upper is None:
            raise InvalidArgumentError(f"Bounds({column!r}): give lower=, upper= or both.")
        if lower is not None and upper is not None and lower > upper:
            raise InvalidArgumentError(f"Bounds({column!r}): lower={lower} is above upper={upper}.")
        self.column = column
        self.lower = None if lower is None else float(lower)
        self.upper = None if upper is None else float(upper)
        self.tolerance = _nonneg(tolerance, "tolerance", f"Bounds({column!r})")
        self.name = name if name is not None else f"{column} bounds"

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Check ``data[column]``; ``model`` is ignored.

        Returns:
            The result; ``where`` holds the worst point's group and coordinate columns
            (for a :class:`~hybridml.Dataset`) and its 0-based ``row``.
        """
        v = _column(data, self.column, self.name)
        _n_rows(self.name, v)
        mag = np.zeros_like(v)
        if self.lower is not None:
            mag = np.maximum(mag, self.lower - v)
        if self.upper is not None:
            mag = np.maximum(mag, v - self.upper)
        mag[~np.isfinite(v)] = np.inf
        unit = _unit(data, self.column)
        lo = "-inf" if self.lower is None else f"{self.lower:g}"
        hi = "inf" if self.upper is None else f"{self.upper:g}"

        def describe(i: int, worst: float) -> str:
            if worst == 0:
                return f"{self.column} within [{lo}, {hi}]{unit} everywhere"
            return (
                f"{self.column} = {v[i]:.6g}{unit} at row {i} is outside [{lo}, {hi}]{unit} "
                f"by {worst:.4g}{unit} (tolerance {self.tolerance:g})"
            )

        return _result(self.name, mag, self.tolerance, lambda i: _coords(data, i), describe)


class Monotone(Check):
    """A column rises or falls monotonically along another (per group).

    Within each group the rows are sorted by ``along`` (stably); each step against
    ``direction`` larger than ``tolerance`` (absolute, in the column's units) is a
    violation, so e.g. a capacity recovery after a rest that stays within the tolerance
    passes. Points are the steps between consecutive rows: ``n_points`` counts steps and
    ``where`` is the point at the end of the worst step. A step touching a NaN or
    infinite value violates with an infinite violation.

    Args:
        column: the column that should be monotone, e.g. ``"Capacity [A.h]"``.
        along: the column to sort by, e.g. ``"Cycle number"``.
        direction: ``"decreasing"`` (no rise larger than ``tolerance``) or
            ``"increasing"`` (no fall larger than ``tolerance``).
        tolerance: the largest step against ``direction`` that is allowed (>= 0).
        group: the column of group labels; each group is checked separately. None uses
            the dataset's group column when ``data`` is a :class:`~hybridml.Dataset` with
            one, and no grouping otherwise.
        name: the check's name in reports; ``"<column> <direction>"`` by default.

    Raises:
        ValueError: for an unknown ``direction`` or a negative ``tolerance``.
    """

    def __init__(
        self,
        column: str,
        along: str,
        *,
        direction: Direction = "decreasing",
        tolerance: float = 0.0,
        group: str | None = None,
        name: str | None = None,
    ) -> None:
        allowed = get_args(Direction)
        if direction not in allowed:
            raise InvalidArgumentError(
                f"Monotone({column!r}): direction must be one of {allowed}, got {direction!r}."
            )
        self.column = column
        self.along = along
        self.direction: Direction = direction
        self.tolerance = _nonneg(tolerance, "tolerance", f"Monotone({column!r})")
        self.group = group
        self.name = name if name is not None else f"{column} {direction}"

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Check the trend of ``data[column]`` along ``data[along]``; ``model`` is ignored.

        Returns:
            The result; ``where`` holds the group label, the ``along`` value (and the
            dataset's coordinate) of the point ending the worst step, and its 0-based
            ``row``.
        """
        v = _column(data, self.column, self.name)
        a = _column(data, self.along, self.name)
        n = _n_rows(self.name, v, a)
        group = self.group
        if group is None and isinstance(data, Dataset):
            group = data.group
        g = _labels(data, group, self.name, n) if group is not None else np.zeros(n, dtype=int)
        order = np.lexsort((a, g))  # by group, then along; stable
        vs, as_, gs = v[order], a[order], g[order]
        same = gs[1:] == gs[:-1]
        step = vs[1:] - vs[:-1]
        against = step if self.direction == "decreasing" else -step
        mag = np.maximum(against, 0.0)
        finite = np.isfinite(vs) & np.isfinite(as_)
        mag[~(finite[1:] & finite[:-1])] = np.inf
        mag = mag[same]
        end = order[1:][same]  # row index of the point ending each step
        start = order[:-1][same]
        unit = _unit(data, self.column)
        verb = "rises" if self.direction == "decreasing" else "falls"

        def describe(k: int, worst: float) -> str:
            if worst == 0:
                return f"{self.column} is {self.direction} along {self.along} in every group"
            i, j = int(start[k]), int(end[k])
            in_group = f" in {group} {g[j]}" if group is not None else ""
            return (
                f"{self.column} {verb} by {worst:.4g}{unit} from {self.along} = {a[i]:.6g} to "
                f"{a[j]:.6g}{in_group} (tolerance {self.tolerance:g}{unit})"
            )

        return _result(
            self.name,
            mag,
            self.tolerance,
            lambda k: _coords(data, int(end[k]), group, self.along),
            describe,
            points="steps",
        )


class Conservation(Check):
    """A conserved quantity (total mass, charge, energy) stays at its expected value.

    ``quantity(data)`` returns the quantity, typically one value a time step (an
    integral over space that the user computes from the columns). Each value is compared
    with ``expected``, or with the first value when ``expected`` is None; a value
    violates when ``|q - ref| > atol + rtol * |ref|``. The violation is ``|q - ref|`` in
    the quantity's units.

    Args:
        quantity: data -> an array of values (or a single value).
        expected: the value the quantity should keep; the first value when None.
        rtol: relative tolerance (>= 0).
        atol: absolute tolerance (>= 0).
        name: the check's name in reports.

    Raises:
        ValueError: if ``quantity`` is not callable or a tolerance is negative.
    """

    def __init__(
        self,
        quantity: Callable[[Mapping[str, np.ndarray]], np.ndarray | float],
        expected: float | None = None,
        *,
        rtol: float = 1e-3,
        atol: float = 0.0,
        name: str = "conservation",
    ) -> None:
        if not callable(quantity):
            raise InvalidArgumentError(
                f"Conservation({name!r}): quantity must be a callable data -> array."
            )
        self.quantity = quantity
        self.expected = None if expected is None else float(expected)
        self.rtol = _nonneg(rtol, "rtol", f"Conservation({name!r})")
        self.atol = _nonneg(atol, "atol", f"Conservation({name!r})")
        self.name = name

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Evaluate ``quantity(data)`` and compare; ``model`` is ignored.

        Returns:
            The result; ``where`` is ``{"index": i}`` (the position in the quantity's
            output) and, when the output has one value per row of a
            :class:`~hybridml.Dataset`, that row's group and coordinate columns too.

        Raises:
            ValueError: if the quantity is not a scalar or 1-d array of numbers, or is a
                single value while ``expected`` is None.
        """
        out = self.quantity(data)
        try:
            q = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"check {self.name!r}: quantity returned {type(out).__name__}, not numbers "
                f"({exc}); return a 1-d array of floats or one float."
            ) from None
        if q.ndim == 0:
            if self.expected is None:
                raise InvalidArgumentError(
                    f"check {self.name!r}: quantity returned a single value and expected is "
                    "None; pass expected= or return one value a time step."
                )
            q = q.reshape(1)
        if q.ndim != 1:
            raise InvalidArgumentError(
                f"check {self.name!r}: quantity returned shape {q.shape}; return a 1-d array "
                "(one value a time step) or a single value."
            )
        if q.shape[0] == 0:
            raise InvalidArgumentError(f"check {self.name!r}: quantity returned no values.")
        ref = float(q[0]) if self.expected is None else self.expected
        mag = np.abs(q - ref)
        allowed = self.atol + self.rtol * abs(ref)
        if not np.isfinite(ref):
            mag[:] = np.inf

        def where(i: int) -> dict[str, Any]:
            w: dict[str, Any] = {"index": i}
            if isinstance(data, Dataset) and q.shape[0] == data.n_rows:
                w.update(_coords(data, i))
            return w

        def describe(i: int, worst: float) -> str:
            what = "the expected value" if self.expected is not None else "its first value"
            if worst == 0:
                return f"the quantity keeps {what} {ref:.6g} exactly"
            return (
                f"the quantity is {q[i]:.6g} at index {i}, {worst:.4g} away from {what} "
                f"{ref:.6g} (allowed {allowed:.4g} = atol + rtol * |{ref:.4g}|)"
            )

        return _result(self.name, mag, allowed, where, describe)
