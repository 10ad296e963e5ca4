"""Soft physics constraints: the mean squared residual at collocation points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ..nn._util import _name_of
from ._base import LossTerm
from ._sampling import BoxSampler

__all__ = ["ResidualLoss"]


class ResidualLoss(LossTerm):
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
        self.residual = residual
        self.sampler = sampler
        self.n_points = int(n)
        self.register_buffer("points", pts)

    def forward(self, model: nn.Module) -> Tensor:
        """Return the mean squared residual at the current collocation points."""
        x = self.points.detach().clone().requires_grad_(True)
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
        return (r**2).mean()

    def resample(self, generator: torch.Generator) -> None:
        """Draw ``n_points`` fresh points from the sampler (no-op without a sampler)."""
        if self.sampler is None:
            return
        pts = self.sampler.sample(self.n_points, generator, dtype=self.points.dtype)
        self.points = pts.to(self.points.device)

    def extra_repr(self) -> str:
        return (
            f"residual={_name_of(self.residual)}, n_points={self.n_points}, "
            f"sampler={self.sampler!r}"
        )
