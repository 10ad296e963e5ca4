"""Run folders are written as a whole: nothing half-written, no stale file of an older run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hybridml import HybridMLError, RunFolder, atomic_write


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_finished_run_replaces_the_older_folder_as_a_whole(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "mine"  # the parent does not exist yet
    with RunFolder(out) as run:
        (run / "figures").mkdir()
        (run / "figures" / "a.png").write_bytes(b"png")
        run.write_json("metrics.json", {"rmse": 1.0})
    assert _files(out) == {"figures/a.png", "metrics.json"}
    with RunFolder(out) as run:  # a rerun that writes fewer files
        run.write_text("report.md", "# new\n")
    assert _files(out) == {"report.md"}  # no stale figure or metrics survive
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine"]  # nothing left beside


def test_a_failed_run_leaves_the_older_folder_and_a_marked_partial_one(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    with RunFolder(out) as run:
        run.write_text("report.md", "old\n")
    with pytest.raises(ZeroDivisionError), RunFolder(out) as run:
        run.write_json("metrics.json", {"rmse": 2.0})
        _ = 1 / 0
    assert (out / "report.md").read_text() == "old\n" and _files(out) == {"report.md"}
    (partial,) = tmp_path.glob("mine.partial-*")
    assert _files(partial) == {"INCOMPLETE", "metrics.json"}
    with RunFolder(out) as run:  # the next run removes the dead run's partial folder
        run.write_text("report.md", "new\n")
    assert not list(tmp_path.glob("mine.partial-*"))
    assert (out / "report.md").read_text() == "new\n"


KILLED_RUN = r"""
import sys, time
from hybridml import RunFolder
with RunFolder(sys.argv[1]) as run:
    run.write_text("metrics.json", "{}")
    print("writing", flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_a_run_killed_while_writing_leaves_the_older_folder(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    with RunFolder(out) as run:
        run.write_text("report.md", "old\n")
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(out)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert _files(out) == {"report.md"}
    (partial,) = tmp_path.glob("mine.partial-*")
    assert "INCOMPLETE" in _files(partial)


def test_a_run_killed_between_its_renames_gets_its_older_folder_back(tmp_path: Path) -> None:
    # the state a kill between "move the old folder aside" and "move the new one in"
    # leaves: no `out`, the old folder renamed with a dead process's id
    out = tmp_path / "mine"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / f"mine.old-{dead}").mkdir()
    (tmp_path / f"mine.old-{dead}" / "report.md").write_text("old\n")
    with pytest.raises(RuntimeError), RunFolder(out):
        assert (out / "report.md").read_text() == "old\n"  # restored when the run starts
        raise RuntimeError("stop")
    assert (out / "report.md").read_text() == "old\n"


def test_an_output_path_that_is_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    with pytest.raises(HybridMLError, match=r"results.txt.*is an existing file"):
        RunFolder(target)
    with pytest.raises(ValueError, match="is a file"):  # also a ValueError
        RunFolder(target / "sub")
    assert target.read_text() == "keep me"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text("old")

    def fail(f):
        f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left
    atomic_write(path, lambda f: f.write(b"new"), binary=True)
    assert path.read_bytes() == b"new"
