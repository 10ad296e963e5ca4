"""The battery-ageing study's fault catalogue: every bad input gets
one clean message naming the file, line, cell or option and saying what to do, or is
handled correctly; the PyBaMM fade cache heals; the run folder is never half-written.

Each case is one test. Most run the command in-process on a small CSV written here and
fail before any simulation; the cache and kill tests run real PyBaMM simulations (a tiny
sweep) and a real ``--quick`` run.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hybridml_battery import BatteryDataWarning, dataset_path, load_cells
from hybridml_battery._cli import main
from hybridml_battery._identify import REGEN_MIN_AH, regen_events
from hybridml_battery._metrics import REGEN_TOL_AH, _checks
from hybridml_battery._physics import REFERENCE_AH, SweepDesign, capacity_scale, fade_library

from hybridml import CacheWarning, DataError

HEADER = ["cell_id", "cycle", "capacity_ah"]
_HAS_ADAPTER = importlib.util.find_spec("hybridml_pybamm") is not None
needs_pybamm = pytest.mark.skipif(not _HAS_ADAPTER, reason="needs simulators/pybamm")


def _rows(n_cells: int = 2, n: int = 40, scale: float = 1.0) -> list[list[object]]:
    rows: list[list[object]] = []
    for c in range(n_cells):
        for k in range(1, n + 1):
            rows.append([f"C{c}", k, round(scale * (2.0 - 0.004 * (1 + c) * k), 6)])
    return rows


def _write(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the command in-process (N=20: the small cells here have 40 cycles); its status
    and its stderr (one line expected)."""
    rc = main(args if "--known-cycles" in args else [*args, "--known-cycles", "20"])
    err = capsys.readouterr().err.strip()
    return rc, err


def _one_clean_line(rc: int, err: str) -> str:
    lines = [ln for ln in err.splitlines() if not ln.startswith("[battery-ageing")]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("hybridml battery-ageing: error: ")
    return lines[0]


# --------------------------------------------------------------------------- units


def test_mah_file_is_refused_with_the_unit_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "mah.csv", _rows(scale=1000.0))  # values around 1900
    rc, err = _cli(["--data", str(path), "--out", str(tmp_path / "o")], capsys)
    line = _one_clean_line(rc, err)
    assert str(path) in line and "median" in line and "--capacity-unit mAh" in line
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_capacity_unit_mah_converts_to_the_same_cells(tmp_path: Path) -> None:
    ah = load_cells(_write(tmp_path / "ah.csv", _rows()))
    mah = load_cells(_write(tmp_path / "mah.csv", _rows(scale=1000.0)), capacity_unit="mAh")
    for cid, cell in ah.cells.items():
        # x1000 then /1000 in floating point: equal to a few ulps
        np.testing.assert_allclose(mah.cells[cid].capacity, cell.capacity, rtol=1e-14)
        assert mah.cells[cid].capacity_scale == cell.capacity_scale == 2.0


def test_thresholds_at_the_nasa_scale_are_the_calibrated_constants() -> None:
    # the NASA cells (rated 2 Ah, initial 1.84-2.02 Ah) keep the thresholds their results
    # were computed with: 20 mAh regeneration step, 0.15 Ah check tolerance, bitwise
    nasa = load_cells(dataset_path("nasa"), cells=["B0005", "B0006", "B0007", "B0018"])
    assert {c.capacity_scale for c in nasa.cells.values()} == {REFERENCE_AH}
    monotone = _checks(1.9, REFERENCE_AH)[1]
    assert monotone.tolerance == REGEN_TOL_AH == 0.15
    c = nasa.cells["B0018"]
    np.testing.assert_array_equal(
        regen_events(c.cycle, c.capacity), c.cycle[1:][np.diff(c.capacity) > REGEN_MIN_AH]
    )


def test_thresholds_scale_with_the_cells_capacity() -> None:
    # the same trajectory in a 0.125 Ah cell (1/16 of 2 Ah): the same regeneration events,
    # where the unscaled 20 mAh threshold would find none (the bump is 2.5 mAh)
    cycle = np.arange(1.0, 8.0)
    cap = np.array([2.0, 1.995, 1.99, 2.03, 2.02, 2.015, 2.03])
    small = cap / 16.0
    assert capacity_scale(small) == 0.125
    np.testing.assert_array_equal(regen_events(cycle, small), regen_events(cycle, cap))
    assert regen_events(cycle, cap).tolist() == [4.0]
    assert _checks(0.125, capacity_scale(small))[1].tolerance == pytest.approx(0.15 / 16)


def test_eol_ah_above_every_capacity_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "d.csv", _rows())
    rc, err = _cli(["--data", str(path), "--eol-ah", "2.5", "--out", str(tmp_path / "o")], capsys)
    line = _one_clean_line(rc, err)
    assert "--eol-ah 2.5" in line and "C0 (initial" in line and "C1 (initial" in line
    assert "EOL error of 0" in line and "lower --eol-ah" in line


def test_eol_ah_given_in_mah_gets_the_unit_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "d.csv", _rows(scale=1000.0))
    args = ["--data", str(path), "--capacity-unit", "mAh", "--eol-ah", "1400"]
    rc, err = _cli([*args, "--out", str(tmp_path / "o")], capsys)
    assert "--eol-ah is in A.h" in _one_clean_line(rc, err)


# --------------------------------------------------------------------------- cycle numbers


@pytest.mark.parametrize(
    ("cycle", "expect"),
    [
        (-3, r"line 4 \(cell 'C0'\): cycle is -3; cycle numbers count .* from 1"),
        (0, r"line 4 \(cell 'C0'\): cycle is 0; .*add 1 to every cycle"),
        (2.5, r"line 4 \(cell 'C0'\): cycle is 2.5, not a whole number"),
        (1e12, r"line 4 \(cell 'C0'\): cycle is 1e\+12, above 1e\+06"),
    ],
    ids=["negative", "zero", "fractional", "1e12"],
)
def test_bad_cycle_numbers_are_refused_naming_cell_and_line(
    tmp_path: Path, cycle: float, expect: str
) -> None:
    rows = _rows()
    rows[2][1] = cycle  # line 4 of the file (header is line 1), cell C0
    with pytest.raises(DataError, match=expect):
        load_cells(_write(tmp_path / "d.csv", rows))


def test_cycle_1e12_is_refused_by_the_command_without_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows()
    rows[-1][1] = 1e12  # would ask for a prediction grid of 3e12 cycles (21.8 TiB)
    path = _write(tmp_path / "d.csv", rows)
    rc, err = _cli(["--data", str(path), "--out", str(tmp_path / "o")], capsys)
    line = _one_clean_line(rc, err)
    assert f"line {len(rows) + 1} (cell 'C1')" in line and "fix the value" in line


def test_a_shifted_first_cycle_is_warned_and_kept(tmp_path: Path) -> None:
    # handled, not refused: a cell whose first measurement is lost starts later; its
    # numbers are kept as counted from first use, and the user is told once
    rows = [r for r in _rows() if not (r[0] == "C1" and int(r[1]) <= 10)]
    with pytest.warns(BatteryDataWarning, match=r"cell 'C1' starts at cycle 11 \(line \d+\)"):
        data = load_cells(_write(tmp_path / "d.csv", rows))
    assert data.cells["C1"].cycle[0] == 11 and data.cells["C0"].cycle[0] == 1


def test_capacity_1e300_is_refused_naming_cell_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows()
    rows[5][2] = 1e300  # line 7, cell C0
    path = _write(tmp_path / "d.csv", rows)
    rc, err = _cli(["--data", str(path), "--out", str(tmp_path / "o")], capsys)
    line = _one_clean_line(rc, err)
    assert "line 7 (cell 'C0')" in line and "1e+300" in line and "no single cell" in line


# --------------------------------------------------------------------------- unreadable --data


def _data_error(tmp_path: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    rc, err = _cli(["--data", str(path), "--out", str(tmp_path / "o")], capsys)
    line = _one_clean_line(rc, err)
    assert f"'{path}'" in line
    return line


def test_data_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is a folder; --data takes a CSV file" in _data_error(tmp_path, tmp_path, capsys)


def test_data_is_binary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cells.npz"
    path.write_bytes(b"PK\x03\x04\x00\x00" + bytes(range(256)) * 4)
    assert "export" in _data_error(tmp_path, path, capsys).lower()


def test_data_is_latin1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.csv"
    text = "cell_id,cycle,capacity_ah,condition\n" + "".join(
        f"C{c},{k},{2 - 0.004 * k:.4f},25 °C\n" for c in range(2) for k in range(1, 40)
    )
    path.write_bytes(text.encode("latin-1"))
    line = _data_error(tmp_path, path, capsys)
    assert "not UTF-8" in line and "byte 0xb0" in line and "iconv -f latin1" in line


def test_gzip_without_gz_name_is_read(tmp_path: Path) -> None:
    # handled: a compressed file is recognised by its first bytes, not its name
    plain = _write(tmp_path / "d.csv", _rows())
    packed = tmp_path / "d_compressed.csv"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = load_cells(plain), load_cells(packed)
    for cid in a.cells:
        np.testing.assert_array_equal(a.cells[cid].capacity, b.cells[cid].capacity)


def test_gz_name_on_a_plain_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.csv.gz"
    path.write_bytes(_write(tmp_path / "d.csv", _rows()).read_bytes())
    assert "not gzip-compressed; rename it" in _data_error(tmp_path, path, capsys)


def test_truncated_gzip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.csv.gz"
    whole = gzip.compress(_write(tmp_path / "d.csv", _rows(n=200)).read_bytes())
    path.write_bytes(whole[: len(whole) // 2])
    line = _data_error(tmp_path, path, capsys)
    assert "truncated gzip" in line and "gzip -t" in line


def test_truncated_csv_drops_the_cut_row_naming_it(tmp_path: Path) -> None:
    # a plain file cut in its last row: that row has no capacity and is dropped with a
    # warning naming its line (the rows before it are whole)
    path = _write(tmp_path / "d.csv", _rows())
    text = path.read_text()
    path.write_text(text[: text.rstrip().rfind(",")])  # cut before the last capacity
    with pytest.warns(BatteryDataWarning, match=r"line 81 \(cell 'C1'\), cycle 40: capacity"):
        data = load_cells(path)
    assert [d.line for d in data.dropped] == [81]


# --------------------------------------------------------------------------- --out, --cache-dir


def test_out_is_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "d.csv", _rows())
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    rc, err = _cli(["--data", str(data), "--out", str(target)], capsys)
    line = _one_clean_line(rc, err)
    assert str(target) in line and "existing file; choose another --out" in line
    assert target.read_text() == "keep me"


def test_out_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "d.csv", _rows())
    (tmp_path / "f").write_text("x")
    rc, err = _cli(["--data", str(data), "--out", str(tmp_path / "f" / "run")], capsys)
    assert "is a file" in _one_clean_line(rc, err)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_out_in_an_unwritable_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # /proc refuses new folders even to root (a chmod'ed folder would not stop root)
    data = _write(tmp_path / "d.csv", _rows())
    rc, err = _cli(["--data", str(data), "--out", "/proc/hybridml-nowhere/run"], capsys)
    line = _one_clean_line(rc, err)
    assert "/proc/hybridml-nowhere" in line and "writable place" in line


def test_cache_dir_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "d.csv", _rows())
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    args = ["--data", str(data), "--out", str(tmp_path / "o"), "--cache-dir", str(cache)]
    rc, err = _cli(args, capsys)
    line = _one_clean_line(rc, err)
    assert f"(--cache-dir) '{cache}' is a file" in line and "pass a folder" in line


# --------------------------------------------------------------------------- the fade cache

# two simulations of 8 cycles: the smallest library fade_library accepts, a few seconds
_TINY = SweepDesign(8, (1e-14, 1e-13), (2e-18,), onsets=(0,))


def _npz(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.npz"))


@needs_pybamm
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_cache_entry_is_named_moved_aside_and_recomputed(
    tmp_path: Path, damage: str
) -> None:
    cache = tmp_path / "cache"
    first = fade_library(_TINY, cache_dir=cache, workers=1)
    entry = _npz(cache)[0]
    data = entry.read_bytes()
    entry.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    with pytest.warns(CacheWarning, match=rf"'{entry}' cannot be read.*moved to"):
        again = fade_library(_TINY, cache_dir=cache, workers=1)
    assert (cache / (entry.name + ".corrupt")).exists() and entry.stat().st_size > 0
    assert again.n_cached == 1  # the other entry was read, the damaged one recomputed
    # the same simulation again: equal to rounding (PyBaMM's solver is not bitwise
    # repeatable within one process; 1e-9 is far below any effect on the study)
    np.testing.assert_allclose(again.curves, first.curves, rtol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # healed: the third run reads both, silently
        assert fade_library(_TINY, cache_dir=cache, workers=1).n_cached == 2


@needs_pybamm
def test_cache_key_covers_settings_and_pybamm_version(tmp_path: Path) -> None:
    from hybridml_battery._physics import _adapter_class

    from hybridml.adapters import simulator_versions

    cache = tmp_path / "cache"
    fade_library(_TINY, cache_dir=cache, workers=1)
    keys = {p.name for p in _npz(cache)}
    # another number of cycles is another adapter setting: new entries, none reused
    longer = SweepDesign(9, _TINY.rates, _TINY.diffusivities, onsets=(0,))
    assert fade_library(longer, cache_dir=cache, workers=1).n_cached == 0
    assert len({p.name for p in _npz(cache)} - keys) == 2
    adapter = _adapter_class()("SPM", "Mohtat2020", cycles=8, output="cycles")
    assert "pybamm" in simulator_versions(adapter)  # upgrading PyBaMM changes every key


@needs_pybamm
def test_failed_simulation_is_retried_once_on_a_later_run(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tiny3 = SweepDesign(8, (1e-14, 3e-14, 1e-13), (2e-18,), onsets=(0,))  # 2 left if 1 fails
    fade_library(tiny3, cache_dir=cache, workers=1)
    entry = _npz(cache)[0]
    failed = cache / f"{entry.stem}.failed.json"
    # the state a first, failed attempt leaves: no result, a failure tried once
    entry.unlink()
    failed.write_text(json.dumps({"error": "SolverError", "message": "x", "attempts": 1}))
    lib = fade_library(tiny3, cache_dir=cache, workers=1)
    assert lib.n_cached == 2 and not lib.failures  # tried again, and it worked
    assert entry.exists() and not failed.exists()
    # a failure tried twice is read from the cache (and reported), not tried a third time
    entry.unlink()
    failed.write_text(json.dumps({"error": "SolverError", "message": "x", "attempts": 2}))
    lib = fade_library(tiny3, cache_dir=cache, workers=1)
    assert lib.n_cached == 3 and len(lib.failures) == 1 and "SolverError" in lib.failures[0]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@needs_pybamm
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_kill_9_during_the_sweep_leaves_no_worker(tmp_path: Path) -> None:
    # 6 simulations (a process pool is used above 4) of many cycles: still running when
    # the parent is killed
    script = (
        "from hybridml_battery._physics import SweepDesign, fade_library\n"
        "d = SweepDesign(400, (1e-14, 3e-14, 1e-13), (2e-18, 2e-17), onsets=(0,))\n"
        f"fade_library(d, cache_dir={str(tmp_path / 'cache')!r}, workers=2)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 3:  # forkserver + 2 workers
            time.sleep(0.2)
            workers = _descendants(proc.pid)
        assert len(workers) >= 3, "the pool did not start"
        time.sleep(2.0)  # let the workers start their first simulation (and watchdog)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the watchdogs poll every 0.5 s; 30 s leaves room on a loaded machine
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)]


# --------------------------------------------------------------------------- the run folder


@needs_pybamm
@pytest.mark.slow
def test_kill_9_while_writing_keeps_the_old_folder_and_a_rerun_leaves_nothing_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    (out / "figures").mkdir(parents=True)
    old = {"metrics.json": '{"old": true}', "report.md": "old", "figures/capacity_C9.png": "x"}
    for name, text in old.items():
        (out / name).write_text(text)
    data = _write(tmp_path / "d.csv", _rows(n=50))
    args = ["--data", str(data), "--quick", "--known-cycles", "30", "--out", str(out)]
    args += ["--cache-dir", str(tmp_path / "cache")]
    code = f"import sys; from hybridml_battery._cli import main; sys.exit(main({args!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    partial = tmp_path / f"run.partial-{proc.pid}"
    try:
        # kill as soon as the new metrics.json is written, before the figures and report
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if (partial / "metrics.json").exists():
                break
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (partial / "metrics.json").exists(), "the run ended before it was killed"
    # the old folder is whole and untouched; the new one is beside it, marked
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(old)
    assert all((out / n).read_text() == t for n, t in old.items())
    assert (partial / "INCOMPLETE").exists()

    # an ordinary rerun (fewer cells than the old run's figures) replaces the folder whole
    rc = main(args)
    capsys.readouterr()
    assert rc == 0
    assert not (out / "INCOMPLETE").exists() and not partial.exists()
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "capacity_C0.png",
        "capacity_C1.png",
        "error_vs_known_cycles.png",
    ]
    assert "old" not in json.loads((out / "metrics.json").read_text())
