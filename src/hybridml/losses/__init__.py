"""Named differentiable loss terms, collocation samplers and derivatives.

* :class:`LossTerm` — the base of every loss term; :class:`DataLoss` fits measurements.
* :class:`TrajectoryLoss` — fits a trajectory model such as :class:`~hybridml.UDE`.
* Soft constraints: :class:`ResidualLoss` (mean squared physics residual at collocation
  points drawn by a :class:`BoxSampler`) with :func:`partial` for autograd derivatives.
* Adaptive points: a :class:`CollocationTerm` (such as :class:`ResidualLoss`) redraws its
  points with a :class:`Resampling` strategy: :class:`UniformResampling`, :class:`RAD`
  (residual-based distribution) or :class:`RAR` (residual-based refinement).
* Long-time problems: :class:`CausalWeighting` weights a residual's time chunks causally.
"""

from ._adaptive import RAD, RAR, CollocationTerm, Resampling, UniformResampling
from ._base import DataLoss, LossTerm
from ._causal import CausalWeighting
from ._derivatives import partial
from ._residual import ResidualLoss
from ._sampling import BoxSampler
from ._trajectory import TrajectoryLoss

__all__ = [
    "RAD",
    "RAR",
    "BoxSampler",
    "CausalWeighting",
    "CollocationTerm",
    "DataLoss",
    "LossTerm",
    "Resampling",
    "ResidualLoss",
    "TrajectoryLoss",
    "UniformResampling",
    "partial",
]
