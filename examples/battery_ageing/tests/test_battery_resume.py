"""Runs that resume: a real ``--quick`` run killed with SIGKILL at random points (during the
PyBaMM sweep, during the fold jobs, while the run folder is written), rerun until it is
done, gives the same outputs as an uninterrupted run, and no saved fold job is run twice.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # five --quick runs of the NASA cells, about 3 minutes

_SAVED = re.compile(r"saved fold job (\S+)")
_RESUMED = re.compile(r"resuming: (\d+) of (\d+) fold jobs")


def _command(out: Path, cache: Path) -> list[str]:
    args = ["--quick", "--out", str(out), "--cache-dir", str(cache), "--jobs", "1"]
    code = f"import sys; from hybridml_battery._cli import main; sys.exit(main({args!r}))"
    return [sys.executable, "-c", code]


def _run(out: Path, cache: Path, kill_after: str | None, delay: float) -> tuple[int, list[str]]:
    """Run the command; with ``kill_after``, SIGKILL it ``delay`` s after the first stderr
    line containing that text. Returns the exit code and the stderr lines."""
    env = {**os.environ, "MPLBACKEND": "Agg", "PYBAMM_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(
        _command(out, cache),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if kill_after is not None and kill_after in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if kill_after is not None:
            while not seen.is_set() and proc.poll() is None:
                seen.wait(0.05)
            time.sleep(delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        try:  # the PyBaMM workers of a killed run, should any be left: they are ours
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    reader.join(timeout=10)
    assert proc.stderr is not None
    proc.stderr.close()
    return proc.returncode, lines


def _manifest(path: Path) -> dict[str, object]:
    m = json.loads(path.read_text())
    for key in ("created", "run", "command"):  # this run's time, wall time and argv
        m.pop(key, None)
    return m


def test_killed_runs_resume_to_the_same_outputs(tmp_path: Path) -> None:
    seed = int(os.environ.get("HYBRIDML_TEST_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    out, cache = tmp_path / "run", tmp_path / "cache"
    # (text of the stderr line after which to kill, seconds to wait after it): during the
    # PyBaMM sweep (cold cache), during the fold jobs, while the run folder is written
    kills = [
        ("PyBaMM fade sweep", rng.uniform(0.0, 3.0)),
        ("saved fold job", rng.uniform(0.0, 6.0)),
        ("figures", rng.uniform(0.0, 0.5)),
    ]
    saved: list[str] = []  # the fold jobs saved by the runs so far, in order
    runs: list[list[str]] = []
    for kill_after, delay in [*kills, (None, 0.0), (None, 0.0), (None, 0.0)]:
        rc, lines = _run(out, cache, kill_after, delay)
        runs.append(lines)
        resumed = [int(m.group(1)) for line in lines if (m := _RESUMED.search(line))]
        # a rerun reads back exactly the jobs the killed runs saved...
        assert resumed == ([len(saved)] if saved else []), (seed, lines)
        now = [m.group(1) for line in lines if (m := _SAVED.search(line))]
        # ... and runs only the others: no saved job is computed (and saved) again
        assert not set(now) & set(saved), (seed, saved, now)
        saved += now
        if rc == 0:
            break
        assert rc == -signal.SIGKILL, (seed, rc, lines[-5:])
    else:
        pytest.fail(f"the run did not finish (seed {seed})")
    assert len(runs) >= 2, "the run finished before it could be killed"  # kills are early
    assert len(saved) == len(set(saved)) == 4  # the 4 NASA cells, left out one at a time
    assert not (tmp_path / "run.progress").exists()  # removed once the run is complete
    assert not list(tmp_path.glob("run.partial-*"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["fold_jobs"] == 4

    ref = tmp_path / "ref"
    rc, lines = _run(ref, cache, None, 0.0)
    assert rc == 0, lines[-5:]
    for name in ("metrics.json", "predictions.csv", "consistency.json"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), (seed, name)
    assert _manifest(out / "manifest.json") == _manifest(ref / "manifest.json")
