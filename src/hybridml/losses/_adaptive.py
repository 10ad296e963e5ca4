"""Adaptive collocation points: terms that can redraw their points (:class:`CollocationTerm`)
and the strategies that choose them (:class:`UniformResampling`, :class:`RAD`, :class:`RAR`).

A strategy sees the term: its sampler (``term.sample``), its current points and the
residual of the model the term last evaluated (``term.residual_at``), so residual-based
strategies follow the model as it trains. The trainer calls ``term.resample(generator)``
between steps; the term remembers the model of its last evaluation for that.
"""

from __future__ import annotations

import abc
import weakref
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError
from ._base import LossTerm

__all__ = ["RAD", "RAR", "CollocationTerm", "Resampling", "UniformResampling"]


class Resampling(abc.ABC):
    """How a :class:`CollocationTerm`'s :meth:`~CollocationTerm.resample` chooses new points.

    Implementations return the new points, ``(m, d)``: a float64 tensor (on the term's
    device, so that nothing goes back to the host inside the training loop) or a float64
    NumPy array; from the term's sampler (``term.sample(n, generator)``: points
    distributed as in the initial draw), the current points (``term.points``), and the
    term's residual (``term.residual_at(points)``, evaluated with the model the term last
    saw, or ``None`` before the first evaluation). Random choices draw from ``generator``
    only (on the device of the trainer: the term's, or the CPU), so seeded runs repeat.

    ``grows``: whether the strategy changes the number of points (then the term's
    ``n_points`` follows the new count, as for :class:`RAR`).
    """

    grows: bool = False

    @abc.abstractmethod
    def __call__(self, term: CollocationTerm, generator: torch.Generator) -> Tensor | np.ndarray:
        """Return the new collocation points."""


class CollocationTerm(LossTerm):
    """A loss term evaluated at collocation points that it can redraw (the base of
    :class:`~hybridml.ResidualLoss` and of simulator adapters' residual terms).

    Contract for implementations (besides :class:`LossTerm`'s):

    * ``points`` is a registered buffer, ``(n, d)``; ``n_points`` the number of points a
      strategy draws; ``n_initial`` the number of points at construction; ``resampling``
      a :class:`Resampling` or ``None``.
    * :meth:`sample` draws ``n`` points distributed as the initial ones, from
      ``generator`` only.
    * :meth:`residual_at` returns the detached residual ``(n, k)`` of the model last
      evaluated at other points (``None`` before the first evaluation). ``forward(model)``
      calls :meth:`remember_model` so that this works with the trainer, which calls
      ``resample(generator)`` without the model.
    """

    points: Tensor
    n_points: int
    n_initial: int
    resampling: Resampling | None

    def __init__(self) -> None:
        super().__init__()
        self._model_ref: weakref.ref[nn.Module] | None = None

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Tensor | np.ndarray:
        """``n`` fresh points distributed as the initial draw, float64 ``(n, d)``."""

    @abc.abstractmethod
    def residual_at(self, points: Tensor | np.ndarray) -> Tensor | None:
        """The detached residual ``(n, k)`` of the last model at ``points`` (or None)."""

    def remember_model(self, model: nn.Module) -> None:
        """Keep a weak reference to ``model`` for :meth:`residual_at` (done by ``forward``)."""
        self._model_ref = weakref.ref(model)

    def last_model(self) -> nn.Module | None:
        """The model of the last evaluation (or given to :meth:`resample`), if still alive."""
        ref = self.__dict__.get("_model_ref")
        return None if ref is None else ref()

    def _strategy(self) -> Resampling | None:
        """The strategy :meth:`resample` applies (default: ``resampling``)."""
        return self.resampling

    def _points_changed(self) -> None:
        """Called after :meth:`resample` replaced the points (default: nothing)."""

    def resample(self, generator: torch.Generator, *, model: nn.Module | None = None) -> None:
        """New collocation points chosen by the term's :class:`Resampling` (if any).

        Args:
            generator: the only source of randomness (the trainer's seeded generator).
            model: the model whose residual adaptive strategies (:class:`RAD`,
                :class:`RAR`) follow; default: the model of the term's last evaluation.
        """
        if model is not None:
            self.remember_model(model)
        strategy = self._strategy()
        if strategy is None:
            return
        pts = strategy(self, generator)
        self.points = torch.as_tensor(pts, dtype=self.points.dtype, device=self.points.device)
        self.n_points = self.points.shape[0] if strategy.grows else self.n_points
        self._points_changed()

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(super().__getstate__())
        state["_model_ref"] = None  # a weak reference does not pickle; nor should the model
        return state


def _candidates(term: CollocationTerm, n: int, generator: torch.Generator) -> Tensor:
    """``n`` fresh points from the term's sampler, as float64 on the term's device (one
    host-to-device copy where the sampler draws with NumPy)."""
    pts = term.sample(n, generator)
    if isinstance(pts, Tensor):
        return pts.to(dtype=torch.float64, device=term.points.device)
    return torch.as_tensor(np.asarray(pts, dtype=np.float64), device=term.points.device)


class UniformResampling(Resampling):
    """Fresh points drawn like the initial ones (e.g. uniform random in the domain)."""

    def __call__(self, term: CollocationTerm, generator: torch.Generator) -> Tensor | np.ndarray:
        return term.sample(term.n_points, generator)

    def __repr__(self) -> str:
        return "UniformResampling()"


class RAD(Resampling):
    """Residual-based adaptive distribution (Wu et al. 2023, CMAME 403, 115671).

    Draws ``candidates * n`` candidate points from the term's sampler and keeps ``n`` of
    them, drawn without replacement with probability proportional to
    ``|r|^k / mean(|r|^k) + c`` (``r`` the residual of the model the term last saw).
    ``k = 1, c = 1`` is the paper's robust default; ``c -> inf`` is uniform. Before the
    term has seen a model it keeps the first ``n`` candidates (a uniform draw).

    Args:
        k: exponent of the residual.
        c: uniform share (>= 0).
        candidates: number of candidates per kept point (>= 1).
    """

    def __init__(self, k: float = 1.0, c: float = 1.0, candidates: int = 10) -> None:
        if not k >= 0 or not c >= 0:
            raise InvalidArgumentError(f"RAD: k and c must be >= 0, got k={k!r}, c={c!r}.")
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise InvalidArgumentError(
                f"RAD: candidates must be an integer >= 1, got {candidates!r}."
            )
        self.k, self.c, self.candidates = float(k), float(c), candidates

    def __call__(self, term: CollocationTerm, generator: torch.Generator) -> Tensor:
        n = term.n_points
        cand = _candidates(term, n * self.candidates, generator)
        r = term.residual_at(cand)
        if r is None:
            return cand[:n]
        e = r.abs().pow(self.k).sum(dim=1).to(torch.float64)
        p = e / e.mean().clamp_min(torch.finfo(torch.float64).tiny) + self.c
        if not bool(torch.isfinite(p).all() & (p.sum() > 0)):  # one scalar to the host
            return cand[:n]
        # the draw happens where the generator is (the term's device when the trainer
        # has one); the chosen points never leave the device
        idx = torch.multinomial(p.to(generator.device), n, replacement=False, generator=generator)
        return cand[idx.to(cand.device)]

    def __repr__(self) -> str:
        return f"RAD(k={self.k}, c={self.c}, candidates={self.candidates})"


class RAR(Resampling):
    """Residual-based adaptive refinement (Lu et al. 2021, SIAM Review 63, 208).

    Each call adds the ``n_add`` points with the largest residual among ``candidates``
    candidates from the term's sampler to the current points, up to ``max_points`` points
    in all (the term's ``n_points`` follows the growing count).

    Args:
        n_add: points added per call.
        candidates: number of candidate points per call.
        max_points: the set stops growing at this size (default: twice the initial size).
    """

    grows = True

    def __init__(self, n_add: int = 100, candidates: int = 10_000, max_points: int | None = None):
        for what, v in (("n_add", n_add), ("candidates", candidates)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(f"RAR: {what} must be a positive integer, got {v!r}.")
        if candidates < n_add:
            raise InvalidArgumentError(
                f"RAR: candidates ({candidates}) must be >= n_add ({n_add})."
            )
        self.n_add, self.candidates, self.max_points = n_add, candidates, max_points

    def __call__(self, term: CollocationTerm, generator: torch.Generator) -> Tensor:
        current = term.points.detach().to(torch.float64)
        limit = self.max_points if self.max_points is not None else 2 * term.n_initial
        room = min(self.n_add, limit - current.shape[0])
        if room <= 0:
            return current
        cand = _candidates(term, self.candidates, generator)
        r = term.residual_at(cand)
        if r is None:
            return current
        worst = torch.topk(r.abs().sum(dim=1), room).indices
        return torch.cat([current, cand[worst]], 0)

    def __repr__(self) -> str:
        return f"RAR(n_add={self.n_add}, candidates={self.candidates}, max={self.max_points})"
