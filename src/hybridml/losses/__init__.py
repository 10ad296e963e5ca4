"""Named differentiable loss terms, collocation samplers and derivatives."""

from ..nn._models import BoxSampler, ResidualLoss, TrajectoryLoss, partial
from ._base import DataLoss, LossTerm

__all__ = ["BoxSampler", "DataLoss", "LossTerm", "ResidualLoss", "TrajectoryLoss", "partial"]
