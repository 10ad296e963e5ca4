"""The battery-ageing study: folds over cells, four methods, metrics, checks, report."""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridml import DataError, InvalidArgumentError, RunFolder

from ._baselines import EmpiricalMethod, LinearMethod
from ._data import Cell, CellData, check_eol_thresholds, load_cells
from ._datasets import DATASETS, bundled_dataset
from ._fleet import FleetMethod
from ._methods import (
    ABLATIONS,
    METHODS,
    HybridMethod,
    Method,
    NetSettings,
    NNMethod,
    PhysicsMethod,
    Window,
)
from ._physics import (
    REFERENCE_AH,
    REGEN_MIN_AH,
    REGEN_TAUS,
    FadeLibrary,
    SweepDesign,
    default_cache_dir,
    fade_library,
)
from ._protocol import (
    FoldJob,
    cell_folds,
    error_curve_grid,
    fold_jobs,
    leave_out_short_cells,
    run_jobs,
)

__all__ = ["BENCHMARK_CELLS", "BatteryResult", "run_battery_ageing"]

BENCHMARK_CELLS: tuple[str, ...] = DATASETS["nasa"].cells or ()
COVERAGE = 0.9
# largest capacity regeneration step seen in the NASA data (README: 20-150 mAh): a
# predicted rise up to this size is physical, a larger one is not
REGEN_TOL_AH = 0.15


@dataclass
class BatteryResult:
    """What :func:`run_battery_ageing` produced.

    Attributes:
        out: the output folder.
        metrics: the content of ``metrics.json``.
        consistency: the content of ``consistency.json``.
        seconds: wall time of the run.
    """

    out: Path
    metrics: dict[str, Any]
    consistency: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """The methods table (mean over cells) as text."""
        lines = [f"{'method':<10} {'rmse_ah':>9} {'eol_rel_error':>14} {'coverage90':>11}"]
        for name, m in self.metrics["methods"].items():
            lines.append(
                f"{name:<10} {_f(m['rmse_ah']):>9} {_f(m['eol_rel_error']):>14} "
                f"{_f(m['coverage90']):>11}"
            )
        for name, m in (self.metrics.get("ablations") or {}).items():
            lines.append(
                f"ablation {name}: rmse_ah {_f(m['rmse_ah'])}, "
                f"eol_rel_error {_f(m['eol_rel_error'])} (the hybrid without its network)"
            )
        return "\n".join(lines)


def _f(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _eol(cycles: np.ndarray, capacity: np.ndarray, threshold: float) -> float | None:
    """First cycle at or below ``threshold`` (None if never)."""
    hit = np.flatnonzero(capacity <= threshold)
    return float(cycles[hit[0]]) if hit.size else None


def _make(
    name: str,
    library: FadeLibrary,
    nets: NetSettings,
    seed: int,
    memo: dict[Any, Any] | None = None,
) -> Method:
    """The method ``name``; ``memo`` is shared by the test cells of one fold (the baselines'
    choices on the training cells are made once per fold)."""
    if name == "hybrid":
        return HybridMethod(library, nets, seed)
    if name == "nn":
        return NNMethod(nets, seed)
    if name == "physics":
        return PhysicsMethod(library)
    if name == "physics-fleet":
        return PhysicsMethod(library, fleet=True)
    if name == "linear":
        return LinearMethod(memo=memo)
    if name == "fleet":
        return FleetMethod(memo=memo)
    return EmpiricalMethod(memo=memo)


def _conformal_q(scores: list[float], coverage: float) -> float | None:
    """Split-conformal multiplier: the ceil((n+1)·coverage)-th smallest score."""
    s = np.sort(np.asarray(scores))
    n = s.size
    k = math.ceil((n + 1) * coverage)
    if n == 0 or k > n:
        return None
    return float(s[k - 1])


@dataclass
class _Fold:
    cell: str
    known: int
    method: str
    cycles: np.ndarray
    mean: np.ndarray
    lower: np.ndarray | None
    upper: np.ndarray | None
    eol_pred: float | None
    q: float | None = None


def _checks(initial: float, scale: float = REFERENCE_AH) -> list[Any]:
    """Physics-consistency checks of one cell's predictions (the regeneration tolerance
    scales with the cell's capacity ``scale``, :func:`._physics.capacity_scale`)."""
    from hybridml import Bounds, CustomCheck, Monotone

    def interval_ordered(data: Any, model: Any = None) -> Any:
        lo = np.asarray(data["capacity_ah_lower"], dtype=float)
        hi = np.asarray(data["capacity_ah_upper"], dtype=float)
        mu = np.asarray(data["capacity_ah_pred"], dtype=float)
        if np.all(np.isnan(lo)):
            return np.zeros_like(mu)
        return np.maximum(lo - mu, 0.0) + np.maximum(mu - hi, 0.0)

    tol = REGEN_TOL_AH * (scale / REFERENCE_AH)
    return [
        # capacity is positive and cannot exceed the cell's initial capacity by more than
        # the largest regeneration step
        Bounds(
            "capacity_ah_pred",
            lower=0.0,
            upper=initial + tol,
            name="capacity within (0, initial + regeneration]",
        ),
        # a cell does not gain capacity over cycles, except by a regeneration step
        Monotone(
            "capacity_ah_pred",
            "cycle",
            direction="decreasing",
            tolerance=tol,
            name=f"capacity fades (rises <= {tol:g} Ah)",
        ),
        CustomCheck(interval_ordered, name="interval contains the prediction"),
    ]


class _Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(
                f"[battery-ageing {time.perf_counter() - self.t0:6.1f}s] {msg}",
                file=sys.stderr,
                flush=True,
            )


def run_battery_ageing(
    data: str | Path | None = None,
    *,
    dataset: str | None = None,
    cells: Sequence[str] | None = None,
    known_cycles: int | None = None,
    every: int = 1,
    eol_ah: float | None = None,
    eol_fraction: float | None = None,
    capacity_unit: str | None = None,
    out: str | Path = "runs/battery-ageing",
    quick: bool = False,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    known_curve: Sequence[int] | None = None,
    folds: int | None = None,
    workers: int = 2,
    progress: bool = True,
    jobs: int = 1,
    executor: Executor | None = None,
) -> BatteryResult:
    """Predict capacity fade and end of life of each cell from its early cycles.

    Leave one cell out (or ``folds`` folds of cells): for each test cell every method sees
    the other cells (those of the other folds) in full and the test cell's cycles <=
    ``known_cycles`` (every ``every``-th), and predicts its capacity at every later
    measured cycle, with a 90 % interval where the method has one, and its end-of-life
    (EOL) cycle. Writes ``predictions.csv``, ``metrics.json``,
    ``consistency.json``, ``figures/*.png``, ``report.md`` and ``manifest.json`` (data
    hash, seed, protocol, versions and command, as ``hybridml run`` writes it; see
    :func:`hybridml.run_manifest`) to ``out``.

    Args:
        data: CSV with columns ``cell_id, cycle, capacity_ah`` (see
            :func:`hybridml_battery.load_cells`); None: the bundled data set ``dataset``.
        dataset: the name of a bundled data set (:data:`hybridml_battery.DATASETS`) when
            ``data`` is None; default ``"nasa"``, the NASA PCoE cells B0005, B0006, B0007,
            B0018. Give at most one of ``data`` and ``dataset``.
        cells: cell ids to use (all cells of the file; a bundled data set's default cells,
            e.g. the four benchmark cells of ``"nasa"``).
        known_cycles: N, the last cycle the model sees of a test cell (default: the bundled
            data set's, 60 for ``"nasa"`` and 100 for ``"xjtu"`` and ``"tju"``; 60 for
            your own file).
        every: use every K-th of the known cycles.
        eol_ah: EOL capacity [A.h] (default 1.4 for the bundled NASA cells).
        eol_fraction: EOL as a fraction of each cell's initial capacity (mean of its first
            5 cycles); default 0.8 for your own data. Give at most one of the two.
        capacity_unit: the unit of the file's capacities, ``"Ah"`` or ``"mAh"``
            (converted); None: A.h, and a file implausible for A.h (median above 100) is
            refused (see :func:`hybridml_battery.load_cells`).
        out: output folder.
        quick: a smaller PyBaMM sweep, smaller ensembles, no error-vs-N curve (for CI).
        seed: seed of the networks.
        cache_dir: where PyBaMM simulations are cached (default
            ``~/.cache/hybridml/pybamm-fade``, or ``$HYBRIDML_CACHE``).
        known_curve: the values of N of the error-vs-N figure, with ``known_cycles``
            always among them (default: 20, 40, 60, 80 for ``"nasa"``; otherwise fractions
            :data:`hybridml_battery.CURVE_FRACTIONS` of the cells' median life, see
            :func:`hybridml_battery.error_curve_grid`; only ``known_cycles`` with
            ``quick``).
        folds: the number of folds over cells (:class:`hybridml.GroupKFold`, each fold's
            cells tested by models fitted on the other folds' cells); default: leave one
            cell out (:class:`hybridml.LeaveOneGroupOut`) up to 10 cells, 5 folds above.
        workers: processes for the PyBaMM sweep.
        progress: print progress lines to stderr.
        jobs: run the folds (one job per fold and N) on a pool of this many processes
            (:class:`concurrent.futures.ProcessPoolExecutor`); 1: in this process. The
            results are the same as a serial run's (every fold is a pure function of its
            cells, settings and seeds; each job runs torch on one thread).
        executor: run the fold jobs on this :class:`concurrent.futures.Executor` instead
            (e.g. a Dask client's ``client.get_executor()`` to scale out); ``jobs`` is then
            ignored. The caller keeps it open and shuts it down.

    Returns:
        A :class:`BatteryResult`.

    Raises:
        hybridml.DataError: invalid data or settings (the message names the cell/row).
        hybridml.InvalidArgumentError: an unknown ``dataset`` (the message lists the
            available ones), both ``data`` and ``dataset``, or ``folds`` larger than the
            number of cells (the message names both).

    Warns:
        BatteryDataWarning: for dropped rows, and once for the cells whose data end at or
            before N: they are left out (neither tested nor used for training) and counted
            in the report and in ``metrics.json`` (``settings.left_out_cells``).
        hybridml.SimulationError: the PyBaMM sweep failed.
    """
    t_start = time.perf_counter()
    log = _Log(progress)
    if data is not None and dataset is not None:
        raise InvalidArgumentError(
            f"give either data (--data, got {str(data)!r}) or dataset (--dataset, got "
            f"{dataset!r}), not both."
        )
    bundled = data is None
    if bundled:
        info = bundled_dataset(dataset or "nasa")
        data = info.path
        if cells is None and info.cells is not None:
            cells = list(info.cells)
        if eol_ah is None and eol_fraction is None:
            eol_ah, eol_fraction = info.eol_ah, info.eol_fraction
        if known_cycles is None:
            known_cycles = info.known_cycles
    if known_cycles is None:
        known_cycles = 60
    if eol_ah is not None and eol_fraction is not None:
        raise DataError("give either eol_ah (--eol-ah) or eol_fraction (--eol-fraction), not both.")
    if eol_ah is None and eol_fraction is None:
        eol_fraction = 0.8
    if eol_ah is not None and not eol_ah > 0:
        raise DataError(f"eol_ah must be positive, got {eol_ah}.")
    if eol_fraction is not None and not 0 < eol_fraction < 1:
        raise DataError(f"eol_fraction must lie in (0, 1), got {eol_fraction}.")
    if int(every) < 1:
        raise DataError(f"every (--every) must be at least 1, got {every}.")
    if not known_cycles > 0:
        raise DataError(f"known_cycles (--known-cycles) must be positive, got {known_cycles}.")
    assert data is not None
    out = Path(out)
    folder = RunFolder(out)  # a file or an unwritable place is refused now, before any work
    cd = load_cells(data, cells=cells, capacity_unit=capacity_unit)
    cd, left_out = leave_out_short_cells(cd, float(known_cycles))
    if len(cd.cells) < 2:
        raise DataError(
            f"file '{cd.source}': the study needs at least 2 cells with cycles after "
            f"N={known_cycles}; found {len(cd.cells)} ({', '.join(cd.cells)})"
            f"{f'; {len(left_out)} end at or before N' if left_out else ''}."
        )
    protocol = cell_folds(list(cd.cells), folds)
    window = Window(float(known_cycles), int(every))
    for c in cd.cells.values():
        _check_window(cd, c, window)
    thresholds = {
        cid: (
            float(eol_ah) if eol_ah is not None else float(eol_fraction or 0.8) * c.initial_capacity
        )
        for cid, c in cd.cells.items()
    }
    how = f"--eol-ah {eol_ah:g}" if eol_ah is not None else f"--eol-fraction {eol_fraction:g}"
    check_eol_thresholds(cd, thresholds, how)
    curve, curve_rule = error_curve_grid(
        cd, int(known_cycles), known_curve, (dataset or "nasa") if bundled else None, quick
    )
    log(
        f"data: {len(cd.cells)} cells from {cd.source}"
        f"{f' ({len(left_out)} left out: data end at or before N)' if left_out else ''}; "
        f"N={known_cycles}, every={every}; {protocol.split}"
    )

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    design = SweepDesign.default(quick)
    log(
        f"PyBaMM fade sweep: {len(design.param_sets())} simulations of {design.cycles} cycles "
        f"(cache {cache})"
    )
    library = fade_library(design, cache_dir=cache, workers=workers, progress=None)
    log(
        f"PyBaMM sweep done in {library.seconds:.1f}s ({library.n_cached} from cache, "
        f"{len(library.failures)} failed)"
    )
    nets = NetSettings.default(quick)

    ids = list(cd.cells)
    fold_list, skipped = fold_jobs(
        cd, protocol, curve, int(every), int(known_cycles), thresholds, _window_problem
    )
    log(
        f"{len(fold_list)} fold jobs (N in {curve}, {curve_rule}); "
        + (f"on {executor!r}" if executor is not None else f"{max(int(jobs), 1)} process(es)")
    )
    run = functools.partial(_run_fold_job, library=library, nets=nets, seed=int(seed))
    per_job = run_jobs(run, fold_list, processes=jobs, executor=executor, log=log)
    # in the serial order (N, then cell), whatever order the jobs ran in
    by_cell: dict[tuple[int, str], list[_Fold]] = {}
    for f in itertools.chain.from_iterable(per_job):
        by_cell.setdefault((f.known, f.cell), []).append(f)
    results = [f for n in curve for cid in ids for f in by_cell.get((n, cid), [])]
    # ------------------------------------------------------------------ outputs
    main_folds = [f for f in results if f.known == int(known_cycles)]
    consistency = _consistency(cd, main_folds)
    metrics = _metrics(cd, main_folds, thresholds)
    curve_rows = _curve(cd, results, thresholds)
    settings = {
        "data": str(cd.source),
        "bundled": bundled,
        "dataset": (dataset or "nasa") if bundled else None,
        "cells": ids,
        "split": protocol.split,
        "folds": protocol.n_folds,
        "fold_of_cell": protocol.fold_of,
        "left_out_cells": {cid: {"last_cycle": last} for cid, last in left_out.items()},
        "cell_conditions": {
            cid: {
                **({"condition": c.condition} if c.condition is not None else {}),
                **c.conditions,
            }
            for cid, c in cd.cells.items()
        },
        "known_cycles": int(known_cycles),
        "every": int(every),
        "eol_ah": eol_ah,
        "eol_fraction": eol_fraction,
        "eol_threshold_ah": thresholds,
        "quick": bool(quick),
        "seed": int(seed),
        "coverage": COVERAGE,
        "methods": list(METHODS),
        "ablations": {
            "physics-fleet": "the hybrid without its network correction and rate factor: "
            "the PyBaMM library identified from the test cell's known points with the "
            "training cells' prior on the time scale and their regeneration recovery time "
            "(not a baseline: it uses the other cells' measurements)"
        },
        "networks": {"n_members": nets.n_members, "steps": nets.steps, "hidden": list(nets.hidden)},
        "pybamm_sweep": {
            "description": library.description,
            "n_simulations": len(design.param_sets()),
            "n_succeeded": len(library) // len(design.onsets),
            "fade_onsets_simulated_cycles": list(design.onsets),
            "failures": list(library.failures),
            "n_cached": library.n_cached,
            "seconds": round(library.seconds, 2),
        },
        "regeneration": {
            "min_rise_ah": REGEN_MIN_AH,
            "min_rise_scales_with": f"capacity_scale / {REFERENCE_AH:g} A.h",
            "capacity_scale_ah": {cid: c.capacity_scale for cid, c in cd.cells.items()},
            "recovery_time_candidates_cycles": list(REGEN_TAUS),
            "chosen_by": "leave-one-cell-out prediction of the training cells after N",
        },
        "known_curve": curve,
        "known_curve_rule": curve_rule,
        "jobs": int(jobs) if executor is None else repr(executor),
    }
    metrics = {"settings": settings, **metrics, "error_vs_known": curve_rows}
    # the run folder is written beside `out` and moved into place when complete: a killed
    # run leaves the older folder (and one marked INCOMPLETE); no stale file survives
    with folder:
        assert folder.path is not None
        tmp = folder.path
        (tmp / "figures").mkdir()
        _write_predictions(tmp / "predictions.csv", main_folds)
        seconds = time.perf_counter() - t_start
        metrics["settings"]["seconds"] = round(seconds, 1)
        _write_json(tmp / "metrics.json", metrics)
        _write_json(tmp / "consistency.json", consistency)
        _write_json(tmp / "manifest.json", _manifest(settings, cd))
        log("figures")
        from ._report import write_figures, write_report

        figures = write_figures(tmp / "figures", cd, main_folds, thresholds, curve_rows, window)
        write_report(tmp / "report.md", cd, metrics, consistency, figures, skipped)
    seconds = time.perf_counter() - t_start
    log(f"done in {seconds:.1f}s; outputs in {out}")
    return BatteryResult(out=out, metrics=metrics, consistency=consistency, seconds=seconds)


def _protocol(settings: dict[str, Any]) -> dict[str, Any]:
    """The protocol of a run, as the manifest and the report name it."""
    return {
        "split": settings["split"],
        "folds": settings["folds"],
        "known_cycles": settings["known_cycles"],
        "every": settings["every"],
        "eol_ah": settings["eol_ah"],
        "eol_fraction": settings["eol_fraction"],
        "known_curve": settings["known_curve"],
        "coverage": settings["coverage"],
        "quick": settings["quick"],
    }


def _manifest(settings: dict[str, Any], cd: CellData) -> dict[str, Any]:
    """``manifest.json``: what a colleague needs to reproduce the run."""
    from hybridml import run_manifest

    from . import __version__

    return run_manifest(
        seed=int(settings["seed"]),
        inputs={"data": cd.source},
        study="battery-ageing",
        plugin={"hybridml-battery": __version__},
        dataset=settings["dataset"],
        cells=list(settings["cells"]),
        protocol=_protocol(settings),
    )


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (:func:`hybridml.atomic_write`): a reader never
    sees a half-written file."""
    from hybridml import atomic_write

    atomic_write(path, lambda f: json.dump(obj, f, indent=2))


def _window_problem(cell: Cell, window: Window) -> str | None:
    n_known = int(window.mask(cell).sum())
    if n_known < 3:
        return (
            f"only {n_known} known point(s) at cycles <= {window.known_cycles:g}"
            f"{f' (every {window.every}th)' if window.every > 1 else ''}; at least 3 are needed"
        )
    if not (cell.cycle > window.known_cycles).any():
        return (
            f"no measured cycle after N={window.known_cycles:g} (its last cycle is "
            f"{cell.last_cycle:g}), so there is nothing to predict"
        )
    return None


def _check_window(cd: CellData, cell: Cell, window: Window) -> None:
    why = _window_problem(cell, window)
    if why is not None:
        first = int(cell.lines[0])
        raise DataError(
            f"file '{cd.source}': cell {cell.cell_id!r} (rows from line {first}): {why}. "
            "Change --known-cycles/--every or leave the cell out with --cells."
        )


def _run_fold_job(
    job: FoldJob, *, library: FadeLibrary, nets: NetSettings, seed: int
) -> list[_Fold]:
    """Every test cell of one fold at one N (a job of :func:`run_jobs`; runs in a worker
    process with ``--jobs``). Torch runs on one thread here, as the command does (the
    study trains many tiny networks: one thread is faster and the same in every process)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        window = Window(float(job.known_cycles), job.every)
        train = [job.cells[k] for k in job.train_ids]
        memo: dict[Any, Any] = {}  # the fold's choices on its training cells, shared
        out: list[_Fold] = []
        for cid in job.test_ids:
            test, thr = job.cells[cid], job.thresholds[cid]
            out += _run_fold(test, train, window, thr, library, nets, seed, job.main, memo)
        return out
    finally:
        torch.set_num_threads(threads)


def _run_fold(
    test: Cell,
    train: list[Cell],
    window: Window,
    threshold: float,
    library: FadeLibrary,
    nets: NetSettings,
    seed: int,
    main: bool,
    memo: dict[Any, Any] | None = None,
) -> list[_Fold]:
    unknown = test.cycle > window.known_cycles
    cycles = test.cycle[unknown]
    # EOL may lie after the last measurement: predict up to 3x the cell's last cycle
    grid = np.arange(math.floor(window.known_cycles) + 1, 3 * test.last_cycle + 1, dtype=float)
    out = []
    for name in (*METHODS, *ABLATIONS):
        method = _make(name, library, nets, seed, memo).fit(train, test, window)
        mean, scale = method.predict(cycles)
        g_mean, _ = method.predict(grid)
        known_eol = _eol(test.cycle[window.mask(test)], test.capacity[window.mask(test)], threshold)
        eol_pred = known_eol if known_eol is not None else _eol(grid, g_mean, threshold)
        lower = upper = None
        q = None
        if scale is not None and main:
            q = _calibrate(name, train, window, library, nets, seed, method, memo)
            if q is not None:
                lower, upper = mean - q * scale, mean + q * scale
        out.append(
            _Fold(
                test.cell_id,
                int(window.known_cycles),
                name,
                cycles,
                mean,
                lower,
                upper,
                eol_pred,
                q,
            )
        )
    return out


def _calibrate(
    name: str,
    train: list[Cell],
    window: Window,
    library: FadeLibrary,
    nets: NetSettings,
    seed: int,
    fitted: Method | None = None,
    memo: dict[Any, Any] | None = None,
) -> float | None:
    """Conformal multiplier from an inner leave-one-cell-out over the training cells.

    The hybrid reuses the inner folds it ran to choose its share of the correction
    (same training cells, seeds and settings), scored at the share it chose. A method that
    chose settings on the training cells is refitted with those settings
    (:meth:`Method.calibration_method`). The multiplier depends on the training cells and
    the window only (never on the test cell), so it is computed once per fold (``memo``)."""
    if isinstance(fitted, HybridMethod) and fitted.inner_ is not None:
        q = _conformal_q(fitted.inner_scores(), COVERAGE)
        return q if q is not None else 1.645  # too few scores: a Gaussian 90 % multiplier
    key = ("conformal_q", name, window, tuple(c.cell_id for c in train))
    if memo is not None and key in memo:
        return float(memo[key])
    scores: list[float] = []
    for j, held in enumerate(train):
        if len(train) < 2 or _window_problem(held, window) is not None:
            continue
        rest = [c for i, c in enumerate(train) if i != j]
        fresh = fitted.calibration_method() if fitted is not None else None
        if fresh is None:
            fresh = _make(name, library, nets, seed + 1000 * (j + 1))
        m = fresh.fit(rest, held, window)
        unk = held.cycle > window.known_cycles
        mu, sd = m.predict(held.cycle[unk])
        assert sd is not None
        scores += list(np.abs(held.capacity[unk] - mu) / sd)
    q = _conformal_q(scores, COVERAGE)
    q = q if q is not None else 1.645  # too few scores: a Gaussian 90 % multiplier
    if memo is not None:
        memo[key] = q
    return q


def _metrics(cd: CellData, folds: list[_Fold], thresholds: dict[str, float]) -> dict[str, Any]:
    cells: dict[str, dict[str, Any]] = {}
    for f in folds:
        c = cd.cells[f.cell]
        unk = c.cycle > f.known
        y = c.capacity[unk]
        eol_true = _eol(c.cycle, c.capacity, thresholds[f.cell])
        rel = None
        if eol_true is not None:
            pred = f.eol_pred if f.eol_pred is not None else float(3 * c.last_cycle)
            rel = abs(pred - eol_true) / eol_true
        cov = None
        if f.lower is not None and f.upper is not None:
            cov = float(np.mean((y >= f.lower) & (y <= f.upper)))
        cells.setdefault(f.cell, {})[f.method] = {
            "rmse_ah": float(np.sqrt(np.mean((f.mean - y) ** 2))),
            "eol_true": eol_true,
            "eol_pred": f.eol_pred,
            "eol_rel_error": rel,
            "coverage90": cov,
        }
    summary: dict[str, dict[str, Any]] = {"methods": {}, "ablations": {}}
    for key, names in (("methods", METHODS), ("ablations", ABLATIONS)):
        for name in names:
            rows = [cells[c][name] for c in cells if name in cells[c]]
            if not rows:
                continue
            summary[key][name] = {
                "rmse_ah": _mean([r["rmse_ah"] for r in rows]),
                "eol_rel_error": _mean([r["eol_rel_error"] for r in rows]),
                "coverage90": _mean([r["coverage90"] for r in rows]),
                # every tested cell counts in the RMSE; the EOL error only where the
                # cell's measured capacity reaches EOL
                "n_cells": len(rows),
                "n_cells_eol": sum(r["eol_rel_error"] is not None for r in rows),
            }
    never = [c for c, per in cells.items() if all(v["eol_true"] is None for v in per.values())]
    eol = {"n_cells": len(cells), "n_reach_eol": len(cells) - len(never), "never_reach_eol": never}
    return {"cells": cells, **summary, "eol": eol}


def _curve(cd: CellData, folds: list[_Fold], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for n in sorted({f.known for f in folds}):
        summary = _metrics(cd, [f for f in folds if f.known == n], thresholds)
        for name, v in {**summary["methods"], **summary["ablations"]}.items():
            rows.append(
                {
                    "known_cycles": n,
                    "method": name,
                    "rmse_ah": v["rmse_ah"],
                    "eol_rel_error": v["eol_rel_error"],
                    "n_cells": v["n_cells"],
                    "n_cells_eol": v["n_cells_eol"],
                }
            )
    return rows


def _consistency(cd: CellData, folds: list[_Fold]) -> dict[str, Any]:
    from hybridml import run_checks

    out: dict[str, Any] = {"cells": {}, "passed": {}}
    for f in folds:
        nan = np.full(f.cycles.shape, np.nan)
        data = {
            "cycle": f.cycles,
            "capacity_ah_pred": f.mean,
            "capacity_ah_lower": f.lower if f.lower is not None else nan,
            "capacity_ah_upper": f.upper if f.upper is not None else nan,
        }
        c = cd.cells[f.cell]
        report = run_checks(_checks(c.initial_capacity, c.capacity_scale), data)
        out["cells"].setdefault(f.cell, {})[f.method] = report.to_dict()
    for name in (*METHODS, *ABLATIONS):
        out["passed"][name] = all(
            out["cells"][c][name]["passed"] for c in out["cells"] if name in out["cells"][c]
        )
    return out


def _write_predictions(path: Path, folds: list[_Fold]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "cell_id",
                "cycle",
                "method",
                "capacity_ah_pred",
                "capacity_ah_lower",
                "capacity_ah_upper",
            ]
        )
        for fold in folds:
            for i, cyc in enumerate(fold.cycles):
                lo = "" if fold.lower is None else f"{fold.lower[i]:.6f}"
                hi = "" if fold.upper is None else f"{fold.upper[i]:.6f}"
                w.writerow([fold.cell, f"{cyc:g}", fold.method, f"{fold.mean[i]:.6f}", lo, hi])
