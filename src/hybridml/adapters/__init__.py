"""The simulator-adapter contract, the entry-point registry and parameter sweeps."""

from ._contract import (
    ProvidesChecks,
    ProvidesConstraints,
    ProvidesData,
    ProvidesForward,
    SimulationError,
    SimulatorAdapter,
    UnknownSimulatorError,
    available_simulators,
    capabilities,
    load_simulator,
)
from ._sweep import SweepFailure, SweepResult

__all__ = [
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
