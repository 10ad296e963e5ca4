"""Small helpers of the engine: the trainable parameters of a set of modules, a module's
floating-point dtype, and which loss value went non-finite."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["_collect_params", "_first_nonfinite", "_module_dtype"]


def _collect_params(modules: Iterable[nn.Module]) -> list[Tensor]:
    seen: set[int] = set()
    out: list[Tensor] = []
    for m in modules:
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def _module_dtype(module: nn.Module) -> torch.dtype | None:
    for t in itertools.chain(module.parameters(), module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def _first_nonfinite(values: Sequence[float]) -> int:
    """Index of the first non-finite value (of the largest one if only the sum overflows)."""
    for i, v in enumerate(values):
        if not math.isfinite(v):
            return i
    return max(range(len(values)), key=lambda i: abs(values[i]))
