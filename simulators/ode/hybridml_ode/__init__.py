"""hybridml-ode: a user-defined ODE system ``dy/dt = rhs(t, y, p)`` as a hybridml adapter.

This is the template adapter: copy this folder to add your own simulator (see
``docs/adding-an-adapter.md``). It declares all four capabilities of the contract:

* data: ``simulate(params)`` solves the ODE with scipy and returns a ``Dataset``;
* constraints: ``loss_terms()`` gives the ODE residual of a model ``t -> y`` and its
  initial condition as loss terms;
* checks: ``checks()`` gives ``Bounds`` on the states and a residual check of a model;
* forward: ``forward(params)`` integrates the ODE with torchdiffeq, differentiably.

Writing ``rhs(t, y, p)``: it is called with numpy values (by scipy) and with torch tensors
(in loss terms and ``forward``), so use operations both support (``+ - * / **``) and
index the state on its last axis, ``y[..., i]``; ``p`` is a dict name -> value. Return one
derivative per state, as a list. For ``exp``/``sin``: ``xp = torch if isinstance(y,
torch.Tensor) else np``. Define it at module level (not a lambda or closure) so that the
adapter pickles for process pools.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from hybridml import (
    Bounds,
    BoxSampler,
    CausalWeighting,
    Check,
    DataLoss,
    Dataset,
    LossTerm,
    PhysicalParameter,
    Resampling,
    ResidualBelow,
    ResidualLoss,
)
from hybridml.adapters import (
    ProvidesChecks,
    ProvidesConstraints,
    ProvidesData,
    ProvidesForward,
    SimulationError,
)
from hybridml.exceptions import InvalidArgumentError, InvalidTypeError, did_you_mean

__all__ = ["ODEAdapter", "damped_oscillator", "exponential_decay"]


class ODEAdapter(ProvidesData, ProvidesConstraints, ProvidesChecks, ProvidesForward):
    """A user-defined ODE system as a simulator adapter.

    Args:
        rhs: right-hand side ``rhs(t, y, p) -> [dy_1/dt, ...]`` (see the module docstring).
        y0: initial state, one value per state.
        t_span: ``(t0, t1)``, the time interval.
        state_names: state names with units, e.g. ``("x [m]", "v [m/s]")``.
        params: default parameters, name -> number or :class:`~hybridml.PhysicalParameter`
            (learnable in loss terms: put the same object in your model so it is trained).
        time_name: name of the time column.
        t_eval: output times (default: 101 points spanning ``t_span``).
        method: ``scipy.integrate.solve_ivp`` method ("LSODA" handles stiff systems).
        rtol: relative tolerance of the solvers.
        atol: absolute tolerance of the solvers.
        bounds: admissible range per state name, ``{"x [m]": (-2.0, 2.0)}``, for checks.
        residual_threshold: if given, ``checks()`` also checks a model's ODE residual
            ``|dy/dt - rhs|`` at fresh times against it (state units per time unit).
    """

    name = "ode"  # the entry-point name in pyproject.toml
    description = "a user-defined ODE system dy/dt = rhs(t, y, p) (template adapter)"

    def __init__(
        self,
        rhs: Callable[[Any, Any, Mapping[str, Any]], Sequence[Any]],
        y0: Sequence[float],
        t_span: tuple[float, float],
        *,
        state_names: Sequence[str],
        params: Mapping[str, float | PhysicalParameter],
        time_name: str = "t [s]",
        t_eval: Sequence[float] | np.ndarray | None = None,
        method: str = "LSODA",
        rtol: float = 1e-8,
        atol: float = 1e-10,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        residual_threshold: float | None = None,
    ) -> None:
        # __init__ only stores and validates settings (the scikit-learn convention).
        self.rhs, self.y0, self.t_span = rhs, [float(v) for v in y0], (*map(float, t_span),)
        self.state_names, self.time_name = tuple(state_names), time_name
        self.params = dict(params)
        self.parameter_names = tuple(self.params)  # what forward() differentiates
        self.t_eval = (
            np.linspace(*cast("tuple[float, float]", self.t_span), 101)
            if t_eval is None
            else np.array(t_eval, float)
        )
        self.method, self.rtol, self.atol = method, rtol, atol
        self.bounds = dict(bounds or {})
        self.residual_threshold = residual_threshold
        if len(self.y0) != len(self.state_names):
            raise InvalidArgumentError(
                f"y0 has {len(self.y0)} values but there are {len(state_names)} "
                f"state_names {self.state_names}; give one initial value per state."
            )
        for col in (*self.state_names, time_name):  # units in names, like "x [m]"
            if not re.search(r"\[.*\]\s*$", col):
                raise InvalidArgumentError(
                    f"name {col!r} has no unit; write it like 'x [m]' or 'x [-]'."
                )
        for col in self.bounds:
            if col not in self.state_names:
                raise InvalidArgumentError(
                    f"bounds for {col!r}, which is not in {self.state_names}."
                )

    def __repr__(self) -> str:
        return (
            f"ODEAdapter({self.rhs.__module__}.{self.rhs.__qualname__}, y0={self.y0}, "
            f"t_span={self.t_span}, params={self.params}, method={self.method!r})"
        )

    def cache_key(self) -> str:
        # Everything that changes results, including the rhs's code and the output times.
        code = getattr(self.rhs, "__code__", None)
        parts = (
            repr(self),
            self.state_names,
            self.rtol,
            self.atol,
            self.t_eval.tobytes(),
            code.co_code if code else b"",
            tuple(c for c in code.co_consts if not hasattr(c, "co_code")) if code else (),
        )
        return f"{self!r}#{hashlib.sha256(repr(parts).encode()).hexdigest()[:16]}"

    def _merged(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        unknown = sorted(set(params or {}) - set(self.params))
        if unknown:
            raise InvalidArgumentError(
                f"unknown parameter {unknown[0]!r}.{did_you_mean(unknown[0], self.params)} "
                f"The parameters are {sorted(self.params)}."
            )
        return {**self.params, **(params or {})}

    # ---- data: solve with scipy; failures become SimulationError --------------------
    def simulate(self, params: Mapping[str, float] | None = None) -> Dataset:
        from scipy.integrate import solve_ivp

        p = {k: float(v) for k, v in self._merged(params).items()}
        try:  # overflow etc. raise instead of warning, so they fail this run only
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                sol = solve_ivp(
                    lambda t, y: np.asarray(self.rhs(t, y, p), dtype=float),
                    self.t_span,
                    self.y0,
                    method=self.method,
                    t_eval=self.t_eval,
                    rtol=self.rtol,
                    atol=self.atol,
                )
            ok, why = sol.success and np.isfinite(sol.y).all(), sol.message
        except ArithmeticError as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            raise SimulationError(
                f"{self.rhs.__name__} with {self.method} failed for params "
                f"{p}: {why}. Check the parameters, or try method='Radau' "
                f"(stiff systems) or looser rtol/atol."
            )
        columns = {self.time_name: sol.t, **dict(zip(self.state_names, sol.y, strict=True))}
        return Dataset(
            columns,
            coordinate=self.time_name,
            measured=np.zeros(len(sol.t), bool),
            source=f"<ode: {self.rhs.__name__}>",
        )

    # ---- constraints: residual dy/dt - rhs(t, y, p) of a model t (n,1) -> y (n,d) ---------
    def _torch_params(self) -> dict[str, Any]:
        return {
            k: v.value if isinstance(v, PhysicalParameter) else v for k, v in self.params.items()
        }

    def _residual(self, model: nn.Module, t: Tensor) -> Tensor:
        y = model(t)
        dydt = torch.cat(
            [
                torch.autograd.grad(y[:, i].sum(), t, create_graph=True)[0]
                for i in range(y.shape[1])
            ],
            dim=1,
        )
        return dydt - _stack(self.rhs(t[:, 0], y, self._torch_params()), y)

    def loss_terms(
        self,
        points: Any = None,
        n_points: int = 256,
        *,
        resampling: Resampling | None = None,
        causal: CausalWeighting | None = None,
        **options: Any,
    ) -> dict[str, LossTerm]:
        """``"ode_residual"`` at ``points`` (or ``n_points`` drawn in ``t_span``, resampled
        by the trainer) and ``"initial_condition"``, for a model mapping t (n, 1) -> y (n, d).

        ``resampling`` (e.g. :class:`hybridml.RAD`; only with drawn points) chooses the
        points the trainer redraws, from the residual of the model being trained;
        ``causal`` (a :class:`hybridml.CausalWeighting` on column 0, time) weights the
        residual's time chunks causally, for long time spans. Both are options of
        :class:`hybridml.ResidualLoss`.
        """
        if options:  # the contract's ``**options``
            raise InvalidTypeError(
                "ODEAdapter.loss_terms takes only the options points, n_points, resampling "
                f"and causal, got unknown {sorted(options)}."
            )
        if points is None:  # random points, redrawn when the trainer resamples
            sampler = BoxSampler(self.t_span[0], self.t_span[1], names=[self.time_name])
            residual = ResidualLoss(
                self._residual,
                sampler=sampler,
                n_points=n_points,
                resampling=resampling,
                causal=causal,
            )
        else:  # the caller's points, kept fixed
            residual = ResidualLoss(self._residual, points, resampling=resampling, causal=causal)
        return {
            "ode_residual": residual,
            "initial_condition": DataLoss([[self.t_span[0]]], [self.y0]),
        }

    # ---- checks -----------------------------------------------------------------------
    def checks(self, *, residual_threshold: float | None = None) -> list[Check]:
        """``Bounds`` per entry of ``bounds``; with ``residual_threshold`` (in state units
        per time unit; default: the one given to the adapter), also ``"ode_residual"``:
        ``|dy/dt - rhs|`` of a model at 1000 fresh times must stay below it (it needs the
        model: ``run_checks(..., model=model)``; ``predict`` passes it)."""
        checks: list[Check] = [Bounds(col, lo, hi) for col, (lo, hi) in self.bounds.items()]
        if residual_threshold is None:
            residual_threshold = self.residual_threshold
        if residual_threshold is not None:
            sampler = BoxSampler(self.t_span[0], self.t_span[1], names=[self.time_name])
            checks.append(
                ResidualBelow(self._residual, sampler, residual_threshold, name="ode_residual")
            )
        return checks

    # ---- forward: the same ODE integrated by torchdiffeq, differentiable in params ------
    def forward(self, params: Tensor) -> Tensor:
        """Solution at ``t_eval``, shape ``(len(t_eval), n_states)``; ``params`` follow
        ``parameter_names``. Solved in float64, returned in ``params``'s dtype."""
        from torchdiffeq import odeint

        q = dict(zip(self.parameter_names, params.to(torch.float64).unbind(), strict=True))
        y0 = torch.tensor(self.y0, dtype=torch.float64)
        t = torch.as_tensor(self.t_eval, dtype=torch.float64)
        y = odeint(
            lambda t, y: _stack(self.rhs(t, y, q), y),
            y0,
            t,
            rtol=self.rtol,
            atol=self.atol,
            method="dopri5",
        )
        return y.to(params.dtype)


def _stack(derivs: Sequence[Any], like: Tensor) -> Tensor:
    """Stack rhs's derivatives (tensors or numbers) along the last axis, shaped like ``like``."""
    cols = [torch.as_tensor(d, dtype=like.dtype).expand(like.shape[:-1]) for d in derivs]
    return torch.stack(cols, dim=-1)


# ---- example systems (module level, so adapters using them pickle) ----------------------
def exponential_decay(t: Any, y: Any, p: Mapping[str, Any]) -> list[Any]:
    """``dy/dt = -k y``; solution ``y0 exp(-k t)``."""
    return [-p["k"] * y[..., 0]]


def damped_oscillator(t: Any, y: Any, p: Mapping[str, Any]) -> list[Any]:
    """Position ``x`` and velocity ``v``: ``dx/dt = v``, ``dv/dt = -k x - c v``."""
    x, v = y[..., 0], y[..., 1]
    return [v, -p["k"] * x - p["c"] * v]
