"""PyBaMM adapter: outputs, degradation options, pickling, sweeps on Dask, bad input."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hybridml_pybamm import (
    ExperimentError,
    LogUniform,
    Output,
    ParameterError,
    PyBaMMAdapter,
    Uniform,
)

from hybridml import Dataset, HybridMLError, InvalidArgumentError, SimulationError, run_checks

SEI_RATE = "SEI kinetic rate constant [m.s-1]"
SEI = {"SEI": "ec reaction limited"}


@pytest.fixture(scope="module")
def cccv() -> PyBaMMAdapter:
    """SPM with SEI growth, 2 CC-CV cycles between the cut-offs (the default experiment)."""
    return PyBaMMAdapter("SPM", "Mohtat2020", options=SEI, cycles=2)


def test_import_is_lazy_and_never_prompts() -> None:
    code = (
        "import sys\n"
        "import hybridml, hybridml_pybamm\n"
        "assert 'pybamm' not in sys.modules, 'importing the adapter package imported pybamm'\n"
        "hybridml.load_simulator('pybamm')\n"
        "assert 'pybamm' not in sys.modules, 'loading the adapter class imported pybamm'\n"
        "hybridml_pybamm.PyBaMMAdapter()\n"
        "import os\n"
        "assert 'pybamm' in sys.modules\n"
        "print(os.environ['PYBAMM_DISABLE_TELEMETRY'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYBAMM_DISABLE_TELEMETRY"}
    # stdin closed: a telemetry prompt would read EOF and fail, or hang until the timeout
    out = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "true"


def test_time_series_and_cycle_table(cccv: PyBaMMAdapter) -> None:
    run = cccv.run()
    ts, cyc = run.time_series, run.cycles
    assert isinstance(ts, Dataset) and isinstance(cyc, Dataset)
    for ds in (ts, cyc):
        assert all(ds.units[c] for c in ds.columns), ds.units  # every column has a unit
        assert not ds.measured.any()  # simulated, not measured
    assert set(np.unique(ts["Cycle number"])) == {1.0, 2.0}
    assert np.all(np.diff(ts["Time [s]"]) >= 0)
    np.testing.assert_array_equal(cyc["Cycle number"], [1.0, 2.0])
    # SEI growth consumes lithium: capacity falls and the lithium lost grows
    assert cyc["Capacity [A.h]"][1] < cyc["Capacity [A.h]"][0]
    assert np.all(np.diff(cyc["Loss of capacity to negative SEI [A.h]"]) > 0)
    # a CC-CV cycle between the cut-offs discharges and charges about the capacity (the 1C
    # discharge stops 0.2 V above the lower cut-off, so it delivers somewhat less)
    ratio = cyc["Discharged charge [A.h]"] / cyc["Capacity [A.h]"]
    assert np.all((ratio > 0.8) & (ratio <= 1.0))
    lo, hi = cccv.voltage_window
    assert cyc["Minimum voltage [V]"].min() >= lo and cyc["Maximum voltage [V]"].max() <= hi + 1e-3
    report = run_checks(cccv.checks(), ts)
    assert report.passed, report.summary()
    cycles_adapter = PyBaMMAdapter("SPM", "Mohtat2020", options=SEI, cycles=2, output=Output.CYCLES)
    report = run_checks(cycles_adapter.checks(), cyc)
    assert report.passed, report.summary()


def test_degradation_mechanisms_okane2022() -> None:
    adapter = PyBaMMAdapter(
        "SPM",
        "OKane2022",
        options={
            "SEI": "solvent-diffusion limited",
            "lithium plating": "partially reversible",
            "particle mechanics": ("swelling only", "none"),
            "loss of active material": ("stress-driven", "none"),
        },
        cycles=2,
        output=Output.CYCLES,
        variables=("Current [A]", "Voltage [V]", "Discharge capacity [A.h]"),
    )
    cyc = adapter.simulate()
    # every mechanism is active: lithium lost to SEI and to plating, active material lost
    assert np.all(cyc["Loss of capacity to negative SEI [A.h]"] > 0)
    assert np.all(cyc["Loss of capacity to negative lithium plating [A.h]"] > 0)
    assert np.all(np.diff(cyc["Loss of active material in negative electrode [%]"]) > 0)
    report = run_checks(adapter.checks(), cyc)
    assert report.passed, report.summary()


def test_pickled_adapter_gives_the_same_data(cccv: PyBaMMAdapter) -> None:
    clone = pickle.loads(pickle.dumps(cccv))
    assert repr(clone) == repr(cccv)
    a = cccv.simulate({SEI_RATE: 2e-12})
    b = clone.simulate({SEI_RATE: 2e-12})
    for col in a.columns:
        np.testing.assert_array_equal(a[col], b[col])


def test_operating_condition_placeholders() -> None:
    adapter = PyBaMMAdapter(
        options=SEI,
        experiment=("Discharge at {C-rate}C for 10 minutes", "Charge at {C-rate}C for 10 minutes"),
        output=Output.CYCLES,
        initial_soc=0.8,
    )
    assert adapter.operating_conditions == ("C-rate",)
    slow = adapter.simulate({"C-rate": 0.5})
    fast = adapter.simulate({"C-rate": 1.0})
    # the same time at twice the current passes twice the charge (to solver tolerance)
    np.testing.assert_allclose(
        fast["Discharged charge [A.h]"], 2 * slow["Discharged charge [A.h]"], rtol=1e-6
    )
    with pytest.raises(ExperimentError, match="C-rate"):
        adapter.simulate({})


def test_dask_local_cluster_sweep() -> None:
    distributed = pytest.importorskip("distributed")
    # kept small: one short cycle, few variables, no eSOH summary (time-series output)
    adapter = PyBaMMAdapter(
        options=SEI,
        experiment=("Discharge at 1C for 10 minutes", "Charge at 1C for 10 minutes"),
        initial_soc=0.8,
        variables=("Voltage [V]", "Loss of capacity to negative SEI [A.h]"),
    )
    # only a PyBaMM "[input]" parameter varies: each worker builds the simulation once
    space = adapter.parameter_space({SEI_RATE: LogUniform(5e-13, 5e-12)})
    sets = space.latin_hypercube(4, seed=1)
    bad = {SEI_RATE: 1e-12, "Negative particle diffusivity [m2.s-1]": 1e-20}  # hits cut-off
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = adapter.sweep([*sets, bad], executor=client.get_executor(), progress=False)
    assert result.n_failed == 1 and result.failures[0].index == 4, result.summary()
    assert "could not run" in result.failures[0].message
    assert "1 failed" in result.summary()
    serial = adapter.sweep(sets[:2], progress=False)
    for one, other in zip(serial.results, result.results[:2], strict=True):
        assert one is not None and other is not None
        for col in one.columns:  # same code and inputs in another process: same numbers
            np.testing.assert_allclose(one[col], other[col], rtol=1e-12, err_msg=col)
    # the capacity lost to SEI grows with the SEI rate constant
    lost = [r["Loss of capacity to negative SEI [A.h]"][-1] for r in result.results[:4]]
    rates = [p[SEI_RATE] for p in sets]
    assert np.all(np.diff(np.asarray(lost)[np.argsort(rates)]) > 0)


# ------------------------------------------------------------------------- bad input


def test_unknown_parameter_lists_closest_names(cccv: PyBaMMAdapter) -> None:
    with pytest.raises(ParameterError, match="Did you mean") as info:
        cccv.simulate({"SEI kinetic rate constant [m/s]": 1e-12})
    assert repr(SEI_RATE) in str(info.value)
    # one except catches every library error, and it is still a ValueError
    assert isinstance(info.value, HybridMLError) and isinstance(info.value, ValueError)
    assert issubclass(ExperimentError, InvalidArgumentError)
    with pytest.raises(ParameterError, match="Did you mean"):
        cccv.parameter_space({"Negative particle diffusivty [m2.s-1]": Uniform(1e-15, 1e-14)})
    with pytest.raises(ParameterError, match="Did you mean"):
        PyBaMMAdapter(parameter_names=("EC diffusivity",))


def test_unknown_model_parameter_set_and_variable() -> None:
    with pytest.raises(InvalidArgumentError, match="'SPMe'"):
        PyBaMMAdapter("SPMee")
    with pytest.raises(ValueError, match="'Chen2020'"):
        PyBaMMAdapter("SPM", "Chen2021")
    with pytest.raises(ValueError, match="Did you mean"):
        PyBaMMAdapter(variables=("Voltage [v]",))


def test_negative_diffusivity_refused_before_solving(cccv: PyBaMMAdapter, tmp_path: Path) -> None:
    name = "Negative particle diffusivity [m2.s-1]"
    with pytest.raises(ParameterError, match="physical range"):
        cccv.parameter_space({name: Uniform(-1e-14, 1e-14)})
    with pytest.raises(ParameterError, match="physical range"):
        cccv.simulate({name: -1e-14})
    start = time.perf_counter()
    with pytest.raises(ParameterError, match="parameter set 1 of the sweep"):
        cccv.sweep([{name: 1e-14}, {name: -1e-14}], cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing was simulated (or cached)
    assert time.perf_counter() - start < 1.0  # refused up front, not after solving
    with pytest.raises(ParameterError, match="physical range"):
        PyBaMMAdapter(parameters={"Negative electrode porosity": 1.5})


def test_impossible_voltage_window_is_refused() -> None:
    with pytest.raises(ExperimentError, match="outside the cell's voltage window"):
        PyBaMMAdapter(experiment=("Charge at 1C until 5 V",))
    with pytest.raises(ExperimentError, match="cannot read experiment step"):
        PyBaMMAdapter(experiment=("Dischrge at 1C for 1 hour",))


def test_step_that_ends_at_once_is_an_error() -> None:
    # the cell starts full (initial_soc=1 is at the upper cut-off): charging until the
    # upper cut-off has nothing to do
    adapter = PyBaMMAdapter(
        options=SEI, experiment=("Charge at 1C until 4.2 V", "Rest for 1 minute")
    )
    start = time.perf_counter()
    with pytest.raises(SimulationError, match=re.escape("'Charge at 1C until 4.2 V'")):
        adapter.simulate()
    assert time.perf_counter() - start < 60  # an error, not a hang


def test_cut_off_during_fixed_time_step_is_an_error() -> None:
    adapter = PyBaMMAdapter(options=SEI, experiment=("Discharge at 1C for 3 hours",))
    with pytest.raises(SimulationError, match="cut-off"):
        adapter.simulate()


def test_parameters_that_cannot_be_inputs_are_swept_by_value() -> None:
    # PyBaMM's experiments refuse temperature as an "[input]"; the adapter sets it as a value
    adapter = PyBaMMAdapter(
        options=SEI,
        experiment=("Discharge at 1C for 10 minutes",),
        initial_soc=0.8,
        output=Output.CYCLES,
    )
    cool = adapter.simulate({"Ambient temperature [K]": 288.15})
    warm = adapter.simulate({"Ambient temperature [K]": 318.15})
    # SEI growth is Arrhenius-activated: more lithium is lost when warm
    assert (
        warm["Loss of capacity to negative SEI [A.h]"][0]
        > cool["Loss of capacity to negative SEI [A.h]"][0]
    )
