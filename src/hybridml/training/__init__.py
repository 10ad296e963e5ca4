"""Training: optimiser phases, the engine, histories, loss balancing and BFGS."""

from ._balancing import Balancer, FixedWeights, LRAnnealing, ReLoBRaLo
from ._bfgs import SelfScaledBFGS
from ._trainer import (
    BFGS,
    LBFGS,
    Adam,
    EarlyStopping,
    History,
    NonFiniteLossError,
    StepInfo,
    Trainer,
)

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
