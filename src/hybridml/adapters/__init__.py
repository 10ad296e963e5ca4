"""The simulator-adapter contract, the entry-point registry and parameter sweeps.

The adapters' errors (:class:`~hybridml.SimulationError`,
:class:`~hybridml.UnknownSimulatorError`) live in :mod:`hybridml.exceptions` and are
imported here too.
"""

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
from ._sweep import SweepFailure, SweepResult, simulator_versions

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProvidesChecks",
    "ProvidesConstraints",
    "ProvidesData",
    "ProvidesForward",
    "SimulatorAdapter",
    "SweepFailure",
    "SweepResult",
    "available_simulators",
    "capabilities",
    "load_simulator",
    "simulator_versions",
]
