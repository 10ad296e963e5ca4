"""Battery consistency checks: voltage limits, stoichiometries in [0, 1], positive
concentrations, capacity fade and coulomb counting.

The generic ones are the core's :class:`hybridml.Bounds` and :class:`hybridml.Monotone`;
the battery-specific ones subclass :class:`hybridml.Check`. All of them accept a
prediction as well as a simulation, as long as the columns carry the same names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hybridml import Bounds, Check, CheckResult, Monotone
from hybridml.exceptions import UnknownNameError

__all__ = [
    "CapacityNotAboveInitial",
    "ChargeWithinCapacity",
    "CoulombCounting",
    "battery_checks",
]


def _col(data: Mapping[str, Any], name: str, check: str) -> np.ndarray:
    if name not in data:
        raise UnknownNameError(
            f"check {check!r}: column {name!r} is not in the data (columns: {list(data)})."
        )
    return np.asarray(data[name], dtype=np.float64)


def _result(
    name: str, mag: np.ndarray, tol: float, where: dict[str, Any], message: str
) -> CheckResult:
    mag = np.where(np.isfinite(mag), mag, np.inf)
    bad = mag > tol
    worst = float(mag.max()) if mag.size else 0.0
    return CheckResult(
        name=name,
        passed=not bad.any(),
        worst_violation=max(worst, 0.0),
        where=where if bad.any() else {},
        fraction_violating=float(bad.mean()) if mag.size else 0.0,
        n_points=int(mag.size),
        message=message,
    )


class CapacityNotAboveInitial(Check):
    """Capacity stays positive and never exceeds the first cycle's by more than ``rtol``.

    Args:
        column: the capacity column.
        cycle: the cycle-number column (used to find the first cycle and to report where).
        rtol: allowed rise above the initial capacity, relative to it.
        name: the check's name in reports.
    """

    def __init__(
        self,
        column: str = "Capacity [A.h]",
        cycle: str = "Cycle number",
        *,
        rtol: float = 1e-3,
        name: str = "capacity positive and not above initial",
    ) -> None:
        self.column = column
        self.cycle = cycle
        self.rtol = float(rtol)
        self.name = name

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Check the capacity column; ``model`` is ignored."""
        q = _col(data, self.column, self.name)
        n = _col(data, self.cycle, self.name)
        q0 = float(q[np.argmin(n)])
        # violation: how far below zero, or above the allowed ceiling (in A.h)
        mag = np.maximum(np.maximum(-q, 0.0), np.maximum(q - q0 * (1 + self.rtol), 0.0))
        mag = np.where(q > 0, mag, np.maximum(mag, np.abs(q) + 1e-300))
        i = int(np.argmax(mag))
        msg = (
            f"{self.column} positive and at most {q0:.6g} * (1 + {self.rtol:g}) everywhere"
            if not (mag > 0).any()
            else f"{self.column} = {q[i]:.6g} at {self.cycle} {n[i]:g}; initial {q0:.6g}"
        )
        return _result(self.name, mag, 0.0, {self.cycle: float(n[i]), "row": i}, msg)


class ChargeWithinCapacity(Check):
    """Coulomb counting per cycle: the charge discharged in a cycle is at most the cell's
    capacity (times ``1 + rtol``): a cell cannot deliver more than it holds.

    Args:
        discharged: column of the charge discharged in each cycle.
        capacity: column of the capacity of each cycle.
        cycle: the cycle-number column.
        rtol: allowed excess, relative to the capacity.
        name: the check's name in reports.
    """

    def __init__(
        self,
        discharged: str = "Discharged charge [A.h]",
        capacity: str = "Capacity [A.h]",
        cycle: str = "Cycle number",
        *,
        rtol: float = 1e-2,
        name: str = "discharged charge within capacity",
    ) -> None:
        self.discharged = discharged
        self.capacity = capacity
        self.cycle = cycle
        self.rtol = float(rtol)
        self.name = name

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Compare the two columns cycle by cycle; ``model`` is ignored."""
        d = _col(data, self.discharged, self.name)
        q = _col(data, self.capacity, self.name)
        n = _col(data, self.cycle, self.name)
        mag = np.maximum(d - q * (1 + self.rtol), 0.0)
        i = int(np.argmax(mag))
        msg = (
            f"{self.discharged} = {d[i]:.6g} exceeds {self.capacity} = {q[i]:.6g} at "
            f"{self.cycle} {n[i]:g} (rtol {self.rtol:g})"
            if mag[i] > 0
            else f"{self.discharged} within {self.capacity} in every cycle"
        )
        return _result(self.name, mag, 0.0, {self.cycle: float(n[i]), "row": i}, msg)


class CoulombCounting(Check):
    """The charge counter agrees with the integral of the current over time.

    ``discharge capacity(t) - discharge capacity(0)`` must equal ``∫ I dt / 3600``
    (trapezoid rule on the rows, in A.h) within ``atol`` A.h plus ``rtol`` times the
    charge passed so far (``∫ |I| dt``, which bounds the quadrature error's growth).

    Args:
        time: the time column [s].
        current: the current column [A] (positive on discharge).
        charge: the discharge-capacity column [A.h].
        rtol: relative tolerance, against the throughput so far.
        atol: absolute tolerance [A.h].
        name: the check's name in reports.
    """

    def __init__(
        self,
        time: str = "Time [s]",
        current: str = "Current [A]",
        charge: str = "Discharge capacity [A.h]",
        *,
        rtol: float = 1e-3,
        atol: float = 1e-4,
        name: str = "coulomb counting",
    ) -> None:
        self.time = time
        self.current = current
        self.charge = charge
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.name = name

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Integrate the current and compare with the counter; ``model`` is ignored."""
        t = _col(data, self.time, self.name)
        current = _col(data, self.current, self.name)
        q = _col(data, self.charge, self.name)
        order = np.argsort(t, kind="stable")
        t, current, q = t[order], current[order], q[order]
        dt = np.diff(t) / 3600.0
        counted = np.concatenate([[0.0], np.cumsum(0.5 * (current[1:] + current[:-1]) * dt)])
        through = np.concatenate(
            [[0.0], np.cumsum(0.5 * (np.abs(current[1:]) + np.abs(current[:-1])) * dt)]
        )
        err = np.abs((q - q[0]) - counted)
        mag = np.maximum(err - (self.atol + self.rtol * through), 0.0)
        i = int(np.argmax(err))
        msg = (
            f"counter and ∫I dt differ by at most {err.max():.3g} A.h "
            f"(allowed {self.atol:g} + {self.rtol:g} x throughput)"
            if not (mag > 0).any()
            else f"{self.charge} differs from ∫I dt by {err[i]:.4g} A.h at t = {t[i]:.6g} s"
        )
        return _result(self.name, mag, 0.0, {self.time: float(t[i]), "row": int(order[i])}, msg)


def battery_checks(
    *,
    voltage_window: tuple[float, float] | None = None,
    voltage_columns: Sequence[str] = ("Voltage [V]",),
    stoichiometries: Sequence[str] = (),
    concentrations: Sequence[str] = (),
    capacity: str | None = None,
    recovery_tolerance: float = 0.0,
    coulomb_counting: bool = False,
    discharged: str | None = None,
    voltage_tolerance: float = 1e-3,
) -> list[Check]:
    """Build the standard battery checks for the columns a prediction has.

    Args:
        voltage_window: the cell's (lower, upper) cut-offs [V]; None skips the check.
        voltage_columns: the voltage columns to keep within the window.
        stoichiometries: columns that must lie in [0, 1].
        concentrations: columns that must be >= 0.
        capacity: the per-cycle capacity column; enables the capacity checks (positive,
            not above initial, non-increasing over ``"Cycle number"``).
        recovery_tolerance: the largest rise of capacity from one cycle to the next that
            still passes [A.h] (capacity recovers slightly after rests).
        coulomb_counting: add :class:`CoulombCounting` (time-series columns).
        discharged: the per-cycle discharged-charge column; with ``capacity``, adds
            :class:`ChargeWithinCapacity`.
        voltage_tolerance: allowed overshoot of the voltage window [V]; the solver locates
            cut-off events to its tolerance, not exactly.

    Returns:
        A list of checks with unique names.
    """
    out: list[Check] = []
    if voltage_window is not None:
        lo, hi = voltage_window
        for col in voltage_columns:
            out.append(
                Bounds(col, lo, hi, tolerance=voltage_tolerance, name=f"{col} within cut-offs")
            )
    for col in stoichiometries:
        out.append(Bounds(col, 0.0, 1.0, name=f"{col} in [0, 1]"))
    for col in concentrations:
        out.append(Bounds(col, lower=0.0, name=f"{col} non-negative"))
    if capacity is not None:
        out.append(CapacityNotAboveInitial(capacity))
        out.append(
            Monotone(
                capacity,
                "Cycle number",
                direction="decreasing",
                tolerance=recovery_tolerance,
                name=f"{capacity} non-increasing",
            )
        )
        if discharged is not None:
            out.append(ChargeWithinCapacity(discharged, capacity))
    if coulomb_counting:
        out.append(CoulombCounting())
    return out
