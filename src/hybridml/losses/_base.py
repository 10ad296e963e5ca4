"""Loss terms: named, differentiable scalar losses evaluated on a model.

A loss term is a :class:`torch.nn.Module` so that the data it holds (collocation points,
measurements) moves with ``.to(device)`` and ``.to(torch.float64)`` together with the model.
The trainer relies on that to run its L-BFGS phase in float64.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor, nn

from ..exceptions import DataError, InvalidArgumentError

__all__ = ["DataLoss", "LossTerm"]


class LossTerm(nn.Module, abc.ABC):
    """A differentiable scalar loss evaluated on a model.

    Contract for implementations:

    * ``forward(model)`` returns a 0-d tensor, differentiable with respect to the model's
      parameters (and any learnable physical parameters the model holds).
    * Every tensor the term needs is registered as a buffer (``register_buffer``), so that
      ``term.to(dtype)`` converts it; ``forward`` must not create tensors of a fixed dtype.
    * ``resample(generator)`` may draw fresh collocation points; the default does nothing.
      It must draw only from ``generator`` so that seeded runs are reproducible.

    Terms are named by the key under which they are passed to the trainer
    (``losses={"data": ..., "pde": ...}``).
    """

    @abc.abstractmethod
    def forward(self, model: nn.Module) -> Tensor:
        """Return the loss as a 0-d tensor."""

    def resample(self, generator: torch.Generator) -> None:
        """Draw fresh collocation points (optional; the default keeps the points)."""

    def __call__(self, model: nn.Module) -> Tensor:  # typed wrapper around nn.Module.__call__
        out: Tensor = super().__call__(model)
        return out


class DataLoss(LossTerm):
    """Mean squared error between ``model(x)`` and measured targets ``y``.

    A NaN in ``y`` means "not measured": that entry is left out of the loss, so a model with
    several outputs can be fitted to measurements of only some of them. ``x`` and ``y`` are
    read by :func:`~hybridml.as_inputs` (arrays, lists or tensors; a tensor's device is
    kept) and held in torch's default dtype.

    Args:
        x: inputs, shape ``(n, d_in)`` (1-d: one input column).
        y: targets, shape ``(n, d_out)`` (a 1-d ``y`` is treated as one output column).
        weights: optional per-point weights, shape ``(n,)``, non-negative and not all
            zero; e.g. to down-weight synthetic points against measured ones. They are
            scaled to mean 1, so they set the points' *relative* weights.

    Raises:
        DataError: for NaN/inf in ``x``, inf in ``y``, no rows, differing row counts,
            targets that are all NaN, or weights of the wrong length or sign.
    """

    x: Tensor
    y: Tensor
    mask: Tensor
    w: Tensor | None

    def __init__(self, x: Any, y: Any, weights: Any | None = None) -> None:
        from ..data._input import as_inputs

        super().__init__()
        data = as_inputs(x, y, what="DataLoss", x_name="x", y_name="y", require_y=True)
        assert data.y is not None
        dtype = torch.get_default_dtype()
        device = x.device if isinstance(x, Tensor) else None
        xt = torch.as_tensor(data.X, dtype=dtype, device=device)
        yt = torch.as_tensor(data.y, dtype=dtype, device=device)
        measured = ~torch.isnan(yt)
        if not measured.any():
            raise DataError("DataLoss: every target is NaN; there is nothing to fit.")
        self.register_buffer("x", xt)
        self.register_buffer("y", torch.where(measured, yt, torch.zeros_like(yt)))
        self.register_buffer("mask", measured.to(xt.dtype))
        if weights is None:
            self.register_buffer("w", None)
        else:
            wt = torch.as_tensor(weights, dtype=xt.dtype, device=xt.device).reshape(-1, 1)
            if wt.shape[0] != xt.shape[0]:
                raise DataError(
                    f"DataLoss: weights has {wt.shape[0]} entries but x has {xt.shape[0]} rows."
                )
            if not bool(torch.isfinite(wt).all()) or bool((wt < 0).any()) or wt.sum() <= 0:
                raise DataError("DataLoss: weights must be finite, non-negative and not all zero.")
            self.register_buffer("w", wt / wt.mean())

    def forward(self, model: nn.Module) -> Tensor:
        pred = model(self.x)
        if pred.shape != self.y.shape:
            raise InvalidArgumentError(
                f"DataLoss: the model returned shape {tuple(pred.shape)} for inputs of shape "
                f"{tuple(self.x.shape)}, but the targets have shape {tuple(self.y.shape)}."
            )
        sq = (pred - self.y) ** 2 * self.mask
        if self.w is not None:
            sq = sq * self.w
        return sq.sum() / self.mask.sum()
