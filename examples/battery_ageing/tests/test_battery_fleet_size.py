"""The battery fleet-size curve (benchmarks/battery_fleet_size.py): quick mode and its parts."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hybridml_battery import (
    BatteryDataWarning,
    Cell,
    Window,
    cell_folds,
    dataset_path,
    load_cells,
)

# runs a benchmark end to end: leave out with -m 'not slow'
pytestmark = pytest.mark.slow

_HAS_ADAPTER = importlib.util.find_spec("hybridml_pybamm") is not None
_SCRIPT = Path(__file__).parents[3] / "benchmarks" / "battery_fleet_size.py"


@pytest.fixture(scope="module")
def fs(load_script: Callable[[Path, str], ModuleType]) -> ModuleType:
    return load_script(_SCRIPT, "battery_fleet_size")


class _Known:
    """A fitted 'method' that predicts the given curve (interpolated)."""

    def __init__(self, cycle: np.ndarray, capacity: np.ndarray) -> None:
        self.cycle, self.capacity = cycle, capacity

    def predict(self, cycles: np.ndarray) -> tuple[np.ndarray, None]:
        return np.interp(cycles, self.cycle, self.capacity), None


def _cell(cycle: np.ndarray, capacity: np.ndarray) -> Cell:
    return Cell("c", cycle.astype(float), capacity.astype(float), np.arange(cycle.size) + 2)


def test_score_is_the_studys_rmse_and_eol_error(fs: ModuleType) -> None:
    k = np.arange(1, 301)
    cell = _cell(k, 2.0 - 0.002 * k)  # 0.9 x initial (~2.0) is reached near cycle 100
    window = Window(50.0)
    threshold = 0.9 * cell.initial_capacity
    eol_true = float(k[np.flatnonzero(cell.capacity <= threshold)[0]])
    # the truth itself: no error
    assert fs.score(_Known(k, cell.capacity), cell, window, threshold) == (0.0, 0.0)
    # a forecast 0.1 A.h too high everywhere: RMSE 0.1; it reaches EOL 50 cycles later
    rmse, rel = fs.score(_Known(k, cell.capacity + 0.1), cell, window, threshold)
    assert math.isclose(rmse, 0.1, rel_tol=1e-9)
    assert math.isclose(rel, 50.0 / eol_true, rel_tol=1e-9)
    # a forecast that never fades: EOL at 3 x the last cycle
    _, rel = fs.score(_Known(k, np.full(k.shape, 2.0)), cell, window, threshold)
    assert math.isclose(rel, (900.0 - eol_true) / eol_true)
    # a cell that does not reach EOL in its data has no EOL error
    flat = _cell(k, np.full(k.shape, 2.0))
    assert fs.score(_Known(k, flat.capacity), flat, window, threshold)[1] is None
    # a window that already reaches EOL: its first known cycle below is the prediction
    _, rel = fs.score(_Known(k, np.full(k.shape, 2.0)), cell, Window(150.0), threshold)
    assert rel == 0.0


def test_draws_are_reproducible_subsets_of_the_pool(fs: ModuleType) -> None:
    cells = load_cells(dataset_path("xjtu")).cells
    info, jobs = fs.prepare("xjtu", [4, 16, 500, "all"], 3, 4, 2, seed=7)
    again, _ = fs.prepare("xjtu", [4, 16, 500, "all"], 3, 4, 2, seed=7)
    other, _ = fs.prepare("xjtu", [4, 16, 500, "all"], 3, 4, 2, seed=8)
    assert info["training_sets"] == again["training_sets"] != other["training_sets"]
    # the test cells: 4 of fold 0 of the study's 5 folds; the pool: every other cell
    folds = cell_folds(list(cells), 5)
    fold0 = {c for c in cells if folds.fold_of[c] == 0}
    assert len(info["test_cells"]) == 4 and set(info["test_cells"]) <= fold0
    assert set(info["nn_test_cells"]) <= set(info["test_cells"])
    assert len(info["nn_test_cells"]) == 2
    assert info["pool_size"] == len(cells) - len(fold0)
    # 500 is larger than the pool: skipped; "all" is the pool, drawn once
    assert info["sizes"] == [4, 16, info["pool_size"]]
    assert info["sizes_skipped_larger_than_pool"] == ["500"]
    assert info["size_labels"][str(info["pool_size"])] == "all"
    for n in info["sizes"]:
        sets = info["training_sets"][str(n)]
        assert len(sets) == (1 if n == info["pool_size"] else 3)
        for s in sets:
            assert len(set(s)) == n and not set(s) & fold0
    # one physics job (the test cells alone) and one job per training set
    assert sum(j.size is None for j in jobs) == 1 and len(jobs) == 1 + 3 + 3 + 1


@pytest.mark.skipif(not _HAS_ADAPTER, reason="the PyBaMM adapter (simulators/pybamm) is needed")
def test_quick_curve_writes_table_plot_and_json(
    fs: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, png = tmp_path / "fs.json", tmp_path / "fs.png"
    # TJU: it has cells that end before N (left out) and test cells that never reach EOL
    assert fs.main(["--quick", "--datasets", "tju", "--json", str(out), "--plot", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "tju: rmse_ah" in printed and "wall time" in printed
    assert png.stat().st_size > 0
    res: dict[str, Any] = json.loads(out.read_text())
    assert res["settings"]["quick"] and res["settings"]["draws"] == 1
    assert res["wall_seconds"] > 0
    r = res["tju"]
    info = r["settings"]
    with pytest.warns(BatteryDataWarning, match="one-cycle dip"):  # 3 rows (data README)
        every = load_cells(dataset_path("tju")).cells
    # cells whose data end at or before N = 100 are left out and counted
    short = [c for c, cell in every.items() if not (cell.cycle > 100).any()]
    assert info["n_left_out"] == len(short) > 0 and info["n_cells"] == len(every) - len(short)
    assert info["sizes"] == [2, 4] and len(info["test_cells"]) == 2
    assert len(info["nn_test_cells"]) == 1
    # the hybrid's time-scale prior, one per training set (< 5 cells: never learned)
    assert set(r["hybrid_time_scale_prior"]) == {"2", "4"}
    for priors in r["hybrid_time_scale_prior"].values():
        assert len(priors) == 1 and priors[0] in ("pooled", "matched", "flat")
    failed = {(f["method"], str(f["size"])) for f in r["failures"]}
    for f in r["failures"]:
        assert f["method"] in fs.METHODS and f["error"]
    for method in fs.METHODS:
        for n in ("2", "4"):
            s = r["methods"][method][n]
            for metric in fs.METRICS:
                draws = s[metric]["draws"]
                assert len(draws) == 1
                if (method, n) in failed and s["n_test_cells"] == 0:
                    assert draws == [None]
                    continue
                v = draws[0]
                if metric == "eol_rel_error" and not info["test_cells_reaching_eol"]:
                    assert v is None
                    continue
                # one draw: median = min = max = that value
                assert s[metric]["median"] == s[metric]["min"] == s[metric]["max"] == v
                # errors are non-negative; an RMSE above the cells' 3.5 A.h rating, or an
                # EOL prediction past 3 x a cell's life (the cap), would be a bug
                assert math.isfinite(v) and v >= 0
                assert v < (3.5 if metric == "rmse_ah" else 3.0)
    # fleet and physics never need a network: they have values at every size
    for method in ("fleet", "physics"):
        assert all(r["methods"][method][n]["n_test_cells"] == 2 for n in ("2", "4"))
    # the physics alone does not use the training cells: its line is flat
    phys = r["methods"]["physics"]
    assert phys["2"]["rmse_ah"]["draws"] == phys["4"]["rmse_ah"]["draws"]
    # the goal checks are written for every size and both metrics
    for metric in fs.METRICS:
        assert set(r["goals"][metric]) == {"2", "4"}
        assert "at_most_half_nn" in r["goals"][metric]["2"]
    # --replot: the fleets of several runs in one JSON and plot, nothing rerun
    merged, png2 = tmp_path / "merged.json", tmp_path / "merged.png"
    args = ["--replot", str(out), str(out), "--json", str(merged), "--plot", str(png2)]
    assert fs.main(args) == 0
    m = json.loads(merged.read_text())
    assert m["settings"]["datasets"] == ["tju"]
    # a run merged with itself: the same curve, its goal checks recomputed the same
    for key in ("settings", "methods", "goals", "failures"):
        assert m["tju"][key] == r[key]
    assert len(m["runs"]) == 2 and m["wall_seconds"] == pytest.approx(2 * res["wall_seconds"])
    assert png2.stat().st_size > 0
