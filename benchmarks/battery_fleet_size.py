"""The battery-ageing fleet-size curve: how many fully cycled cells does the physics save?

Error of the capacity forecast against the number of fully cycled *training* cells, on the
bundled XJTU and TJU fleets (``hybridml_battery``), for the methods ``hybrid``, ``nn``,
``fleet`` and ``physics``:

    python benchmarks/battery_fleet_size.py --jobs 2 \
        --json benchmarks/results/battery_fleet_size.json   # both fleets, 5 draws
    python benchmarks/battery_fleet_size.py --quick          # sizes 2 and 4, one draw (CI)
    python benchmarks/battery_fleet_size.py --datasets xjtu --sizes 4 16 all --draws 3

Protocol (the study's, :func:`hybridml_battery.run_battery_ageing`): N = 100 known cycles
of a test cell; cells whose data end at or before N, or with fewer than 3 known points,
are left out (and counted). The test cells are fixed: fold 0 of
``cell_folds(ids, 5)`` (``--test-cells K``: K of them, evenly spaced in file order). The
training pool is every other cell. For each size n (``--sizes``, ``all`` = the whole
pool) ``--draws`` random sets of n cells are drawn from the pool
(``numpy.random.default_rng(--seed)``; a size equal to the pool has one set), the same
sets for every method. Per set, each method is fitted on the set and each test cell's
known points and predicts its capacity after N:

* ``hybrid``: :class:`hybridml_battery.FleetHybridMethod` (its network trained once per
  set, shared by the test cells of the set through one ``memo``);
* ``nn``: :class:`hybridml_battery.NNMethod` (one ensemble per test cell and set: costly,
  so by default it is evaluated on fewer test cells, ``--nn-test-cells``);
* ``fleet``: :class:`hybridml_battery.FleetMethod` (data only);
* ``physics``: :class:`hybridml_battery.PhysicsMethod`, PyBaMM calibrated to the test
  cell alone; it does not use the training cells, so it is computed once per test cell
  and its line is flat.

Metrics (as the study defines them): ``rmse_ah``, the RMSE [A.h] over the measured cycles
after N, averaged over the test cells; ``eol_rel_error``, |predicted - true EOL| / true
EOL averaged over the test cells that reach EOL in their data (EOL: 0.9 x initial
capacity for XJTU, whose cells do not reach 0.8, 0.8 x for TJU; true EOL: first measured
cycle at or below it; predicted: the first known cycle at or below it if the window
reaches it, else the first cycle in N+1 .. 3 x last cycle where the forecast is at or
below it, else 3 x last cycle). Each set gives one value per metric (the mean over test
cells); the table and the plot show the median over the sets and their range (min-max).
``nn`` is compared with the hybrid on the test cells both were run on
(``hybrid_on_nn_cells`` in the JSON).

Cost: the JSON records the run's wall time and its jobs' CPU time (figures of a full run
are in ``docs/examples/battery-ageing.md``). The hybrid's cost grows with the size of the set (its
inner folds); ``nn``'s with the number of sets times its test cells. ``--replot`` merges
the JSONs of several runs (e.g. one per fleet, run side by side, or a rerun of some
sizes with the same draws: the draws depend only on ``--seed``, ``--draws`` and the sizes
before them).

Prints a table and the goal checks of issue 20 (the hybrid best or within 5 % of the best
at every size; at 2 and 4 cells at most half the ``nn`` error), writes the plot
(``--plot``, default ``docs/img/battery_fleet_size.png``) and ``--json PATH``. A fit that
raises is recorded under ``failures`` and left out of the means (a set whose test cells
all failed has no value for that method).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the methods of the curve, in the order of the table
METHODS = ("hybrid", "nn", "fleet", "physics")
#: the default sizes of the training set (``"all"``: the whole pool)
SIZES: tuple[int | str, ...] = (2, 4, 8, 16, 32, "all")
#: N, the last known cycle of a test cell (both fleets)
KNOWN_CYCLES = 100.0
#: EOL as a fraction of each cell's initial capacity (the study's convention)
EOL_FRACTION = {"xjtu": 0.9, "tju": 0.8}
#: folds of ``cell_folds``; fold TEST_FOLD holds the test cells
N_FOLDS, TEST_FOLD = 5, 0
METRICS = ("rmse_ah", "eol_rel_error")
#: the defaults of the full run (sized to about 25 min on 2 cores, see the module doc)
DEFAULT_DRAWS = 5
DEFAULT_NN_TEST_CELLS = 2


@dataclass
class _Job:
    """One training set (or the physics of the test cells, ``size`` None) of one fleet."""

    dataset: str
    size: int | None
    draw: int
    train_ids: list[str]
    test_ids: list[str]
    nn_ids: list[str]
    cost: float = 0.0


@dataclass
class _Scores:
    """Per method, per test cell: (rmse_ah, eol_rel_error or None); and the failures."""

    per_cell: dict[str, dict[str, tuple[float, float | None]]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: the time-scale prior the hybrid chose on the training set (pooled, matched, learned
    #: or flat; None: no hybrid fitted)
    scale_prior: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _first_at_or_below(cycles: np.ndarray, capacity: np.ndarray, threshold: float) -> float | None:
    hit = np.flatnonzero(capacity <= threshold)
    return float(cycles[hit[0]]) if hit.size else None


def score(method: Any, test: Any, window: Any, threshold: float) -> tuple[float, float | None]:
    """``(rmse_ah, eol_rel_error)`` of a fitted method on ``test`` (the study's metrics;
    the EOL error is None when the cell's data do not reach ``threshold``)."""
    unknown = test.cycle > window.known_cycles
    mean, _ = method.predict(test.cycle[unknown])
    rmse = float(np.sqrt(np.mean((np.asarray(mean) - test.capacity[unknown]) ** 2)))
    eol_true = _first_at_or_below(test.cycle, test.capacity, threshold)
    if eol_true is None:
        return rmse, None
    m = window.mask(test)
    pred = _first_at_or_below(test.cycle[m], test.capacity[m], threshold)
    if pred is None:
        # EOL may lie after the last measurement: forecast up to 3x the cell's last cycle
        grid = np.arange(math.floor(window.known_cycles) + 1, 3 * test.last_cycle + 1, dtype=float)
        g_mean, _ = method.predict(grid)
        pred = _first_at_or_below(grid, np.asarray(g_mean), threshold)
    if pred is None:
        pred = float(3 * test.last_cycle)
    return rmse, abs(pred - eol_true) / eol_true


# ------------------------------------------------------------------ running one job
_STATE: dict[str, Any] = {}  # cells, library, settings: set before the workers fork


def _run_job(job: _Job) -> _Scores:
    """Fit every method of ``job`` on its training set and score it on its test cells."""
    import torch
    from hybridml_battery import (
        FleetHybridMethod,
        FleetMethod,
        Method,
        NNMethod,
        PhysicsMethod,
        Window,
    )

    torch.set_num_threads(1)  # many tiny networks: one thread is fastest (as the study)
    t0, c0 = time.perf_counter(), time.process_time()
    cells, library, nets, seed = (_STATE[k] for k in ("cells", "library", "nets", "seed"))
    cells = cells[job.dataset]
    window = Window(KNOWN_CYCLES)
    train = [cells[c] for c in job.train_ids]
    out = _Scores()
    memo: dict[Any, Any] = {}  # the set's choices and network, shared by its test cells
    # the training cells' EOL capacity: the hybrid's inner folds score the EOL error too
    eol = {cid: EOL_FRACTION[job.dataset] * cells[cid].initial_capacity for cid in job.train_ids}
    plan: list[tuple[str, str, Callable[[], Method]]]
    if job.size is None:
        plan = [("physics", cid, lambda: PhysicsMethod(library)) for cid in job.test_ids]
    else:
        plan = []
        for cid in job.test_ids:
            plan.append(
                (
                    "hybrid",
                    cid,
                    lambda: FleetHybridMethod(library, nets, seed, eol_thresholds=eol, memo=memo),
                )
            )
            plan.append(("fleet", cid, lambda: FleetMethod(memo=memo)))
            if cid in job.nn_ids:
                plan.append(("nn", cid, lambda: NNMethod(nets, seed)))
    for name, cid, make in plan:
        test = cells[cid]
        threshold = EOL_FRACTION[job.dataset] * test.initial_capacity
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                method = make().fit(train, test, window)
                out.per_cell.setdefault(name, {})[cid] = score(method, test, window, threshold)
                if name == "hybrid":
                    chosen = method.choices() or {}
                    out.scale_prior = next(
                        (k for k in ("matched", "learned", "flat") if chosen.get(k)), "pooled"
                    )
        except Exception as exc:  # recorded and reported, not hidden
            out.failures.append(
                {
                    "dataset": job.dataset,
                    "size": job.size,
                    "draw": job.draw,
                    "method": name,
                    "cell": cid,
                    "error": f"{type(exc).__name__}: {exc}",
                    "where": traceback.format_exc(limit=-2).strip().splitlines()[-3:],
                }
            )
    out.seconds = time.perf_counter() - t0
    out.cpu_seconds = time.process_time() - c0
    return out


def _plugin_digest() -> str:
    """SHA-256 of the plug-in's modules as imported (the methods' code the run used)."""
    import hashlib

    import hybridml_battery

    h = hashlib.sha256()
    for f in sorted(Path(hybridml_battery.__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _run_all(jobs: list[_Job], processes: int) -> list[_Scores]:
    """``[_run_job(j) for j in jobs]``, on ``processes`` forked workers (longest first)."""
    results: dict[int, _Scores] = {}
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)
    t0 = time.perf_counter()

    def say(k: int, i: int) -> None:
        j = jobs[i]
        what = "physics" if j.size is None else f"n={j.size} draw {j.draw}"
        print(
            f"  [{time.perf_counter() - t0:6.0f}s] {k}/{len(jobs)} {j.dataset} {what} "
            f"({results[i].seconds:.0f}s)",
            file=sys.stderr,
            flush=True,
        )

    if processes <= 1:
        for k, i in enumerate(order, 1):
            results[i] = _run_job(jobs[i])
            say(k, i)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # forked so that the workers inherit _STATE (the cells and the PyBaMM library)
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
            futures = {pool.submit(_run_job, jobs[i]): i for i in order}
            for k, fut in enumerate(as_completed(futures), 1):
                results[futures[fut]] = fut.result()
                say(k, futures[fut])
    return [results[i] for i in range(len(jobs))]


# ------------------------------------------------------------------ the protocol
def _spread(ids: Sequence[str], k: int | None) -> list[str]:
    """``k`` of ``ids`` evenly spaced (all of them for None or k >= len)."""
    ids = list(ids)
    if k is None or k >= len(ids):
        return ids
    idx = np.unique(np.linspace(0, len(ids) - 1, max(int(k), 1)).round().astype(int))
    return [ids[i] for i in idx]


def prepare(
    dataset: str, sizes: Sequence[int | str], draws: int, test_cells: int | None,
    nn_test_cells: int | None, seed: int,
) -> tuple[dict[str, Any], list[_Job]]:  # fmt: skip
    """The cells of ``dataset``, its protocol (settings for the JSON) and its jobs."""
    from hybridml_battery import Window, cell_folds, dataset_path, load_cells

    window = Window(KNOWN_CYCLES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropped rows: counted by load_cells' own report
        cd = load_cells(dataset_path(dataset))
    cells, left_out = {}, {}
    for cid, c in cd.cells.items():
        if not (c.cycle > KNOWN_CYCLES).any():
            left_out[cid] = f"data end at cycle {c.last_cycle:g} <= N"
        elif int(window.mask(c).sum()) < 3:
            left_out[cid] = f"{int(window.mask(c).sum())} known point(s) < 3"
        else:
            cells[cid] = c
    ids = list(cells)
    folds = cell_folds(ids, N_FOLDS)
    fold0 = [cid for cid in ids if folds.fold_of[cid] == TEST_FOLD]
    test_ids = _spread(fold0, test_cells)
    nn_ids = _spread(test_ids, nn_test_cells)
    pool = [cid for cid in ids if folds.fold_of[cid] != TEST_FOLD]
    rng = np.random.default_rng(seed)
    jobs = [_Job(dataset, None, 0, [], test_ids, [], cost=0.1 * len(test_ids))]
    used_sizes: list[int] = []
    labels: dict[str, str] = {}
    for s in sizes:
        n = len(pool) if s == "all" else int(s)
        if n > len(pool) or n < 1 or n in used_sizes:
            continue
        used_sizes.append(n)
        labels[str(n)] = "all" if n == len(pool) else str(n)
        # a size equal to the pool has one set (every draw would be the same)
        for d in range(draws if n < len(pool) else 1):
            pick = sorted(rng.choice(len(pool), size=n, replace=False).tolist())
            # cost (s): the hybrid's network and inner folds grow with n; nn per test cell
            cost = 5.0 + 3.0 * n + 20.0 * len(nn_ids)
            jobs.append(_Job(dataset, n, d, [pool[i] for i in pick], test_ids, nn_ids, cost))
    skipped = [str(s) for s in sizes if s != "all" and int(s) > len(pool)]
    reach = [
        cid for cid in test_ids
        if _first_at_or_below(cells[cid].cycle, cells[cid].capacity,
                              EOL_FRACTION[dataset] * cells[cid].initial_capacity) is not None
    ]  # fmt: skip
    sets: dict[str, list[list[str]]] = {}
    for j in jobs[1:]:
        sets.setdefault(str(j.size), []).append(j.train_ids)
    info = {
        "data": str(cd.source),
        "n_cells": len(ids),
        "left_out_cells": left_out,
        "n_left_out": len(left_out),
        "known_cycles": KNOWN_CYCLES,
        "eol_fraction": EOL_FRACTION[dataset],
        "test_fold": f"fold {TEST_FOLD} of cell_folds(ids, {N_FOLDS}) ({len(fold0)} cells)",
        "test_cells": test_ids,
        "test_cells_reaching_eol": reach,
        "nn_test_cells": nn_ids,
        "pool_size": len(pool),
        "sizes": used_sizes,
        "size_labels": labels,
        "sizes_skipped_larger_than_pool": skipped,
        "training_sets": sets,
    }
    _STATE.setdefault("cells", {})[dataset] = cells
    return info, jobs


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _stats(values: list[float | None]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    return {
        "median": float(np.median(vals)) if vals else None,
        "min": float(np.min(vals)) if vals else None,
        "max": float(np.max(vals)) if vals else None,
        "draws": values,
    }


def summarise(info: dict[str, Any], jobs: list[_Job], scores: list[_Scores]) -> dict[str, Any]:
    """Per method and size: the median, min, max and per-draw values of both metrics."""
    own = next(s for j, s in zip(jobs, scores, strict=True) if j.size is None)
    physics = own.per_cell.get("physics", {})
    out: dict[str, Any] = {m: {} for m in (*METHODS, "hybrid_on_nn_cells", "physics_on_nn_cells")}
    for n in info["sizes"]:
        sets = [(j, s) for j, s in zip(jobs, scores, strict=True) if j.size == n]
        rows: dict[str, dict[str, list[float | None]]] = {}
        tested: dict[str, set[str]] = {}
        for j, s in sets:
            per = dict(s.per_cell)
            per["physics"] = physics
            per["hybrid_on_nn_cells"] = {
                c: v for c, v in s.per_cell.get("hybrid", {}).items() if c in j.nn_ids
            }
            per["physics_on_nn_cells"] = {c: v for c, v in physics.items() if c in j.nn_ids}
            for name in out:
                vals = per.get(name, {})
                tested.setdefault(name, set()).update(vals)
                for k, metric in enumerate(METRICS):
                    rows.setdefault(name, {}).setdefault(metric, []).append(
                        _mean([v[k] for v in vals.values()])
                    )
        for name in out:
            out[name][str(n)] = {
                metric: _stats(rows.get(name, {}).get(metric, [])) for metric in METRICS
            }
            out[name][str(n)]["n_test_cells"] = len(tested.get(name, ()))
    return out


def goals(res: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Issue 20's goals on one fleet: the hybrid's median best or within 5 % of the best
    median at every size, and at most half the ``nn`` median at 2 and 4 cells (``nn``
    against the hybrid on the same test cells). A size where the hybrid has no value (its
    fits failed) while a rival has one counts as missed (``hybrid_failed``); None: no
    rival has a value."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        rows = {}
        for n in info["sizes"]:
            key = str(n)
            med = {name: res[name][key][metric]["median"] for name in res}
            hyb = med["hybrid"]
            # each rival against the hybrid on the test cells both were run on
            rivals = {"fleet": (hyb, med["fleet"]), "physics": (hyb, med["physics"]),
                      "nn": (med["hybrid_on_nn_cells"], med["nn"])}  # fmt: skip
            ratios = {
                name: (h / r if h is not None and r is not None and r > 0 else None)
                for name, (h, r) in rivals.items()
            }
            known = [v for v in ratios.values() if v is not None]
            failed = hyb is None and any(r is not None for _, r in rivals.values())
            best = bool(max(known) <= 1.05) if known else (False if failed else None)
            row: dict[str, Any] = {
                "hybrid_over_rival": ratios,
                "best_or_within_5pct": best,
                "hybrid_failed": failed,
            }
            if n in (2, 4):
                r = ratios["nn"]
                nn_failed = med["hybrid_on_nn_cells"] is None and med["nn"] is not None
                row["at_most_half_nn"] = (
                    bool(r <= 0.5) if r is not None else (False if nn_failed else None)
                )
            rows[key] = row
        out[metric] = rows
    return out


# ------------------------------------------------------------------ table and plot
def _fmt(s: dict[str, Any], digits: int) -> str:
    if s["median"] is None:
        return "n/a"
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def table(results: dict[str, Any]) -> str:
    """The medians and ranges (min, max over the draws) per fleet, metric and size."""
    lines = []
    for ds, r in results.items():
        info = r["settings"]
        for metric, digits in (("rmse_ah", 4), ("eol_rel_error", 3)):
            lines.append(
                f"\n{ds}: {metric} (median [min, max] over draws; {len(info['test_cells'])} "
                f"test cells, nn on {len(info['nn_test_cells'])}; hybrid* = the hybrid on "
                "nn's cells)"
            )
            names = [*METHODS, "hybrid_on_nn_cells"]
            head = "".join(f"{('hybrid*' if m == 'hybrid_on_nn_cells' else m):>26}" for m in names)
            lines.append(f"{'cells':>9}{head}  goal")
            for n in info["sizes"]:
                key = str(n)
                label = info["size_labels"][key]
                g = r["goals"][metric][key]
                mark = {True: "best/5%", False: "MISSED", None: "n/a"}[g["best_or_within_5pct"]]
                if g.get("hybrid_failed"):
                    mark += " (hybrid failed)"
                if "at_most_half_nn" in g:
                    half = {True: "<=nn/2", False: ">nn/2", None: "nn n/a"}[g["at_most_half_nn"]]
                    mark += f", {half}"
                cols = "".join(f"{_fmt(r['methods'][m][key][metric], digits):>26}" for m in names)
                lines.append(f"{label if label == key else f'{label}={key}':>9}{cols}  {mark}")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Error vs number of training cells (log x), one panel per fleet and metric, one line
    per method (median) with the min-max band over the draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"hybrid": "C3", "nn": "C0", "fleet": "C2", "physics": "k"}
    names = {"rmse_ah": "RMSE after N [A.h]", "eol_rel_error": "EOL relative error"}
    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.8 * len(results)), squeeze=False)
    for row, (ds, r) in enumerate(results.items()):
        info = r["settings"]
        sizes = info["sizes"]
        for col, metric in enumerate(METRICS):
            ax = axes[row][col]
            for m in METHODS:
                per = [r["methods"][m][str(n)][metric] for n in sizes]
                ok = [i for i, s in enumerate(per) if s["median"] is not None]
                if not ok:
                    continue
                x = [sizes[i] for i in ok]
                med = [per[i]["median"] for i in ok]
                label = m
                if m == "nn":
                    label += f" ({len(info['nn_test_cells'])} test cell(s))"
                if m == "physics":
                    label += " (test cell alone)"
                ax.plot(x, med, "o-" if m != "physics" else "--", color=colours[m], label=label)
                if m != "physics":
                    ax.fill_between(
                        x, [per[i]["min"] for i in ok], [per[i]["max"] for i in ok],
                        color=colours[m], alpha=0.18, linewidth=0,
                    )  # fmt: skip
            # the hybrid on nn's test cells: the fair comparison with nn
            per = [r["methods"]["hybrid_on_nn_cells"][str(n)][metric] for n in sizes]
            ok = [i for i, s in enumerate(per) if s["median"] is not None]
            if ok and len(info["nn_test_cells"]) < len(info["test_cells"]):
                ax.plot([sizes[i] for i in ok], [per[i]["median"] for i in ok], ":",
                        color=colours["hybrid"], label="hybrid on nn's test cell(s)")  # fmt: skip
            ax.set_xscale("log")
            ax.set_xticks(sizes)
            ax.set_xticklabels(
                [f"{n}\n(all)" if info["size_labels"][str(n)] == "all" else str(n) for n in sizes]
            )
            ax.minorticks_off()
            ax.set_xlabel("fully cycled training cells")
            ax.set_ylabel(names[metric])
            ax.set_title(
                f"{ds.upper()}: N = {info['known_cycles']:g}, EOL {info['eol_fraction']:g} x "
                f"initial, {len(info['test_cells'])} test cells"
            )
            ax.grid(alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    fig.suptitle("Fleet-size curve: median over random training sets, band = min-max")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _merge_fleet(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the sizes of ``new`` replaced (the same test cells and pool); the whole
    of ``new`` if they differ."""
    o, n = old["settings"], new["settings"]
    if (o["test_cells"], o["nn_test_cells"], o["pool_size"]) != (
        n["test_cells"],
        n["nn_test_cells"],
        n["pool_size"],
    ):
        return new
    sizes = sorted(set(o["sizes"]) | set(n["sizes"]))
    settings = {**o, "sizes": sizes}
    for key in ("size_labels", "training_sets"):
        settings[key] = {str(k): {**o[key], **n[key]}[str(k)] for k in sizes}
    methods = {m: {**old["methods"][m], **new["methods"][m]} for m in old["methods"]}
    methods = {m: {str(k): v[str(k)] for k in sizes} for m, v in methods.items()}
    failures = [f for f in old["failures"] if f["size"] not in n["sizes"]] + new["failures"]
    return {
        **old,
        "settings": settings,
        "methods": methods,
        "failures": failures,
        "job_seconds": old.get("job_seconds", 0.0) + new.get("job_seconds", 0.0),
        "job_cpu_seconds": old.get("job_cpu_seconds", 0.0) + new.get("job_cpu_seconds", 0.0),
    }


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One JSON of the fleets of several runs' JSONs (e.g. one run per fleet, run side by
    side, or a rerun of some sizes): later runs win, size by size where the test cells and
    the pool are the same; ``runs`` lists each run's fleets, sizes and times."""
    if not runs:
        raise ValueError("merge needs at least one run")
    out: dict[str, Any] = {"settings": dict(runs[0]["settings"]), "runs": []}
    datasets: list[str] = []
    for run in runs:
        for ds in run["settings"]["datasets"]:
            out[ds] = _merge_fleet(out[ds], run[ds]) if ds in out else run[ds]
            # the goal checks are recomputed (from the medians and the settings)
            out[ds]["goals"] = goals(out[ds]["methods"], out[ds]["settings"])
            if ds not in datasets:
                datasets.append(ds)
        entry: dict[str, Any] = {
            "datasets": run["settings"]["datasets"],
            "sizes": {ds: run[ds]["settings"]["sizes"] for ds in run["settings"]["datasets"]},
        }
        entry.update({k: run[k] for k in ("wall_seconds", "job_cpu_seconds") if k in run})
        entry["jobs"] = run["settings"].get("jobs")
        entry["hybridml_battery_sha256"] = run["settings"].get("hybridml_battery_sha256")
        out["runs"].append(entry)
    out["settings"]["datasets"] = datasets
    # the sum of the runs' wall times (runs side by side took less: see "runs")
    out["wall_seconds"] = round(sum(r.get("wall_seconds", 0.0) for r in runs), 1)
    out["job_cpu_seconds"] = round(sum(r.get("job_cpu_seconds", 0.0) for r in runs), 1)
    out["machine"] = runs[-1].get("machine")
    return out


# ------------------------------------------------------------------ command line
def _size(text: str) -> int | str:
    if text == "all":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a size is an integer >= 2 or 'all', got {text!r}"
        ) from None
    if n < 2:
        raise argparse.ArgumentTypeError(f"a size is an integer >= 2 or 'all', got {text!r}")
    return n


def main(argv: list[str] | None = None) -> int:
    """Run the fleet-size curve; print the table; write the plot and ``--json``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--datasets", nargs="+", choices=sorted(EOL_FRACTION), default=["xjtu", "tju"])
    p.add_argument("--sizes", nargs="+", type=_size, default=list(SIZES),
                   help="training-set sizes (integers >= 2, 'all': the whole pool)")  # fmt: skip
    p.add_argument("--draws", type=int, default=None,
                   help=f"random training sets per size (default {DEFAULT_DRAWS}; "
                   "1 quick)")  # fmt: skip
    p.add_argument("--test-cells", type=int, default=None, metavar="K",
                   help="test cells per fleet, evenly spaced in fold 0 (default: all of "
                   "fold 0; 2 quick)")  # fmt: skip
    p.add_argument("--nn-test-cells", type=int, default=None, metavar="K",
                   help=f"of these, the ones nn is run on (default {DEFAULT_NN_TEST_CELLS}; "
                   "1 quick)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1, help="worker processes (training sets)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws and the networks")
    p.add_argument("--quick", action="store_true",
                   help="sizes 2 and 4, one draw, 2 test cells, quick networks and sweep "
                   "(CI)")  # fmt: skip
    p.add_argument("--cache-dir", type=Path, default=None, help="the PyBaMM sweep's cache")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--plot", type=Path, default=Path("docs/img/battery_fleet_size.png"))
    p.add_argument("--replot", type=Path, nargs="+", default=None, metavar="JSON",
                   help="run nothing: merge the fleets of these --json files (later files "
                   "win), print the table and write --plot (and --json)")  # fmt: skip
    args = p.parse_args(argv)
    if args.replot:
        merged = merge([json.loads(f.read_text(encoding="utf-8")) for f in args.replot])
        fleets = {ds: merged[ds] for ds in merged["settings"]["datasets"]}
        print(table(fleets))
        plot(fleets, args.plot)
        print(f"plot: {args.plot}")
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(merged, indent=1), encoding="utf-8")
            print(f"json: {args.json}")
        return 0
    if args.quick and args.sizes == list(SIZES):
        args.sizes = [2, 4]
    draws = args.draws if args.draws is not None else (1 if args.quick else DEFAULT_DRAWS)
    test_cells = args.test_cells if args.test_cells is not None else (2 if args.quick else None)
    nn_cells = args.nn_test_cells
    if nn_cells is None:
        nn_cells = 1 if args.quick else DEFAULT_NN_TEST_CELLS
    for name, v in (("--draws", draws), ("--test-cells", test_cells), ("--nn-test-cells", nn_cells),
                    ("--jobs", args.jobs)):  # fmt: skip
        if v is not None and v < 1:
            p.error(f"{name} must be at least 1, got {v}")

    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    from hybridml_battery import NetSettings, SweepDesign, default_cache_dir, fade_library

    t0 = time.perf_counter()
    digest = _plugin_digest()
    design = SweepDesign.default(args.quick)
    cache = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    library = fade_library(design, cache_dir=cache)
    nets = NetSettings.default(quick=True) if args.quick else NetSettings()
    _STATE.update(library=library, nets=nets, seed=int(args.seed))
    infos, all_jobs = {}, []
    for ds in args.datasets:
        info, jobs = prepare(ds, args.sizes, draws, test_cells, nn_cells, args.seed)
        infos[ds] = info
        all_jobs += jobs
        print(
            f"{ds}: {info['n_cells']} cells ({info['n_left_out']} left out), "
            f"{len(info['test_cells'])} test cells ({len(info['test_cells_reaching_eol'])} "
            f"reach EOL; nn on {len(info['nn_test_cells'])}), pool {info['pool_size']}, "
            f"sizes {info['sizes']}, {len(jobs) - 1} training sets",
            flush=True,
        )
    scores = _run_all(all_jobs, args.jobs)
    seconds = time.perf_counter() - t0
    results: dict[str, Any] = {}
    failures = [f for s in scores for f in s.failures]
    for ds, info in infos.items():
        pairs = [(j, s) for j, s in zip(all_jobs, scores, strict=True) if j.dataset == ds]
        methods = summarise(info, [j for j, _ in pairs], [s for _, s in pairs])
        results[ds] = {"settings": info, "methods": methods}
        results[ds]["goals"] = goals(methods, info)
        results[ds]["failures"] = [f for f in failures if f["dataset"] == ds]
        # the hybrid's time-scale prior per training set (one list per size, by draw)
        priors: dict[str, list[str | None]] = {}
        for j, s in pairs:
            if j.size is not None:
                priors.setdefault(str(j.size), []).append(s.scale_prior)
        results[ds]["hybrid_time_scale_prior"] = priors
        # the jobs' wall time (in their process) and CPU time (on a loaded machine the
        # CPU time says better what the run costs on free cores)
        results[ds]["job_seconds"] = round(sum(s.seconds for _, s in pairs), 1)
        results[ds]["job_cpu_seconds"] = round(sum(s.cpu_seconds for _, s in pairs), 1)
    print(table(results))
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for f in failures:
        grouped.setdefault((f["dataset"], f["size"], f["method"], f["error"]), []).append(f)
    for (ds, n, name, error), fs in grouped.items():
        sets = len({f["draw"] for f in fs})
        print(
            f"FAILED {ds} n={n} {name}: {error} ({len(fs)} fits: {sets} training set(s), "
            f"{len({f['cell'] for f in fs})} test cell(s); the JSON's failures)",
            flush=True,
        )
    cpu = sum(s.cpu_seconds for s in scores)
    print(f"\nwall time {seconds:.0f}s ({args.jobs} process(es)); CPU time of the jobs {cpu:.0f}s")
    plot(results, args.plot)
    print(f"plot: {args.plot}")
    if args.json is not None:
        summary = {
            "settings": {
                "datasets": args.datasets,
                "sizes": [str(s) for s in args.sizes],
                "draws": draws,
                "test_cells": test_cells,
                "nn_test_cells": nn_cells,
                "seed": args.seed,
                "quick": args.quick,
                "jobs": args.jobs,
                "networks": {
                    "n_members": nets.n_members,
                    "steps": nets.steps,
                    "hidden": list(nets.hidden),
                },
                "pybamm_sweep": library.description,
                "hybridml_battery_sha256": digest,
                "methods": list(METHODS),
                "metrics": list(METRICS),
                "spread": "min and max over the draws (training sets) of the mean over test "
                "cells; median over the draws",
            },
            "wall_seconds": round(seconds, 1),
            "job_cpu_seconds": round(cpu, 1),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            **results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1), encoding="utf-8")
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
