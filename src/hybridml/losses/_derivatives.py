"""Derivatives of a network's outputs with respect to its inputs, by autograd (:func:`partial`)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..exceptions import InvalidArgumentError, InvalidIndexError

__all__ = ["partial"]


def partial(y: Tensor, x: Tensor, wrt: int, out: int = 0) -> Tensor:
    """Derivative of output column ``out`` of ``y`` with respect to input column ``wrt``.

    Uses ``torch.autograd.grad(..., create_graph=True)``, so the result can be
    differentiated again (second derivatives: ``partial(partial(u, x, 0), x, 0)``) and
    trained through. It assumes each row of ``y`` depends only on the same row of ``x``
    (true for pointwise networks such as :class:`MLP`).

    Args:
        y: outputs, shape ``(n, k)`` or ``(n,)``, computed from ``x``.
        x: inputs, shape ``(n, d)``, with ``requires_grad=True`` (as passed to residuals
            by :class:`ResidualLoss`).
        wrt: index of the input column to differentiate with respect to.
        out: index of the output column to differentiate.

    Returns:
        Tensor of shape ``(n, 1)``; zeros where ``y`` does not depend on ``x``.
    """
    if not isinstance(x, Tensor) or x.ndim != 2:
        raise InvalidArgumentError(
            f"partial: x must be a tensor of shape (n, d), got "
            f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}."
        )
    if not x.requires_grad:
        raise InvalidArgumentError(
            "partial: x does not require grad; call x.requires_grad_(True) before computing "
            "y from it (ResidualLoss does this for the points it passes)."
        )
    if not isinstance(y, Tensor) or y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise InvalidArgumentError(
            f"partial: y must have shape ({x.shape[0]},) or ({x.shape[0]}, k) to match x, got "
            f"{got}."
        )
    if y.ndim == 1:
        y = y[:, None]
    if not -x.shape[1] <= wrt < x.shape[1]:
        raise InvalidIndexError(
            f"partial: wrt={wrt} is out of range for x with {x.shape[1]} columns."
        )
    if not -y.shape[1] <= out < y.shape[1]:
        raise InvalidIndexError(
            f"partial: out={out} is out of range for y with {y.shape[1]} columns."
        )
    if not y.requires_grad:  # y does not depend on x (e.g. derivative of a linear function)
        return torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
    (g,) = torch.autograd.grad(
        y[:, out].sum(), x, create_graph=True, allow_unused=True, materialize_grads=True
    )
    return g[:, wrt : wrt + 1]
