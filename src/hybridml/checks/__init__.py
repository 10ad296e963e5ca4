"""Physics-consistency checks and their reports."""

from ._base import Check, CheckResult, run_checks
from ._builtin import Bounds, Conservation, Monotone
from ._report import ConsistencyError, ConsistencyReport, ConsistencyWarning, Policy
from ._residual import CustomCheck, ResidualBelow

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
