"""Training: optimiser phases, the engine, histories, loss balancing, BFGS and devices."""

from .._device import DeviceError, resolve_device
from ..exceptions import NonFiniteLossError
from ._balancing import Balancer, FixedWeights, LRAnnealing, ReLoBRaLo
from ._bfgs import SelfScaledBFGS
from ._history import History, StepInfo
from ._phase import Converged, Phase
from ._phases import BFGS, LBFGS, Adam, default_phases
from ._stopping import EarlyStopping
from ._trainer import Trainer

__all__ = [
    "BFGS",
    "LBFGS",
    "Adam",
    "Balancer",
    "Converged",
    "DeviceError",
    "EarlyStopping",
    "FixedWeights",
    "History",
    "LRAnnealing",
    "NonFiniteLossError",
    "Phase",
    "ReLoBRaLo",
    "SelfScaledBFGS",
    "StepInfo",
    "Trainer",
    "default_phases",
    "resolve_device",
]
