"""Fitting a trajectory model ``model(t, y0)`` to observed states (:class:`TrajectoryLoss`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError
from ._base import LossTerm

__all__ = ["TrajectoryLoss"]


class TrajectoryLoss(LossTerm):
    """Mean squared error between a trajectory model's ``model(t, y0)`` and observations.

    Args:
        t: observation times, shape ``(T,)``, strictly monotonic; ``t[0]`` is the time of
            ``y0``.
        y_obs: observed states, shape ``(T, k)`` (or ``(T, B, k)`` for a batch of initial
            states); 1-d when one component is observed.
        y0: initial state, shape ``(d,)`` or ``(B, d)``.
        observe: indices of the observed state components (default: all ``d``), e.g.
            ``[0]`` when only the position of an oscillator is measured.
    """

    def __init__(
        self, t: Any, y_obs: Any, y0: Any, *, observe: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        dtype = torch.get_default_dtype()
        tt = torch.as_tensor(t, dtype=dtype)
        yo = torch.as_tensor(y_obs, dtype=dtype)
        y0t = torch.as_tensor(y0, dtype=dtype)
        if tt.ndim != 1 or tt.shape[0] < 2:
            raise InvalidArgumentError(
                f"TrajectoryLoss: t must be 1-d with at least 2 times, got {tuple(tt.shape)}."
            )
        if y0t.ndim == 0:
            y0t = y0t.reshape(1)
        if y0t.ndim not in (1, 2):
            raise InvalidArgumentError(
                f"TrajectoryLoss: y0 must have shape (d,) or (B, d), got {tuple(y0t.shape)}."
            )
        d = y0t.shape[-1]
        idx = list(range(d)) if observe is None else [int(i) for i in observe]
        if not idx or any(not 0 <= i < d for i in idx):
            raise InvalidArgumentError(
                f"TrajectoryLoss: observe={observe!r} must list state indices in [0, {d})."
            )
        if yo.ndim == y0t.ndim:  # one observed component given without its last axis
            yo = yo.unsqueeze(-1)
        expected = (tt.shape[0], *y0t.shape[:-1], len(idx))
        if tuple(yo.shape) != expected:
            raise InvalidArgumentError(
                f"TrajectoryLoss: y_obs has shape {tuple(yo.shape)} but {expected} is needed "
                f"({tt.shape[0]} times, y0 shape {tuple(y0t.shape)}, {len(idx)} observed "
                "components)."
            )
        if not bool(torch.isfinite(yo).all()):
            raise InvalidArgumentError("TrajectoryLoss: y_obs contains NaN or inf values.")
        self.register_buffer("t", tt)
        self.register_buffer("y_obs", yo)
        self.register_buffer("y0", y0t)
        self.observe = None if observe is None else idx

    def forward(self, model: nn.Module) -> Tensor:
        """Return the mean squared trajectory error."""
        pred = model(self.t, self.y0)
        if self.observe is not None:
            pred = pred[..., self.observe]
        return ((pred - self.y_obs) ** 2).mean()
