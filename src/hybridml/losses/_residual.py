"""Soft physics constraints: the mean squared residual at collocation points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ..nn._util import _name_of
from ._adaptive import CollocationTerm, Resampling, UniformResampling
from ._causal import CausalWeighting
from ._sampling import BoxSampler

__all__ = ["ResidualLoss"]

#: points per evaluation in ResidualLoss.residual_at (RAD/RAR candidates): each evaluation
#: builds (and drops) an autograd graph, which for many candidates would set peak memory
_CHUNK = 8192


class ResidualLoss(CollocationTerm):
    """Mean squared physics residual at collocation points (a soft constraint).

    ``residual(model, x)`` receives the points ``x`` (shape ``(n, d)``) with
    ``requires_grad=True``, so it can take derivatives of ``model(x)`` with
    :func:`partial`, and returns the residual at each point, shape ``(n,)`` or ``(n, k)``.
    The loss is the mean of its squares.

    Args:
        residual: ``(model, x) -> residual``.
        points: fixed collocation points, shape ``(n, d)`` (1-d: one input dimension).
        sampler: a :class:`BoxSampler` for drawing points; with it, the trainer's
            ``resample(generator)`` draws ``n_points`` fresh points.
        n_points: number of points to draw (default: the number of ``points``); needed
            when only a sampler is given.
        generator: generator for the initial draw when only a sampler is given
            (default: ``torch.Generator().manual_seed(0)``, so construction is
            deterministic).
        resampling: what :meth:`resample` does: a :class:`~hybridml.Resampling`
            (:class:`~hybridml.RAD`, :class:`~hybridml.RAR`,
            :class:`~hybridml.UniformResampling`; they need the ``sampler``). Default:
            with a sampler, ``n_points`` fresh uniform points (as
            :class:`~hybridml.UniformResampling`); without one, the points are kept.
            RAD and RAR follow the residual of the model the term last evaluated.
        causal: a :class:`~hybridml.CausalWeighting` for a time-dependent residual: the
            loss weights time chunks by how well the earlier ones are solved, instead of
            the plain mean.

    Attributes:
        causal_weights: with ``causal``, the chunks' weights of the last evaluation
            (``(n_chunks,)``, detached); otherwise ``None``.
    """

    points: Tensor

    def __init__(
        self,
        residual: Callable[[nn.Module, Tensor], Tensor],
        points: Any | None = None,
        *,
        sampler: BoxSampler | None = None,
        n_points: int | None = None,
        generator: torch.Generator | None = None,
        resampling: Resampling | None = None,
        causal: CausalWeighting | None = None,
    ) -> None:
        super().__init__()
        if not callable(residual):
            raise InvalidTypeError(
                f"ResidualLoss: residual must be callable (model, x) -> residual, got {residual!r}."
            )
        if sampler is not None and not isinstance(sampler, BoxSampler):
            raise InvalidTypeError(
                f"ResidualLoss: sampler must be a BoxSampler, got {type(sampler).__name__}."
            )
        if resampling is not None and not isinstance(resampling, Resampling):
            raise InvalidTypeError(
                "ResidualLoss: resampling must be RAD(...), RAR(...), UniformResampling() or "
                f"None, got {resampling!r}."
            )
        if resampling is not None and sampler is None:
            raise InvalidArgumentError(
                f"ResidualLoss: resampling={resampling!r} draws candidate points from a "
                "sampler; give sampler=BoxSampler(...) too."
            )
        if causal is not None and not isinstance(causal, CausalWeighting):
            raise InvalidTypeError(
                f"ResidualLoss: causal must be a CausalWeighting or None, got {causal!r}."
            )
        if points is None and sampler is None:
            raise InvalidArgumentError(
                "ResidualLoss: give collocation points, a sampler (with n_points), or both."
            )
        if n_points is not None and (
            isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1
        ):
            raise InvalidArgumentError(
                f"ResidualLoss: n_points must be a positive integer, got {n_points!r}."
            )
        if points is not None:
            pts = torch.as_tensor(points, dtype=torch.get_default_dtype())
            if pts.ndim == 1:
                pts = pts[:, None]
            if pts.ndim != 2 or pts.shape[0] == 0:
                raise InvalidArgumentError(
                    f"ResidualLoss: points must have shape (n, d) with n >= 1, got "
                    f"{tuple(pts.shape)}."
                )
            if not bool(torch.isfinite(pts).all()):
                raise InvalidArgumentError("ResidualLoss: points contain NaN or inf values.")
            if sampler is not None and sampler.dim != pts.shape[1]:
                raise InvalidArgumentError(
                    f"ResidualLoss: points have {pts.shape[1]} columns but the sampler's box "
                    f"is {sampler.dim}-d."
                )
            n = pts.shape[0] if n_points is None else n_points
        else:
            assert sampler is not None
            if n_points is None:
                raise InvalidArgumentError(
                    "ResidualLoss: with a sampler and no points, give n_points (how many "
                    "collocation points to draw)."
                )
            n = n_points
            gen = generator if generator is not None else torch.Generator().manual_seed(0)
            pts = sampler.sample(n, gen)
        if causal is not None and not -pts.shape[1] <= causal.time_column < pts.shape[1]:
            raise InvalidArgumentError(
                f"ResidualLoss: causal.time_column={causal.time_column} is out of range for "
                f"{pts.shape[1]}-d points."
            )
        self.residual = residual
        self.sampler = sampler
        self.resampling = resampling
        self.causal = causal
        self.causal_weights: Tensor | None = None
        self.n_points = int(n)
        self.n_initial = int(pts.shape[0])
        self.register_buffer("points", pts)

    def forward(self, model: nn.Module) -> Tensor:
        """Return the mean squared residual at the current collocation points (with
        ``causal``: the causally weighted mean over time chunks)."""
        self.remember_model(model)
        x = self.points.detach().clone().requires_grad_(True)
        r = self._checked(model, x)
        if self.causal is None:
            return (r**2).mean()
        loss, self.causal_weights = self.causal.loss(x, r)
        return loss

    def _checked(self, model: nn.Module, x: Tensor) -> Tensor:
        """The residual at ``x``, checked to be one row per point."""
        r = self.residual(model, x)
        if not isinstance(r, Tensor):
            raise InvalidTypeError(
                f"ResidualLoss: residual function {_name_of(self.residual)} must return a "
                f"tensor, got {type(r).__name__}."
            )
        n = x.shape[0]
        if r.ndim == 0 or r.ndim > 2 or r.shape[0] != n:
            raise InvalidArgumentError(
                f"ResidualLoss: residual function {_name_of(self.residual)} returned shape "
                f"{tuple(r.shape)} for {n} points of shape {tuple(x.shape)}; return one row "
                f"per point, shape ({n},) or ({n}, k) (do not reduce over the points)."
            )
        return r

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` fresh points from the sampler, float64 on the generator's device."""
        if self.sampler is None:
            raise InvalidArgumentError(
                "ResidualLoss.sample: this term has fixed points and no sampler; give "
                "sampler=BoxSampler(...) to draw new ones."
            )
        return self.sampler.sample(n, generator, dtype=torch.float64)

    def residual_at(self, points: Any) -> Tensor | None:
        """The residual ``(n, k)`` (detached) of the model last evaluated (or given to
        :meth:`resample`) at ``points``, or None before the first evaluation.

        Evaluated in the term's dtype and on its device, in chunks of 8192 points.
        """
        model = self.last_model()
        if model is None:
            return None
        x = torch.as_tensor(points, dtype=self.points.dtype, device=self.points.device)
        if x.ndim == 1:
            x = x[:, None]
        parts = []
        with torch.enable_grad():  # the residual differentiates the model
            for i in range(0, x.shape[0], _CHUNK):
                r = self._checked(model, x[i : i + _CHUNK].clone().requires_grad_(True))
                parts.append((r[:, None] if r.ndim == 1 else r).detach())
        return parts[0] if len(parts) == 1 else torch.cat(parts, 0)

    def _strategy(self) -> Resampling | None:
        if self.resampling is None and self.sampler is not None:
            return _UNIFORM  # the default: fresh uniform points from the sampler
        return self.resampling

    def __setstate__(self, state: dict[str, Any]) -> None:  # terms pickled before these options
        super().__setstate__(state)
        self.__dict__.setdefault("resampling", None)
        self.__dict__.setdefault("causal", None)
        self.__dict__.setdefault("causal_weights", None)
        self.__dict__.setdefault("n_initial", self.__dict__.get("n_points", 0))

    def extra_repr(self) -> str:
        extra = f", resampling={self.resampling!r}" if self.resampling is not None else ""
        extra += f", causal={self.causal!r}" if self.causal is not None else ""
        return (
            f"residual={_name_of(self.residual)}, n_points={self.n_points}, "
            f"sampler={self.sampler!r}{extra}"
        )


_UNIFORM = UniformResampling()
