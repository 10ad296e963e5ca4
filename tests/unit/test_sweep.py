"""Sweeps: any Executor, failures recorded with parameters, a resumable on-disk cache that
heals (damaged entries recomputed, failures retried once, simulator versions in the key),
and no orphaned workers when the sweeping process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybridml as hm
from hybridml.adapters import ProvidesData


class Decay(ProvidesData):
    """y = exp(-k t); k <= 0 fails. Counts its calls in a file to see what was recomputed."""

    name = "decay-test"

    def __init__(self, log: str | None = None) -> None:
        self.log = log

    def __repr__(self) -> str:
        return "Decay()"

    def simulate(self, params: Mapping[str, float] | None = None) -> hm.Dataset:
        k = float((params or {}).get("k", 1.0))
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"{k}\n")
        if k <= 0:
            raise hm.SimulationError(f"k must be > 0, got {k}")
        t = np.linspace(0.0, 1.0, 5)
        return hm.Dataset({"t [s]": t, "y [1]": np.exp(-k * t)})


PARAMS = [{"k": 1.0}, {"k": -1.0}, {"k": 2.0}, {"k": 3.0}]


@pytest.mark.parametrize("kind", ["serial", "threads", "processes"])
def test_sweep_on_executors_records_failures(kind: str) -> None:
    adapter = Decay()
    if kind == "serial":
        res = adapter.sweep(PARAMS)
    else:
        pool = ThreadPoolExecutor(2) if kind == "threads" else ProcessPoolExecutor(2)
        with pool:
            res = adapter.sweep(PARAMS, executor=pool)
    assert res.n_failed == 1
    fail = res.failures[0]
    assert fail.index == 1 and fail.params == {"k": -1.0}
    assert fail.error == "SimulationError" and "k must be > 0" in fail.message
    assert res.results[1] is None
    for p, ds in res.succeeded:
        np.testing.assert_allclose(ds["y [1]"], np.exp(-p["k"] * ds["t [s]"]))
    assert "3/4 simulations succeeded" in res.summary()


def test_sweep_cache_resumes_without_recomputing(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    adapter = Decay(str(log))
    first = adapter.sweep(PARAMS[:2], cache_dir=tmp_path / "cache")  # "interrupted" after 2
    assert first.n_cached == 0
    full = adapter.sweep(PARAMS, cache_dir=tmp_path / "cache")
    calls = log.read_text().split()
    # the success came from the cache; the failure is tried once more, then 2 new solves
    assert calls == ["1.0", "-1.0", "-1.0", "2.0", "3.0"]
    assert full.n_cached == 1 and full.n_failed == 1
    np.testing.assert_allclose(full.results[0]["y [1]"], first.results[0]["y [1]"])
    # entries are written atomically: no temporary file is left beside them
    assert sorted(f.suffix for f in (tmp_path / "cache").iterdir()) == [".json", *[".npz"] * 3]


def test_a_failure_is_retried_once_then_read_from_the_cache(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    adapter = Decay(str(log))
    for attempt in (1, 2, 2):  # the third sweep takes the (second) failure from the cache
        res = adapter.sweep([{"k": -1.0}], cache_dir=tmp_path / "cache")
        assert res.n_failed == 1 and res.failures[0].attempts == attempt
        assert "k must be > 0" in res.failures[0].message
    assert log.read_text().split() == ["-1.0", "-1.0"]
    assert res.n_cached == 1


class Flaky(ProvidesData):
    """Fails the first time it runs (a transient failure: a licence server, a full disk)."""

    name = "flaky-test"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __repr__(self) -> str:
        return "Flaky()"

    def simulate(self, params: Mapping[str, float] | None = None) -> hm.Dataset:
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            raise hm.SimulationError("the licence server did not answer")
        return hm.Dataset({"t [s]": np.arange(3.0), "y [1]": np.ones(3)})


def test_a_transient_failure_succeeds_on_the_retry(tmp_path: Path) -> None:
    adapter, cache = Flaky(str(tmp_path / "ran-once")), tmp_path / "cache"
    assert adapter.sweep([{"k": 1.0}], cache_dir=cache).n_failed == 1
    second = adapter.sweep([{"k": 1.0}], cache_dir=cache)
    assert second.n_failed == 0 and second.results[0] is not None
    assert [f.suffix for f in cache.iterdir()] == [".npz"]  # the failure record is gone
    assert adapter.sweep([{"k": 1.0}], cache_dir=cache).n_cached == 1


DAMAGE = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: b"not a cache entry\n" * 10,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("entry", [".npz", ".failed.json"])
def test_a_damaged_cache_entry_is_reported_moved_aside_and_recomputed(
    tmp_path: Path, damage: str, entry: str
) -> None:
    log, cache = tmp_path / "calls.txt", tmp_path / "cache"
    adapter = Decay(str(log))
    # one entry: a result, or a failure already tried twice (read from the cache from now on)
    params = [{"k": 2.0}] if entry == ".npz" else [{"k": -1.0}]
    for _ in range(1 if entry == ".npz" else 2):
        first = adapter.sweep(params, cache_dir=cache)
    (victim,) = cache.iterdir()
    assert victim.name.endswith(entry)
    damaged = DAMAGE[damage](victim.read_bytes())
    victim.write_bytes(damaged)
    n_calls = len(log.read_text().split())
    with pytest.warns(hm.CacheWarning) as record:
        second = adapter.sweep(params, cache_dir=cache)
    (message,) = [str(w.message) for w in record]
    # the warning names the file and says what was done and what to do
    assert f"'{victim}'" in message and "moved to" in message and "run again" in message
    assert (cache / f"{victim.name}.corrupt").read_bytes() == damaged  # kept to look at
    assert len(log.read_text().split()) == n_calls + 1  # the damaged entry was recomputed
    assert second.results == first.results and second.n_failed == first.n_failed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # healed: the next sweep reads it without a word
        third = adapter.sweep(params, cache_dir=cache)
    if entry == ".npz":
        assert third.n_cached == 1 and len(log.read_text().split()) == n_calls + 1


# ---------------------------------------------------------------- real sweeps (ODE adapter)


def _ode(**settings: object) -> ProvidesData:
    from hybridml_ode import ODEAdapter, exponential_decay

    return ODEAdapter(
        exponential_decay, [1.0], (0.0, 1.0), state_names=["y [1]"], params={"k": 1.0}, **settings
    )


def test_the_cache_key_holds_the_adapters_settings(tmp_path: Path) -> None:
    sets = [{"k": 1.0}, {"k": 2.0}]
    assert _ode().sweep(sets, cache_dir=tmp_path).n_cached == 0
    assert _ode().sweep(sets, cache_dir=tmp_path).n_cached == 2
    # a setting that changes results (the solver's tolerance, the output times) is a new key
    assert _ode(rtol=1e-6).sweep(sets, cache_dir=tmp_path).n_cached == 0
    assert _ode(t_eval=[0.0, 0.5, 1.0]).sweep(sets, cache_dir=tmp_path).n_cached == 0


FAKE_SIMULATOR = """
import numpy as np
import hybridml as hm
from hybridml.adapters import ProvidesData


class Sim(ProvidesData):
    name = "fakesim"

    def __repr__(self):
        return "Sim()"

    def simulate(self, params=None):
        return hm.Dataset({"t [s]": np.arange(3.0), "y [1]": np.full(3, params["k"])})
"""


def _install_fake_simulator(site: Path, version: str) -> None:
    """A distribution 'fakesim' of the given version, as pip would leave it in site-packages."""
    (site / "fakesim").mkdir(parents=True, exist_ok=True)
    (site / "fakesim" / "__init__.py").write_text(FAKE_SIMULATOR)
    for old in site.glob("fakesim-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"fakesim-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: fakesim\nVersion: {version}\nRequires-Dist: hybridml\n"
    )
    (info / "top_level.txt").write_text("fakesim\n")


def test_the_cache_key_holds_the_simulators_version(tmp_path: Path) -> None:
    site, cache = tmp_path / "site", tmp_path / "cache"
    script = (
        "import sys, fakesim; r = fakesim.Sim().sweep([{'k': 1.0}], cache_dir=sys.argv[1]);"
        "print(r.n_cached)"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def n_cached() -> int:  # a fresh process: what a user's next run would see
        out = subprocess.run(
            [sys.executable, "-c", script, str(cache)], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])

    _install_fake_simulator(site, "1.0")
    assert [n_cached(), n_cached()] == [0, 1]
    _install_fake_simulator(site, "1.1")  # an upgrade of the simulator: computed afresh
    assert n_cached() == 0
    _install_fake_simulator(site, "1.0")  # and back: the old entry is still valid
    assert n_cached() == 1


SWEEP_SCRIPT = """
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from hybridml_ode import ODEAdapter, exponential_decay

if __name__ == "__main__":
    adapter = ODEAdapter(
        exponential_decay, [1.0], (0.0, 1.0), state_names=["y [1]"], params={"k": 1.0}
    )
    sets = [{"k": 0.5 + 1e-4 * i} for i in range(20000)]  # minutes of work: killed long before
    context = multiprocessing.get_context(sys.argv[2])
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        adapter.sweep(sets, executor=pool, cache_dir=sys.argv[1], progress=False)
"""


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and the worker watchdog are POSIX")
@pytest.mark.parametrize("context", ["fork", "forkserver"])  # forkserver: the battery study's
def test_kill_9_of_a_sweep_leaves_no_workers_and_no_damaged_entries(
    tmp_path: Path, context: str
) -> None:
    psutil = pytest.importorskip("psutil")
    cache = tmp_path / "cache"
    (tmp_path / "sweep.py").write_text(SWEEP_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "sweep.py"), str(cache), context],
        stderr=subprocess.PIPE,
    )
    try:
        # wait until the workers are busy: results arrive in the cache
        deadline = time.monotonic() + 300  # generous: the machine may be loaded
        while len(list(cache.glob("*.npz"))) < 4:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the sweep wrote no results"
            time.sleep(0.1)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert workers, "the sweep runs no worker processes"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]

    def running(p: Any) -> bool:  # a psutil.Process
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    # the workers notice within about a second (they poll every 0.5 s); 60 s is a bound
    # no loaded machine should reach, and the loop ends as soon as they are gone
    deadline = time.monotonic() + 60
    while any(running(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    # (the workers, and with forkserver the server and the resource tracker)
    alive = [p.pid for p in workers if running(p)]
    for pid in alive:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"worker processes {alive} outlived the killed sweep"
    # every entry the killed sweep left is complete (atomic writes): all read back
    entries = sorted(cache.glob("*.npz"))
    assert len(entries) >= 4
    for f in entries:
        assert hm.Dataset.load(f).n_rows == 101
