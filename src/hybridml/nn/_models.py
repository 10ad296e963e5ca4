"""Hybrid models: networks, hard constraints, physical parameters, residual models, UDEs.

Every model here is a :class:`torch.nn.Module`, so ``model.to(torch.float64)`` converts
all of it (networks, learnable physical parameters, buffers) at once; the trainer relies on
that for its float64 L-BFGS phase.

* :class:`MLP` — a fully connected network with optional input scaling to ``[-1, 1]``.
* Hard constraints: an :class:`OutputTransform` (:class:`Bounded`, :class:`Positive`,
  :class:`HardBoundary`) applied to a network's raw output by :class:`Constrained`.
* :class:`PhysicalParameter` — a learnable scalar kept positive or inside bounds by its
  parametrisation (inverse problems).
* :class:`ResidualModel` — simulator output plus (or times) a network correction.
* :class:`UDE` — a universal differential equation ``dy/dt = known(t, y) + network(y)``
  integrated with ``torchdiffeq.odeint``; :class:`TrajectoryLoss` fits it to a trajectory.
* :class:`LinearForcingUDE` — a known linear model with a learned forcing,
  ``dy/dt = A y + B f(t)``, solved by a precomputed impulse-response matrix.
* Soft constraints: :class:`ResidualLoss` (mean squared physics residual at collocation
  points drawn by a :class:`BoxSampler`) with :func:`partial` for autograd derivatives.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..losses._base import LossTerm

__all__ = [
    "MLP",
    "UDE",
    "Bounded",
    "BoxSampler",
    "Constrained",
    "HardBoundary",
    "LinearForcingUDE",
    "OutputTransform",
    "PhysicalParameter",
    "Positive",
    "ResidualLoss",
    "ResidualModel",
    "TrajectoryLoss",
    "partial",
]

# torchdiffeq methods that are differentiable through torch (scipy_solver is not).
_ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
_FIXED_STEP_METHODS = (
    "rk4",
    "euler",
    "midpoint",
    "heun2",
    "heun3",
    "explicit_adams",
    "implicit_adams",
    "fixed_adams",
)


def _name_of(fn: Any) -> str:
    """A readable name for a callable, for error messages."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__name__


def _per_feature(value: Any, n: int, what: str, owner: str) -> Tensor:
    """``value`` (a scalar or a sequence of ``n`` numbers) as a float64 tensor of shape (n,)."""
    try:
        t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"{owner}: {what} must be a number or a sequence of {n} numbers, got {value!r}."
        ) from exc
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(
            f"{owner}: {what} has {t.numel()} entries but {n} are needed (one per feature)."
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{owner}: {what} must be finite, got {value!r}.")
    return t


def _check_bounds(lower: Tensor, upper: Tensor, owner: str, what: str = "lower/upper") -> None:
    bad = (upper <= lower).nonzero().reshape(-1)
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            f"{owner}: {what} must satisfy lower < upper, but feature {i} has lower="
            f"{float(lower[i])} >= upper={float(upper[i])}."
        )


# --------------------------------------------------------------------------- networks


class MLP(nn.Module):
    """Fully connected network with optional input scaling to ``[-1, 1]``.

    Weights are Xavier (Glorot) uniform, biases zero. When ``input_lower`` and
    ``input_upper`` are given, inputs are mapped affinely from that box to ``[-1, 1]``
    before the first layer, which keeps tanh units out of saturation for inputs such as
    ``t`` in ``[0, 3600]`` s.

    Args:
        in_features: number of input features (size of the last input dimension).
        out_features: number of outputs.
        hidden: widths of the hidden layers; ``()`` gives a linear model.
        activation: a class (or zero-argument factory) returning the activation module.
        input_lower: lower end of the input box, a number or one per input feature.
        input_upper: upper end of the input box, a number or one per input feature.
        generator: optional ``torch.Generator`` for the initial weights (the global
            generator is used otherwise).

    Inputs have shape ``(..., in_features)``; outputs ``(..., out_features)``.
    """

    input_lower: Tensor | None
    input_upper: Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (32, 32, 32),
        activation: Callable[[], nn.Module] = nn.Tanh,
        *,
        input_lower: float | Sequence[float] | None = None,
        input_upper: float | Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MLP: {what} must be a positive integer, got {v!r}.")
        widths = list(hidden)
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ValueError(
                    f"MLP: hidden must be a sequence of positive integers, got {tuple(hidden)!r}."
                )
        if not callable(activation):
            raise TypeError(
                f"MLP: activation must be a module class such as nn.Tanh, got {activation!r}."
            )
        self.in_features = in_features
        self.out_features = out_features

        layers: list[nn.Module] = []
        sizes = [in_features, *widths, out_features]
        for i in range(len(sizes) - 1):
            linear = nn.Linear(sizes[i], sizes[i + 1])
            nn.init.xavier_uniform_(linear.weight, generator=generator)
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if i < len(sizes) - 2:
                act = activation()
                if not isinstance(act, nn.Module):
                    raise TypeError(
                        f"MLP: activation() must return an nn.Module, got {type(act).__name__}."
                    )
                layers.append(act)
        self.layers = nn.Sequential(*layers)

        if (input_lower is None) != (input_upper is None):
            raise ValueError(
                "MLP: give both input_lower and input_upper (to scale inputs to [-1, 1]) "
                "or neither."
            )
        dtype = torch.get_default_dtype()
        if input_lower is not None and input_upper is not None:
            lo = _per_feature(input_lower, in_features, "input_lower", "MLP")
            hi = _per_feature(input_upper, in_features, "input_upper", "MLP")
            _check_bounds(lo, hi, "MLP", "input_lower/input_upper")
            self.register_buffer("input_lower", lo.to(dtype))
            self.register_buffer("input_upper", hi.to(dtype))
        else:
            self.register_buffer("input_lower", None)
            self.register_buffer("input_upper", None)

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the network on ``x`` of shape ``(..., in_features)``."""
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"MLP: expected inputs of shape (n, {self.in_features}), got "
                f"{tuple(x.shape)}; reshape 1-d inputs with x[:, None]."
            )
        lo, hi = self.input_lower, self.input_upper
        if lo is not None and hi is not None:
            # 2 (x - lo) / (hi - lo) - 1 as one differentiable op (cheaper in PINN residuals)
            scale = 2.0 / (hi - lo)
            x = torch.addcmul(-1.0 - lo * scale, x, scale)
        out: Tensor = self.layers(x)
        return out

    def extra_repr(self) -> str:
        scaled = self.input_lower is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, " + (
            f"input_scaling={scaled}"
        )


# ------------------------------------------------------------------ hard constraints


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
            raise ValueError("Bounded: give lower, upper or both (both are None).")
        lo = self._as_bound(lower, "lower")
        hi = self._as_bound(upper, "upper")
        if lo is not None and hi is not None:
            if lo.numel() != hi.numel() and 1 not in (lo.numel(), hi.numel()):
                raise ValueError(
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
            raise TypeError(
                f"Bounded: {what} must be a number or a sequence of numbers, got {value!r}."
            ) from exc
        if t.numel() == 0 or not bool(torch.isfinite(t).all()):
            raise ValueError(f"Bounded: {what} must be finite numbers, got {value!r}.")
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
                raise ValueError(
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
            raise ValueError(f"Positive: minimum must be finite, got {minimum!r}.")
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
    """

    def __init__(self, g: Callable[[Tensor], Tensor], distance: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        if not callable(g):
            raise TypeError(f"HardBoundary: g must be callable x -> values, got {g!r}.")
        if not callable(distance):
            raise TypeError(
                f"HardBoundary: distance must be callable x -> distance, got {distance!r}."
            )
        self.g = g
        self.distance = distance

    def _evaluate(self, fn: Callable[[Tensor], Tensor], what: str, x: Tensor, y: Tensor) -> Tensor:
        v = fn(x)
        if not isinstance(v, Tensor):
            raise TypeError(
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
            raise ValueError(
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
            raise TypeError(f"Constrained: net must be an nn.Module, got {type(net).__name__}.")
        if not isinstance(transform, OutputTransform):
            raise TypeError(
                "Constrained: transform must be an OutputTransform such as Bounded(0, 1), "
                f"Positive() or HardBoundary(g, distance); got {type(transform).__name__}."
            )
        self.net = net
        self.transform = transform

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the constrained network."""
        return self.transform(x, self.net(x))


# --------------------------------------------------------------- physical parameters


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
            raise TypeError(f"{label}: init must be a number, got {init!r}.") from exc
        for what, v in (("init", x0), ("lower", lower), ("upper", upper)):
            if v is not None and not math.isfinite(float(v)):
                raise ValueError(f"{label}: {what} must be finite, got {v!r}.")
        lo = None if lower is None else float(lower)
        hi = None if upper is None else float(upper)
        if positive:
            if lo is not None and lo < 0:
                raise ValueError(
                    f"{label}: lower={lo} is negative but positive=True; pass "
                    "positive=False to allow negative values."
                )
            if lo is None and hi is not None:
                lo = 0.0
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"{label}: lower={lo} must be smaller than upper={hi}.")
        if positive and lo is None and x0 <= 0:
            raise ValueError(f"{label}: init={x0} must be > 0 (positive=True).")
        if (lo is not None and x0 <= lo) or (hi is not None and x0 >= hi):
            raise ValueError(
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


# ------------------------------------------------------------------- residual models


class ResidualModel(nn.Module):
    """Simulator output corrected by a network (a discrepancy model).

    * ``combine="add"``: ``y = simulator(x) + correction(x)``;
    * ``combine="multiply"``: ``y = simulator(x) * (1 + correction(x))``, a relative
      correction.

    In both modes a zero correction gives the simulator back, so a network initialised
    near zero starts from the physics.

    Args:
        simulator: any callable ``x -> y`` (an adapter's differentiable forward wrapped to
            take ``x``, or a fixed function). If it is an nn.Module, its parameters (e.g.
            :class:`PhysicalParameter` objects) are registered and trained with the
            network; freeze them with ``requires_grad_(False)`` if they must stay fixed.
        correction: the network, ``x (n, d_in) -> (n, d_out)``.
        combine: ``"add"`` or ``"multiply"``.
    """

    def __init__(
        self,
        simulator: Callable[[Tensor], Tensor],
        correction: nn.Module,
        *,
        combine: Literal["add", "multiply"] = "add",
    ) -> None:
        super().__init__()
        if not callable(simulator):
            raise TypeError(f"ResidualModel: simulator must be callable x -> y, got {simulator!r}.")
        if not isinstance(correction, nn.Module):
            raise TypeError(
                f"ResidualModel: correction must be an nn.Module, got {type(correction).__name__}."
            )
        if combine not in ("add", "multiply"):
            raise ValueError(
                f"ResidualModel: combine must be 'add' or 'multiply', got {combine!r}."
            )
        self.simulator = simulator
        self.correction = correction
        self.combine = combine

    def forward(self, x: Tensor) -> Tensor:
        """Return the corrected simulator output at ``x``."""
        s = self.simulator(x)
        if not isinstance(s, Tensor):
            raise TypeError(
                f"ResidualModel: simulator ({_name_of(self.simulator)}) must return a tensor, "
                f"got {type(s).__name__}."
            )
        c = self.correction(x)
        if s.shape != c.shape:
            if s.ndim == 1 and c.ndim == 2 and c.shape == (s.shape[0], 1):
                s = s[:, None]
            else:
                raise ValueError(
                    f"ResidualModel: simulator ({_name_of(self.simulator)}) returned shape "
                    f"{tuple(s.shape)} but the correction returned {tuple(c.shape)}; they "
                    "must have the same shape."
                )
        s = s.to(c.dtype)
        if self.combine == "add":
            return s + c
        return s * (1.0 + c)

    def extra_repr(self) -> str:
        return f"combine={self.combine!r}"


# -------------------------------------------------------- universal differential eqns


class UDE(nn.Module):
    """Universal differential equation ``dy/dt = known(t, y) + network(y)``.

    Integrated with ``torchdiffeq.odeint`` (gradients by backpropagation through the
    solver steps).

    Args:
        known: the known right-hand side ``(t, y) -> dy/dt``; ``t`` is a 0-d tensor, ``y``
            has the shape of ``y0`` (``(d,)`` or ``(B, d)``). If it is an nn.Module, its
            parameters (e.g. :class:`PhysicalParameter` objects) are registered and learned
            jointly with the network.
        network: the learned term, ``(B, d) -> (B, d)``; unbatched states are passed as
            ``(1, d)``.
        method: torchdiffeq method, adaptive (``"dopri5"``, ``"dopri8"``, ``"bosh3"``,
            ``"fehlberg2"``, ``"adaptive_heun"``) or fixed-step (``"rk4"``, ``"euler"``,
            ``"midpoint"``, ...).
        rtol: relative tolerance of adaptive methods.
        atol: absolute tolerance of adaptive methods.
        step_size: step of fixed-step methods (default: the output times).

    ``forward(t, y0)``: ``t`` of shape ``(T,)`` strictly monotonic, ``y0`` of shape
    ``(d,)`` or ``(B, d)``; returns ``(T, d)`` or ``(T, B, d)``, the first entry ``y0``.
    """

    def __init__(
        self,
        known: Callable[[Tensor, Tensor], Tensor] | nn.Module,
        network: nn.Module,
        *,
        method: str = "dopri5",
        rtol: float = 1e-6,
        atol: float = 1e-8,
        step_size: float | None = None,
    ) -> None:
        super().__init__()
        if not callable(known):
            raise TypeError(f"UDE: known must be callable (t, y) -> dy/dt, got {known!r}.")
        if not isinstance(network, nn.Module):
            raise TypeError(f"UDE: network must be an nn.Module, got {type(network).__name__}.")
        if method not in _ADAPTIVE_METHODS + _FIXED_STEP_METHODS:
            raise ValueError(
                f"UDE: unknown method {method!r}; use one of "
                f"{', '.join(_ADAPTIVE_METHODS + _FIXED_STEP_METHODS)}."
            )
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"UDE: rtol and atol must be positive, got rtol={rtol}, atol={atol}.")
        if step_size is not None:
            if method in _ADAPTIVE_METHODS:
                raise ValueError(
                    f"UDE: step_size applies to fixed-step methods only; method {method!r} "
                    "chooses its steps from rtol/atol. Use e.g. method='rk4' with step_size."
                )
            if not step_size > 0:
                raise ValueError(f"UDE: step_size must be positive, got {step_size}.")
        self.known = known
        self.network = network
        self.method = method
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.step_size = None if step_size is None else float(step_size)

    def rhs(self, t: Tensor, y: Tensor) -> Tensor:
        """The right-hand side ``known(t, y) + network(y)`` (with shape checks)."""
        known = self.known(t, y)
        if not isinstance(known, Tensor) or known.shape != y.shape:
            got: object = tuple(known.shape) if isinstance(known, Tensor) else type(known).__name__
            raise ValueError(
                f"UDE: known ({_name_of(self.known)}) must return dy/dt of the state's shape "
                f"{tuple(y.shape)}, got {got}."
            )
        yb = y if y.ndim == 2 else y.unsqueeze(0)
        learned = self.network(yb)
        if not isinstance(learned, Tensor) or learned.shape != yb.shape:
            got = tuple(learned.shape) if isinstance(learned, Tensor) else type(learned).__name__
            raise ValueError(
                f"UDE: network must map states of shape {tuple(yb.shape)} to the same shape, "
                f"got {got}; its out_features must equal the state dimension {y.shape[-1]}."
            )
        if y.ndim == 1:
            learned = learned.squeeze(0)
        return known + learned

    def forward(self, t: Tensor, y0: Tensor) -> Tensor:
        """Integrate from ``y0`` at ``t[0]`` and return the states at the times ``t``."""
        import torchdiffeq

        if not isinstance(y0, Tensor):
            y0 = torch.as_tensor(y0, dtype=torch.get_default_dtype())
        if y0.ndim not in (1, 2) or y0.shape[-1] == 0:
            raise ValueError(f"UDE: y0 must have shape (d,) or (B, d), got {tuple(y0.shape)}.")
        param = next((p for p in self.parameters() if p.is_floating_point()), None)
        if param is not None and param.dtype != y0.dtype:
            raise TypeError(
                f"UDE: y0 has dtype {y0.dtype} but the model's parameters are {param.dtype}; "
                f"convert one of them, e.g. y0.to({param.dtype})."
            )
        t = torch.as_tensor(t).to(dtype=y0.dtype, device=y0.device)
        if t.ndim != 1 or t.shape[0] < 2:
            raise ValueError(
                f"UDE: t must be 1-d with at least 2 times, got shape {tuple(t.shape)}."
            )
        dt = torch.diff(t)
        if not (bool((dt > 0).all()) or bool((dt < 0).all())):
            raise ValueError("UDE: t must be strictly increasing (or strictly decreasing).")
        options = None if self.step_size is None else {"step_size": self.step_size}
        out: Tensor = torchdiffeq.odeint(
            self.rhs, y0, t, method=self.method, rtol=self.rtol, atol=self.atol, options=options
        )
        return out

    def extra_repr(self) -> str:
        extra = f", step_size={self.step_size}" if self.step_size is not None else ""
        return f"method={self.method!r}, rtol={self.rtol}, atol={self.atol}{extra}"


class LinearForcingUDE(nn.Module):
    """A known *linear* model driven by a learned forcing: ``dy/dt = A y + B f(t)``.

    A universal differential equation whose unknown part is an input: the state follows
    the known linear dynamics ``A`` (``d x d``) with a forcing ``f(t)`` (``m`` components)
    entering through ``B`` (``d x m``), from a known initial state ``y0`` at ``t[0]``; the
    forcing is a network of time. Because the model is linear, its solution is the free
    response plus a convolution of the forcing with the model's impulse response,

        y(t) = e^{A (t - t_0)} y0 + integral_{t_0}^{t} e^{A (t - s)} B f(s) ds,

    so no ODE is integrated while training: on the uniform grid ``t`` the forcing is
    evaluated at the grid points and the observed components of ``y`` on the grid are
    ``free + W @ f(grid)``, one precomputed lower-triangular matrix ``W`` (the discrete
    impulse response, built once from matrix exponentials). Between grid points the forcing
    is taken as linear (a first-order hold), for which the convolution is exact; for a
    smooth forcing the error of ``y`` is ``O(h^2)`` in the grid step ``h`` (at most
    ``(t - t_0) * max|C e^{A s} B| * h^2 / 8 * max|f''|``). Use it where the missing physics
    acts as an input of the known model (a force, a source, a heat flux) and the known
    model is linear in its state; for nonlinear dynamics use :class:`UDE`.

    Args:
        A: the state matrix, shape ``(d, d)``.
        B: the input matrix, shape ``(d, m)`` (or ``(d,)`` for one forcing component).
        y0: the initial state at ``t[0]``, shape ``(d,)``.
        t: the time grid, shape ``(T,)``, uniform and increasing (``T >= 2``); the model
            is defined on ``[t[0], t[-1]]``. ``W`` holds ``(T * k) x (T * m)`` numbers.
        forcing: the learned forcing, a module mapping times ``(n, 1) -> (n, m)``.
        observe: indices of the state components the model outputs (default: all ``d``).

    ``forward(x)``: ``x`` of shape ``(n, 1)`` (times inside ``[t[0], t[-1]]``) returns the
    observed components ``(n, k)``, linearly interpolated between grid points (exact at
    them). :meth:`trajectory` returns them on the grid, ``(T, k)``; :meth:`forcing_on_grid`
    the forcing there. ``A``, ``B`` and ``y0`` are fixed (buffers), not learned.
    """

    W: Tensor
    free: Tensor
    t: Tensor
    A: Tensor
    B: Tensor
    y0: Tensor

    def __init__(
        self,
        A: Any,
        B: Any,
        y0: Any,
        t: Any,
        forcing: nn.Module,
        *,
        observe: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        f64 = torch.float64
        a = torch.as_tensor(A, dtype=f64)
        b = torch.as_tensor(B, dtype=f64)
        y0t = torch.as_tensor(y0, dtype=f64).reshape(-1)
        tt = torch.as_tensor(t, dtype=f64)
        if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
            raise ValueError(f"LinearForcingUDE: A must be square (d, d), got {tuple(a.shape)}.")
        d = a.shape[0]
        if b.ndim == 1:
            b = b[:, None]
        if b.ndim != 2 or b.shape[0] != d or b.shape[1] == 0:
            raise ValueError(
                f"LinearForcingUDE: B must have shape ({d}, m) to match A, got {tuple(b.shape)}."
            )
        if y0t.shape != (d,):
            raise ValueError(
                f"LinearForcingUDE: y0 must have {d} components (A is {d} x {d}), got "
                f"{tuple(y0t.shape)}."
            )
        for name, v in (("A", a), ("B", b), ("y0", y0t), ("t", tt)):
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"LinearForcingUDE: {name} contains NaN or inf values.")
        if tt.ndim != 1 or tt.shape[0] < 2:
            raise ValueError(
                f"LinearForcingUDE: t must be 1-d with at least 2 times, got {tuple(tt.shape)}."
            )
        steps = torch.diff(tt)
        h = float((tt[-1] - tt[0]) / (tt.shape[0] - 1))
        if not h > 0 or float((steps - h).abs().max()) > 1e-6 * h:
            raise ValueError(
                "LinearForcingUDE: t must be a uniform, increasing grid (e.g. "
                "numpy.linspace(t0, t1, T)); the impulse response is precomputed on it."
            )
        if not isinstance(forcing, nn.Module):
            raise TypeError(
                f"LinearForcingUDE: forcing must be an nn.Module, got {type(forcing).__name__}."
            )
        idx = list(range(d)) if observe is None else [int(i) for i in observe]
        if not idx or any(not 0 <= i < d for i in idx):
            raise ValueError(
                f"LinearForcingUDE: observe={observe!r} must list state indices in [0, {d})."
            )
        m, k, n_t = b.shape[1], len(idx), tt.shape[0]
        # first-order hold (Van Loan): exp(h [[A, B, 0], [0, 0, I/h], [0, 0, 0]]) has the
        # blocks Phi = e^{Ah}, P = int_0^h e^{As} ds B and Q = int_0^h e^{As} (h-s)/h ds B;
        # over one step y_{i+1} = Phi y_i + (P - Q) f_i + Q f_{i+1}
        big = torch.zeros(d + 2 * m, d + 2 * m, dtype=f64)
        big[:d, :d] = a * h
        big[:d, d : d + m] = b * h
        big[d : d + m, d + m :] = torch.eye(m, dtype=f64)
        e = torch.linalg.matrix_exp(big)
        phi, p_int, q_int = e[:d, :d], e[:d, d : d + m], e[:d, d + m :]
        # C Phi^j for j = 0 .. T-1 (C selects the observed components)
        powers = torch.empty(n_t, k, d, dtype=f64)
        row = torch.eye(d, dtype=f64)[idx]
        for j in range(n_t):
            powers[j] = row
            row = row @ phi
        free = powers @ y0t  # (T, k)
        k0 = powers @ (p_int - q_int)  # (T, k, m): weight of f_i in y_{i+1+j}
        k1 = powers @ q_int  # weight of f_{i+1} in y_{i+1+j}
        # y_r = free_r + sum_i W[r, i] f_i with W[r, i] = K0[r-1-i] (i < r) + K1[r-i] (1 <= i <= r)
        lag = torch.arange(n_t)[:, None] - torch.arange(n_t)[None, :]
        zero = torch.zeros(1, k, m, dtype=f64)
        k0p = torch.cat([zero, k0])  # k0p[l] = K0[l-1], zero at l = 0
        w = torch.where((lag >= 1)[..., None, None], k0p[lag.clamp(0, n_t - 1)], 0.0)
        first = (lag >= 0) & (torch.arange(n_t)[None, :] >= 1)
        w = w + torch.where(first[..., None, None], k1[lag.clamp(0, n_t - 1)], 0.0)
        dtype = torch.get_default_dtype()
        # (T, k, T, m) flattened so that y_grid.flatten() = free.flatten() + W @ f.flatten()
        self.register_buffer("W", w.permute(0, 2, 1, 3).reshape(n_t * k, n_t * m).to(dtype))
        self.register_buffer("free", free.to(dtype))
        self.register_buffer("t", tt.to(dtype))
        self.register_buffer("A", a.to(dtype))
        self.register_buffer("B", b.to(dtype))
        self.register_buffer("y0", y0t.to(dtype))
        self.forcing = forcing
        self.observe = idx
        self.n_forcing = m

    def forcing_on_grid(self) -> Tensor:
        """The forcing at the grid points, shape ``(T, m)``."""
        f = self.forcing(self.t[:, None])
        shape = (self.t.shape[0], self.n_forcing)
        if not isinstance(f, Tensor) or tuple(f.shape) != shape:
            got = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
            raise ValueError(
                f"LinearForcingUDE: forcing must map times (T, 1) to (T, m) = {shape}, got {got}."
            )
        return f

    def trajectory(self) -> Tensor:
        """The observed components on the grid ``t``, shape ``(T, k)``."""
        f = self.forcing_on_grid()
        y: Tensor = self.free.to(f.dtype) + (self.W.to(f.dtype) @ f.reshape(-1)).reshape(
            self.free.shape
        )
        return y

    def forward(self, x: Tensor) -> Tensor:
        """The observed components at times ``x`` (shape ``(n, 1)``), shape ``(n, k)``."""
        if x.ndim != 2 or x.shape[1] != 1:
            raise ValueError(f"LinearForcingUDE: x must have shape (n, 1), got {tuple(x.shape)}.")
        y = self.trajectory()
        t = self.t.to(y.dtype)
        q = x[:, 0].to(y.dtype)
        h = (t[-1] - t[0]) / (t.shape[0] - 1)
        if bool(((q < t[0] - 1e-6 * h) | (q > t[-1] + 1e-6 * h) | ~torch.isfinite(q)).any()):
            raise ValueError(
                f"LinearForcingUDE: times must lie in the grid's range [{float(t[0])}, "
                f"{float(t[-1])}]."
            )
        s = ((q - t[0]) / h).clamp(0, t.shape[0] - 1)
        i = s.detach().floor().long().clamp(max=t.shape[0] - 2)
        w = (s - i.to(s.dtype))[:, None]
        return y[i] * (1 - w) + y[i + 1] * w

    def extra_repr(self) -> str:
        return (
            f"d={self.A.shape[0]}, forcing_components={self.n_forcing}, observe={self.observe}, "
            f"grid={self.t.shape[0]} points on [{float(self.t[0]):g}, {float(self.t[-1]):g}]"
        )


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
            raise ValueError(
                f"TrajectoryLoss: t must be 1-d with at least 2 times, got {tuple(tt.shape)}."
            )
        if y0t.ndim == 0:
            y0t = y0t.reshape(1)
        if y0t.ndim not in (1, 2):
            raise ValueError(
                f"TrajectoryLoss: y0 must have shape (d,) or (B, d), got {tuple(y0t.shape)}."
            )
        d = y0t.shape[-1]
        idx = list(range(d)) if observe is None else [int(i) for i in observe]
        if not idx or any(not 0 <= i < d for i in idx):
            raise ValueError(
                f"TrajectoryLoss: observe={observe!r} must list state indices in [0, {d})."
            )
        if yo.ndim == y0t.ndim:  # one observed component given without its last axis
            yo = yo.unsqueeze(-1)
        expected = (tt.shape[0], *y0t.shape[:-1], len(idx))
        if tuple(yo.shape) != expected:
            raise ValueError(
                f"TrajectoryLoss: y_obs has shape {tuple(yo.shape)} but {expected} is needed "
                f"({tt.shape[0]} times, y0 shape {tuple(y0t.shape)}, {len(idx)} observed "
                "components)."
            )
        if not bool(torch.isfinite(yo).all()):
            raise ValueError("TrajectoryLoss: y_obs contains NaN or inf values.")
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


# -------------------------------------------------------------------- soft constraints


class BoxSampler:
    """Uniform random points in a box, drawn from an explicit ``torch.Generator``.

    Args:
        lower: lower corner, a number (1-d box) or one per dimension.
        upper: upper corner, a number or one per dimension.
        names: optional names of the dimensions (e.g. ``("t [s]", "x [m]")``).
    """

    def __init__(
        self,
        lower: float | Sequence[float],
        upper: float | Sequence[float],
        names: Sequence[str] | None = None,
    ) -> None:
        lo = torch.as_tensor(lower, dtype=torch.float64).reshape(-1)
        hi = torch.as_tensor(upper, dtype=torch.float64).reshape(-1)
        if lo.numel() == 0 or lo.shape != hi.shape:
            raise ValueError(
                f"BoxSampler: lower has {lo.numel()} entries and upper {hi.numel()}; give "
                "one number per dimension in each."
            )
        if not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all())):
            raise ValueError("BoxSampler: lower and upper must be finite.")
        _check_bounds(lo, hi, "BoxSampler")
        if names is not None:
            names = tuple(str(n) for n in names)
            if len(names) != lo.numel():
                raise ValueError(f"BoxSampler: {len(names)} names given for a {lo.numel()}-d box.")
        self._lower = lo
        self._upper = hi
        self._names = names

    @property
    def dim(self) -> int:
        """Number of dimensions of the box."""
        return int(self._lower.numel())

    @property
    def lower(self) -> tuple[float, ...]:
        """Lower corner."""
        return tuple(self._lower.tolist())

    @property
    def upper(self) -> tuple[float, ...]:
        """Upper corner."""
        return tuple(self._upper.tolist())

    @property
    def names(self) -> tuple[str, ...] | None:
        """Names of the dimensions, or None."""
        return self._names

    def sample(
        self, n: int, generator: torch.Generator, *, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Draw ``n`` points uniformly in the box.

        Args:
            n: number of points.
            generator: the random generator (the only source of randomness, so the same
                seed gives the same points).
            dtype: dtype of the result (default: torch's default dtype). Points are drawn
                in float64 and then converted, so they agree across dtypes up to rounding.

        Returns:
            Tensor of shape ``(n, dim)`` on the generator's device.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"BoxSampler.sample: n must be a positive integer, got {n!r}.")
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                "BoxSampler.sample: generator must be a torch.Generator (e.g. "
                f"torch.Generator().manual_seed(0)), got {type(generator).__name__}."
            )
        device = generator.device
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64, device=device)
        lo, hi = self._lower.to(device), self._upper.to(device)
        pts = lo + (hi - lo) * u
        return pts.to(torch.get_default_dtype() if dtype is None else dtype)

    def __repr__(self) -> str:
        names = f", names={self._names!r}" if self._names else ""
        return f"BoxSampler(lower={self.lower}, upper={self.upper}{names})"


class ResidualLoss(LossTerm):
    """Mean squared physics residual at collocation points (a soft constraint).

    ``residual(model, x)`` receives the points ``x`` (shape ``(n, d)``) with
    ``requires_grad=True``, so it can take derivatives of ``model(x)`` with
    :func:`partial`, and returns the residual at each point, shape ``(n,)`` or ``(n, k)``.
    The loss is the mean of its squares.

    Args:
        residual: ``(model, x) -> residual``.
        points: fixed collocation points, shape ``(n, d)`` (1-d: one input dimension).
        sampler: a :class:`BoxSampler` for drawing points; with it, the trainer's
            ``resample(generator)`` draws ``n_points`` fresh points.
        n_points: number of points to draw (default: the number of ``points``); needed
            when only a sampler is given.
        generator: generator for the initial draw when only a sampler is given
            (default: ``torch.Generator().manual_seed(0)``, so construction is
            deterministic).
    """

    points: Tensor

    def __init__(
        self,
        residual: Callable[[nn.Module, Tensor], Tensor],
        points: Any | None = None,
        *,
        sampler: BoxSampler | None = None,
        n_points: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not callable(residual):
            raise TypeError(
                f"ResidualLoss: residual must be callable (model, x) -> residual, got {residual!r}."
            )
        if sampler is not None and not isinstance(sampler, BoxSampler):
            raise TypeError(
                f"ResidualLoss: sampler must be a BoxSampler, got {type(sampler).__name__}."
            )
        if points is None and sampler is None:
            raise ValueError(
                "ResidualLoss: give collocation points, a sampler (with n_points), or both."
            )
        if n_points is not None and (
            isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1
        ):
            raise ValueError(
                f"ResidualLoss: n_points must be a positive integer, got {n_points!r}."
            )
        if points is not None:
            pts = torch.as_tensor(points, dtype=torch.get_default_dtype())
            if pts.ndim == 1:
                pts = pts[:, None]
            if pts.ndim != 2 or pts.shape[0] == 0:
                raise ValueError(
                    f"ResidualLoss: points must have shape (n, d) with n >= 1, got "
                    f"{tuple(pts.shape)}."
                )
            if not bool(torch.isfinite(pts).all()):
                raise ValueError("ResidualLoss: points contain NaN or inf values.")
            if sampler is not None and sampler.dim != pts.shape[1]:
                raise ValueError(
                    f"ResidualLoss: points have {pts.shape[1]} columns but the sampler's box "
                    f"is {sampler.dim}-d."
                )
            n = pts.shape[0] if n_points is None else n_points
        else:
            assert sampler is not None
            if n_points is None:
                raise ValueError(
                    "ResidualLoss: with a sampler and no points, give n_points (how many "
                    "collocation points to draw)."
                )
            n = n_points
            gen = generator if generator is not None else torch.Generator().manual_seed(0)
            pts = sampler.sample(n, gen)
        self.residual = residual
        self.sampler = sampler
        self.n_points = int(n)
        self.register_buffer("points", pts)

    def forward(self, model: nn.Module) -> Tensor:
        """Return the mean squared residual at the current collocation points."""
        x = self.points.detach().clone().requires_grad_(True)
        r = self.residual(model, x)
        if not isinstance(r, Tensor):
            raise TypeError(
                f"ResidualLoss: residual function {_name_of(self.residual)} must return a "
                f"tensor, got {type(r).__name__}."
            )
        n = x.shape[0]
        if r.ndim == 0 or r.ndim > 2 or r.shape[0] != n:
            raise ValueError(
                f"ResidualLoss: residual function {_name_of(self.residual)} returned shape "
                f"{tuple(r.shape)} for {n} points of shape {tuple(x.shape)}; return one row "
                f"per point, shape ({n},) or ({n}, k) (do not reduce over the points)."
            )
        return (r**2).mean()

    def resample(self, generator: torch.Generator) -> None:
        """Draw ``n_points`` fresh points from the sampler (no-op without a sampler)."""
        if self.sampler is None:
            return
        pts = self.sampler.sample(self.n_points, generator, dtype=self.points.dtype)
        self.points = pts.to(self.points.device)

    def extra_repr(self) -> str:
        return (
            f"residual={_name_of(self.residual)}, n_points={self.n_points}, "
            f"sampler={self.sampler!r}"
        )


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
        raise ValueError(
            f"partial: x must be a tensor of shape (n, d), got "
            f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}."
        )
    if not x.requires_grad:
        raise ValueError(
            "partial: x does not require grad; call x.requires_grad_(True) before computing "
            "y from it (ResidualLoss does this for the points it passes)."
        )
    if not isinstance(y, Tensor) or y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(
            f"partial: y must have shape ({x.shape[0]},) or ({x.shape[0]}, k) to match x, got "
            f"{got}."
        )
    if y.ndim == 1:
        y = y[:, None]
    if not -x.shape[1] <= wrt < x.shape[1]:
        raise IndexError(f"partial: wrt={wrt} is out of range for x with {x.shape[1]} columns.")
    if not -y.shape[1] <= out < y.shape[1]:
        raise IndexError(f"partial: out={out} is out of range for y with {y.shape[1]} columns.")
    if not y.requires_grad:  # y does not depend on x (e.g. derivative of a linear function)
        return torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
    (g,) = torch.autograd.grad(
        y[:, out].sum(), x, create_graph=True, allow_unused=True, materialize_grads=True
    )
    return g[:, wrt : wrt + 1]
