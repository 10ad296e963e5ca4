"""Tests of the battery study's protocol: the error-vs-N grid relative to the data, and
the fold jobs, whose results on a process pool (or any Executor) are those of a serial
run."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from hybridml_battery import Cell, CellData, FadeLibrary, NetSettings, cell_folds
from hybridml_battery._folds import _run_fold_job
from hybridml_battery._methods import _window_problem
from hybridml_battery._protocol import error_curve_grid, fold_jobs, run_jobs


def _library() -> FadeLibrary:
    u = np.arange(40.0)
    curves = np.stack([1 - 0.01 * u, 1 - 0.06 * np.sqrt(u), 1 - 0.004 * u - 0.0002 * u**2])
    return FadeLibrary(params=({"k": 1.0}, {"k": 2.0}, {"k": 3.0}), curves=curves)


def _data(lives: list[int]) -> CellData:
    lib = _library()
    cells = {}
    for i, n in enumerate(lives):
        cycle = np.arange(1.0, n + 1.0)
        cap = (2.0 + 0.02 * i) * lib.shape(2, (cycle - 1) / (3.5 + 0.25 * i))
        cells[f"C{i}"] = Cell(f"C{i}", cycle, cap, np.arange(2, n + 2))
    return CellData(source="synthetic", cells=cells, dropped=(), n_rows=sum(lives))


def test_the_error_curve_is_relative_to_the_cells_lives() -> None:
    cd = _data([300, 400, 500])  # median life 400
    grid, rule = error_curve_grid(cd, 100)
    assert grid == [40, 80, 100, 120, 160] and "median life (400 cycles)" in rule
    # NASA keeps its published grid; a given grid is used as given; quick: N alone
    assert error_curve_grid(cd, 60, dataset="nasa")[0] == [20, 40, 60, 80]
    assert error_curve_grid(cd, 50, known_curve=[10, 30])[0] == [10, 30, 50]
    assert error_curve_grid(cd, 100, quick=True)[0] == [100]


def test_fold_jobs_on_a_process_pool_equal_the_serial_run() -> None:
    cd = _data([120, 110, 130, 125])
    folds = cell_folds(list(cd.cells), 2)
    thresholds = {cid: 0.8 * c.initial_capacity for cid, c in cd.cells.items()}
    jobs, notes = fold_jobs(cd, folds, [30, 40], 1, 40, thresholds, _window_problem)
    assert notes == [] and len(jobs) == 2 * 2
    assert all(len(j.test_ids) == 2 and len(j.train_ids) == 2 for j in jobs)
    assert [j.main for j in jobs] == [False, False, True, True]
    run = functools.partial(
        _run_fold_job, library=_library(), nets=NetSettings(n_members=2, steps=20), seed=3
    )
    serial = run_jobs(run, jobs)
    pooled = run_jobs(run, jobs, processes=2)  # a process pool made (and shut) by the call
    with ThreadPoolExecutor(2) as threads:  # any Executor: the study does not own it
        threaded = run_jobs(run, jobs, executor=threads)
    for other in (pooled, threaded):
        for a_job, b_job in zip(serial, other, strict=True):
            assert [(f.cell, f.method, f.known) for f in a_job] == [
                (f.cell, f.method, f.known) for f in b_job
            ]
            for a, b in zip(a_job, b_job, strict=True):
                # bitwise: every fold is a pure function of its cells, settings and seeds
                np.testing.assert_array_equal(a.mean, b.mean)
                assert a.eol_pred == b.eol_pred and a.q == b.q
    # every method ran on every test cell of every job
    assert {f.method for f in serial[0]} >= {"hybrid", "nn", "linear", "fleet", "empirical"}


def test_calibration_leaves_one_cell_out_for_few_cells_and_uses_inner_folds_for_many() -> None:
    from hybridml_battery._calibration import INNER_FOLDS, INNER_HELD_PER_FOLD, _inner_splits
    from hybridml_battery._methods import Window

    window = Window(30.0)
    few = list(_data([80, 90, 100]).cells.values())
    splits = _inner_splits(few, window)
    # three training cells (NASA): each held out in turn, fitted on the other two
    assert [(j, h.cell_id, [c.cell_id for c in r]) for j, h, r in splits] == [
        (0, "C0", ["C1", "C2"]),
        (1, "C1", ["C0", "C2"]),
        (2, "C2", ["C0", "C1"]),
    ]
    many = list(_data([80 + 5 * i for i in range(23)]).cells.values())
    splits = _inner_splits(many, window)
    held = [h.cell_id for _, h, _ in splits]
    # 5 inner folds x 2 scored cells: 10 groups, enough to certify 90 % (10/11)
    assert len(held) == len(set(held)) == INNER_FOLDS * INNER_HELD_PER_FOLD
    for j, h, rest in splits:
        assert many[j] is h
        ids = {c.cell_id for c in rest}
        assert h.cell_id not in ids and len(ids) in (18, 19)  # the other 4 inner folds
        # the held cells fitted on the same rest are those of one inner fold
        assert not {x.cell_id for _, x, r in splits if {c.cell_id for c in r} == ids} & ids


def test_the_row_budget_thins_only_large_fleets_and_keeps_each_cells_ends() -> None:
    from hybridml_battery._ensembles import _thin

    def block(n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(float(n))[:, None], np.arange(float(n))

    nasa = [block(168), block(132), block(197)]  # the NASA training cells: within budget
    assert _thin(nasa, 4000) is nasa
    fleet = [block(120 + 20 * i) for i in range(44)]  # an XJTU-sized fold: 120-980 rows
    thinned = _thin(fleet, 4000)
    assert len(thinned) == 44
    for (_x0, y0), (x, y) in zip(fleet, thinned, strict=True):
        assert len(y) == len(x) == min(len(y0), 4000 // 44)
        assert y[0] == y0[0] and y[-1] == y0[-1] and np.all(np.diff(y) > 0)
    assert _thin(fleet, None) is fleet
