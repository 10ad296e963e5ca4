"""The PyBaMM adapter: any lithium-ion model + parameter set + experiment as a hybridml
simulator (data, checks, loss terms and a differentiable forward)."""

from __future__ import annotations

import enum
import string
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hybridml.adapters import (
    ProvidesChecks,
    ProvidesConstraints,
    ProvidesData,
    ProvidesForward,
    SimulationError,
)
from hybridml.exceptions import InvalidArgumentError, InvalidTypeError, did_you_mean

from ._pybamm import parameter_keys, pybamm
from ._validation import ExperimentError, ParameterError, check_names, check_physical

if TYPE_CHECKING:
    from torch import Tensor

    from hybridml import Check, Dataset, LossTerm, SweepResult

    from ._space import ParameterSpace

__all__ = ["BatteryRun", "Output", "PyBaMMAdapter", "Scale"]


class Output(enum.Enum):
    """What :meth:`PyBaMMAdapter.simulate` (and so a sweep) returns."""

    #: one row per solver time point: time, cycle, step, voltage, current, ...
    TIME_SERIES = "time series"
    #: one row per cycle: capacity, loss of lithium inventory, min/max voltage, ...
    CYCLES = "cycles"


class Scale(enum.Enum):
    """How :meth:`PyBaMMAdapter.forward` reads its parameter tensor."""

    #: the physical values themselves
    LINEAR = "linear"
    #: base-10 logarithms of the physical values (for rates spanning decades)
    LOG10 = "log10"


@dataclass(frozen=True)
class BatteryRun:
    """Both views of one simulation.

    Attributes:
        time_series: one row per time point (see :attr:`Output.TIME_SERIES`).
        cycles: one row per cycle (see :attr:`Output.CYCLES`).
    """

    time_series: Dataset
    cycles: Dataset


DEFAULT_VARIABLES: tuple[str, ...] = (
    "Current [A]",
    "Voltage [V]",
    "Discharge capacity [A.h]",
    "Throughput capacity [A.h]",
    "Total capacity lost to side reactions [A.h]",
    "Minimum negative particle stoichiometry",
    "Maximum negative particle stoichiometry",
    "Minimum positive particle stoichiometry",
    "Maximum positive particle stoichiometry",
    "Minimum negative particle concentration [mol.m-3]",
    "Minimum positive particle concentration [mol.m-3]",
)

DEFAULT_SUMMARY_VARIABLES: tuple[str, ...] = (
    "Capacity [A.h]",
    "Loss of lithium inventory [%]",
    "Loss of capacity to negative SEI [A.h]",
    "Loss of capacity to negative lithium plating [A.h]",
    "Loss of active material in negative electrode [%]",
    "Loss of active material in positive electrode [%]",
    "Total capacity lost to side reactions [A.h]",
    "Throughput capacity [A.h]",
)

_STRUCTURAL = ("Time [s]", "Cycle number", "Step number")
# Parameters PyBaMM's experiments refuse as "[input]": set as values (one build per value).
_NOT_INPUTS = frozenset(
    {"Current function [A]", "Ambient temperature [K]", "Initial temperature [K]"}
)
_BUILD_CACHE_SIZE = 8
_builds: dict[int, OrderedDict[tuple[Any, ...], Any]] = {}
_builds_lock = threading.Lock()


def _thread_cache() -> OrderedDict[tuple[Any, ...], Any]:
    # One cache of built simulations per thread: a pybamm.Simulation (and its solver) is not
    # safe to use from two threads at once, and rebuilding per solve would cost ~1 s.
    ident = threading.get_ident()
    with _builds_lock:
        cache = _builds.get(ident)
        if cache is None:
            alive = {t.ident for t in threading.enumerate()}
            for dead in [k for k in _builds if k not in alive]:
                del _builds[dead]  # threads of finished pools: free their simulations
            cache = _builds[ident] = OrderedDict()
        return cache


_models: dict[str, Any] = {}


def _model(name: str, options: Mapping[str, Any]) -> Any:
    """The PyBaMM model (built once per process: building takes up to seconds).

    ``pybamm.Simulation`` processes a copy, so the shared instance is never modified.
    """
    key = f"{name}:{sorted(options.items())!r}"
    with _builds_lock:
        model = _models.get(key)
    if model is None:
        pb = pybamm()
        try:
            model = getattr(pb.lithium_ion, name)(options=dict(options))
        except pb.OptionError as exc:
            raise InvalidArgumentError(
                f"invalid PyBaMM model options {dict(options)}: {exc}"
            ) from exc
        with _builds_lock:
            model = _models.setdefault(key, model)
    return model


def _unit(name: str) -> str | None:
    """'1' for dimensionless names (no '[unit]'), else None (the name carries the unit)."""
    return None if name.rstrip().endswith("]") else "1"


def _close(name: str, valid: Sequence[str], what: str) -> InvalidArgumentError:
    """The error for an unknown model, parameter set or variable name, with the close ones."""
    hint = did_you_mean(name, valid, cutoff=0.4)
    listing = f" Valid: {', '.join(sorted(valid))}." if len(valid) <= 30 else ""
    return InvalidArgumentError(f"unknown {what} {name!r}.{hint}{listing}")


class PyBaMMAdapter(ProvidesData, ProvidesChecks, ProvidesConstraints, ProvidesForward):
    """A PyBaMM lithium-ion model, parameter set and experiment as a hybridml simulator.

    PyBaMM is imported when an adapter is created (with telemetry disabled), never when
    ``hybridml`` or this package is imported. The adapter holds only names and numbers, so
    it pickles cheaply to process pools and Dask workers; each process (and thread) builds
    the PyBaMM simulation once and reuses it for every parameter set that varies the same
    parameter names (they become PyBaMM ``[input]`` parameters, so no rebuild per run).

    Args:
        model: name of a class in ``pybamm.lithium_ion`` (``"SPM"``, ``"SPMe"``, ``"DFN"``).
        parameter_set: a PyBaMM parameter set (``"Mohtat2020"``, ``"OKane2022"``, ...).
        options: PyBaMM model options, e.g. degradation mechanisms
            ``{"SEI": "ec reaction limited", "lithium plating": "irreversible",
            "loss of active material": "stress-driven"}``.
        experiment: the steps of one cycle in PyBaMM's experiment language
            (``"Discharge at 1C until 3 V"``). Steps may hold placeholders for operating
            conditions, ``"Discharge at {C-rate}C until 3 V"``, which become sweepable
            parameters. Default: a CC-CV cycle between the cell's voltage limits.
        cycles: how many times the cycle is repeated (ageing experiments).
        parameters: parameter values that replace the set's defaults in every run.
        initial_soc: state of charge at the start (computed once per build with the
            parameter set and ``parameters``, not with swept values); None keeps the
            parameter set's initial concentrations.
        output: what :meth:`simulate` returns, :attr:`Output.TIME_SERIES` or
            :attr:`Output.CYCLES`.
        variables: time-series variables (scalar PyBaMM variables with units in their
            names); ``"Time [s]"``, ``"Cycle number"`` and ``"Step number"`` always come.
        summary_variables: per-cycle PyBaMM summary variables; to these the adapter adds
            per-cycle minimum/maximum voltage, discharged and charged charge, and the
            extremes of the stoichiometry and concentration variables.
        parameter_names: the parameters :meth:`forward` differentiates with respect to.
        forward_variable: the variable :meth:`forward` returns at the end of each cycle.
        forward_scale: whether :meth:`forward` takes physical values or their log10.
        period: output period of the experiment (``"1 minute"``); None keeps the solver's
            own time points.
        rtol: relative tolerance of the IDAKLU solver.
        atol: absolute tolerance of the IDAKLU solver.

    Raises:
        ValueError: an unknown model, parameter set, option or variable.
        ParameterError: an unknown parameter name (the closest names are listed) or a
            value outside physical limits.
        ExperimentError: a step PyBaMM cannot read, or a voltage outside the cell's
            voltage window.
    """

    name: ClassVar[str] = "pybamm"
    description: ClassVar[str] = (
        "PyBaMM lithium-ion battery models: synthetic data, sensitivities, battery checks"
    )

    def __init__(
        self,
        model: str = "SPM",
        parameter_set: str = "Mohtat2020",
        *,
        options: Mapping[str, Any] | None = None,
        experiment: Sequence[str] | None = None,
        cycles: int = 1,
        parameters: Mapping[str, float] | None = None,
        initial_soc: float | None = 1.0,
        output: Output = Output.TIME_SERIES,
        variables: Sequence[str] | None = None,
        summary_variables: Sequence[str] | None = None,
        parameter_names: Sequence[str] = (),
        forward_variable: str = "Total capacity lost to side reactions [A.h]",
        forward_scale: Scale = Scale.LINEAR,
        period: str | None = None,
        rtol: float = 1e-6,
        atol: float = 1e-8,
    ) -> None:
        self.model = str(model)
        self.parameter_set = str(parameter_set)
        self.options = dict(options or {})
        self.experiment = None if experiment is None else tuple(str(s) for s in experiment)
        self.cycles = int(cycles)
        self.parameters = {k: float(v) for k, v in (parameters or {}).items()}
        self.initial_soc = None if initial_soc is None else float(initial_soc)
        self.output = Output(output)
        self.variables = tuple(DEFAULT_VARIABLES if variables is None else variables)
        self.summary_variables = tuple(
            DEFAULT_SUMMARY_VARIABLES if summary_variables is None else summary_variables
        )
        self.parameter_names = tuple(str(n) for n in parameter_names)
        self.forward_variable = str(forward_variable)
        self.forward_scale = Scale(forward_scale)
        self.period = period
        self.rtol = float(rtol)
        self.atol = float(atol)
        self._validate()

    # ------------------------------------------------------------------ settings

    def _settings(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "parameter_set": self.parameter_set,
            "options": self.options,
            "experiment": self.experiment,
            "cycles": self.cycles,
            "parameters": self.parameters,
            "initial_soc": self.initial_soc,
            "output": self.output.name,
            "variables": self.variables,
            "summary_variables": self.summary_variables,
            "parameter_names": self.parameter_names,
            "forward_variable": self.forward_variable,
            "forward_scale": self.forward_scale.name,
            "period": self.period,
            "rtol": self.rtol,
            "atol": self.atol,
        }

    def __repr__(self) -> str:
        # Every setting that changes results is in the repr: the sweep cache keys on it.
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"PyBaMMAdapter({args})"

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)  # plain names and numbers; no PyBaMM object is held

    def _validate(self) -> None:
        pb = pybamm()
        models = [
            n
            for n in dir(pb.lithium_ion)
            if isinstance(getattr(pb.lithium_ion, n), type)
            and issubclass(getattr(pb.lithium_ion, n), pb.lithium_ion.BaseModel)
            and n != "BaseModel"
        ]
        if self.model not in models:
            raise _close(self.model, models, "PyBaMM lithium-ion model")
        if self.parameter_set not in pb.parameter_sets:
            raise _close(self.parameter_set, list(pb.parameter_sets), "PyBaMM parameter set")
        if self.cycles < 1:
            raise InvalidArgumentError(f"cycles must be at least 1, got {self.cycles}.")
        model = _model(self.model, self.options)
        keys = parameter_keys(self.parameter_set)
        check_names(self.parameters, keys, what="parameter")
        check_physical(self.parameters, where="parameters=")
        placeholders = self.operating_conditions
        check_names(
            self.parameter_names, [k for k in keys if k not in placeholders], what="parameter"
        )
        known = set(model.variables.keys())
        for var in (*self.variables, self.forward_variable):
            if var not in known and var not in _STRUCTURAL:
                raise _close(var, sorted(known), "PyBaMM variable of this model")
        pv = pb.ParameterValues(self.parameter_set)
        pv.update(self.parameters)
        self._nominal_capacity = float(pv["Nominal cell capacity [A.h]"])
        self._voltage_window = (
            float(pv["Lower voltage cut-off [V]"]),
            float(pv["Upper voltage cut-off [V]"]),
        )
        if not placeholders:
            self._check_steps(self._cycle_steps({}))

    @property
    def operating_conditions(self) -> tuple[str, ...]:
        """Names of the placeholders in the experiment (``"{C-rate}"`` -> ``"C-rate"``)."""
        names: list[str] = []
        for step in self.experiment or ():
            for _, field, _, _ in string.Formatter().parse(step):
                if field and field not in names:
                    names.append(field)
        return tuple(names)

    @property
    def voltage_window(self) -> tuple[float, float]:
        """The cell's (lower, upper) voltage cut-offs in volts, from the parameter set."""
        return self._voltage_window

    def _cycle_steps(self, conditions: Mapping[str, float]) -> tuple[str, ...]:
        if self.experiment is None:
            lo, hi = self._voltage_window
            return (
                f"Discharge at 1C until {lo + 0.2:g} V",
                "Rest for 10 minutes",
                f"Charge at 1C until {hi:g} V",
                f"Hold at {hi:g} V until C/20",
            )
        try:
            return tuple(step.format(**conditions) for step in self.experiment)
        except KeyError as exc:
            raise ExperimentError(
                f"the experiment needs operating condition {exc.args[0]!r}; pass it in the "
                "parameters of simulate/sweep."
            ) from None

    def _check_steps(self, steps: Sequence[str]) -> list[Any]:
        pb = pybamm()
        lo, hi = self._voltage_window
        parsed = []
        for text in steps:
            try:
                step = pb.step.string(text)
            except Exception as exc:  # PyBaMM's parser raises ValueError/TypeError
                raise ExperimentError(f"cannot read experiment step {text!r}: {exc}") from exc
            volts = [
                float(t.value) for t in step.termination if type(t).__name__ == "VoltageTermination"
            ]
            if type(step).__name__ == "Voltage":
                volts.append(float(step.value))
            for v in volts:
                if not lo <= v <= hi:
                    raise ExperimentError(
                        f"experiment step {text!r} asks for {v:g} V, outside the cell's voltage "
                        f"window [{lo:g}, {hi:g}] V of parameter set {self.parameter_set!r}; "
                        "the step could never end as written. Use a voltage inside the window."
                    )
            parsed.append(step)
        return parsed

    # ------------------------------------------------------------------ parameters

    def _split(
        self, params: Mapping[str, float] | None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Check ``params`` and split it into (PyBaMM inputs, operating conditions)."""
        params = dict(params or {})
        conditions = self.operating_conditions
        check_names(params, (*parameter_keys(self.parameter_set), *conditions), what="parameter")
        check_physical({k: v for k, v in params.items() if k not in conditions})
        inputs = {k: float(v) for k, v in params.items() if k not in conditions}
        conds = {k: float(v) for k, v in params.items() if k in conditions}
        missing = [c for c in conditions if c not in conds]
        if missing:
            raise ExperimentError(
                f"the experiment has placeholders {missing} with no value; pass them in the "
                "parameters, e.g. {'C-rate': 1.0}."
            )
        return inputs, conds

    def check_params(self, params: Mapping[str, float] | None) -> None:
        """Raise (before any solve) if ``params`` has unknown names or unphysical values."""
        _, conds = self._split(params)
        self._check_steps(self._cycle_steps(conds))

    def parameter_space(self, dimensions: Mapping[str, Any], **kwargs: Any) -> ParameterSpace:
        """A :class:`ParameterSpace` whose names are checked against this adapter's
        parameters (unknown names list the closest valid ones)."""
        from ._space import ParameterSpace

        space = ParameterSpace(dimensions, **kwargs)
        check_names(
            [*space.names, *space.fixed],
            (*parameter_keys(self.parameter_set), *self.operating_conditions),
            what="parameter",
        )
        return space

    # ------------------------------------------------------------------ building and solving

    def _output_variables(self) -> list[str]:
        names = [*self.variables, self.forward_variable, "Current [A]", "Voltage [V]"]
        names += ["Discharge capacity [A.h]", "Throughput capacity [A.h]"]
        return [n for n in dict.fromkeys(names) if n not in _STRUCTURAL]

    def _simulation(
        self,
        inputs: Sequence[str],
        conditions: Mapping[str, float],
        sensitivities: bool,
        values: Mapping[str, float],
    ) -> Any:
        key = (
            repr(self),
            tuple(sorted(inputs)),
            tuple(sorted(conditions.items())),
            sensitivities,
            tuple(sorted(values.items())),
        )
        cache = _thread_cache()
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        pb = pybamm()
        steps = self._cycle_steps(conditions)
        self._check_steps(steps)
        model = _model(self.model, self.options)
        pv = pb.ParameterValues(self.parameter_set)
        pv.update({**self.parameters, **values})
        if self.initial_soc is not None:
            try:
                pv = pv.set_initial_state(self.initial_soc)
            except Exception as exc:
                raise SimulationError(
                    f"PyBaMM could not set the initial state of charge {self.initial_soc} for "
                    f"parameter set {self.parameter_set!r}: {exc}. Pass initial_soc=None to "
                    "keep the parameter set's initial concentrations."
                ) from exc
        pv.update({name: "[input]" for name in inputs})
        experiment = pb.Experiment([tuple(steps)] * self.cycles, period=self.period)
        solver = pb.IDAKLUSolver(
            rtol=self.rtol, atol=self.atol, output_variables=self._output_variables()
        )
        sim = pb.Simulation(model, parameter_values=pv, experiment=experiment, solver=solver)
        cache[key] = sim
        while len(cache) > _BUILD_CACHE_SIZE:
            cache.popitem(last=False)
        return sim

    def _solve(self, params: Mapping[str, float] | None, *, sensitivities: bool = False) -> Any:
        inputs, conds = self._split(params)
        values = {k: v for k, v in inputs.items() if k in _NOT_INPUTS}
        inputs = {k: v for k, v in inputs.items() if k not in _NOT_INPUTS}
        if sensitivities and values:
            raise InvalidArgumentError(
                f"forward cannot differentiate with respect to {sorted(values)}."
            )
        sim = self._simulation(tuple(inputs), conds, sensitivities, values)
        described = dict(params or {}) or "the parameter set's defaults"
        try:
            sol = sim.solve(inputs=inputs, calculate_sensitivities=sensitivities)
        except Exception as exc:  # PyBaMM raises SolverError, ValueError, RuntimeError, ...
            raise SimulationError(
                f"PyBaMM failed to simulate {self.model}/{self.parameter_set} with "
                f"{described}: {type(exc).__name__}: {exc}. Check that the values are "
                "plausible for this cell and that every experiment step can be reached."
                + (
                    f" PyBaMM may not support varying {sorted(inputs)} between runs of one "
                    "built model (they are PyBaMM inputs here); set such a parameter with "
                    "parameters={...} when creating the adapter instead."
                    if isinstance(exc, AttributeError | IndexError) and inputs
                    else ""
                )
            ) from exc
        self._check_complete(sol, self._cycle_steps(conds), described)
        return sol

    def _check_complete(self, sol: Any, steps: Sequence[str], described: Any) -> None:
        cycles = sol.cycles
        for i in range(self.cycles):
            ran = cycles[i].steps if i < len(cycles) and cycles[i] is not None else []
            for j, step in enumerate(ran):
                why = str(step.termination)
                # a step ends by its own duration ("final time") or its own limit (an event
                # tagged "[experiment]"); any other event is a model cut-off cutting it short
                if why != "final time" and not why.endswith("[experiment]"):
                    raise SimulationError(
                        f"the experiment could not run: cycle {i + 1} of {self.cycles}, step "
                        f"{steps[min(j, len(steps) - 1)]!r}, with {described}: a cut-off was "
                        f"reached during the step ({why}). Change the step's limits or duration, "
                        "or the parameters."
                    )
                if float(step.t[-1] - step.t[0]) <= 1e-9:
                    raise SimulationError(
                        f"experiment step {steps[j]!r} of cycle {i + 1} ended at once (it "
                        f"lasted 0 s) with {described}: its end condition already held when it "
                        "started. Change the step's limit or reorder the steps."
                    )
            if len(ran) < len(steps):
                raise SimulationError(
                    f"the experiment could not run: cycle {i + 1} of {self.cycles}, step "
                    f"{steps[len(ran)]!r}, with {described}: the step could not start from the "
                    "state the cell was in (its limit had already been passed; PyBaMM skipped "
                    f"it and stopped with {sol.termination!r}). Change the step or the "
                    "parameters."
                )

    # ------------------------------------------------------------------ data

    def _indices(self, sol: Any) -> tuple[np.ndarray, np.ndarray]:
        cyc, stp = [], []
        for i, cycle in enumerate(sol.cycles):
            for j, step in enumerate(cycle.steps):
                n = len(step.t)
                cyc.append(np.full(n, i + 1.0))
                stp.append(np.full(n, j + 1.0))
        return np.concatenate(cyc), np.concatenate(stp)

    def _time_series(self, sol: Any, source: str) -> Dataset:
        from hybridml import Dataset

        cycle, step = self._indices(sol)
        cols: dict[str, np.ndarray] = {
            "Time [s]": np.asarray(sol.t, dtype=float),
            "Cycle number": cycle,
            "Step number": step,
        }
        for var in self.variables:
            if var in _STRUCTURAL:
                continue
            values = np.asarray(sol[var].entries, dtype=float)
            if values.ndim != 1:
                raise InvalidArgumentError(
                    f"variable {var!r} is not a scalar over time (shape {values.shape}); "
                    "choose an averaged or extreme one ('X-averaged ...', 'Minimum ...')."
                )
            cols[var] = values
        units = {k: u for k in cols if (u := _unit(k)) is not None}
        return Dataset(cols, units=units, measured=np.zeros(len(cycle), bool), source=source)

    def _cycle_table(self, sol: Any, source: str) -> Dataset:
        from hybridml import Dataset

        cycle, _ = self._indices(sol)
        n = len(sol.cycles)
        cols: dict[str, np.ndarray] = {"Cycle number": np.arange(1.0, n + 1)}
        summary = sol.summary_variables
        available = set(summary.all_variables)
        for var in self.summary_variables:
            if var in available:
                cols[var] = np.asarray(summary[var], dtype=float).reshape(-1)
            elif var not in DEFAULT_SUMMARY_VARIABLES:  # defaults a model lacks are skipped
                raise _close(var, sorted(available), "PyBaMM summary variable of this model")
        t = np.asarray(sol.t, dtype=float)
        current = np.asarray(sol["Current [A]"].entries, dtype=float)
        voltage = np.asarray(sol["Voltage [V]"].entries, dtype=float)
        dis = np.zeros(n)
        chg = np.zeros(n)
        vmin = np.zeros(n)
        vmax = np.zeros(n)
        for i in range(n):
            m = cycle == i + 1
            ti, ci = t[m], current[m]
            # Positive current discharges (PyBaMM's convention); trapezoid rule in hours.
            dq = 0.5 * (ci[1:] + ci[:-1]) * np.diff(ti) / 3600.0
            dis[i] = dq[dq > 0].sum()
            chg[i] = -dq[dq < 0].sum()
            vmin[i], vmax[i] = voltage[m].min(), voltage[m].max()
        cols["Discharged charge [A.h]"] = dis
        cols["Charged charge [A.h]"] = chg
        cols["Minimum voltage [V]"] = vmin
        cols["Maximum voltage [V]"] = vmax
        for var in self.variables:
            low = var.lower()
            if "stoichiometry" in low or "concentration [mol.m-3]" in low:
                values = np.asarray(sol[var].entries, dtype=float)
                reduce = np.max if var.startswith("Maximum") else np.min
                cols[var] = np.array([reduce(values[cycle == i + 1]) for i in range(n)])
        units = {k: u for k in cols if (u := _unit(k)) is not None}
        return Dataset(
            cols, units=units, coordinate="Cycle number", measured=np.zeros(n, bool), source=source
        )

    def run(self, params: Mapping[str, float] | None = None) -> BatteryRun:
        """Simulate once and return both the time series and the per-cycle table.

        Args:
            params: parameter name -> value (PyBaMM names with units, or the experiment's
                operating conditions); the parameter set's values where omitted.

        Returns:
            A :class:`BatteryRun`.

        Raises:
            ParameterError: unknown names or unphysical values (nothing is simulated).
            SimulationError: the solver failed or the experiment could not run as written.
        """
        sol = self._solve(params)
        source = f"<PyBaMM {self.model}/{self.parameter_set} {dict(params or {})}>"
        return BatteryRun(self._time_series(sol, source), self._cycle_table(sol, source))

    def simulate(self, params: Mapping[str, float] | None = None) -> Dataset:
        """Simulate once; the time series or the per-cycle table (see ``output``).

        Raises:
            ParameterError: unknown names or unphysical values (nothing is simulated).
            SimulationError: the solver failed or the experiment could not run as written.
        """
        sol = self._solve(params)
        source = f"<PyBaMM {self.model}/{self.parameter_set} {dict(params or {})}>"
        if self.output is Output.CYCLES:
            return self._cycle_table(sol, source)
        return self._time_series(sol, source)

    def sweep(
        self,
        param_sets: Sequence[Mapping[str, float]],
        *,
        executor: Executor | None = None,
        cache_dir: str | Path | None = None,
        progress: bool | None = None,
    ) -> SweepResult:
        """Simulate every parameter set (see :meth:`hybridml.ProvidesData.sweep`).

        Every set is checked first: an unknown name or an unphysical value (a negative
        diffusivity) raises :class:`ParameterError` before anything is simulated. Solver
        failures are recorded in the result, and the sweep goes on. Make the sets with a
        :class:`ParameterSpace` (``space.latin_hypercube(40, seed=0)``).
        """
        sets = [dict(p) for p in param_sets]
        for i, p in enumerate(sets):
            try:
                self.check_params(p)
            except (ParameterError, ExperimentError) as exc:
                raise type(exc)(f"parameter set {i} of the sweep: {exc}") from exc
        return super().sweep(sets, executor=executor, cache_dir=cache_dir, progress=progress)

    # ------------------------------------------------------------------ checks

    def checks(self) -> list[Check]:
        """The battery checks for what :meth:`simulate` returns (see ``output``).

        Time series: voltage within the cell's cut-offs (1 mV tolerance: the solver
        locates cut-off events to its tolerance), stoichiometries in [0, 1],
        concentrations non-negative, coulomb counting. Per cycle: minimum and maximum
        voltage within the cut-offs, the same stoichiometry and concentration checks,
        capacity positive, not above the first cycle's and non-increasing except for a
        recovery of up to 0.1 % of the nominal capacity from one cycle to the next, and the
        charge discharged per cycle at most the capacity.
        """
        from ._checks import battery_checks

        stoich = [v for v in self.variables if "stoichiometry" in v.lower()]
        conc = [v for v in self.variables if "concentration [mol.m-3]" in v.lower()]
        if self.output is Output.TIME_SERIES:
            return battery_checks(
                voltage_window=self._voltage_window if "Voltage [V]" in self.variables else None,
                stoichiometries=stoich,
                concentrations=conc,
                coulomb_counting={"Current [A]", "Discharge capacity [A.h]"} <= set(self.variables),
            )
        has_capacity = "Capacity [A.h]" in self.summary_variables
        return battery_checks(
            voltage_window=self._voltage_window,
            voltage_columns=("Minimum voltage [V]", "Maximum voltage [V]"),
            stoichiometries=stoich,
            concentrations=conc,
            capacity="Capacity [A.h]" if has_capacity else None,
            recovery_tolerance=1e-3 * self._nominal_capacity,
            discharged="Discharged charge [A.h]",
        )

    # ------------------------------------------------------------------ loss terms

    def loss_terms(self, **options: Any) -> dict[str, LossTerm]:
        """Physics loss terms for a network ``model(cycle) -> capacity``.

        Options (all optional):
            data: a :class:`hybridml.SweepResult`, a per-cycle :class:`hybridml.Dataset` or
                a list of them; default: one simulation at the adapter's settings.
            weight (float): weight of the synthetic-data term against measured data
                (default 1.0).
            margin (float): widening of the fade-rate envelope, as a fraction of the
                largest fade rate (default 0.25).
            n_points (int): collocation points of the envelope term (default 64).
            column (str): the per-cycle quantity (default ``"Capacity [A.h]"``).

        Returns:
            ``{"synthetic_data": SyntheticDataLoss, "fade_rate": FadeRateEnvelopeLoss}``.
        """
        from hybridml import SweepResult

        from ._losses import FadeRateEnvelopeLoss, SyntheticDataLoss, fade_rate_envelope

        unknown = set(options) - {"data", "weight", "margin", "n_points", "column"}
        if unknown:
            raise InvalidTypeError(
                f"loss_terms: unknown options {sorted(unknown)}; "
                "valid: data, weight, margin, n_points, column."
            )
        column = options.get("column", "Capacity [A.h]")
        data = options.get("data")
        if data is None:
            tables = [self.run().cycles]
        elif isinstance(data, SweepResult):
            tables = [d for _, d in data.succeeded]
        elif isinstance(data, Sequence):
            tables = list(data)
        else:
            tables = [data]
        if not tables:
            raise InvalidArgumentError("loss_terms: the data holds no successful simulation.")
        x = np.concatenate([t["Cycle number"] for t in tables])
        y = np.concatenate([t[column] for t in tables])
        cycles, lower, upper = fade_rate_envelope(
            tables, column=column, margin=float(options.get("margin", 0.25))
        )
        return {
            "synthetic_data": SyntheticDataLoss(x, y, weight=float(options.get("weight", 1.0))),
            "fade_rate": FadeRateEnvelopeLoss(
                cycles, lower, upper, n_points=int(options.get("n_points", 64))
            ),
        }

    # ------------------------------------------------------------------ forward

    def _forward_numpy(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outputs (n_cycles,) and their Jacobian (n_cycles, n_params) at ``values``."""
        if not self.parameter_names:
            raise InvalidArgumentError(
                "forward needs parameter_names=... (the parameters to differentiate with "
                "respect to) when the adapter is created."
            )
        if values.shape != (len(self.parameter_names),):
            raise InvalidArgumentError(
                f"forward: params has shape {values.shape}; expected "
                f"({len(self.parameter_names)},) for {self.parameter_names}."
            )
        if self.operating_conditions:
            raise InvalidArgumentError("forward does not support experiments with placeholders.")
        steps = self._check_steps(self._cycle_steps({}))
        event_steps = [
            text
            for text, step in zip(self._cycle_steps({}), steps, strict=True)
            if step.termination
        ]
        if event_steps:
            raise ExperimentError(
                f"forward needs experiment steps that end after a fixed time; {event_steps} end "
                "on an event, and sensitivities do not include how the event time moves with "
                "the parameters (the gradient would be wrong). Write them as "
                "'Discharge at 1C for 30 minutes'."
            )
        physical = 10.0**values if self.forward_scale is Scale.LOG10 else values
        params = dict(zip(self.parameter_names, map(float, physical), strict=True))
        sol = self._solve(params, sensitivities=True)
        var = sol[self.forward_variable]
        data = np.asarray(var.entries, dtype=float).reshape(-1)
        ends = np.cumsum([len(step.t) for cycle in sol.cycles for step in cycle.steps])
        per_cycle = np.cumsum([len(cycle.steps) for cycle in sol.cycles]) - 1
        idx = ends[per_cycle] - 1
        sens = var.sensitivities
        jac = np.stack(
            [np.asarray(sens[name], dtype=float).reshape(-1)[idx] for name in self.parameter_names],
            axis=1,
        )
        if self.forward_scale is Scale.LOG10:
            jac = jac * (physical * np.log(10.0))[None, :]
        return data[idx], jac

    def forward(self, params: Tensor) -> Tensor:
        """``forward_variable`` at the end of each cycle, differentiable w.r.t. ``params``.

        Args:
            params: values of :attr:`parameter_names` (log10 values when
                ``forward_scale=Scale.LOG10``), shape ``(len(parameter_names),)``.

        Returns:
            A tensor of shape ``(cycles,)`` in ``params``' dtype whose gradient comes from
            the IDAKLU solver's forward sensitivities (exact up to solver tolerance).
        """
        from ._forward import SensitivityFunction

        out: Tensor = SensitivityFunction.apply(params, self)
        return out
