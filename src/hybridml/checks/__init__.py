"""Physics-consistency checks and their reports."""

from ._checks import (
    Bounds,
    Check,
    CheckResult,
    Conservation,
    ConsistencyError,
    ConsistencyReport,
    ConsistencyWarning,
    CustomCheck,
    Monotone,
    Policy,
    ResidualBelow,
    run_checks,
)

__all__ = [
    "Bounds",
    "Check",
    "CheckResult",
    "Conservation",
    "ConsistencyError",
    "ConsistencyReport",
    "ConsistencyWarning",
    "CustomCheck",
    "Monotone",
    "Policy",
    "ResidualBelow",
    "run_checks",
]
