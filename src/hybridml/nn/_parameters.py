"""Learnable physical parameters for inverse problems (:class:`PhysicalParameter`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError, InvalidTypeError

__all__ = ["PhysicalParameter"]


class PhysicalParameter(nn.Module):
    """A learnable physical scalar (inverse problems), kept admissible by construction.

    Parametrisation of the unconstrained tensor ``raw``:

    * ``lower`` and ``upper`` given: ``value = lower + (upper - lower) * sigmoid(raw)``;
    * only ``lower``: ``value = lower + exp(raw)``; only ``upper``: ``upper - exp(raw)``;
    * no bounds and ``positive=True`` (default): ``value = exp(raw)`` (log-parametrised,
      which also makes steps relative, good for rates spanning decades);
    * no bounds and ``positive=False``: ``value = raw``.

    ``positive=True`` with only ``upper`` means bounds ``(0, upper)``.

    Args:
        init: initial value; must lie strictly inside the admissible range.
        positive: whether the value must stay positive.
        lower: optional lower bound.
        upper: optional upper bound.
        name: optional name used in messages and ``repr`` (e.g. ``"k [1/s]"``).

    Use ``p.value`` (a 0-d tensor, differentiable) inside residuals or right-hand sides;
    ``float(p)`` for the current number. Freeze with ``p.requires_grad_(False)``.
    """

    raw: nn.Parameter

    def __init__(
        self,
        init: float,
        *,
        positive: bool = True,
        lower: float | None = None,
        upper: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        label = f"PhysicalParameter {name!r}" if name else "PhysicalParameter"
        try:
            x0 = float(init)
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(f"{label}: init must be a number, got {init!r}.") from exc
        for what, v in (("init", x0), ("lower", lower), ("upper", upper)):
            if v is not None and not math.isfinite(float(v)):
                raise InvalidArgumentError(f"{label}: {what} must be finite, got {v!r}.")
        lo = None if lower is None else float(lower)
        hi = None if upper is None else float(upper)
        if positive:
            if lo is not None and lo < 0:
                raise InvalidArgumentError(
                    f"{label}: lower={lo} is negative but positive=True; pass "
                    "positive=False to allow negative values."
                )
            if lo is None and hi is not None:
                lo = 0.0
        if lo is not None and hi is not None and not lo < hi:
            raise InvalidArgumentError(f"{label}: lower={lo} must be smaller than upper={hi}.")
        if positive and lo is None and x0 <= 0:
            raise InvalidArgumentError(f"{label}: init={x0} must be > 0 (positive=True).")
        if (lo is not None and x0 <= lo) or (hi is not None and x0 >= hi):
            raise InvalidArgumentError(
                f"{label}: init={x0} must lie strictly inside ({lo}, {hi}); move it away "
                "from the bounds."
            )
        self.lower = lo
        self.upper = hi
        self.positive = bool(positive)

        if lo is not None and hi is not None:
            self._mode = "sigmoid"
            s = (x0 - lo) / (hi - lo)
            r = math.log(s) - math.log1p(-s)
        elif lo is not None:
            self._mode = "lower"
            r = math.log(x0 - lo)
        elif hi is not None:
            self._mode = "upper"
            r = math.log(hi - x0)
        elif positive:
            self._mode = "exp"
            r = math.log(x0)
        else:
            self._mode = "identity"
            r = x0
        self.raw = nn.Parameter(torch.tensor(r, dtype=torch.get_default_dtype()))

    @property
    def value(self) -> Tensor:
        """The parameter's value as a differentiable 0-d tensor."""
        r = self.raw
        if self._mode == "sigmoid":
            assert self.lower is not None and self.upper is not None
            v = self.lower + (self.upper - self.lower) * torch.sigmoid(r)
            return torch.clamp(v, self.lower, self.upper)
        if self._mode == "lower":
            assert self.lower is not None
            return self.lower + torch.exp(r)
        if self._mode == "upper":
            assert self.upper is not None
            return self.upper - torch.exp(r)
        if self._mode == "exp":
            return torch.exp(r)
        return r

    def forward(self) -> Tensor:
        """Return :attr:`value`."""
        return self.value

    def __float__(self) -> float:
        return float(self.value.detach())

    def extra_repr(self) -> str:
        parts = [f"value={float(self):.6g}"]
        if self.name:
            parts.insert(0, f"name={self.name!r}")
        if self.lower is not None or self.upper is not None:
            parts.append(f"bounds=({self.lower}, {self.upper})")
        elif self.positive:
            parts.append("positive=True")
        return ", ".join(parts)
