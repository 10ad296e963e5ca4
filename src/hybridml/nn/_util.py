"""Private helpers shared by the networks, models and loss terms (argument checks, names)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..exceptions import InvalidArgumentError, InvalidTypeError


def _name_of(fn: Any) -> str:
    """A readable name for a callable, for error messages."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__name__


def _per_feature(value: Any, n: int, what: str, owner: str) -> Tensor:
    """``value`` (a scalar or a sequence of ``n`` numbers) as a float64 tensor of shape (n,)."""
    try:
        t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidTypeError(
            f"{owner}: {what} must be a number or a sequence of {n} numbers, got {value!r}."
        ) from exc
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise InvalidArgumentError(
            f"{owner}: {what} has {t.numel()} entries but {n} are needed (one per feature)."
        )
    if not bool(torch.isfinite(t).all()):
        raise InvalidArgumentError(f"{owner}: {what} must be finite, got {value!r}.")
    return t


def _check_bounds(lower: Tensor, upper: Tensor, owner: str, what: str = "lower/upper") -> None:
    bad = (upper <= lower).nonzero().reshape(-1)
    if bad.numel():
        i = int(bad[0])
        raise InvalidArgumentError(
            f"{owner}: {what} must satisfy lower < upper, but feature {i} has lower="
            f"{float(lower[i])} >= upper={float(upper[i])}."
        )
