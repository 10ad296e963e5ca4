"""Benchmarks of the PyBaMM adapter.

Measures, on this machine:

* ``sweep_speedup_2_workers``: a sweep of ageing simulations (SPM + SEI growth, CC-CV
  cycles) on a 2-process pool vs a 1-process pool (goal >= 1.7). Both pools are warmed
  up first (each worker imports PyBaMM and builds the simulation once), so the figure is
  the steady-state throughput ratio.
* ``sweep_vs_plain_loop``: the adapter's in-process (1-worker) sweep / a plain loop of
  ``pybamm.Simulation(...).solve()`` over the same inputs that reads the same per-cycle
  summary (goal <= 1.1).
* ``grad_time_vs_fd``: time of one gradient with respect to 4 parameters from IDAKLU
  sensitivities / from central finite differences (8 solves) (goal <= 0.5).
* ``grad_rel_error_vs_fd``: the largest relative difference of the two gradients
  (goal <= 1e-3).
* ``sweep_peak_rss_gb``: peak resident memory (this process plus its worker processes) of
  a 200-run sweep (goal <= 2).

Run ``python benchmarks/pybamm_adapter.py [--json out.json] [--quick]``. It takes a few
minutes on 2 cores (``--quick``: smaller sweeps, for a smoke test).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

SEI_RATE = "SEI kinetic rate constant [m.s-1]"
GRAD_PARAMS = (
    "SEI kinetic rate constant [m.s-1]",
    "EC diffusivity [m2.s-1]",
    "EC initial concentration in electrolyte [mol.m-3]",
    "Ratio of lithium moles to SEI moles",
)
CCCV = (
    "Discharge at 1C until 3 V",
    "Rest for 5 minutes",
    "Charge at 1C until 4.2 V",
    "Hold at 4.2 V until C/20",
)


def ageing_adapter(cycles: int) -> Any:
    from hybridml_pybamm import Output, PyBaMMAdapter

    return PyBaMMAdapter(
        "SPM",
        "Mohtat2020",
        options={"SEI": "ec reaction limited"},
        experiment=CCCV,
        cycles=cycles,
        output=Output.CYCLES,
    )


def param_sets(n: int, seed: int = 0) -> list[dict[str, float]]:
    from hybridml_pybamm import LogUniform, ParameterSpace

    return ParameterSpace({SEI_RATE: LogUniform(2e-13, 5e-12)}).latin_hypercube(n, seed=seed)


def _pool(workers: int) -> ProcessPoolExecutor:
    # "spawn": fresh interpreters, as a user's pool or a Dask worker would be
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))


def bench_speedup(n: int, cycles: int) -> dict[str, float]:
    adapter = ageing_adapter(cycles)
    sets = param_sets(n)
    times = {}
    for workers in (1, 2):
        with _pool(workers) as pool:
            warm = adapter.sweep(param_sets(workers, seed=99), executor=pool, progress=False)
            assert warm.n_failed == 0, warm.failures
            start = time.perf_counter()
            result = adapter.sweep(sets, executor=pool, progress=False)
            times[workers] = time.perf_counter() - start
            assert result.n_failed == 0, result.failures
    return {
        "sweep_1_worker_s": times[1],
        "sweep_2_workers_s": times[2],
        "sweep_speedup_2_workers": times[1] / times[2],
    }


def bench_plain_loop(n: int, cycles: int) -> dict[str, float]:
    import pybamm

    adapter = ageing_adapter(cycles)
    sets = param_sets(n, seed=1)
    adapter.sweep(sets[:1], progress=False)  # build once, as the plain loop's imports are
    start = time.perf_counter()
    result = adapter.sweep(sets, progress=False)
    t_adapter = time.perf_counter() - start
    assert result.n_failed == 0

    start = time.perf_counter()
    plain = []
    for p in sets:
        model = pybamm.lithium_ion.SPM({"SEI": "ec reaction limited"})
        pv = pybamm.ParameterValues("Mohtat2020")
        pv = pv.set_initial_state(1.0)
        pv.update(p)
        sim = pybamm.Simulation(
            model,
            parameter_values=pv,
            experiment=pybamm.Experiment([CCCV] * cycles),
            solver=pybamm.IDAKLUSolver(rtol=adapter.rtol, atol=adapter.atol),
        )
        sol = sim.solve()
        plain.append(np.asarray(sol.summary_variables["Capacity [A.h]"]))
    t_plain = time.perf_counter() - start
    ours = [r["Capacity [A.h]"] for r in result.results if r is not None]
    # same physics and solver tolerances either way: the capacities agree to ~solver rtol
    err = max(float(np.max(np.abs(a - b) / b)) for a, b in zip(ours, plain, strict=True))
    return {
        "sweep_in_process_s": t_adapter,
        "plain_loop_s": t_plain,
        "sweep_vs_plain_loop": t_adapter / t_plain,
        "sweep_vs_plain_capacity_rel_diff": err,
    }


def bench_gradient(cycles: int) -> dict[str, float]:
    from hybridml_pybamm import Output, PyBaMMAdapter, Scale

    adapter = PyBaMMAdapter(
        "SPM",
        "Mohtat2020",
        options={"SEI": "ec reaction limited"},
        experiment=(
            "Discharge at 1C for 20 minutes",
            "Rest for 5 minutes",
            "Charge at 1C for 20 minutes",
        ),
        cycles=cycles,
        initial_soc=0.8,
        output=Output.CYCLES,
        parameter_names=GRAD_PARAMS,
        forward_scale=Scale.LOG10,
        rtol=1e-8,
        atol=1e-10,
    )
    import pybamm

    pv = pybamm.ParameterValues("Mohtat2020")
    p0 = torch.tensor([np.log10(float(pv[n])) for n in GRAD_PARAMS], dtype=torch.float64)
    weights = torch.linspace(1.0, 2.0, cycles, dtype=torch.float64)

    def objective(p: torch.Tensor) -> torch.Tensor:
        return (adapter.forward(p) * weights).sum()

    # warm up both paths (each builds its simulation once)
    objective(p0.clone().requires_grad_(True)).backward()
    with torch.no_grad():
        objective(p0)

    reps = 3
    start = time.perf_counter()
    for _ in range(reps):
        p = p0.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(p), p)
    t_sens = (time.perf_counter() - start) / reps

    h = 1e-4  # in log10 units: a relative step of 2.3e-4
    start = time.perf_counter()
    for _ in range(reps):
        fd = torch.empty_like(p0)
        with torch.no_grad():
            for i in range(len(GRAD_PARAMS)):
                up, down = p0.clone(), p0.clone()
                up[i] += h
                down[i] -= h
                fd[i] = (objective(up) - objective(down)) / (2 * h)
    t_fd = (time.perf_counter() - start) / reps
    rel = float(torch.max(torch.abs(grad - fd) / torch.abs(fd)))
    return {
        "grad_sensitivities_s": t_sens,
        "grad_finite_differences_s": t_fd,
        "grad_time_vs_fd": t_sens / t_fd,
        "grad_rel_error_vs_fd": rel,
    }


def bench_memory(n: int, cycles: int) -> dict[str, float]:
    adapter = ageing_adapter(cycles)
    with _pool(2) as pool:
        result = adapter.sweep(param_sets(n, seed=2), executor=pool, progress=False)
    assert result.n_failed == 0
    # ru_maxrss is in KiB on Linux: the peak of this process and of the largest child
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {
        "sweep_runs_for_memory": float(n),
        "sweep_peak_rss_gb": own + 2 * child,  # two workers, each at most the largest child
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("speedup", "plain loop", "gradient", "memory"),
        help="run only these benchmarks",
    )
    args = parser.parse_args(argv)
    n_sweep, n_memory, cycles = (8, 20, 3) if args.quick else (40, 200, 10)
    # other processes on the machine distort the timings (the speed-up above all): record
    # the load so that a figure taken on a busy machine can be recognised as such
    figures: dict[str, float] = {"load_average_at_start": os.getloadavg()[0]}
    for name, fn in (
        ("speedup", lambda: bench_speedup(n_sweep, cycles)),
        ("plain loop", lambda: bench_plain_loop(max(n_sweep // 4, 4), cycles)),
        ("gradient", lambda: bench_gradient(4)),
        ("memory", lambda: bench_memory(n_memory, 3)),
    ):
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        figures.update(fn())
        figures[f"load_average_after_{name.replace(' ', '_')}"] = os.getloadavg()[0]
        print(f"[{name}: {time.perf_counter() - start:.1f} s]", file=sys.stderr)
    goals = {
        "sweep_speedup_2_workers": ">= 1.7",
        "sweep_vs_plain_loop": "<= 1.1",
        "grad_time_vs_fd": "<= 0.5",
        "grad_rel_error_vs_fd": "<= 1e-3",
        "sweep_peak_rss_gb": "<= 2",
    }
    print(f"{'figure':<36} {'value':>12}  goal")
    for key, value in figures.items():
        print(f"{key:<36} {value:>12.4g}  {goals.get(key, '')}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({k: figures.get(k) for k in goals} | {"details": figures}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
