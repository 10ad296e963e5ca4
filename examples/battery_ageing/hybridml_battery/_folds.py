"""One fold of the study: every method fitted on the training cells and the test cell's
known points, its predictions after N, end of life and interval (a job of
:func:`._protocol.run_jobs`)."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridml import DataError

from ._baselines import EmpiricalMethod, LinearMethod
from ._calibration import _calibrate
from ._data import Cell, CellData
from ._ensembles import NNMethod
from ._fleet import FleetMethod
from ._hybrid import FleetHybridMethod
from ._methods import (
    ABLATIONS,
    METHODS,
    SHRINK_GRID,
    Method,
    NetSettings,
    PhysicsMethod,
    Window,
    _window_problem,
)
from ._physics import FadeLibrary
from ._protocol import FoldJob


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
    choices: dict[str, float | str | bool] | None = None  # what it chose on the training cells


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
    eol: Mapping[str, float] | None = None,
) -> Method:
    """The method ``name``; ``memo`` is shared by the test cells of one fold (the baselines'
    choices on the training cells are made once per fold); ``eol``: the EOL capacity of
    the training cells (the hybrid scores its inner folds on the EOL error too)."""
    if name in ("hybrid", "hybrid-no-physics", "hybrid-no-fleet", "hybrid-no-network"):
        return FleetHybridMethod(
            library,
            nets,
            seed,
            physics=name != "hybrid-no-physics",
            fleet=name != "hybrid-no-fleet",
            shrink=(0.0,) if name == "hybrid-no-network" else SHRINK_GRID,
            eol_thresholds=eol,
            memo=memo,
            name=name,
        )
    if name == "nn":
        return NNMethod(nets, seed)
    if name == "physics":
        return PhysicsMethod(library)
    if name == "physics-fleet":
        return PhysicsMethod(library, fleet=True, memo=memo)
    if name == "linear":
        return LinearMethod(memo=memo)
    if name == "fleet":
        return FleetMethod(memo=memo)
    return EmpiricalMethod(memo=memo)


def _check_window(cd: CellData, cell: Cell, window: Window) -> None:
    why = _window_problem(cell, window)
    if why is not None:
        first = int(cell.lines[0])
        raise DataError(
            f"file '{cd.source}': cell {cell.cell_id!r} (rows from line {first}): {why}. "
            "Change --known-cycles/--every or leave the cell out with --cells."
        )


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Torch on one thread inside, the caller's setting restored after: the study trains
    many tiny networks, for which one thread is faster (and far faster on a busy machine)
    and the same in every process."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_fold_job(
    job: FoldJob, *, library: FadeLibrary, nets: NetSettings, seed: int
) -> list[_Fold]:
    """Every test cell of one fold at one N (a job of :func:`run_jobs`; runs in a worker
    process with ``--jobs``), torch on one thread (:func:`_one_torch_thread`)."""
    with _one_torch_thread():
        window = Window(float(job.known_cycles), job.every)
        train = [job.cells[k] for k in job.train_ids]
        memo: dict[Any, Any] = {}  # the fold's choices on its training cells, shared
        out: list[_Fold] = []
        for cid in job.test_ids:
            test, thr = job.cells[cid], job.thresholds[cid]
            out += _run_fold(
                test, train, window, thr, library, nets, seed, job.main, memo, job.thresholds
            )
        return out


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
    eol: Mapping[str, float] | None = None,
) -> list[_Fold]:
    unknown = test.cycle > window.known_cycles
    cycles = test.cycle[unknown]
    # EOL may lie after the last measurement: predict up to 3x the cell's last cycle
    grid = np.arange(math.floor(window.known_cycles) + 1, 3 * test.last_cycle + 1, dtype=float)
    out = []
    for name in (*METHODS, *ABLATIONS):
        method = _make(name, library, nets, seed, memo, eol).fit(train, test, window)
        mean, scale = method.predict(cycles)
        g_mean, _ = method.predict(grid)
        known_eol = _eol(test.cycle[window.mask(test)], test.capacity[window.mask(test)], threshold)
        eol_pred = known_eol if known_eol is not None else _eol(grid, g_mean, threshold)
        lower = upper = None
        q = None
        if scale is not None and main:
            make = functools.partial(_make, name, library, nets)
            q = _calibrate(name, train, window, make, seed, method, memo)
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
                method.choices(),
            )
        )
    return out
