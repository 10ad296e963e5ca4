"""The battery-ageing study: folds over cells, four methods, metrics, checks, report."""

from __future__ import annotations

import functools
import itertools
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridml import DataError, InvalidArgumentError, RunFolder

from ._calibration import CALIBRATION, COVERAGE
from ._data import check_eol_thresholds, load_cells
from ._datasets import DATASETS, bundled_dataset
from ._folds import _check_window, _Fold, _make, _one_torch_thread, _run_fold_job
from ._identify import REGEN_MIN_AH, REGEN_TAUS
from ._methods import ABLATION_NOTES, ABLATIONS, METHODS, NetSettings, Window, _window_problem
from ._metrics import _consistency, _curve, _metrics
from ._physics import REFERENCE_AH, SweepDesign, default_cache_dir, fade_library
from ._protocol import cell_folds, error_curve_grid, fold_jobs, leave_out_short_cells, run_jobs
from ._resume import JobStore, fingerprint, progress_dir
from ._writing import _manifest, _write_json, _write_predictions

if TYPE_CHECKING:
    from ._data import CellData
    from ._hybrid import FleetHybridMethod
    from ._physics import FadeLibrary

__all__ = ["BENCHMARK_CELLS", "BatteryResult", "run_battery_ageing"]

BENCHMARK_CELLS: tuple[str, ...] = DATASETS["nasa"].cells or ()


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
                f"eol_rel_error {_f(m['eol_rel_error'])} ({_SHORT.get(name, name)})"
            )
        return "\n".join(lines)


_SHORT = {
    "physics-fleet": "the hybrid's physics prior alone",
    "hybrid-no-network": "without its network",
    "hybrid-no-physics": "without its physics prior",
    "hybrid-no-fleet": "without the fleet forecast",
}


def _f(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


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


def _fit_on_all(
    cd: CellData,
    window: Window,
    library: FadeLibrary,
    nets: NetSettings,
    seed: int,
    thresholds: dict[str, float],
) -> FleetHybridMethod:
    """The study's ``hybrid`` fitted on every cell (torch on one thread, as a fold job)."""
    from ._hybrid import FleetHybridMethod

    with _one_torch_thread():
        method = _make("hybrid", library, nets, seed, eol=thresholds)
        assert isinstance(method, FleetHybridMethod)
        return method.fit_fleet(list(cd.cells.values()), window)


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
    save_model: bool = False,
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
        save_model: also fit the ``hybrid`` on every cell (at ``known_cycles``) and write
            it to ``hybrid-model.pt`` in ``out``, to forecast new cells from their early
            cycles (:meth:`hybridml_battery.FleetHybridMethod.load`, then ``apply`` and
            ``predict``).

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
    # the finished jobs of an earlier, killed run of the same study are read back, not rerun
    store = JobStore(
        progress_dir(
            out,
            fingerprint(
                cd,
                {
                    "cells": ids,
                    "fold_of": protocol.fold_of,
                    "known_cycles": int(known_cycles),
                    "curve": list(curve),
                    "every": int(every),
                    "thresholds": thresholds,
                    "seed": int(seed),
                    "quick": bool(quick),
                    "nets": repr(nets),
                    "methods": [*METHODS, *ABLATIONS],
                    "coverage": COVERAGE,
                    "calibration": CALIBRATION,
                    "library": [library.description, list(map(repr, library.params))],
                },
                library.curves,
            ),
        )
    )
    for stale in store.discard_others():
        log(f"discarded the saved fold jobs of another study in {stale}")
    done, todo = store.split(fold_list)
    if done:
        log(f"resuming: {len(done)} of {len(fold_list)} fold jobs already done ({store.path})")

    def save(k: int, result: list[_Fold]) -> None:
        job = fold_list[todo[k]]
        store.save(job, result)
        log(f"saved fold job {store.file(job).stem}")

    run = functools.partial(_run_fold_job, library=library, nets=nets, seed=int(seed))
    fresh = run_jobs(
        run, [fold_list[i] for i in todo], processes=jobs, executor=executor, log=log, on_done=save
    )
    per_job = [done[i] if i in done else fresh[todo.index(i)] for i in range(len(fold_list))]
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
        "calibration": CALIBRATION,
        "methods": list(METHODS),
        "ablations": dict(ABLATION_NOTES),
        "networks": {"n_members": nets.n_members, "steps": nets.steps, "hidden": list(nets.hidden)},
        "pybamm_sweep": {
            "description": library.description,
            "n_simulations": len(design.param_sets()),
            "n_succeeded": len(library) // len(design.onsets),
            "fade_onsets_simulated_cycles": list(design.onsets),
            "failures": list(library.failures),
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
    final = None
    if save_model:
        log("fitting the hybrid on every cell (hybrid-model.pt)")
        final = _fit_on_all(cd, window, library, nets, int(seed), thresholds)
    # the run folder is written beside `out` and moved into place when complete: a killed
    # run leaves the older folder (and one marked INCOMPLETE); no stale file survives
    with folder:
        assert folder.path is not None
        tmp = folder.path
        (tmp / "figures").mkdir()
        _write_predictions(tmp / "predictions.csv", main_folds)
        # metrics.json holds what the study found, the same for a run resumed after a kill;
        # what this run took (wall time, cache hits, resumed jobs) is in manifest.json
        _write_json(tmp / "metrics.json", metrics)
        _write_json(tmp / "consistency.json", consistency)
        if final is not None:
            final.save(tmp / "hybrid-model.pt")
        this_run = {
            "seconds": round(time.perf_counter() - t_start, 1),
            "pybamm_sweep_seconds": round(library.seconds, 2),
            "pybamm_n_cached": library.n_cached,
            "fold_jobs": len(fold_list),
            "fold_jobs_resumed": len(done),
        }
        _write_json(tmp / "manifest.json", _manifest(settings, cd, this_run))
        log("figures")
        from ._report import write_figures, write_report

        figures = write_figures(tmp / "figures", cd, main_folds, thresholds, curve_rows, window)
        write_report(tmp / "report.md", cd, metrics, consistency, figures, skipped, this_run)
    store.remove()  # the run folder is complete: the saved jobs are not needed any more
    seconds = time.perf_counter() - t_start
    log(f"done in {seconds:.1f}s; outputs in {out}")
    return BatteryResult(out=out, metrics=metrics, consistency=consistency, seconds=seconds)
