"""Networks and hybrid models: MLPs, output constraints, physical parameters, UDEs.

Every model here is a :class:`torch.nn.Module`, so ``model.to(torch.float64)`` converts
all of it (networks, learnable physical parameters, buffers) at once; the trainer relies on
that for its float64 L-BFGS phase.

* :class:`MLP` — a fully connected network with optional input scaling to ``[-1, 1]``;
  :meth:`MLP.jet` returns a :class:`Jet`, its value with first and second input derivatives
  at many points in one pass (Taylor mode, optionally compiled; a :class:`Precompilation`
  compiles it in the background).
* :class:`BatchedMLP` — ``n_members`` independent MLPs evaluated in one batched pass (the
  networks of :class:`~hybridml.BatchedEnsemble`).
* Hard constraints: an :class:`OutputTransform` (:class:`Bounded`, :class:`Positive`,
  :class:`HardBoundary`) applied to a network's raw output by :class:`Constrained`.
* :class:`PhysicalParameter` — a learnable scalar kept positive or inside bounds by its
  parametrisation (inverse problems).
* :class:`ResidualModel`, :class:`UDE`, :class:`LinearForcingUDE` — hybrid models of a
  simulator (or known dynamics) and a network.
"""

from ._batched import BatchedMLP
from ._constraints import Bounded, Constrained, HardBoundary, OutputTransform, Positive
from ._hybrid import UDE, LinearForcingUDE, ResidualModel
from ._jet import Jet
from ._mlp import MLP
from ._parameters import PhysicalParameter
from ._precompile import Precompilation

__all__ = [
    "MLP",
    "UDE",
    "BatchedMLP",
    "Bounded",
    "Constrained",
    "HardBoundary",
    "Jet",
    "LinearForcingUDE",
    "OutputTransform",
    "PhysicalParameter",
    "Positive",
    "Precompilation",
    "ResidualModel",
]
