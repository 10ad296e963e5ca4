"""Named differentiable loss terms, collocation samplers and derivatives.

* :class:`LossTerm` — the base of every loss term; :class:`DataLoss` fits measurements.
* :class:`TrajectoryLoss` — fits a trajectory model such as :class:`~hybridml.UDE`.
* Soft constraints: :class:`ResidualLoss` (mean squared physics residual at collocation
  points drawn by a :class:`BoxSampler`) with :func:`partial` for autograd derivatives.
"""

from ._base import DataLoss, LossTerm
from ._derivatives import partial
from ._residual import ResidualLoss
from ._sampling import BoxSampler
from ._trajectory import TrajectoryLoss

__all__ = ["BoxSampler", "DataLoss", "LossTerm", "ResidualLoss", "TrajectoryLoss", "partial"]
