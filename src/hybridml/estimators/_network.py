"""A :class:`~hybridml.HybridRegressor`'s network, built from its settings: by ``fit`` (from
the data's ranges) and by ``load`` (the same structure, then the stored weights)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__: list[str] = []


class _Affine(nn.Module):
    """Scales a network's output to the data's range: y = shift + scale * net(x)."""

    def __init__(self, net: nn.Module, shift: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.shift + self.scale * self.net(x)
        return out


def _masked_stats(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per column over the finite (measured) entries.

    A column with no measurement gets (0, 1); a constant column gets standard deviation 1.
    """
    measured = np.isfinite(y)
    count = np.maximum(measured.sum(axis=0), 1)
    mean = np.where(measured, y, 0.0).sum(axis=0) / count
    var = (np.where(measured, y - mean, 0.0) ** 2).sum(axis=0) / count
    return mean, np.where(var > 0, np.sqrt(var), 1.0)


def _assemble(
    est: Any,
    n_in: int,
    n_out: int,
    lo: np.ndarray,
    hi: np.ndarray,
    mean: np.ndarray | None,
    std: np.ndarray | None,
) -> nn.Module:
    """A :class:`~hybridml.HybridRegressor`'s network from its settings: the MLP (inputs
    scaled from ``[lo, hi]``, weights drawn from the seed), scaled to ``mean ± std`` unless
    there is a ``transform``, around the ``simulator`` and inside the ``transform``; a
    loaded model gets the same structure and then its stored weights."""
    from ..nn import MLP, Constrained, ResidualModel

    # a private generator: no global RNG state, so fits in parallel threads are seeded too
    net: nn.Module = MLP(
        n_in,
        n_out,
        tuple(est.hidden),
        est.activation,
        input_lower=lo.tolist(),
        input_upper=hi.tolist(),
        generator=torch.Generator().manual_seed(est.seed),
    )
    dtype = torch.get_default_dtype()
    if est.transform is None:
        assert mean is not None and std is not None
        net = _Affine(net, torch.tensor(mean, dtype=dtype), torch.tensor(std, dtype=dtype))
    if est.simulator is not None:
        net = ResidualModel(est.simulator, net)
    if est.transform is not None:
        net = Constrained(net, est.transform)
    return net
