"""Checks of parameter names and values made before any PyBaMM solve."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from hybridml.exceptions import InvalidArgumentError, did_you_mean

__all__ = ["ExperimentError", "ParameterError", "check_names", "check_physical"]


class ParameterError(InvalidArgumentError):
    """A parameter name is unknown or its value is outside physical limits.

    A :class:`hybridml.InvalidArgumentError`, so also a ``ValueError`` and a
    :class:`hybridml.HybridMLError`.
    """


class ExperimentError(InvalidArgumentError):
    """An experiment cannot run (bad step text, voltage outside the cell's window, ...).

    A :class:`hybridml.InvalidArgumentError`, so also a ``ValueError`` and a
    :class:`hybridml.HybridMLError`.
    """


# units whose quantities are strictly positive (a diffusivity, a length, a temperature...)
_POSITIVE_UNITS = (
    "[m2.s-1]",
    "[S.m-1]",
    "[m.s-1]",
    "[m]",
    "[K]",
    "[A.h]",
    "[Ohm.m]",
    "[m3.mol-1]",
    "[A.m-2]",
    "[kg.m-3]",
    "[Pa]",
    "[m-1]",
    "[s]",
    "[J.kg-1.K-1]",
    "[W.m-1.K-1]",
)
# units whose quantities are non-negative (concentrations, energies)
_NON_NEGATIVE_UNITS = ("[mol.m-3]", "[J.mol-1]")
# dimensionless fractions
_FRACTION_WORDS = ("volume fraction", "porosity", "stoichiometry", "fraction")


def check_names(names: Iterable[str], valid: Iterable[str], *, what: str) -> None:
    """Raise :class:`ParameterError` for names not in ``valid``, listing the closest ones."""
    valid = list(valid)
    known = set(valid)
    for name in names:
        if name in known:
            continue
        hint = did_you_mean(name, valid, cutoff=0.5)
        raise ParameterError(
            f"unknown {what} {name!r}.{hint} Look names up in "
            "`pybamm.ParameterValues(<parameter set>).keys()` (names include units, e.g. "
            "'Negative particle diffusivity [m2.s-1]')."
        )


def limits(name: str) -> tuple[float, float, bool]:
    """Physical limits of a parameter from its name: ``(lower, upper, lower_open)``."""
    if any(name.endswith(u) for u in _POSITIVE_UNITS):
        return 0.0, math.inf, True
    if any(name.endswith(u) for u in _NON_NEGATIVE_UNITS):
        return 0.0, math.inf, False
    low = name.lower()
    if "[" not in name and any(w in low for w in _FRACTION_WORDS):
        return 0.0, 1.0, False
    if low.startswith("number of"):
        return 0.0, math.inf, True
    return -math.inf, math.inf, False


def check_physical(params: Mapping[str, float], *, where: str = "") -> None:
    """Refuse values outside physical limits (a negative diffusivity, a porosity above 1).

    The limits follow from the unit in the name (see :func:`limits`); quantities without a
    known sign (voltages, currents) only have to be finite.
    """
    at = f" ({where})" if where else ""
    for name, value in params.items():
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                f"parameter {name!r}{at} must be a number, got {value!r}."
            ) from exc
        if not math.isfinite(v):
            raise ParameterError(f"parameter {name!r}{at} must be finite, got {v}.")
        lo, hi, open_lo = limits(name)
        if (open_lo and v <= lo) or (not open_lo and v < lo) or v > hi:
            rng = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{']' if math.isfinite(hi) else ')'}"
            raise ParameterError(
                f"parameter {name!r}{at} = {v:g} is outside its physical range {rng}; "
                "nothing was simulated. Fix the value or the sweep range."
            )
