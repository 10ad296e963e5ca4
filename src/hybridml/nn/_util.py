"""Private helpers shared by the networks, models and loss terms (argument checks, names)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

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


def _layer_sizes(
    owner: str, in_features: Any, out_features: Any, hidden: Sequence[Any]
) -> list[int]:
    """``[in_features, *hidden, out_features]``, each checked to be a positive integer."""
    for what, v in (("in_features", in_features), ("out_features", out_features)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidArgumentError(f"{owner}: {what} must be a positive integer, got {v!r}.")
    widths = list(hidden)
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise InvalidArgumentError(
                f"{owner}: hidden must be a sequence of positive integers, got {tuple(hidden)!r}."
            )
    return [in_features, *widths, out_features]


def _register_input_box(
    module: nn.Module, owner: str, in_features: int, lower: Any, upper: Any
) -> None:
    """Check the input box ``[lower, upper]`` (both or neither) and register it as the
    buffers ``input_lower``/``input_upper`` (None without a box)."""
    if (lower is None) != (upper is None):
        raise InvalidArgumentError(
            f"{owner}: give both input_lower and input_upper (to scale inputs to [-1, 1]) "
            "or neither."
        )
    if lower is None:
        module.register_buffer("input_lower", None)
        module.register_buffer("input_upper", None)
        return
    dtype = torch.get_default_dtype()
    lo = _per_feature(lower, in_features, "input_lower", owner)
    hi = _per_feature(upper, in_features, "input_upper", owner)
    _check_bounds(lo, hi, owner, "input_lower/input_upper")
    module.register_buffer("input_lower", lo.to(dtype))
    module.register_buffer("input_upper", hi.to(dtype))
