"""Tests of the battery-ageing study: data validation, the physics prior, the
CLI's import cost, and one real ``--quick`` run on the bundled NASA cells."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hybridml_battery import BatteryDataWarning, dataset_path, load_cells, run_battery_ageing
from hybridml_battery._identify import REGEN_TAUS, fleet_prior, identify, regen_basis, regen_events
from hybridml_battery._physics import ONSET, FadeLibrary, with_onsets

from hybridml import DataError, InvalidArgumentError, sha256_file

HEADER = ["cell_id", "cycle", "capacity_ah"]


def _write(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _cells(n_cells: int = 2, n: int = 30) -> list[list[object]]:
    rows: list[list[object]] = []
    for c in range(n_cells):
        for k in range(1, n + 1):
            rows.append([f"C{c}", k, round(2.0 - 0.004 * (1 + c) * k, 5)])
    return rows


# --------------------------------------------------------------------------- bad input


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", [["A", 1]], header=["cell_id", "cycle"])
    with pytest.raises(DataError, match="'capacity_ah'"):
        load_cells(path)


def test_non_numeric_capacity_names_cell_and_line(tmp_path: Path) -> None:
    rows = _cells()
    rows[4][2] = "abc"  # line 6 of the file (header is line 1), cell C0
    path = _write(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match=r"line 6 \(cell 'C0'\).*'abc'"):
        load_cells(path)


def test_nan_capacity_is_warned_dropped_and_counted(tmp_path: Path) -> None:
    rows = _cells()
    rows[7][2] = "nan"  # line 9, cell C0
    path = _write(tmp_path / "d.csv", rows)
    with pytest.warns(BatteryDataWarning, match=r"line 9 \(cell 'C0'\), cycle 8"):
        data = load_cells(path)
    assert len(data.dropped) == 1 and data.dropped[0].line == 9
    assert len(data.cells["C0"].cycle) == 29  # the row is gone, and counted above
    assert 8.0 not in data.cells["C0"].cycle


def test_one_cycle_dip_deeper_than_regeneration_is_dropped_and_counted(tmp_path: Path) -> None:
    rows = _cells()
    # line 12, cell C0, cycle 11: 0.5 A.h below both neighbours and back the next cycle (a
    # partial discharge); a 2 A.h cell regenerates at most 0.15 A.h
    rows[10][2] = float(rows[10][2]) - 0.5
    # a smaller dip, within what regeneration could undo, is kept
    rows[20][2] = float(rows[20][2]) - 0.1
    path = _write(tmp_path / "d.csv", rows)
    with pytest.warns(BatteryDataWarning, match=r"line 12 \(cell 'C0'\), cycle 11: .* one-cycle"):
        data = load_cells(path)
    assert [(d.cell_id, d.line) for d in data.dropped] == [("C0", 12)]
    assert "measurement artefact" in data.dropped[0].reason
    assert 11.0 not in data.cells["C0"].cycle and 21.0 in data.cells["C0"].cycle


def test_duplicated_cell_cycle_names_both_lines(tmp_path: Path) -> None:
    rows = _cells()
    rows.append(["C1", 3, 1.9])  # C1 cycle 3 is already on line 34
    path = _write(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match=r"cell 'C1' has cycle 3 twice \(lines 34 and 62\)"):
        load_cells(path)


def test_unknown_cell_lists_available(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _cells())
    with pytest.raises(DataError, match=r"unknown cell id.*'B9'.*C0, C1"):
        load_cells(path, cells=["C0", "B9"])


def test_cell_with_too_few_points(tmp_path: Path) -> None:
    rows = [*_cells(), ["C2", 1, 2.0], ["C2", 2, 1.99]]
    path = _write(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match="cell 'C2' has 2 usable row"):
        load_cells(path)


def test_known_cycles_beyond_a_cells_data(tmp_path: Path) -> None:
    # checked before any simulation, so this is fast: both cells end at cycle 30 < N = 40,
    # so both are left out (warned) and too few cells remain
    path = _write(tmp_path / "d.csv", _cells(n=30))
    with (
        pytest.warns(BatteryDataWarning, match=r"2 of 2 cell\(s\) end at or before N=40.*C0 "),
        pytest.raises(DataError, match=r"at least 2 cells.*found 0.*2 end at or before N"),
    ):
        run_battery_ageing(path, known_cycles=40, out=tmp_path / "out", progress=False)


def test_cells_ending_before_n_are_left_out_and_counted(tmp_path: Path) -> None:
    from hybridml_battery import leave_out_short_cells

    # C0-C2 have 60 cycles; C3 ends at cycle 40, exactly N: nothing after N to predict
    rows = _cells(n_cells=3, n=60) + [["C3", k, 2.0 - 0.001 * k] for k in range(1, 41)]
    path = _write(tmp_path / "d.csv", rows)
    with pytest.warns(BatteryDataWarning, match=r"1 of 4 cell\(s\).*C3 \(last cycle 40\)"):
        kept, left_out = leave_out_short_cells(load_cells(path), 40.0)
    assert list(kept.cells) == ["C0", "C1", "C2"] and left_out == {"C3": 40.0}
    # the run leaves it out before its folds are made: 3 cells remain, so 4 folds are too many
    with (
        pytest.warns(BatteryDataWarning, match="C3"),
        pytest.raises(
            InvalidArgumentError, match=r"--folds 4 is larger than the number of cells, 3"
        ),
    ):
        run_battery_ageing(path, known_cycles=40, folds=4, out=tmp_path / "o", progress=False)


def test_folds_over_cells() -> None:
    from hybridml_battery import cell_folds

    ids = [f"C{i}" for i in range(12)]
    # up to 10 cells: leave one cell out, training on every other cell in file order
    loo = cell_folds(ids[:4])
    assert loo.split == "leave one cell out" and loo.n_folds == 4
    assert loo.train_of["C2"] == ["C0", "C1", "C3"]
    assert cell_folds(ids[:4], 4).train_of == loo.train_of  # K = number of cells: the same
    # above 10 cells: 5 folds of whole cells; each cell tested once, never trained on in its
    # own fold, and the folds differ in size by at most one cell
    k5 = cell_folds(ids)
    assert k5.split == "5-fold grouped by cell" and k5.n_folds == 5
    assert sorted(k5.fold_of) == sorted(ids)
    sizes = [sum(1 for f in k5.fold_of.values() if f == k) for k in range(5)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 12
    for cid, train in k5.train_of.items():
        same_fold = {c for c, f in k5.fold_of.items() if f == k5.fold_of[cid]}
        assert set(train) == set(ids) - same_fold
    assert cell_folds(ids, 3).n_folds == 3
    with pytest.raises(
        InvalidArgumentError, match=r"--folds 13 is larger than the number of cells, 12"
    ):
        cell_folds(ids, 13)
    with pytest.raises(InvalidArgumentError, match=">= 2"):
        cell_folds(ids, 1)


def test_cli_folds_larger_than_the_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybridml.cli import main

    # the four bundled NASA cells: 9 folds cannot each test a whole cell
    assert main(["battery-ageing", "--folds", "9", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--folds 9" in err[0] and "number of cells, 4" in err[0]


def test_too_few_known_points_with_every(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _cells(n=30))
    with pytest.raises(DataError, match=r"cell 'C0'.*only 2 known point"):
        run_battery_ageing(path, known_cycles=5, every=3, out=tmp_path / "o", progress=False)


def test_both_eol_conventions_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _cells())
    with pytest.raises(DataError, match="not both"):
        run_battery_ageing(path, eol_ah=1.4, eol_fraction=0.8, out=tmp_path, progress=False)


# --------------------------------------------------------------------------- physics prior


def _library() -> FadeLibrary:
    u = np.arange(40.0)
    curves = np.stack([1 - 0.01 * u, 1 - 0.06 * np.sqrt(u), 1 - 0.004 * u - 0.0002 * u**2])
    return FadeLibrary(params=({"k": 1.0}, {"k": 2.0}, {"k": 3.0}), curves=curves)


def test_identify_recovers_shape_amplitude_and_time_scale() -> None:
    lib = _library()
    cycle = np.arange(1.0, 121.0)
    truth = 1.9 * lib.shape(2, (cycle - 1) / 4.0)  # shape 2, 4 real cycles per simulated
    prior = identify(lib, cycle, truth)
    # noise-free data: the posterior concentrates on the true curve; 5 % on the time scale
    # is the spacing of the identification grid
    assert prior.time_scale == pytest.approx(4.0, rel=0.05)
    assert prior.initial == pytest.approx(1.9, rel=1e-3)
    assert np.abs(prior(cycle) - truth).max() < 0.01


def test_the_priors_members_are_each_trajectory_at_each_time_scale() -> None:
    from hybridml_battery._identify import _LOG_S

    lib = _library()
    cycle = np.arange(1.0, 121.0)
    noisy = 1.9 * lib.shape(1, (cycle - 1) / 4.0) + 0.01 * np.sin(cycle)
    prior = identify(lib, cycle[:40], noisy[:40])  # a spread posterior: many members
    x = np.linspace(1.0, 400.0, 57)  # beyond the simulated cycles too (the tails)
    mean, sd = prior.members(x)
    # the mixture written out member by member (what members vectorises per trajectory)
    w = prior.weights / prior.weights.sum()
    ci, si = np.nonzero(w > 1e-6 * w.max())
    assert np.unique(ci).size > 1 and ci.size > 10
    vals = np.stack(
        [
            prior.amplitude[j, s] * lib.shape(int(j), (x - 1) / np.exp(_LOG_S[s]))
            for j, s in zip(ci, si, strict=True)
        ]
    )
    ww = w[ci, si] / w[ci, si].sum()
    np.testing.assert_allclose(mean, ww @ vals, rtol=1e-12)
    np.testing.assert_allclose(sd, np.sqrt(ww @ (vals - ww @ vals) ** 2), rtol=1e-9, atol=1e-12)


def test_fleet_prior_sets_the_rate_when_early_points_are_flat() -> None:
    lib = _library()
    cycle = np.arange(1.0, 161.0)
    fleet = [(cycle, 2.0 * lib.shape(0, (cycle - 1) / s)) for s in (3.5, 4.0, 4.5)]
    early = cycle <= 10
    test = 2.0 * lib.shape(0, (cycle - 1) / 4.0)
    flat = identify(lib, cycle[early], test[early])
    informed = identify(lib, cycle[early], test[early], fleet_prior(lib, fleet))
    # the fleet's time scale (mean 4) makes the extrapolation to cycle 160 far better
    err_flat = abs(flat(cycle)[-1] - test[-1])
    err_informed = abs(informed(cycle)[-1] - test[-1])
    assert err_informed < 0.5 * err_flat or err_informed < 0.01


def test_physics_baseline_uses_only_the_test_cells_points() -> None:
    from hybridml_battery import Cell, PhysicsMethod, Window

    lib = _library()
    cycle = np.arange(1.0, 161.0)

    def cell(name: str, s: float) -> Cell:
        cap = 2.0 * lib.shape(0, (cycle - 1) / s)
        return Cell(cell_id=name, cycle=cycle, capacity=cap, lines=np.arange(2, 162))

    test, window = cell("T", 4.0), Window(20.0)
    fleets = ([cell("A", 3.5), cell("B", 4.5)], [cell("C", 8.0), cell("D", 9.0)])
    alone = [PhysicsMethod(lib).fit(f, test, window).predict(cycle)[0] for f in fleets]
    informed = [
        PhysicsMethod(lib, fleet=True).fit(f, test, window).predict(cycle)[0] for f in fleets
    ]
    # "calibrated PyBaMM alone": the other cells play no part (bitwise the same)
    np.testing.assert_array_equal(alone[0], alone[1])
    # with the fleet they do: cells fading twice as slowly pull the time scale up
    assert informed[1][-1] > informed[0][-1] + 0.01
    assert PhysicsMethod(lib).name == "physics"
    assert PhysicsMethod(lib, fleet=True).name == "physics-fleet"


def test_identify_models_regeneration_without_a_fleet() -> None:
    lib = _library()
    cycle = np.arange(1.0, 61.0)
    measured, irreversible = _regenerating(cycle, 4.0, 5.0)
    plain = identify(lib, cycle, measured)
    regen = identify(lib, cycle, measured, regen_tau=5.0)
    assert plain.regen_tau is None and regen.regen_tau == 5.0
    assert regen.regen_cycles.size >= 2
    # the trend follows the irreversible fade once the transients are fitted with it
    err_plain = np.abs(plain(cycle) - irreversible).max()
    err_regen = np.abs(regen(cycle) - irreversible).max()
    assert err_regen < 0.5 * err_plain
    with pytest.raises(ValueError, match="regen_tau"):
        identify(lib, cycle, measured, regen_tau=0.0)


def test_onsets_delay_the_fade_and_are_identified() -> None:
    lib = with_onsets(_library(), (0, 5, 10))
    assert len(lib) == 9
    u = np.arange(60.0)
    # onset 5 of trajectory 1 (index 3 + 1): flat for 5 simulated cycles, then shifted
    assert [p[ONSET] for p in lib.params] == [0.0] * 3 + [5.0] * 3 + [10.0] * 3
    np.testing.assert_allclose(lib.shape(4, u[:6]), 1.0)
    np.testing.assert_allclose(lib.shape(4, u[5:40]), _library().shape(1, u[:35]))
    # a cell that holds its capacity for 30 real cycles (onset 10 at 3 cycles per simulated
    # cycle) and then fades along shape 2: its prior finds the onset and the shape
    cycle = np.arange(1.0, 121.0)
    truth = 1.9 * lib.shape(8, (cycle - 1) / 3.0)
    prior = identify(lib, cycle, truth)
    assert prior.parameters()[ONSET] == pytest.approx(10.0, abs=1.0)  # grid spacing is 5
    # noise-free, but 3.0 is not on the time-scale grid (6 % spacing) and the tempered
    # likelihood averages neighbouring grid points: 0.02 Ah (1 %) is far below the fade
    assert np.abs(prior(cycle) - truth).max() < 0.02
    with pytest.raises(ValueError, match="onsets"):
        with_onsets(_library(), (-1,))


def test_rate_factor_measures_the_cells_fade_relative_to_its_prior() -> None:
    from hybridml_battery import HybridMethod

    lib = _library()
    cycle = np.arange(1.0, 61.0)
    prior = identify(lib, cycle, 2.0 * lib.shape(0, (cycle - 1) / 4.0))
    fade = 1.0 - prior(cycle) / prior.initial
    # a cell fading 1.5 times as fast as its prior: exact by construction (least squares
    # on noise-free points), up to float round-off
    faster = prior.initial * (1.0 - 1.5 * fade)
    assert HybridMethod.rate_factor(prior, cycle, faster) == pytest.approx(1.5, rel=1e-9)
    # clipped to [0.5, 2]: a cell gaining capacity is not extrapolated as a gain
    gaining = prior.initial * (1.0 + fade)
    assert HybridMethod.rate_factor(prior, cycle, gaining) == 0.5
    # too few points to tell: no rescaling
    assert HybridMethod.rate_factor(prior, cycle[:1], faster[:1]) == 1.0
    # regeneration-like bumps (autocorrelated, 30 mAh) make the ratio uncertain: it is
    # shrunk towards 1, the more so the fewer cycles (the less fade) are known
    bumpy = faster + 0.03 * np.sin(cycle / 4.0)
    k_60 = HybridMethod.rate_factor(prior, cycle, bumpy)
    k_20 = HybridMethod.rate_factor(prior, cycle[:20], bumpy[:20])
    assert 1.0 < k_20 < k_60 < 1.5


def _regenerating(cycle: np.ndarray, s: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """A cell fading along shape 0 with regeneration jumps (80, 100 mAh) at cycles 30 and
    55 that recover with time constant ``tau``; returns (measured, irreversible)."""
    trend = 2.0 * _library().shape(0, (cycle - 1) / s)
    events = np.array([30.0, 55.0])
    return trend + regen_basis(cycle, events, tau) @ np.array([0.08, 0.1]), trend


def _four_cells(lib: FadeLibrary) -> tuple[np.ndarray, list[Any]]:
    """Four noise-free cells fading along shape 2 at time scales 3.5, 4.0, 4.5 and 4.2
    (120 cycles each); returns (cycle, cells)."""
    from hybridml_battery import Cell

    cycle = np.arange(1.0, 121.0)
    cells = [
        Cell(f"C{i}", cycle, 2.0 * lib.shape(2, (cycle - 1) / s), np.arange(2, 122))
        for i, s in enumerate((3.5, 4.0, 4.5, 4.2))
    ]
    return cycle, cells


def test_hybrid_chooses_its_share_of_the_correction_on_training_cells_only() -> None:
    from hybridml_battery import SHRINK_GRID, HybridMethod, NetSettings, Window

    lib = _library()
    cycle, cells = _four_cells(lib)
    window = Window(40.0)
    nets = NetSettings(n_members=2, steps=30)
    m = HybridMethod(lib, nets, shrink=SHRINK_GRID).fit(cells[:3], cells[3], window)
    # one inner fold per training cell; the share with the lowest mean inner RMSE is kept
    assert m.inner_ is not None and len(m.inner_) == 3
    assert set(m.inner_rmse_) == set(SHRINK_GRID)
    assert m.shrink_ == min(m.inner_rmse_, key=lambda lam: (m.inner_rmse_[lam], lam))
    assert len(m.inner_scores()) == 3 * int((cycle > 40).sum())
    base, corr = m._parts(cycle)
    mean, scale = m.predict(cycle)
    np.testing.assert_allclose(mean, base + m.shrink_ * corr.mean(axis=0))
    np.testing.assert_allclose(m.members(cycle).mean(axis=0), mean)
    assert scale is not None and np.all(scale >= 0.01)
    # a single share is used as given, without inner folds; the default is the full one
    zero = HybridMethod(lib, nets, shrink=(0.0,)).fit(cells[:3], cells[3], window)
    assert zero.inner_ is None and zero.shrink_ == 0.0
    np.testing.assert_allclose(zero.predict(cycle)[0], zero._parts(cycle)[0])
    assert HybridMethod(lib, nets).fit(cells[:3], cells[3], window).shrink_ == 1.0


def test_rate_feature_gives_the_network_the_cells_rate_factor() -> None:
    from hybridml_battery import HybridMethod, NetSettings, Window

    lib = _library()
    cycle, cells = _four_cells(lib)
    nets = NetSettings(n_members=2, steps=30)
    m = HybridMethod(lib, nets, rate_feature=True).fit(cells[:3], cells[3], Window(40.0))
    x, p, _ = m._features(m.prior_, m.rate_factor_, cycle)
    assert x.shape == (cycle.size, 2)
    np.testing.assert_array_equal(x[:, 0], p)
    np.testing.assert_array_equal(x[:, 1], m.rate_factor_)
    # the networks were built for two inputs, and predict
    assert m.nets_.ensemble.model_.in_features == 2
    assert np.isfinite(m.predict(cycle)[0]).all()


def test_regen_events_are_rises_above_20_mah() -> None:
    cycle = np.arange(1.0, 8.0)
    cap = np.array([2.0, 1.995, 1.99, 2.03, 2.02, 2.015, 2.03])
    # +40 mAh at cycle 4 is regeneration; +15 mAh at cycle 7 is within the noise
    np.testing.assert_array_equal(regen_events(cycle, cap), [4.0])


def test_regeneration_transients_are_taken_out_of_the_prior() -> None:
    lib = _library()
    cycle = np.arange(1.0, 161.0)
    fleet_cells = [_regenerating(cycle, s, 5.0)[0] for s in (3.5, 4.0, 4.5)]
    known = cycle <= 60
    measured, trend = _regenerating(cycle, 4.0, 5.0)
    # without N the recovery time is the default (5 cycles, the one these cells have)
    with_regen = fleet_prior(lib, [(cycle, c) for c in fleet_cells])
    without = fleet_prior(lib, [(cycle, c) for c in fleet_cells], regen=False)
    assert with_regen.regen_tau == 5.0 and without.regen_tau is None
    # with N the fleet chooses it by its own leave-one-cell-out prediction after N
    chosen = fleet_prior(lib, [(cycle, c) for c in fleet_cells], known_cycles=60)
    assert chosen.regen_tau in REGEN_TAUS
    p_regen = identify(lib, cycle[known], measured[known], with_regen)
    p_plain = identify(lib, cycle[known], measured[known], without)
    np.testing.assert_array_equal(p_regen.regen_cycles, [30.0, 55.0])
    np.testing.assert_allclose(p_regen.regen_amplitude, [0.08, 0.1], atol=0.02)
    # the regeneration-aware prior's trend follows the irreversible fade under the bumps;
    # the plain one is pulled up by them
    err_regen = np.abs(p_regen(cycle[known]) - trend[known]).mean()
    err_plain = np.abs(p_plain(cycle[known]) - trend[known]).mean()
    assert err_regen < 0.5 * err_plain
    # what remains of the last known bump decays after N
    tr = p_regen.transient(cycle[~known])
    assert tr[0] > 0 and abs(tr[-1]) < 1e-6


# --------------------------------------------------------------------------- CLI


def test_cli_module_imports_only_the_standard_library() -> None:
    code = (
        "import sys, argparse; from hybridml_battery._cli import add_battery_parser; "
        "p = argparse.ArgumentParser(); add_battery_parser(p.add_subparsers()); "
        "heavy = [m for m in ('torch', 'pybamm', 'numpy', 'matplotlib') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_hybridml_command_lists_the_plugin_command() -> None:
    from hybridml.cli import build_parser

    # the entry point of this distribution (hybridml.commands) registered the subcommand
    help_text = build_parser().format_help()
    assert "battery-ageing" in help_text


def test_unknown_dataset_lists_the_available_ones(tmp_path: Path) -> None:

    with pytest.raises(
        InvalidArgumentError, match=r"'nasaa'.*Did you mean 'nasa'.*nasa, xjtu, tju"
    ):
        run_battery_ageing(dataset="nasaa", out=tmp_path, progress=False)
    path = _write(tmp_path / "d.csv", _cells())
    with pytest.raises(InvalidArgumentError, match="not both"):
        run_battery_ageing(path, dataset="nasa", out=tmp_path, progress=False)


def test_bundled_fleets_load_with_their_conditions() -> None:
    from hybridml_battery import DATASETS

    assert set(DATASETS) == {"nasa", "xjtu", "tju"}
    # the fleets are package data, compressed; nothing is read from outside the package
    for name in ("xjtu", "tju"):
        assert DATASETS[name].path.suffix == ".gz"
        assert DATASETS[name].path.is_relative_to(Path(DATASETS["nasa"].path).parent)
    xjtu = load_cells(dataset_path("xjtu"))
    # the data README: 55 NCM cells in 6 batches (the condition column), 121-942 cycles
    assert len(xjtu.cells) == 55 and xjtu.n_rows == 23297 and not xjtu.dropped
    assert {c.condition for c in xjtu.cells.values()} == {
        f"batch={b}" for b in ("2C", "3C", "R2.5", "R3", "RW", "satellite")
    }
    assert min(c.last_cycle for c in xjtu.cells.values()) == 121
    assert all("temperature_c" not in c.conditions for c in xjtu.cells.values())  # empty
    with pytest.warns(BatteryDataWarning, match="one-cycle dip") as caught:
        tju = load_cells(dataset_path("tju"))
    # 130 cells at 25, 35 and 45 °C in three groups; some end after 28 cycles
    assert len(tju.cells) == 130 and tju.n_rows == 57465
    # three one-cycle dips of 0.49-0.69 A.h, measurement artefacts (data README): dropped,
    # warned about and counted, and nothing else
    dips = {(d.cell_id, d.cycle) for d in tju.dropped}
    assert dips == {
        ("1_CY45-05_1-n19", 176.0),
        ("2_CY45-05_1-n16", 174.0),
        ("2_CY45-05_1-n23", 175.0),
    }
    assert len([w for w in caught if "one-cycle dip" in str(w.message)]) == 3
    temps = {c.conditions["temperature_c"] for c in tju.cells.values()}
    assert temps == {25.0, 35.0, 45.0}
    groups = {c.condition.split(";")[0] for c in tju.cells.values() if c.condition}
    assert groups == {
        f"Dataset_{i}_{k}_battery" for i, k in ((1, "NCA"), (2, "NCM"), (3, "NCM_NCA"))
    }
    assert min(c.last_cycle for c in tju.cells.values()) == 28
    # the defaults of the study for each fleet (data README: none of XJTU reaches 80 %)
    assert DATASETS["xjtu"].eol_fraction == 0.9 and DATASETS["tju"].eol_fraction == 0.8
    assert DATASETS["xjtu"].known_cycles == DATASETS["tju"].known_cycles == 100


def test_cli_reports_a_bad_dataset_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybridml.cli import main

    assert main(["battery-ageing", "--dataset", "foo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hybridml battery-ageing: error: ")
    assert "'foo'" in err[0] and "nasa" in err[0]


def test_the_core_knows_nothing_of_batteries() -> None:
    # the study, its data and its command live in this plug-in, not in src/hybridml (the
    # core may still say "battery cell" in a docstring, as an example of a group)
    import hybridml as hm

    core = Path(hm.__file__).parent
    files = [p for p in sorted(core.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    assert not [p for p in files if "battery" in p.name.lower() or "nasa" in p.name.lower()]
    assert not [p for p in core.rglob("*") if p.is_dir() and "battery" in p.name.lower()]
    imports = [
        f"{p.relative_to(core)}:{i}"
        for p in files
        if p.suffix == ".py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "hybridml_battery" in line or "battery_ageing" in line or "nasa_pcoe" in line
    ]
    assert imports == []
    assert not any("battery" in n.lower() or "nasa" in n.lower() for n in hm.__all__)
    cli = (core / "cli.py").read_text(encoding="utf-8").lower()
    assert "battery" not in cli and "nasa" not in cli


# --------------------------------------------------------------------------- a real quick run

_HAS_ADAPTER = importlib.util.find_spec("hybridml_pybamm") is not None


@pytest.mark.slow  # runs the example end to end (--quick)
@pytest.mark.skipif(not _HAS_ADAPTER, reason="the PyBaMM adapter (simulators/pybamm) is needed")
def test_quick_run_on_bundled_cells(tmp_path: Path) -> None:
    from hybridml_battery import ABLATIONS
    from hybridml_battery._cli import main

    out = tmp_path / "run"
    # a fresh cache: this is the first run on a new machine
    rc = main(
        ["--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--save-model"]
    )
    assert rc == 0
    for name in ("predictions.csv", "metrics.json", "consistency.json", "report.md"):
        assert (out / name).stat().st_size > 0
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "error_vs_known_cycles.png" in figs and len(figs) == 5

    metrics = json.loads((out / "metrics.json").read_text())
    cells = ["B0005", "B0006", "B0007", "B0018"]
    assert sorted(metrics["cells"]) == cells
    methods = ("hybrid", "nn", "physics", "linear", "fleet", "empirical")
    for method in methods:
        m = metrics["methods"][method]
        assert set(m) == {"rmse_ah", "eol_rel_error", "coverage90", "n_cells", "n_cells_eol"}
        assert math.isfinite(m["rmse_ah"]) and m["rmse_ah"] > 0
        # every cell counts in the RMSE; B0007 never reaches 1.4 Ah, so not in the EOL error
        assert (m["n_cells"], m["n_cells_eol"]) == (4, 3)
    assert metrics["eol"] == {"n_cells": 4, "n_reach_eol": 3, "never_reach_eol": ["B0007"]}
    # sane, not a goal: the capacities span 1.2-2.0 Ah, so a prediction off by more than
    # 0.15 Ah on average would be useless; the hybrid is far better on these cells
    assert metrics["methods"]["hybrid"]["rmse_ah"] < 0.15
    assert 0.0 <= metrics["methods"]["hybrid"]["coverage90"] <= 1.0
    assert metrics["methods"]["physics"]["coverage90"] is None  # no interval: null
    # B0007 never reaches 1.4 Ah: EOL error does not apply
    assert metrics["cells"]["B0007"]["hybrid"]["eol_true"] is None
    assert metrics["cells"]["B0007"]["hybrid"]["eol_rel_error"] is None
    assert metrics["cells"]["B0005"]["hybrid"]["eol_true"] == 125

    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "cell_id",
        "cycle",
        "method",
        "capacity_ah_pred",
        "capacity_ah_lower",
        "capacity_ah_upper",
    ]
    hyb = [r for r in rows if r["method"] == "hybrid"]
    assert all(float(r["cycle"]) > 60 for r in rows)
    assert all(
        float(r["capacity_ah_lower"])
        <= float(r["capacity_ah_pred"])
        <= float(r["capacity_ah_upper"])
        for r in hyb
    )
    assert all(r["capacity_ah_lower"] == "" for r in rows if r["method"] == "physics")
    for method in ("linear", "fleet", "empirical"):  # the baselines have intervals too
        assert 0.0 <= metrics["methods"][method]["coverage90"] <= 1.0
    # every cell's unknown cycles are predicted by every method and by the ablations:
    # 108+108+108+72 cycles each
    assert {r["method"] for r in rows} == {*methods, *ABLATIONS}
    assert len(rows) == (len(methods) + len(ABLATIONS)) * (3 * 108 + 72)
    # the ablation is reported apart from the methods
    assert set(metrics["methods"]) == set(methods)
    assert set(metrics["ablations"]) == set(ABLATIONS)
    assert all(math.isfinite(metrics["ablations"][a]["rmse_ah"]) for a in ABLATIONS)
    # what the hybrid chose on each test cell's training cells: weights of the grids
    chosen = metrics["choices"]["hybrid"]
    assert sorted(chosen) == cells
    assert all(0 <= c["weight"] <= 1 and 0 <= c["share"] <= 1 for c in chosen.values())
    assert all(c["prior"] in ("own", "fleet") for c in chosen.values())

    consistency = json.loads((out / "consistency.json").read_text())
    assert consistency["passed"]["hybrid"] is True
    report = (out / "report.md").read_text()
    assert "dropped" in report and "| hybrid |" in report and "| fleet |" in report
    assert "3 reach EOL within their data, 1 never do (B0007)" in report
    assert "The hybrid's choice on the training cells" in report
    # reproducible: the manifest (as `hybridml run` writes it) and the report name the
    # data, the protocol and the seed
    manifest = json.loads((out / "manifest.json").read_text())
    data = dataset_path("nasa")
    assert manifest["inputs"]["data"] == {"path": str(data), "sha256": sha256_file(data)}
    assert manifest["seed"] == 0 and manifest["dataset"] == "nasa"
    assert manifest["protocol"]["known_cycles"] == 60
    assert manifest["protocol"]["split"] == "leave one cell out"
    assert "hybridml" in manifest["versions"] and "torch" in manifest["versions"]
    assert not list(out.glob(".*.tmp"))  # written atomically: no temporary file left
    assert "## Reproduce" in report and "seed: 0" in report and "`nasa`" in report
    # --save-model: the hybrid fitted on every cell, loaded back to forecast a cell from
    # its first 60 cycles (here one it was trained on: the file's round trip is tested
    # exactly in test_battery_hybrid.py)
    from hybridml_battery import FleetHybridMethod, load_cells

    model = FleetHybridMethod.load(out / "hybrid-model.pt")
    assert [c.cell_id for c in model.train_] == cells
    cell = load_cells(dataset_path("nasa"), cells=["B0006"]).cells["B0006"]
    mean, scale = model.apply(cell).predict(np.array([80.0, 120.0, 160.0]))
    assert scale is not None and np.all(np.isfinite(mean)) and np.all(scale > 0)
    assert np.all((mean > 0.5) & (mean < 2.2))  # capacities of a 2 A.h cell
