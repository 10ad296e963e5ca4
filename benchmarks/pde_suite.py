"""PDE suite: hybridml's default PINN recipe against DeepXDE's own training, case by case.

Each case (``benchmarks/pde_cases.py``: Burgers, DeepXDE's L-shaped Poisson, PINNacle's
lid-driven cavity NS2d-C and Poisson-Boltzmann 2-d, an inverse diffusion-reaction problem,
Allen-Cahn) is trained in one run

* by hybridml's recipe, ``hybridml_deepxde.train(adapter, budget_s=S, seed=...)``, given
  nothing but the problem (geometry, residual, conditions; the output transform where the
  case's own DeepXDE example imposes the conditions with one) and the budget;
* by DeepXDE's ``dde.Model.train`` with the settings of the case's own example (network,
  points, Adam's iterations and learning rate, L-BFGS after Adam where the example has it)
  or PINNacle's vanilla PINN, under the same wall-time budget: Adam runs until its
  iteration count or the budget is spent (2/3 of it when the example continues with
  L-BFGS), then L-BFGS until it converges, reaches DeepXDE's iteration limit or the budget.

Reported per case and method: the relative L2 error against the reference (all output
components together; the largest relative coefficient error for the inverse problem, with
the field's error beside it), the training wall time (problem set-up and error evaluations
excluded), the CPU time the process got in it (on a shared machine far less than the wall
time: it shows how loaded the machine was), and the peak resident memory of the process
during that training (the JSON adds, for the recipe, the largest child process so far: its
background compilation). A table is printed; ``--json PATH`` writes everything, ``--plot
PATH`` the error against wall time.

``--quick`` runs every case with a tiny budget (CI: the whole suite in about a minute; the
DeepXDE side with 1/8 of its points) and checks only that everything runs.

Usage: python benchmarks/pde_suite.py [--quick] [--budget S] [--cases NAME ...]
       [--methods recipe deepxde] [--json PATH] [--plot PATH] [--seed N] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import math
import random
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pde_cases import Case, select

METHODS = ("recipe", "deepxde")
QUICK_BUDGET_S = 3.0
#: the goal: the recipe's error at least this many times below DeepXDE's
GOAL_FACTOR = 10.0
#: ... within this many seconds of training per case
GOAL_WALL_S = 600.0


# ---------------------------------------------------------------------------- measurement


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (since the last :func:`_reset_peak`), MB."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children_peak_mb() -> float:
    """Peak resident memory of the largest finished child process so far (the recipe's
    background compilation runs in one), MB; 0 if none."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux); False where it cannot (then the peak is
    the process's since its start)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch, NumPy and random for DeepXDE's draws; restore all three afterwards."""
    # DeepXDE draws from NumPy's global generator (train_distribution="pseudo", its
    # polygon sampler): seeded here, restored afterwards
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)  # noqa: NPY002
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)  # noqa: NPY002
            random.setstate(py_state)


def relative_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    """``||pred - ref|| / ||ref||`` over all points and components."""
    pred = np.asarray(pred, dtype=np.float64).reshape(ref.shape)
    return float(np.linalg.norm(pred - ref) / np.linalg.norm(ref))


def _coefficient_error(case: Case, learned: dict[str, float]) -> float | None:
    if not case.inverse:
        return None
    errs = [abs(learned[k] - v) / abs(v) for k, v in case.true_parameters.items()]
    return max(errs)


# ---------------------------------------------------------------------------- the recipe


def run_recipe(case: Case, budget_s: float, seed: int) -> dict[str, Any]:
    """Train ``case`` with ``hybridml_deepxde.train``: the problem and the budget only."""
    import hybridml_deepxde

    train = getattr(hybridml_deepxde, "train", None)
    if train is None:
        raise SystemExit(
            "hybridml_deepxde.train (the default PINN recipe) is not available in this "
            "checkout; run with --methods deepxde."
        )
    # where the case's own DeepXDE example imposes its conditions with an output transform,
    # the recipe gets the same transform if it takes one, else the conditions as loss terms
    hard = case.baseline.hard and "transform" in inspect.signature(train).parameters
    adapter, transform = case.adapter(hard=hard, seed=seed)
    kwargs: dict[str, Any] = {"budget_s": budget_s, "seed": seed}
    if transform is not None:
        kwargs["transform"] = transform
    x_ref, y_ref = case.reference()
    reset = _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(adapter, **kwargs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_rss_mb()
    l2 = relative_l2(result.predict(x_ref), y_ref)
    learned = {k: float(v) for k, v in dict(getattr(result, "parameters", {}) or {}).items()}
    if case.inverse and not learned:
        learned = {k: float(p) for k, p in adapter.parameters.items()}
    return {
        "l2": l2,
        "coefficients": learned or None,
        "coefficient_error": _coefficient_error(case, learned),
        "wall_s": wall,
        "cpu_s": cpu,
        "recipe_wall_s": float(getattr(result, "wall_s", wall)),
        "peak_memory_mb": peak,
        "peak_memory_scope": "training" if reset else "process",
        "children_peak_memory_mb": _children_peak_mb(),
        "settings": _jsonable(getattr(result, "settings", {})),
        "conditions": "output transform" if transform is not None else "loss terms",
        "trace": [],
    }


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


# ---------------------------------------------------------------------------- DeepXDE


def run_deepxde(case: Case, budget_s: float, seed: int, quick: bool) -> dict[str, Any]:
    """Train ``case`` with ``dde.Model.train`` and its example's settings, within the budget.

    Adam runs the example's iterations, stopped early when the budget (2/3 of it when the
    example continues with L-BFGS) is spent; L-BFGS (DeepXDE's options, its default limit
    of 15000 iterations) runs in steps of 50 iterations, stopped when it converges or the
    budget is spent. The error is traced every ~1/20 of the budget (not timed).
    """
    from hybridml_deepxde import import_deepxde

    dde = import_deepxde()
    b = case.baseline
    x_ref, y_ref = case.reference()
    x32 = x_ref.astype(np.float32)
    sink = io.StringIO()
    trace: list[tuple[float, float]] = []

    class Budget(dde.callbacks.Callback):  # type: ignore[name-defined]
        """Stops training at the deadline; traces the error (its time excluded)."""

        def __init__(self, t0: float, every_s: float) -> None:
            super().__init__()
            self.t0, self.every_s, self.deadline = t0, every_s, math.inf
            self.excluded, self.next_trace = 0.0, every_s

        def elapsed(self) -> float:
            return time.perf_counter() - self.t0 - self.excluded

        def on_batch_end(self) -> None:
            if self.elapsed() >= self.next_trace:
                t = time.perf_counter()
                trace.append((self.elapsed(), relative_l2(self.model.predict(x32), y_ref)))
                self.next_trace = self.elapsed() + self.every_s
                self.excluded += time.perf_counter() - t
            if self.elapsed() >= self.deadline:
                self.model.stop_training = True

    opts = dde.optimizers.config.LBFGS_options
    saved_opts = dict(opts)
    with _seeded(seed), contextlib.redirect_stdout(sink):
        data, net, variables = case.deepxde_data(dde, 1 / 8 if quick else 1.0)
        model = dde.Model(data, net)
        external = list(variables.values()) or None
        reset = _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        budget = Budget(t0, budget_s / 20)
        budget.deadline = budget_s * (2 / 3 if b.lbfgs else 1.0)
        model.compile("adam", lr=b.lr, external_trainable_variables=external)
        model.train(iterations=b.adam_iterations, display_every=1000, callbacks=[budget], verbose=0)
        adam_its = int(model.train_state.step)
        lbfgs_its = 0
        if b.lbfgs and budget.elapsed() < budget_s:
            budget.deadline = budget_s
            try:
                dde.optimizers.set_LBFGS_options()  # DeepXDE's defaults: maxiter 15000
                opts["iter_per_step"] = 50  # torch L-BFGS keeps its history between steps
                opts["fun_per_step"] = opts["maxfun"] * 50 // opts["maxiter"]
                model.compile("L-BFGS", external_trainable_variables=external)
                model.train(callbacks=[budget], verbose=0)
            finally:
                opts.clear()
                opts.update(saved_opts)
            lbfgs_its = int(model.train_state.step) - adam_its
        wall = budget.elapsed()
        # (the error traces' CPU time is included here: a few per cent)
        cpu = time.process_time() - c0
        peak = _peak_rss_mb()
    l2 = relative_l2(model.predict(x32), y_ref)
    trace.append((wall, l2))
    learned = {k: float(v.detach()) for k, v in variables.items()}
    return {
        "l2": l2,
        "coefficients": learned or None,
        "coefficient_error": _coefficient_error(case, learned),
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_memory_mb": peak,
        "peak_memory_scope": "training" if reset else "process",
        "adam_iterations": adam_its,
        "adam_iterations_example": b.adam_iterations,
        "lbfgs_iterations": lbfgs_its,
        "settings": {
            "source": b.source,
            "hidden": list(b.hidden),
            "initializer": b.initializer,
            "lr": b.lr,
            "lbfgs": b.lbfgs,
            "hard": b.hard,
            "points": [data.num_domain, data.num_boundary, getattr(data, "num_initial", 0)],
        },
        "trace": trace,
    }


# ---------------------------------------------------------------------------- report


def _score(r: dict[str, Any]) -> float:
    """The error the goal compares: the coefficient error (inverse) or the field's L2."""
    ce = r.get("coefficient_error")
    return float(ce if ce is not None else r["l2"])


def table(results: dict[str, dict[str, Any]]) -> str:
    """The results as a Markdown table (one row per case and method)."""
    rows = [
        "| case | method | rel. L2 | coef. error | wall s | CPU s | peak MB | DeepXDE / recipe |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        ratio = None
        if "recipe" in runs and "deepxde" in runs:
            ratio = _score(runs["deepxde"]) / max(_score(runs["recipe"]), 1e-300)
        for method, r in runs.items():
            ce = r.get("coefficient_error")
            cpu = f"{r['cpu_s']:.0f}" if "cpu_s" in r else "—"
            rows.append(
                f"| {name} | {method} | {r['l2']:.2e} | {'' if ce is None else f'{ce:.2e}'} | "
                f"{r['wall_s']:.0f} | {cpu} | "
                f"{r['peak_memory_mb']:.0f} | "
                f"{'' if ratio is None or method != 'recipe' else f'{ratio:.1f}x'} |"
            )
    return "\n".join(rows)


def goals(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per case: the error ratio, whether the recipe used no more time, and the goal."""
    out: dict[str, dict[str, Any]] = {}
    for name, runs in results.items():
        if "recipe" not in runs or "deepxde" not in runs:
            continue
        rec, dx = runs["recipe"], runs["deepxde"]
        ratio = _score(dx) / max(_score(rec), 1e-300)
        # "the same wall time or less": 5 % slack for the step that crosses the deadline
        same_time = rec["wall_s"] <= 1.05 * dx["wall_s"]
        out[name] = {
            "error_ratio": ratio,
            "recipe_not_slower": same_time,
            "recipe_wall_s": rec["wall_s"],
            "deepxde_wall_s": dx["wall_s"],
            "met": ratio >= GOAL_FACTOR and same_time and rec["wall_s"] <= GOAL_WALL_S,
        }
    return out


def plot(results: dict[str, dict[str, Any]], path: Path, budget_s: float) -> None:
    """Relative error against training wall time, one colour per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.get_cmap("tab10")
    for i, (name, runs) in enumerate(results.items()):
        c = colours(i % 10)
        points = []
        for method, marker in (("recipe", "o"), ("deepxde", "s")):
            r = runs.get(method)
            if r is None:
                continue
            if method == "deepxde" and len(r["trace"]) > 1 and r.get("coefficient_error") is None:
                tt, ee = zip(*r["trace"], strict=True)
                ax.plot(tt, ee, color=c, lw=0.8, alpha=0.5, ls="--")
            points.append((r["wall_s"], _score(r)))
            ax.scatter(
                r["wall_s"],
                _score(r),
                color=c,
                marker=marker,
                s=50,
                label=f"{name} ({method})",
                zorder=3,
            )
        if len(points) == 2:
            ax.plot(*zip(*points, strict=True), color=c, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("training wall time [s] (2 CPU cores)")
    ax.set_ylabel("relative L2 error (inverse: coefficient error)")
    ax.set_title(
        f"PDE suite, budget {budget_s:g} s per method: recipe (o) vs DeepXDE (s); "
        "dashed: DeepXDE's error during training",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the suite; returns what ``--json`` writes."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"CI run: {QUICK_BUDGET_S:g} s each")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds per case and method (default 300)"
    )
    parser.add_argument("--cases", nargs="+", default=None, help="case names (default: all)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", help="write the error/time plot (PNG) to PATH")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    budget = args.budget if args.budget is not None else (QUICK_BUDGET_S if args.quick else 300.0)
    torch.set_num_threads(args.threads)
    cases = select(args.cases)
    t_start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for case in cases:
        runs: dict[str, Any] = {}
        for method in args.methods:
            if method == "recipe":
                r = run_recipe(case, budget, args.seed)
            else:
                r = run_deepxde(case, budget, args.seed, args.quick)
            ce = r["coefficient_error"]
            print(
                f"{case.name:20s} {method:8s} L2 {r['l2']:.3e}"
                + ("" if ce is None else f"  coef. error {ce:.3e} {r['coefficients']}")
                + f"  {r['wall_s']:.1f} s  {r['peak_memory_mb']:.0f} MB",
                flush=True,
            )
            runs[method] = r
        results[case.name] = runs
    met = goals(results)
    print()
    print(table(results))
    for name, g in met.items():
        print(
            f"  {name}: DeepXDE/recipe error {g['error_ratio']:.1f}x, recipe "
            f"{g['recipe_wall_s']:.0f} s vs DeepXDE {g['deepxde_wall_s']:.0f} s: goal "
            f"{'met' if g['met'] else 'NOT met'}"
        )
    out: dict[str, Any] = {
        "quick": bool(args.quick),
        "budget_s": budget,
        "seed": args.seed,
        "threads": args.threads,
        "cases": {
            c.name: {
                "title": c.title,
                "deepxde_source": c.baseline.source,
                "true_parameters": c.true_parameters or None,
                "notes": c.notes,
                **results[c.name],
            }
            for c in cases
        },
        "goals": met,
        "total_wall_s": time.perf_counter() - t_start,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2, default=lambda v: None)
    if args.plot:
        plot(results, Path(args.plot), budget)
    print(f"total {out['total_wall_s']:.0f} s")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
