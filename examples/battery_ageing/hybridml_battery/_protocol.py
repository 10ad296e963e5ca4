"""The study's protocol over cells: which cells take part, the folds that test them, the
error-vs-N grid, and running the folds (serially or on any Executor)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from hybridml import GroupKFold, LeaveOneGroupOut
from hybridml.exceptions import InvalidArgumentError

from ._data import BatteryDataWarning, Cell, CellData
from ._methods import Window

__all__ = [
    "CURVE_FRACTIONS",
    "DATASET_CURVES",
    "LOO_MAX_CELLS",
    "CellFolds",
    "FoldJob",
    "cell_folds",
    "error_curve_grid",
    "fold_jobs",
    "leave_out_short_cells",
    "run_jobs",
]

#: up to this many cells the default protocol is leave one cell out; above, 5 folds
LOO_MAX_CELLS = 10
#: the error-vs-N grid, as fractions of the cells' median life (the last measured cycle)
CURVE_FRACTIONS = (0.1, 0.2, 0.3, 0.4)
#: bundled data sets whose error-vs-N grid is given in cycles (NASA's, as published)
DATASET_CURVES: dict[str, tuple[int, ...]] = {"nasa": (20, 40, 60, 80)}

_T = TypeVar("_T")


@dataclass(frozen=True)
class CellFolds:
    """Folds over cells: each cell is tested once, by a model fitted on other cells only.

    Attributes:
        split: the protocol in words (``"leave one cell out"`` or ``"K-fold grouped by
            cell"``).
        n_folds: the number of folds.
        fold_of: cell id -> the index of the fold that tests it.
        train_of: cell id -> the ids of the training cells of its fold (in file order).
    """

    split: str
    n_folds: int
    fold_of: dict[str, int]
    train_of: dict[str, list[str]]


def cell_folds(ids: Sequence[str], folds: int | None = None) -> CellFolds:
    """The folds of the study over the cells ``ids``.

    Leave one cell out (:class:`hybridml.LeaveOneGroupOut`) when ``folds`` is None and there
    are at most :data:`LOO_MAX_CELLS` cells, or when ``folds`` equals the number of cells;
    otherwise :class:`hybridml.GroupKFold` with ``folds`` folds (5 by default), one row per
    cell, so that the folds hold as many cells as can be.

    Raises:
        hybridml.InvalidArgumentError: ``folds`` is below 2 or larger than the number of
            cells (the message names both).
    """
    ids = list(ids)
    n = len(ids)
    if folds is None:
        k = n if n <= LOO_MAX_CELLS else 5
    else:
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            raise InvalidArgumentError(f"folds (--folds) must be an integer >= 2, got {folds!r}.")
        if folds > n:
            raise InvalidArgumentError(
                f"--folds {folds} is larger than the number of cells, {n} "
                f"({', '.join(ids[:10])}{', ...' if n > 10 else ''}); each fold tests at least "
                f"one whole cell. Use --folds {n} or fewer."
            )
        k = folds
    rows = np.arange(n)[:, None]
    splitter = LeaveOneGroupOut() if k == n else GroupKFold(n_splits=k)
    fold_of: dict[str, int] = {}
    train_of: dict[str, list[str]] = {}
    for f, (train_idx, test_idx) in enumerate(splitter.split(rows, groups=np.asarray(ids))):
        train = [ids[i] for i in sorted(train_idx.tolist())]
        for i in test_idx.tolist():
            fold_of[ids[i]] = f
            train_of[ids[i]] = train
    split = "leave one cell out" if k == n else f"{k}-fold grouped by cell"
    return CellFolds(split=split, n_folds=k, fold_of=fold_of, train_of=train_of)


def leave_out_short_cells(cd: CellData, known_cycles: float) -> tuple[CellData, dict[str, float]]:
    """Leave out the cells whose data end at or before N = ``known_cycles``.

    Such a cell has nothing to predict after N, and no trajectory after N to teach the
    other cells' models; it is neither tested nor used for training. One
    :class:`~hybridml_battery.BatteryDataWarning` names them all.

    Returns:
        The data without those cells, and cell id -> its last cycle for each cell left out.
    """
    short = {cid: c.last_cycle for cid, c in cd.cells.items() if not (c.cycle > known_cycles).any()}
    if not short:
        return cd, {}
    names = ", ".join(f"{cid} (last cycle {last:g})" for cid, last in short.items())
    warnings.warn(
        f"file '{cd.source}': {len(short)} of {len(cd.cells)} cell(s) end at or before "
        f"N={known_cycles:g} and are left out (counted in the report): {names}.",
        BatteryDataWarning,
        stacklevel=3,
    )
    kept = {cid: c for cid, c in cd.cells.items() if cid not in short}
    return dataclasses.replace(cd, cells=kept), short


def error_curve_grid(
    cd: CellData,
    known_cycles: int,
    known_curve: Sequence[int] | None = None,
    dataset: str | None = None,
    quick: bool = False,
    fractions: Sequence[float] = CURVE_FRACTIONS,
) -> tuple[list[int], str]:
    """The values of N of the error-vs-N curve, relative to the data.

    ``known_curve`` when given; else the bundled data set's grid in cycles
    (:data:`DATASET_CURVES`: 20, 40, 60, 80 for ``"nasa"``); else ``fractions`` of the
    median life (last measured cycle) of the cells taking part, rounded to whole cycles
    (0.1-0.4 of it: about 40-160 cycles for XJTU and TJU, whose cells live about 400).
    ``known_cycles`` is always on the grid; with ``quick`` it is the only value. The grid
    is part of the protocol, not of any model: every method sees the same window at a
    given N, whatever the test cells' lives.

    Returns:
        The sorted values of N and the rule in words (for the report).
    """
    n = int(known_cycles)
    if quick:
        return [n], "quick run: N only"
    if known_curve is not None:
        return sorted({*(int(k) for k in known_curve), n}), "given"
    if dataset is not None and dataset in DATASET_CURVES:
        return sorted({*DATASET_CURVES[dataset], n}), f"the {dataset} data set's grid"
    life = float(np.median([c.last_cycle for c in cd.cells.values()]))
    grid = {max(round(f * life), 1) for f in fractions}
    rule = f"{', '.join(f'{f:g}' for f in fractions)} x the cells' median life ({life:g} cycles)"
    return sorted({*grid, n}), rule


@dataclass(frozen=True)
class FoldJob:
    """One unit of work: the test cells of one fold at one N.

    Attributes:
        known_cycles: N.
        every: use every ``every``-th known cycle.
        fold: the fold's index.
        main: N is the study's main N (intervals are calibrated there).
        test_ids: the fold's test cells at this N.
        train_ids: the fold's training cells.
        cells: the test and training cells by id (what the job needs, and no more).
        thresholds: the EOL capacity of each test and training cell [A.h].
    """

    known_cycles: int
    every: int
    fold: int
    main: bool
    test_ids: tuple[str, ...]
    train_ids: tuple[str, ...]
    cells: Mapping[str, Cell]
    thresholds: Mapping[str, float]


def fold_jobs(
    cd: CellData,
    folds: CellFolds,
    curve: Sequence[int],
    every: int,
    known_cycles: int,
    thresholds: Mapping[str, float],
    problem: Callable[[Cell, Window], str | None],
) -> tuple[list[FoldJob], list[str]]:
    """The jobs of a study: one per (N, fold), in that order.

    A test cell for which ``problem(cell, window)`` names a problem at some N (too few
    known points, nothing after N) is not tested at that N; the notes say which.

    Returns:
        The jobs and the notes of the cells not tested.
    """
    jobs: list[FoldJob] = []
    notes: list[str] = []
    ids = list(cd.cells)
    for n in curve:
        window = Window(float(n), int(every))
        for f in range(folds.n_folds):
            tests = []
            for cid in ids:
                if folds.fold_of[cid] != f:
                    continue
                why = problem(cd.cells[cid], window)
                if why is not None:
                    notes.append(f"N={n}, cell {cid}: {why}")
                else:
                    tests.append(cid)
            if not tests:
                continue
            train = tuple(folds.train_of[tests[0]])
            jobs.append(
                FoldJob(
                    known_cycles=int(n),
                    every=int(every),
                    fold=f,
                    main=int(n) == int(known_cycles),
                    test_ids=tuple(tests),
                    train_ids=train,
                    cells={k: cd.cells[k] for k in (*tests, *train)},
                    thresholds={k: float(thresholds[k]) for k in (*tests, *train)},
                )
            )
    return jobs, notes


def run_jobs(
    fn: Callable[[FoldJob], _T],
    jobs: Sequence[FoldJob],
    *,
    processes: int = 1,
    executor: Executor | None = None,
    log: Callable[[str], None] | None = None,
    on_done: Callable[[int, _T], None] | None = None,
) -> list[_T]:
    """``[fn(job) for job in jobs]``, serially or on an Executor; in the jobs' order.

    Args:
        fn: a picklable function of one job (a module-level function or a
            :func:`functools.partial` of one) for a process pool.
        jobs: the jobs.
        processes: processes of a :class:`~concurrent.futures.ProcessPoolExecutor`
            (``spawn`` start method: safe with torch's threads) created for the call and
            shut down after it; 1: in this process.
        executor: any :class:`~concurrent.futures.Executor` to submit to instead (e.g. a
            Dask client's ``client.get_executor()``); it is left open.
        log: progress lines.
        on_done: called as ``on_done(i, result)`` in this process as soon as job ``i``
            is done (on a pool created here, in the order the jobs finish; e.g. to save
            its results, :class:`._resume.JobStore`).
    """
    n_proc = int(processes)
    say = log or (lambda msg: None)
    if executor is None and n_proc <= 1:
        out = []
        for i, job in enumerate(jobs):
            say(f"[{i + 1}/{len(jobs)}] N={job.known_cycles} test cell(s) {_names(job)}")
            out.append(fn(job))
            if on_done is not None:
                on_done(i, out[-1])
        return out
    own = executor is None
    ex = executor or ProcessPoolExecutor(
        max_workers=n_proc, mp_context=multiprocessing.get_context("spawn")
    )
    try:
        futures = [ex.submit(fn, job) for job in jobs]
        # a pool of ours hands back each job as it finishes (so that it is saved at once);
        # a caller's executor may return futures of its own kind: those are read in order
        index = {id(fut): i for i, fut in enumerate(futures)}
        order = as_completed(futures) if own else iter(futures)
        results: dict[int, _T] = {}
        for k, fut in enumerate(order):
            i = index[id(fut)]
            results[i] = fut.result()
            if on_done is not None:
                on_done(i, results[i])
            job = jobs[i]
            say(f"[{k + 1}/{len(jobs)}] done: N={job.known_cycles} test cell(s) {_names(job)}")
        return [results[i] for i in range(len(jobs))]
    finally:
        if own:
            ex.shutdown(wait=True, cancel_futures=True)


def _names(job: FoldJob) -> str:
    ids = job.test_ids
    return ", ".join(ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
