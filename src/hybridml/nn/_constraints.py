"""Hard constraints on a network's output.

An :class:`OutputTransform` (:class:`Bounded`, :class:`Positive`, :class:`HardBoundary`)
maps a network's raw output to an admissible one; :class:`Constrained` applies it to a
network, ``transform(x, net(x))``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ._jet import Jet, autograd_jet, hard_boundary_jet, normalise_pairs
from ._mlp import MLP
from ._precompile import Precompilation
from ._util import _check_bounds, _name_of

__all__ = ["Bounded", "Constrained", "HardBoundary", "OutputTransform", "Positive"]


class OutputTransform(nn.Module, abc.ABC):
    """Base of hard constraints: maps a network's raw output to an admissible output.

    Contract for implementations:

    * ``forward(x, y_raw)`` returns a tensor of the shape of ``y_raw`` that satisfies the
      constraint for *every* value of ``y_raw`` (not just at a converged optimum), and is
      differentiable in ``y_raw`` (and in ``x`` where the constraint depends on it).
    * Constants are registered as buffers so that ``.to(torch.float64)`` converts them.

    Call it as ``transform(x, y_raw)``; wrap a network with :class:`Constrained`.
    """

    @abc.abstractmethod
    def forward(self, x: Tensor, y_raw: Tensor) -> Tensor:
        """Return the constrained output for inputs ``x`` and raw outputs ``y_raw``."""

    def __call__(self, x: Tensor, y_raw: Tensor) -> Tensor:  # typed nn.Module.__call__
        out: Tensor = super().__call__(x, y_raw)
        return out


class Bounded(OutputTransform):
    """Keep outputs inside ``[lower, upper]``: ``y = lower + (upper - lower) * sigmoid(y_raw)``.

    With only ``lower`` given, ``y = lower + softplus(y_raw)``; with only ``upper``,
    ``y = upper - softplus(y_raw)``. The result is clamped to the bounds, so rounding
    can never step outside them.

    Args:
        lower: lower bound, a number or one per output column (or None).
        upper: upper bound, a number or one per output column (or None).
    """

    lower: Tensor | None
    upper: Tensor | None

    def __init__(
        self,
        lower: float | Sequence[float] | None,
        upper: float | Sequence[float] | None,
    ) -> None:
        super().__init__()
        if lower is None and upper is None:
            raise InvalidArgumentError("Bounded: give lower, upper or both (both are None).")
        lo = self._as_bound(lower, "lower")
        hi = self._as_bound(upper, "upper")
        if lo is not None and hi is not None:
            if lo.numel() != hi.numel() and 1 not in (lo.numel(), hi.numel()):
                raise InvalidArgumentError(
                    f"Bounded: lower has {lo.numel()} entries but upper has {hi.numel()}; "
                    "give one bound per output column or a single number."
                )
            lo, hi = torch.broadcast_tensors(lo, hi)
            _check_bounds(lo, hi, "Bounded")
        dtype = torch.get_default_dtype()
        self.register_buffer("lower", None if lo is None else lo.to(dtype).contiguous())
        self.register_buffer("upper", None if hi is None else hi.to(dtype).contiguous())

    @staticmethod
    def _as_bound(value: Any, what: str) -> Tensor | None:
        if value is None:
            return None
        try:
            t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InvalidTypeError(
                f"Bounded: {what} must be a number or a sequence of numbers, got {value!r}."
            ) from exc
        if t.numel() == 0 or not bool(torch.isfinite(t).all()):
            raise InvalidArgumentError(f"Bounded: {what} must be finite numbers, got {value!r}.")
        return t

    def forward(self, x: Tensor, y_raw: Tensor) -> Tensor:
        """Map ``y_raw`` into the bounds."""
        lo = None if self.lower is None else self.lower.to(y_raw)
        hi = None if self.upper is None else self.upper.to(y_raw)
        for b, what in ((lo, "lower"), (hi, "upper")):
            if (
                b is not None
                and b.numel() > 1
                and (y_raw.ndim == 0 or y_raw.shape[-1] != b.numel())
            ):
                raise InvalidArgumentError(
                    f"Bounded: {what} has {b.numel()} entries but the network output has "
                    f"shape {tuple(y_raw.shape)}; give one bound per output column."
                )
        if lo is not None and hi is not None:
            y = lo + (hi - lo) * torch.sigmoid(y_raw)
            return torch.clamp(y, lo.expand_as(y), hi.expand_as(y))
        if lo is not None:
            y = lo + nn.functional.softplus(y_raw)
            return torch.maximum(y, lo.expand_as(y))
        assert hi is not None
        y = hi - nn.functional.softplus(y_raw)
        return torch.minimum(y, hi.expand_as(y))

    def extra_repr(self) -> str:
        lo = None if self.lower is None else self.lower.tolist()
        hi = None if self.upper is None else self.upper.tolist()
        return f"lower={lo}, upper={hi}"


class Positive(OutputTransform):
    """Keep outputs positive: ``y = minimum + softplus(y_raw)``.

    ``y > minimum`` for raw outputs above about -700 (float64) or -100 (float32), where
    softplus underflows; ``y >= minimum`` always.

    Args:
        minimum: the floor (default 0); e.g. a small positive number for quantities that
            are divided by.
    """

    def __init__(self, *, minimum: float = 0.0) -> None:
        super().__init__()
        if not math.isfinite(minimum):
            raise InvalidArgumentError(f"Positive: minimum must be finite, got {minimum!r}.")
        self.minimum = float(minimum)

    def forward(self, x: Tensor, y_raw: Tensor) -> Tensor:
        """Map ``y_raw`` to positive values."""
        return self.minimum + nn.functional.softplus(y_raw)

    def extra_repr(self) -> str:
        return f"minimum={self.minimum}"


class HardBoundary(OutputTransform):
    """Impose boundary (or initial) values exactly: ``y = g(x) + distance(x) * y_raw``.

    ``distance`` must vanish on the boundary, so there ``y = g(x)`` whatever the network
    outputs. Example for ``u(0) = 1`` on ``t >= 0``: ``g = lambda t: torch.ones_like(t)``,
    ``distance = lambda t: t``.

    Args:
        g: boundary values, ``x (n, d_in) -> (n, d_out)`` (or ``(n,)``, or a shape that
            broadcasts against the raw output); should extend the boundary data smoothly.
        distance: ``x (n, d_in) -> (n, 1)`` (or ``(n,)``), zero exactly on the boundary and
            nonzero inside the domain.

    ``g`` and ``distance`` may be nn.Modules (their parameters are then registered).

    Both see the raw inputs: the points ``x`` as passed to the model (in
    :class:`Constrained`, ``transform(x, net(x))``), in the problem's own units, never the
    ``[-1, 1]`` scaling an :class:`~hybridml.MLP` with ``input_lower``/``input_upper``
    applies inside itself. Write them in the problem's coordinates (for ``x`` in
    ``[0, 2]``: ``distance = lambda x: x * (2 - x)``). The same holds in the Taylor-mode
    jets (:meth:`Constrained.jet`), which differentiate ``g`` and ``distance`` with respect
    to the raw ``x``.
    """

    def __init__(self, g: Callable[[Tensor], Tensor], distance: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        if not callable(g):
            raise InvalidTypeError(f"HardBoundary: g must be callable x -> values, got {g!r}.")
        if not callable(distance):
            raise InvalidTypeError(
                f"HardBoundary: distance must be callable x -> distance, got {distance!r}."
            )
        self.g = g
        self.distance = distance

    def _evaluate(self, fn: Callable[[Tensor], Tensor], what: str, x: Tensor, y: Tensor) -> Tensor:
        v = fn(x)
        if not isinstance(v, Tensor):
            raise InvalidTypeError(
                f"HardBoundary: {what} ({_name_of(fn)}) must return a tensor, got "
                f"{type(v).__name__}."
            )
        if v.ndim == 1 and y.ndim == 2 and v.shape[0] == y.shape[0]:
            v = v[:, None]
        try:
            shape = torch.broadcast_shapes(v.shape, y.shape)
        except RuntimeError:
            shape = None
        if shape != y.shape:
            raise InvalidArgumentError(
                f"HardBoundary: {what} ({_name_of(fn)}) returned shape {tuple(v.shape)}, "
                f"which does not broadcast to the network output shape {tuple(y.shape)}; "
                f"return shape (n, 1) or (n, {y.shape[-1] if y.ndim else 1})."
            )
        return v

    def forward(self, x: Tensor, y_raw: Tensor) -> Tensor:
        """Return ``g(x) + distance(x) * y_raw``."""
        gx = self._evaluate(self.g, "g", x, y_raw)
        dx = self._evaluate(self.distance, "distance", x, y_raw)
        return gx + dx * y_raw


class Constrained(nn.Module):
    """A network whose output passes through a hard constraint: ``transform(x, net(x))``.

    Args:
        net: the network (any module mapping ``x`` to raw outputs).
        transform: the :class:`OutputTransform` to apply.
    """

    def __init__(self, net: nn.Module, transform: OutputTransform) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise InvalidTypeError(
                f"Constrained: net must be an nn.Module, got {type(net).__name__}."
            )
        if not isinstance(transform, OutputTransform):
            raise InvalidTypeError(
                "Constrained: transform must be an OutputTransform such as Bounded(0, 1), "
                f"Positive() or HardBoundary(g, distance); got {type(transform).__name__}."
            )
        self.net = net
        self.transform = transform

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the constrained network."""
        return self.transform(x, self.net(x))

    @property
    def taylor_mode(self) -> bool:
        """Whether :meth:`jet` runs in Taylor mode: an :class:`~hybridml.MLP` in Taylor
        mode under a :class:`HardBoundary` (other constraints: autograd)."""
        return (
            isinstance(self.net, MLP)
            and self.net.taylor_mode
            and isinstance(self.transform, HardBoundary)
        )

    def jet(
        self,
        x: Tensor,
        pairs: Iterable[Sequence[int]] = (),
        *,
        extra: Tensor | None = None,
        compiled: bool = False,
        cache: dict[Any, Jet] | None = None,
    ) -> Jet:
        """The constrained network's value and input derivatives at ``x``, in one pass.

        As :meth:`hybridml.MLP.jet` (same arguments, shapes and result). In Taylor mode
        (:attr:`taylor_mode`) the network's jet is combined with the derivatives of the
        :class:`HardBoundary`'s ``g`` and ``distance``, taken by autograd, by the product
        rule; otherwise the whole jet is taken by autograd. In Taylor mode the jet is
        differentiable with respect to the parameters, not ``x`` (``g`` and ``distance``
        are differentiated at a detached copy of it).

        Args:
            cache: optional dict, kept by the caller for the points ``x`` only, in which
                the jets of ``g`` and ``distance`` are kept between calls when they have
                no trainable parameters (they do not change then). Clear it (or pass
                another) when the points change.

        See :meth:`hybridml.MLP.jet` for the other arguments and the result.
        """
        if not self.taylor_mode:
            d = x.shape[1] if isinstance(x, Tensor) and x.ndim == 2 else 0
            return autograd_jet(self, x, normalise_pairs(pairs, d, "Constrained.jet"), extra)
        net = self.net
        assert isinstance(net, MLP) and isinstance(self.transform, HardBoundary)
        wanted = normalise_pairs(pairs, net.in_features, "Constrained.jet")
        raw = net.jet(x, wanted, extra=extra, compiled=compiled)
        return hard_boundary_jet(self.transform, raw, x, wanted, extra, cache)

    def precompile_jet(
        self,
        n: int,
        pairs: Iterable[Sequence[int]] = (),
        *,
        extra_rows: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> Precompilation | None:
        """Start compiling the network's jet in a background process (see
        :meth:`hybridml.MLP.precompile_jet`); None outside Taylor mode."""
        if not self.taylor_mode:
            return None
        assert isinstance(self.net, MLP)
        return self.net.precompile_jet(n, pairs, extra_rows=extra_rows, dtype=dtype)
