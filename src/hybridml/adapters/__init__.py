"""The simulator-adapter contract, the entry-point registry and parameter sweeps."""

from ._contract import (
    ProvidesChecks,
    ProvidesConstraints,
    ProvidesData,
    ProvidesForward,
    SimulationError,
    SimulatorAdapter,
    capabilities,
)
from ._registry import (
    ENTRY_POINT_GROUP,
    UnknownSimulatorError,
    available_simulators,
    load_simulator,
)
from ._sweep import SweepFailure, SweepResult

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProvidesChecks",
    "ProvidesConstraints",
    "ProvidesData",
    "ProvidesForward",
    "SimulationError",
    "SimulatorAdapter",
    "SweepFailure",
    "SweepResult",
    "UnknownSimulatorError",
    "available_simulators",
    "capabilities",
    "load_simulator",
]
