"""The loss terms a :class:`~hybridml.BatchedEnsemble` trains: the members' weighted data
loss and the weight-decay term."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..losses._base import LossTerm
from ..nn._batched import BatchedMLP

__all__ = ["_MemberLoss", "_WeightDecay"]


class _MemberLoss(LossTerm):
    """Sum over members of each member's weighted mean squared error.

    Member ``m``'s term is ``DataLoss(x, y, weights=w[m])``'s: its weights scaled to mean 1,
    squared errors of measured targets weighted and divided by the number of measured
    targets. The members' terms are summed, so each member's gradient is its own.
    """

    x: Tensor
    y: Tensor
    mask: Tensor
    w: Tensor

    def __init__(self, x: Tensor, y: Tensor, w: Tensor) -> None:
        super().__init__()
        measured = ~torch.isnan(y)
        self.register_buffer("x", x)
        self.register_buffer("y", torch.where(measured, y, torch.zeros_like(y)))
        self.register_buffer("mask", measured.to(x.dtype))
        self.register_buffer("w", (w / w.mean(dim=1, keepdim=True))[..., None])

    def forward(self, model: nn.Module) -> Tensor:
        sq = (model(self.x) - self.y) ** 2 * self.mask * self.w
        return sq.sum() / self.mask.sum()


class _WeightDecay(LossTerm):
    """``rate`` times the sum of the squared weights (not biases) of every member."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, model: nn.Module) -> Tensor:
        net = getattr(model, "net", model)  # the batched net, inside its output scaling
        assert isinstance(net, BatchedMLP)
        total: Tensor = sum((w**2).sum() for w in net.weights)
        return self.rate * total
