"""Named differentiable loss terms, collocation samplers and derivatives."""

from .._losses import DataLoss, LossTerm
from .._models import BoxSampler, ResidualLoss, TrajectoryLoss, partial

__all__ = ["BoxSampler", "DataLoss", "LossTerm", "ResidualLoss", "TrajectoryLoss", "partial"]
