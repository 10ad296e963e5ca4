"""The simulator-adapter contract, the entry-point registry and parameter sweeps.

The adapters' errors (:class:`~hybridml.SimulationError`,
:class:`~hybridml.UnknownSimulatorError`) live in :mod:`hybridml.exceptions` and are
imported here too.
"""

from ..exceptions import SimulationError as SimulationError  # re-exported for adapters
from ..exceptions import UnknownSimulatorError as UnknownSimulatorError
from ._contract import (
    ProvidesChecks,
    ProvidesConstraints,
    ProvidesData,
    ProvidesForward,
    SimulatorAdapter,
    capabilities,
)
from ._registry import (
    ENTRY_POINT_GROUP,
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
