"""Training: optimiser phases, the engine, histories, loss balancing and BFGS."""

from ..exceptions import NonFiniteLossError
from ._balancing import Balancer, FixedWeights, LRAnnealing, ReLoBRaLo
from ._bfgs import SelfScaledBFGS
from ._history import History, StepInfo
from ._phases import BFGS, LBFGS, Adam
from ._stopping import EarlyStopping
from ._trainer import Trainer

__all__ = [
    "BFGS",
    "LBFGS",
    "Adam",
    "Balancer",
    "EarlyStopping",
    "FixedWeights",
    "History",
    "LRAnnealing",
    "NonFiniteLossError",
    "ReLoBRaLo",
    "SelfScaledBFGS",
    "StepInfo",
    "Trainer",
]
