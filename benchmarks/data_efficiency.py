"""Data-efficiency study: prediction error vs number of measurements.

For each case a "truth" is seen through a deliberately mis-specified simulator. The models
are compared at 5, 10, 20, 50, 100 and 200 noisy measurements (drawn at random times):

* **network**: a :class:`hybridml.HybridRegressor` from the measurements alone;
* **physics**: the simulator alone (it does not learn, so its error is flat);
* **physics-calibrated** (cases with a calibration): the simulator with one physical
  parameter fitted to the same measurements by least squares (see ``LatticeCalibration``);
* **hybrid**: the physics with a learned part, of the kind chosen a priori for the case:

  - where the known model is linear and the missing physics acts as an input of it (the
    ``ode`` case: the drifting rest position is a force ``k z(t)`` on the oscillator), a
    universal differential equation with a learned forcing, ``dv/dt = -k x - c v +
    f(t)``, ``f`` a network of time (:class:`hybridml.LinearForcingUDE`: the simulator's
    response to the forcing is a precomputed impulse-response matrix, see
    ``ForcingRegressor``);
  - otherwise (the PyBaMM cases) an output correction: the (calibrated) simulator plus a
    ``HybridRegressor`` fitted to the residuals ``y - simulator(x)`` (so its output is
    scaled to the residuals' spread);

* **hybrid-output** (cases whose hybrid is a forcing): the output correction as well, for
  comparison.

All networks have the same architecture, learning rate and largest budget (a case may
set a larger one for all: the ODE case trains up to Adam 4000 + L-BFGS 1000 steps, the
PyBaMM cases up to 1500 + 300); how long each trains is chosen by cross-validation on the
measurements (``fit_selected``), by the same rule for all. The noise-free truth is used
only to score the predictions.

Cases:

* ``ode`` — the ODE template adapter (``hybridml_ode``): the truth is an oscillator whose
  rest position drifts (a third state relaxing to a new equilibrium); the simulator is the
  plain damped oscillator (``hybridml_ode.damped_oscillator``), which misses the drift.
* ``pybamm`` — the PyBaMM adapter (``hybridml_pybamm``): the voltage of a 6-minute 2C
  charge and a 30-minute rest at -5 °C (SPM, OKane2022 parameters); the truth has
  partially reversible lithium plating (its rate constant raised to 1e-7 m/s so that
  plating shows in the voltage), the simulator has no plating. The hybrid's simulator has
  the cell temperature as a fitted parameter.
* ``pybamm-cutoff`` (not run by default) — the same with the charge running "until 4.2 V":
  the plating truth reaches the cut-off later, and the simulator's fitted quantities are
  the temperature and the time the charge ends.

Each model also gets the initial state (set by the experiment, so known exactly) as one
extra point. The error is the RMSE against the noise-free truth on a dense grid, averaged
over seeds.
``measurements_ratio`` = (fewest measurements from which on the hybrid's error stays at or
below the network's error at 200) / 200, read off the grid of measurement numbers (so it is
an upper bound; the goal is <= 0.1); ``null`` when the hybrid never reaches it.
``first_crossing_ratio`` is the same for the first grid point at or below the target;
``measurements_ratio_by_hybrid`` gives the ratio of each hybrid (``hybrid-output`` too).
The ODE case misses the goal (ratio 0.25: the forcing hybrid is above the target at 20
measurements); what was tried there (other cross-validation rules, bagging, a zero-started
forcing, roughness and weight penalties) and why none of it is used is in
docs/small-data.md ("The ODE case at 20 measurements").

Usage::

    python benchmarks/data_efficiency.py [--cases ode pybamm pybamm-cutoff] [--seeds 2]
        [--json PATH] [--plot PATH] [--quick] [--jobs N]

The script sets torch to one thread (small networks are much faster so on few cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import hybridml as hm

N_MEASUREMENTS = (5, 10, 20, 50, 100, 200)
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- simulators


class Interpolated(nn.Module):
    """A simulator run as a torch function of time: linear interpolation of a dense table.

    Picklable and differentiable in the input, so it can sit inside a ResidualModel.
    """

    t: Tensor
    y: Tensor

    def __init__(self, t: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("t", torch.as_tensor(t, dtype=torch.get_default_dtype()))
        self.register_buffer("y", torch.as_tensor(y, dtype=torch.get_default_dtype()))

    def forward(self, x: Tensor) -> Tensor:
        t = self.t.to(x.dtype)
        y = self.y.to(x.dtype)
        q = x[:, 0].clamp(t[0], t[-1])
        i = torch.searchsorted(t, q.detach()).clamp(1, t.numel() - 1)
        t0, t1, y0, y1 = t[i - 1], t[i], y[i - 1], y[i]
        w = (q - t0) / (t1 - t0)
        return (y0 + w * (y1 - y0))[:, None]


@dataclass
class Case:
    """A truth and a mis-specified simulator on a common time grid."""

    name: str
    description: str
    output: str
    t: np.ndarray  # dense grid (test points)
    truth: np.ndarray  # noise-free truth on the grid
    simulated: np.ndarray  # the simulator on the grid
    noise: float  # measurement noise (standard deviation)
    calibration: LatticeCalibration | None = None  # a simulator parameter fitted to data
    # training settings of this case's networks (all models alike); None: ``SETTINGS``
    settings: dict[str, Any] | None = None
    # the simulator as a linear model with an input: the hybrid is then a learned forcing
    # of it (``ForcingRegressor``); None: the hybrid is an output correction
    linear: LinearModel | None = None


@dataclass
class LinearModel:
    """The simulator as a linear model ``dy/dt = A y + B f(t)``, ``y(t_0) = y0``, whose
    output is the state component ``observe``; ``f`` is the input a hybrid learns."""

    A: np.ndarray
    B: np.ndarray
    y0: np.ndarray
    observe: int = 0


class LatticeCalibration:
    """The simulator's physical parameter and its step-switch time, fitted to measurements.

    The simulator runs an experiment whose first step ends on an event (a charge "until
    4.2 V"); it returns its time points, output and the time that step ended. Two things
    are fitted to the measurements by least squares:

    * a physical parameter (e.g. the cell temperature), by running the simulator on a
      lattice of values ``lo + k * step``: a coarse scan every ``coarse`` lattice steps,
      then a pattern search around the best value with halving strides down to one
      lattice step (derivative-free: PyBaMM's sensitivities do not differentiate the time
      of an event). Runs are cached, so repeated calibrations mostly reuse them;
    * the time ``tau`` the first step ends (an input warp): the simulated first step is
      stretched uniformly from ``[0, t_switch]`` onto ``[0, tau]`` and what follows is
      shifted by ``tau - t_switch``. This corrects *when* the event happens, which a
      missing mechanism can move (without plating the charge reaches 4.2 V too soon),
      and keeps the shape of each step from the simulator. ``tau / t_switch`` is searched
      in ``warps`` (ties go to the smallest warp).

    Args:
        name: the parameter's name (for the report).
        simulate: value -> ``(t, y, t_switch)`` of the simulator, or None when it cannot
            run there (counted as an infinitely bad fit).
        t: the case's time grid (the calibrated simulator is returned on it).
        lo, hi: the range of the parameter searched.
        step: the lattice spacing (the calibration's resolution).
        coarse: lattice steps between points of the coarse scan (a power of two).
        warps: candidate ratios ``tau / t_switch``.
    """

    def __init__(
        self,
        name: str,
        simulate: Callable[[float], tuple[np.ndarray, np.ndarray, float] | None],
        t: np.ndarray,
        lo: float,
        hi: float,
        step: float,
        coarse: int,
        warps: np.ndarray | None = None,
    ) -> None:
        self.name, self.simulate, self.t = name, simulate, t
        self.lo, self.step, self.coarse = lo, step, coarse
        self.n = round((hi - lo) / step)
        self.warps = np.asarray(
            sorted(warps if warps is not None else [1.0], key=lambda w: abs(w - 1.0))
        )
        self.runs: dict[int, tuple[np.ndarray, np.ndarray, float] | None] = {}

    def value(self, k: int) -> float:
        return self.lo + k * self.step

    def run(self, k: int) -> tuple[np.ndarray, np.ndarray, float] | None:
        if k not in self.runs:
            self.runs[k] = self.simulate(self.value(k))
        return self.runs[k]

    @staticmethod
    def warped(run: tuple[np.ndarray, np.ndarray, float], x: np.ndarray, tau: Any) -> np.ndarray:
        """The simulator's output at times ``x`` with its first step ending at ``tau``."""
        t, y, ts = run
        tau = np.asarray(tau, dtype=float)[..., None]
        q = np.where(x <= tau, x * (ts / tau), x - tau + ts)
        return np.interp(q, t, y)

    def _best_warp(self, k: int, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        run = self.run(k)
        if run is None:
            return math.inf, 1.0
        sse = np.sum((self.warped(run, x, self.warps * run[2]) - y) ** 2, axis=-1)
        i = int(np.argmin(sse))
        return float(sse[i]), float(self.warps[i] * run[2])

    def fit(self, x: np.ndarray, y: np.ndarray) -> tuple[tuple[float, float], np.ndarray]:
        """The least-squares ``(value, tau)`` for measurements ``(x, y)``, and the
        calibrated simulator on the time grid."""

        def sse(k: int) -> float:
            return self._best_warp(k, x, y)[0] if 0 <= k <= self.n else math.inf

        best = min(range(0, self.n + 1, self.coarse), key=sse)
        stride = self.coarse // 2
        while stride >= 1:
            best = min((best - stride, best, best + stride), key=sse)
            stride //= 2
        run = self.run(best)
        assert run is not None
        tau = self._best_warp(best, x, y)[1]
        return (self.value(best), tau), self.warped(run, self.t, tau)


def drifting_oscillator(t: Any, y: Any, p: Any) -> list[Any]:
    """The truth of the ODE case: dx/dt = v, dv/dt = -k (x - z) - c v, dz/dt = (z_inf - z)/tau."""
    x, v, z = y[..., 0], y[..., 1], y[..., 2]
    return [v, -p["k"] * (x - z) - p["c"] * v, (p["z_inf"] - z) / p["tau"]]


def ode_case() -> Case:
    from hybridml_ode import ODEAdapter, damped_oscillator

    t = np.linspace(0.0, 20.0, 801)
    truth = ODEAdapter(
        drifting_oscillator,
        [1.0, 0.0, 0.0],
        (0.0, 20.0),
        state_names=("x [m]", "v [m/s]", "z [m]"),
        params={"k": 4.0, "c": 0.3, "z_inf": 0.5, "tau": 5.0},
        t_eval=t,
    ).simulate()
    sim = ODEAdapter(
        damped_oscillator,
        [1.0, 0.0],
        (0.0, 20.0),
        state_names=("x [m]", "v [m/s]"),
        params={"k": 4.0, "c": 0.3},
        t_eval=t,
    ).simulate()
    return Case(
        "ode",
        "oscillator with a drifting rest position; simulator: damped oscillator (no drift)",
        "x [m]",
        t,
        truth["x [m]"],
        sim["x [m]"],
        noise=0.02,
        # a larger budget than the default: with 1500 + 300 steps the network alone was
        # budget-limited here (cross-validation chose 1760-1800 of 1800 steps at n = 100-200)
        settings=ODE_SETTINGS,
        # the damped oscillator is linear: dx/dt = v, dv/dt = -k x - c v (+ a forcing on v,
        # which is how the drift acts: k z(t))
        linear=LinearModel(
            A=np.array([[0.0, 1.0], [-4.0, -0.3]]), B=np.array([0.0, 1.0]), y0=np.array([1.0, 0.0])
        ),
    )


def pybamm_case(cutoff: bool = False) -> Case:
    """The PyBaMM case: a 2C charge and a 30-minute rest at -5 °C (SPM, OKane2022).

    The truth has partially reversible lithium plating (its rate constant raised to 1e-7 m/s
    so that plating shows in the voltage); the simulator has none. The charge lasts a fixed
    6 minutes (the protocol sets when it ends); with ``cutoff`` it runs "until 4.2 V"
    instead, so that the plating truth ends its charge later than the simulator.
    """
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    from hybridml_pybamm import ExperimentError, PyBaMMAdapter

    from hybridml import SimulationError

    charge = "Charge at 2C until 4.2 V" if cutoff else "Charge at 2C for 6 minutes"

    def voltage(
        options: dict[str, str], parameters: dict[str, float], rest: str = "30 minutes"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ds = PyBaMMAdapter(
            "SPM",
            "OKane2022",
            options=options,
            experiment=(charge, f"Rest for {rest}"),
            initial_soc=0.1,
            period="10 seconds",
            parameters=parameters,
            variables=("Voltage [V]", "Current [A]"),
        ).simulate()
        return np.asarray(ds["Time [s]"]), np.asarray(ds["Voltage [V]"]), ds["Step number"]

    def cold(kelvin: float) -> dict[str, float]:
        return {"Ambient temperature [K]": kelvin, "Initial temperature [K]": kelvin}

    truth = voltage(
        {"lithium plating": "partially reversible"},
        {**cold(268.15), "Lithium plating kinetic rate constant [m.s-1]": 1e-7},
    )
    simulator = voltage({}, cold(268.15))
    t = np.linspace(0.0, min(truth[0][-1], simulator[0][-1]), 801)

    def calibrated(kelvin: float) -> tuple[np.ndarray, np.ndarray, float] | None:
        try:  # a longer rest, so that a shorter charge still covers the time grid
            ds = voltage({}, cold(kelvin), rest="40 minutes")
        except (SimulationError, ExperimentError):
            return None
        return ds[0], ds[1], float(ds[0][ds[2] == 1][-1])

    return Case(
        "pybamm-cutoff" if cutoff else "pybamm",
        f"{'2C charge to 4.2 V' if cutoff else '6-minute 2C charge'} + 30-minute rest at "
        "-5 °C; truth with lithium plating, simulator without",
        "Voltage [V]",
        t,
        np.interp(t, *truth[:2]),
        np.interp(t, *simulator[:2]),
        noise=0.002,
        # the hybrid's simulator has one physical parameter fitted to the measurements:
        # the cell temperature, searched between -10 and +10 °C in steps of 1/16 K; with the
        # voltage cut-off also the time the charge ends (stretched by up to +-25 %)
        calibration=LatticeCalibration(
            "temperature [K]",
            calibrated,
            t,
            263.15,
            283.15,
            1 / 16,
            coarse=16,
            warps=np.linspace(0.75, 1.25, 501) if cutoff else None,
        ),
    )


CASES: dict[str, Callable[[], Case]] = {
    "ode": ode_case,
    "pybamm": pybamm_case,
    "pybamm-cutoff": lambda: pybamm_case(cutoff=True),
}


# ----------------------------------------------------------------------------- the study


# Training settings, the same for every network (the network alone and the hybrid's
# correction): the architecture, the learning rate and the largest budget (Adam, then
# L-BFGS). How much of that budget a fit uses is chosen by K-fold cross-validation on the
# measurements themselves (see ``fit_selected``), by the same rule for both models; the
# noise-free truth is used only to score the final predictions.
SETTINGS: dict[str, Any] = {
    "hidden": (32, 32, 32),
    "adam_steps": 1500,
    "lbfgs_steps": 300,
    "lr": 3e-3,
}
# the ODE case: the same, with a budget large enough that the network alone is not
# limited by it (see docs/small-data.md)
ODE_SETTINGS: dict[str, Any] = {**SETTINGS, "adam_steps": 4000, "lbfgs_steps": 1000}
QUICK_SETTINGS: dict[str, Any] = {**SETTINGS, "adam_steps": 300, "lbfgs_steps": 50}
FOLDS = 3  # cross-validation folds for choosing the training length (2 with --quick)


class _Scaled(nn.Module):
    """``shift + scale * net(t)``: a forcing network's output in the forcing's units."""

    shift: Tensor
    scale: Tensor

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.shift + self.scale * self.net(x)
        return out


class ForcingRegressor:
    """The forcing hybrid: the simulator (a linear model) driven by a learned input.

    The model is ``dy/dt = A y + B f(t)`` from the known initial state, its output the
    observed state component, ``f`` a network of time (:class:`hybridml.LinearForcingUDE`
    on the case's time grid; the network is an ``MLP`` like the others, its input scaled
    from the grid's range). With ``f = 0`` it is the simulator. Like ``HybridRegressor``
    it scales the network's output from the measurements it is fitted to: to the constant
    forcing whose response fits the residuals ``y - simulator(x)`` best (least squares)
    plus the residuals' spread divided by the root mean square of that response. It
    trains the same way (Adam, then L-BFGS in float64, the same seed) and has the same
    ``fit(x, y, validation=)``, ``predict(x)`` and ``history_``, for ``fit_selected``.
    """

    def __init__(
        self,
        linear: LinearModel,
        t: np.ndarray,
        *,
        hidden: tuple[int, ...],
        adam_steps: int,
        lbfgs_steps: int,
        lr: float,
        seed: int,
        progress: bool = False,
    ) -> None:
        self.linear, self.t = linear, t
        self.hidden, self.lr, self.seed, self.progress = tuple(hidden), lr, seed, progress
        self.adam_steps, self.lbfgs_steps = adam_steps, lbfgs_steps

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> ForcingRegressor:
        net = hm.MLP(
            1,
            1,
            self.hidden,
            nn.Tanh,
            input_lower=[float(self.t[0])],
            input_upper=[float(self.t[-1])],
            generator=torch.Generator().manual_seed(self.seed),
        )
        forcing = _Scaled(net)
        lin = self.linear
        model = hm.LinearForcingUDE(lin.A, lin.B, lin.y0, self.t, forcing, observe=[lin.observe])
        with torch.no_grad():  # the simulator (f = 0) and its response to f = 1, at x
            free = model.free[:, 0].double().numpy()
            step = model.W.double().sum(dim=1).numpy()
        residual = y[:, 0] - np.interp(x[:, 0], self.t, free)
        response = np.interp(x[:, 0], self.t, step)
        rms = float(np.sqrt(np.mean(response**2)))
        if rms > 0:
            forcing.shift.fill_(float(residual @ response / (response @ response)))
            forcing.scale.fill_(float(max(residual.std(), 1e-12)) / rms)
        phases: list[Any] = [hm.Adam(self.adam_steps, lr=self.lr)]
        if self.lbfgs_steps > 0:
            phases.append(hm.LBFGS(self.lbfgs_steps))
        trainer = hm.Trainer(phases, seed=self.seed, progress=self.progress)
        val = None if validation is None else {"data": hm.DataLoss(*validation)}
        self.history_ = trainer.fit(model, {"data": hm.DataLoss(x, y)}, val_losses=val)
        self.model_ = model
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        dtype = next(self.model_.parameters()).dtype
        with torch.no_grad():
            return self.model_(torch.as_tensor(x, dtype=dtype)).double().numpy()


def fit_selected(
    anchor: tuple[np.ndarray, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    t_pred: np.ndarray,
    *,
    seed: int,
    quick: bool,
    select: bool = True,
    budget: dict[str, Any] | None = None,
    make: Callable[..., Any] | None = None,
) -> tuple[np.ndarray, int]:
    """Fit a network to ``(x, y)`` with a training length chosen by cross-validation.

    The measurements are split into ``FOLDS`` folds (at random, by ``seed``); for each fold a
    network is trained on the others with the full budget while its error on the held-out
    fold is recorded every 10 steps. The step count with the lowest cross-validated error
    (mean squared error over all held-out points) is the training length; the final network
    is trained on all measurements for that many steps. ``anchor`` (the known initial
    state) is in every training set and never held out. Returns the prediction at
    ``t_pred`` and the chosen number of steps. With ``select=False`` the network trains
    for the whole budget, without cross-validation. ``budget``: the training settings
    (default ``SETTINGS``; ``QUICK_SETTINGS`` with ``quick``). ``make``: builds the model
    from the settings (default ``hybridml.HybridRegressor``; e.g. a ``ForcingRegressor``).
    """
    build = make if make is not None else hm.HybridRegressor
    base = QUICK_SETTINGS if quick else (budget if budget is not None else SETTINGS)
    settings: dict[str, Any] = {**base, "seed": seed}
    settings["progress"] = False
    adam = settings["adam_steps"]
    if not select:
        est = build(**settings).fit(np.concatenate([anchor[0], x]), np.concatenate([anchor[1], y]))
        return np.asarray(est.predict(t_pred[:, None]))[:, 0], adam + settings["lbfgs_steps"]
    n = len(x)
    folds = min(2 if quick else FOLDS, n)
    fold = np.random.default_rng([seed, n, 7]).permutation(n) % folds
    total: np.ndarray | None = None
    steps: list[int] = []
    for k in range(folds):
        train, held = fold != k, fold == k
        est = build(**settings).fit(
            np.concatenate([anchor[0], x[train]]),
            np.concatenate([anchor[1], y[train]]),
            validation=(x[held], y[held]),
        )
        steps = est.history_.val_step
        # val_loss is the held-out MSE; weight it by the fold's size
        curve = np.asarray(est.history_.val_loss, dtype=float) * held.sum()
        total = curve if total is None else total[: len(curve)] + curve[: len(total)]
    assert total is not None
    best = max(int(steps[int(np.argmin(total))]), 10)
    settings.update(adam_steps=min(best, adam), lbfgs_steps=max(0, best - adam))
    est = build(**settings).fit(np.concatenate([anchor[0], x]), np.concatenate([anchor[1], y]))
    return np.asarray(est.predict(t_pred[:, None]))[:, 0], best


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


_CASE: Case | None = None  # the case being run, for worker processes (fork)


def _one_fork(n: int, seed: int, quick: bool) -> dict[str, Any]:
    assert _CASE is not None
    return _one(_CASE, n, seed, quick)


def _kinds(case: Case) -> list[str]:
    """The models of ``case`` besides the physics alone (whose error does not depend on n)."""
    kinds = ["network", "network-full", "hybrid"]
    if case.calibration is not None:
        kinds.insert(2, "physics-calibrated")
    if case.linear is not None:  # the hybrid is a forcing; the output correction beside it
        kinds.insert(-1, "hybrid-output")
    return kinds


def _trained(case: Case) -> list[str]:
    """The models of ``case`` with a network (and a training length)."""
    return [k for k in _kinds(case) if k not in ("network-full", "physics-calibrated")]


def _one(case: Case, n: int, seed: int, quick: bool) -> dict[str, Any]:
    """Every model of ``case`` from ``n`` measurements drawn with ``seed``."""
    kinds = _kinds(case)
    row: dict[str, Any] = {k: math.nan for k in kinds}
    row["steps"] = {k: -1 for k in _trained(case)}
    row["cal"] = row["tau"] = math.nan
    rng = np.random.default_rng([seed, n])
    x = np.sort(rng.uniform(case.t[0], case.t[-1], n))
    y = np.interp(x, case.t, case.truth) + case.noise * rng.standard_normal(n)
    # the initial state is set by the experiment, so it is known exactly: every
    # model gets it as one extra, noise-free point (not counted in n)
    anchor = (case.t[:1, None], case.truth[:1, None])
    # the physics: the simulator as it is, or with its parameter fitted to the
    # same measurements (least squares) where the case has one
    base = case.simulated
    if case.calibration is not None:
        value, base = case.calibration.fit(
            np.concatenate([case.t[:1], x]), np.concatenate([case.truth[:1], y])
        )
        row["cal"], row["tau"] = value
        row["physics-calibrated"] = rmse(base, case.truth)
    # network alone, and the output-correction hybrid: the physics plus a network fitted
    # to the residuals y - physics(x) (HybridRegressor scales its output to their spread)
    base_at_x = np.interp(x, case.t, base)
    output = "hybrid" if case.linear is None else "hybrid-output"
    # "network-full": the network alone trained for the whole budget, not selected
    # by cross-validation (a second baseline; the target is the better of the two)
    models: list[tuple[str, np.ndarray, Any, Callable[..., Any] | None]] = [
        ("network", y, 0.0, None),
        ("network-full", y, 0.0, None),
        (output, y - base_at_x, base, None),
    ]
    if case.linear is not None:  # the forcing hybrid predicts y itself (f = 0: the simulator)
        linear = case.linear
        models.append(("hybrid", y, 0.0, lambda **s: ForcingRegressor(linear, case.t, **s)))
    for kind, target, offset, make in models:
        a = (anchor[0], anchor[1] - (base[:1, None] if kind == output else 0.0))
        try:
            pred, used = fit_selected(
                a,
                x[:, None],
                target[:, None],
                case.t,
                seed=seed,
                quick=quick,
                select=kind != "network-full",
                budget=case.settings,
                make=make,
            )
            row[kind] = rmse(offset + pred, case.truth)
            if kind in row["steps"]:
                row["steps"][kind] = used
        except hm.NonFiniteLossError as exc:  # reported, counted as a failure
            print(f"  {case.name} {kind} n={n} seed={seed} failed: {exc}", file=sys.stderr)
    return row


def run_case(
    case: Case, seeds: int, quick: bool, ns: tuple[int, ...], jobs: int = 1
) -> dict[str, Any]:
    global _CASE
    kinds = _kinds(case)
    trained = _trained(case)
    errors: dict[str, list[list[float]]] = {k: [] for k in ("physics", *kinds)}
    steps: dict[str, list[list[int]]] = {k: [] for k in trained}
    calibrated: list[list[float]] = []
    switch_times: list[list[float]] = []
    physics = rmse(case.simulated, case.truth)
    tasks = [(n, seed) for n in ns for seed in range(seeds)]
    if jobs > 1:  # worker processes, forked so that they inherit the case
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _CASE = case
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = {t: pool.submit(_one_fork, *t, quick) for t in tasks}
            done = {t: f.result() for t, f in futures.items()}
        _CASE = None
    else:
        done = {t: _one(case, *t, quick) for t in tasks}
    for n in ns:
        rows = [done[n, seed] for seed in range(seeds)]
        row = {k: [r[k] for r in rows] for k in kinds}
        row_steps = {k: [r["steps"][k] for r in rows] for k in trained}
        row_cal = [r["cal"] for r in rows]
        row_tau = [r["tau"] for r in rows]
        for kind, values in row.items():
            errors[kind].append(values)
        for kind, used in row_steps.items():
            steps[kind].append(used)
        errors["physics"].append([physics])
        calibrated.append(row_cal)
        switch_times.append(row_tau)
        extra = (
            f"  calibrated physics {np.nanmean(row['physics-calibrated']):.4g} "
            f"({case.calibration.name} = {np.mean(row_cal):.4g}, end of step 1 at "
            f"{np.mean(row_tau):.4g})"
            if case.calibration is not None
            else ""
        )
        other = (
            f"hybrid-output {np.nanmean(row['hybrid-output']):.4g}  "
            if "hybrid-output" in row
            else ""
        )
        lengths = ", ".join(f"{k} {v}" for k, v in row_steps.items())
        print(
            f"  {case.name}: n={n:>3}  network {np.nanmean(row['network']):.4g} "
            f"(full budget {np.nanmean(row['network-full']):.4g})  "
            f"hybrid {np.nanmean(row['hybrid']):.4g}  {other}physics {physics:.4g}{extra}  "
            f"(steps: {lengths})",
            flush=True,
        )
    mean = {k: [float(np.nanmean(v)) for v in vals] for k, vals in errors.items()}
    # the target: the better of the two networks alone at the largest n
    nn_at_max = min(mean["network"][-1], mean["network-full"][-1])

    def crossing(kind: str) -> tuple[float | None, float | None]:
        # the fewest measurements from which on the model stays at or below the target (a
        # dip below it followed by a rise above does not count); and the first dip
        below = [e <= nn_at_max for e in mean[kind]]
        stays = [n for i, n in enumerate(ns) if all(below[i:])]
        first = [n for n, b in zip(ns, below, strict=True) if b]
        return (stays[0] / ns[-1] if stays else None), (first[0] / ns[-1] if first else None)

    ratio, first_ratio = crossing("hybrid")
    at10 = ns.index(10) if 10 in ns else 0
    return {
        "description": case.description,
        "output": case.output,
        "noise": case.noise,
        "n_measurements": list(ns),
        "seeds": seeds,
        "errors": mean,
        "errors_per_seed": errors,
        "training_steps": steps,
        "calibrated_parameter": None if case.calibration is None else case.calibration.name,
        "calibrated_values": calibrated if case.calibration is not None else None,
        "calibrated_switch_times": switch_times if case.calibration is not None else None,
        "hybrid_kind": (
            "output correction: simulator + network(t)"
            if case.linear is None
            else "learned forcing: linear simulator driven by network(t) (LinearForcingUDE)"
        ),
        "measurements_ratio": ratio,
        "first_crossing_ratio": first_ratio,
        "measurements_ratio_by_hybrid": {
            k: crossing(k)[0] for k in ("hybrid", "hybrid-output") if k in mean
        },
        "hybrid_error_at_10": mean["hybrid"][at10],
        "nn_error_at_10": min(mean["network"][at10], mean["network-full"][at10]),
        "physics_error": physics,
        "nn_error_at_max": nn_at_max,
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, r in results.items():
        lines.append(
            f"\ncase {name}: {r['description']} (RMSE of {r['output']}, noise {r['noise']})"
        )
        e = r["errors"]
        cal = "physics-calibrated" in e
        head = f"{'n':>5} {'network':>10} {'(full)':>10} {'physics':>10}"
        head += f" {'calibrated':>11}" if cal else ""
        out = "hybrid-output" in e
        head += f" {'hyb-output':>10}" if out else ""
        lines.append(head + f" {'hybrid':>10}")
        for i, n in enumerate(r["n_measurements"]):
            line = f"{n:>5} {e['network'][i]:>10.4g} {e['network-full'][i]:>10.4g}"
            line += f" {e['physics'][i]:>10.4g}"
            line += f" {e['physics-calibrated'][i]:>11.4g}" if cal else ""
            line += f" {e['hybrid-output'][i]:>10.4g}" if out else ""
            lines.append(line + f" {e['hybrid'][i]:>10.4g}")
        ratio = r["measurements_ratio"]
        lines.append(
            f"measurements_ratio = {ratio if ratio is not None else 'not reached'} "
            f"(goal <= 0.1); hybrid/network error at 10: "
            f"{r['hybrid_error_at_10']:.4g} / {r['nn_error_at_10']:.4g}"
        )
        if out:
            other = r["measurements_ratio_by_hybrid"]["hybrid-output"]
            lines.append(
                f"hybrid: {r['hybrid_kind']}; hybrid-output (the output correction): "
                f"ratio {other if other is not None else 'not reached'}"
            )
    return "\n".join(lines)


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items(), strict=True):
        ns = r["n_measurements"]
        # with an output correction beside it, the hybrid is a forcing
        forcing = "hybrid-output" in r["errors"]
        cal = r["calibrated_parameter"]
        lines: list[tuple[str, str, dict[str, Any]]] = [
            ("network", "o-", {"label": "network"}),
            (
                "network-full",
                "o:",
                {"color": "tab:blue", "alpha": 0.5, "label": "network, whole budget"},
            ),
            ("physics", "k--", {"label": "physics"}),
            (
                "physics-calibrated",
                "^:",
                {
                    "color": "tab:grey",
                    "label": f"physics, {cal.split(' [')[0] if cal else ''} fitted",
                },
            ),
            (
                "hybrid-output",
                "s:",
                {"color": "tab:orange", "alpha": 0.6, "label": "hybrid, output correction"},
            ),
            (
                "hybrid",
                "D-" if forcing else "s-",
                {
                    "color": "tab:green" if forcing else "tab:orange",
                    "label": "hybrid, forcing" if forcing else "hybrid",
                },
            ),
        ]
        for kind, fmt, style in lines:
            if kind in r["errors"]:
                ax.plot(ns, r["errors"][kind], fmt, **style)
        ax.axhline(
            r["nn_error_at_max"], color="grey", lw=0.8, ls=":", label=f"target: network at {ns[-1]}"
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of measurements")
        ax.set_ylabel(f"RMSE of {r['output']}")
        ratio = r["measurements_ratio"]
        ax.set_title(f"{name}: measurements ratio {ratio if ratio is not None else 'not reached'}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["ode", "pybamm"])
    parser.add_argument("--seeds", type=int, default=2, help="repetitions per point (default 2)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument(
        "--plot",
        type=Path,
        default=ROOT / "docs" / "img" / "data_efficiency.png",
        help="where to save the plot",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short training and n in (5, 10, 200), for a smoke test",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes, one (n, seed) each (POSIX fork; default 1)",
    )
    parser.add_argument(
        "--replot",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="run nothing: plot the cases of these --json files (later files win) to --plot",
    )
    args = parser.parse_args(argv)
    if args.replot:
        merged: dict[str, dict[str, Any]] = {}
        for path in args.replot:
            merged.update(json.loads(path.read_text(encoding="utf-8")))
        for name, r in merged.items():  # files written before "output" was saved
            r.setdefault("output", "x [m]" if name == "ode" else "Voltage [V]")
        plot(merged, args.plot)
        print(f"plot: {args.plot}")
        return 0
    torch.set_num_threads(1)  # an application setting: this script owns its process
    ns = (5, 10, 200) if args.quick else N_MEASUREMENTS
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for name in args.cases:
        print(f"case {name}: building truth and simulator ...", flush=True)
        case = CASES[name]()
        results[name] = run_case(case, args.seeds, args.quick, ns, args.jobs)
    print(table(results))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    plot(results, args.plot)
    print(f"plot: {args.plot}")
    if args.json is not None:
        summary = {
            name: {
                k: r[k]
                for k in (
                    "description",
                    "output",
                    "noise",
                    "hybrid_kind",
                    "measurements_ratio",
                    "first_crossing_ratio",
                    "measurements_ratio_by_hybrid",
                    "hybrid_error_at_10",
                    "nn_error_at_10",
                    "physics_error",
                    "nn_error_at_max",
                    "errors",
                    "n_measurements",
                    "seeds",
                    "training_steps",
                    "calibrated_parameter",
                    "calibrated_values",
                    "calibrated_switch_times",
                )
            }
            for name, r in results.items()
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
