"""Hybrid models: a simulator plus a network.

* :class:`ResidualModel` — simulator output plus (or times) a network correction.
* :class:`UDE` — a universal differential equation ``dy/dt = known(t, y) + network(y)``
  integrated with ``torchdiffeq.odeint``; :class:`~hybridml.TrajectoryLoss` fits it to a
  trajectory.
* :class:`LinearForcingUDE` — a known linear model with a learned forcing,
  ``dy/dt = A y + B f(t)``, solved by a precomputed impulse-response matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ._util import _name_of

__all__ = ["UDE", "LinearForcingUDE", "ResidualModel"]


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
            raise InvalidTypeError(
                f"ResidualModel: simulator must be callable x -> y, got {simulator!r}."
            )
        if not isinstance(correction, nn.Module):
            raise InvalidTypeError(
                f"ResidualModel: correction must be an nn.Module, got {type(correction).__name__}."
            )
        if combine not in ("add", "multiply"):
            raise InvalidArgumentError(
                f"ResidualModel: combine must be 'add' or 'multiply', got {combine!r}."
            )
        self.simulator = simulator
        self.correction = correction
        self.combine = combine

    def forward(self, x: Tensor) -> Tensor:
        """Return the corrected simulator output at ``x``."""
        s = self.simulator(x)
        if not isinstance(s, Tensor):
            raise InvalidTypeError(
                f"ResidualModel: simulator ({_name_of(self.simulator)}) must return a tensor, "
                f"got {type(s).__name__}."
            )
        c = self.correction(x)
        if s.shape != c.shape:
            if s.ndim == 1 and c.ndim == 2 and c.shape == (s.shape[0], 1):
                s = s[:, None]
            else:
                raise InvalidArgumentError(
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
            raise InvalidTypeError(f"UDE: known must be callable (t, y) -> dy/dt, got {known!r}.")
        if not isinstance(network, nn.Module):
            raise InvalidTypeError(
                f"UDE: network must be an nn.Module, got {type(network).__name__}."
            )
        if method not in _ADAPTIVE_METHODS + _FIXED_STEP_METHODS:
            raise InvalidArgumentError(
                f"UDE: unknown method {method!r}; use one of "
                f"{', '.join(_ADAPTIVE_METHODS + _FIXED_STEP_METHODS)}."
            )
        if not (rtol > 0 and atol > 0):
            raise InvalidArgumentError(
                f"UDE: rtol and atol must be positive, got rtol={rtol}, atol={atol}."
            )
        if step_size is not None:
            if method in _ADAPTIVE_METHODS:
                raise InvalidArgumentError(
                    f"UDE: step_size applies to fixed-step methods only; method {method!r} "
                    "chooses its steps from rtol/atol. Use e.g. method='rk4' with step_size."
                )
            if not step_size > 0:
                raise InvalidArgumentError(f"UDE: step_size must be positive, got {step_size}.")
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
            raise InvalidArgumentError(
                f"UDE: known ({_name_of(self.known)}) must return dy/dt of the state's shape "
                f"{tuple(y.shape)}, got {got}."
            )
        yb = y if y.ndim == 2 else y.unsqueeze(0)
        learned = self.network(yb)
        if not isinstance(learned, Tensor) or learned.shape != yb.shape:
            got = tuple(learned.shape) if isinstance(learned, Tensor) else type(learned).__name__
            raise InvalidArgumentError(
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
            raise InvalidArgumentError(
                f"UDE: y0 must have shape (d,) or (B, d), got {tuple(y0.shape)}."
            )
        param = next((p for p in self.parameters() if p.is_floating_point()), None)
        if param is not None and param.dtype != y0.dtype:
            raise InvalidTypeError(
                f"UDE: y0 has dtype {y0.dtype} but the model's parameters are {param.dtype}; "
                f"convert one of them, e.g. y0.to({param.dtype})."
            )
        t = torch.as_tensor(t).to(dtype=y0.dtype, device=y0.device)
        if t.ndim != 1 or t.shape[0] < 2:
            raise InvalidArgumentError(
                f"UDE: t must be 1-d with at least 2 times, got shape {tuple(t.shape)}."
            )
        dt = torch.diff(t)
        if not (bool((dt > 0).all()) or bool((dt < 0).all())):
            raise InvalidArgumentError(
                "UDE: t must be strictly increasing (or strictly decreasing)."
            )
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
            raise InvalidArgumentError(
                f"LinearForcingUDE: A must be square (d, d), got {tuple(a.shape)}."
            )
        d = a.shape[0]
        if b.ndim == 1:
            b = b[:, None]
        if b.ndim != 2 or b.shape[0] != d or b.shape[1] == 0:
            raise InvalidArgumentError(
                f"LinearForcingUDE: B must have shape ({d}, m) to match A, got {tuple(b.shape)}."
            )
        if y0t.shape != (d,):
            raise InvalidArgumentError(
                f"LinearForcingUDE: y0 must have {d} components (A is {d} x {d}), got "
                f"{tuple(y0t.shape)}."
            )
        for name, v in (("A", a), ("B", b), ("y0", y0t), ("t", tt)):
            if not bool(torch.isfinite(v).all()):
                raise InvalidArgumentError(f"LinearForcingUDE: {name} contains NaN or inf values.")
        if tt.ndim != 1 or tt.shape[0] < 2:
            raise InvalidArgumentError(
                f"LinearForcingUDE: t must be 1-d with at least 2 times, got {tuple(tt.shape)}."
            )
        steps = torch.diff(tt)
        h = float((tt[-1] - tt[0]) / (tt.shape[0] - 1))
        if not h > 0 or float((steps - h).abs().max()) > 1e-6 * h:
            raise InvalidArgumentError(
                "LinearForcingUDE: t must be a uniform, increasing grid (e.g. "
                "numpy.linspace(t0, t1, T)); the impulse response is precomputed on it."
            )
        if not isinstance(forcing, nn.Module):
            raise InvalidTypeError(
                f"LinearForcingUDE: forcing must be an nn.Module, got {type(forcing).__name__}."
            )
        idx = list(range(d)) if observe is None else [int(i) for i in observe]
        if not idx or any(not 0 <= i < d for i in idx):
            raise InvalidArgumentError(
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
            raise InvalidArgumentError(
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
            raise InvalidArgumentError(
                f"LinearForcingUDE: x must have shape (n, 1), got {tuple(x.shape)}."
            )
        y = self.trajectory()
        t = self.t.to(y.dtype)
        q = x[:, 0].to(y.dtype)
        h = (t[-1] - t[0]) / (t.shape[0] - 1)
        if bool(((q < t[0] - 1e-6 * h) | (q > t[-1] + 1e-6 * h) | ~torch.isfinite(q)).any()):
            raise InvalidArgumentError(
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
