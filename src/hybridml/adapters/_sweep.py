"""Parameter sweeps on any ``concurrent.futures.Executor``, with failures recorded and an
on-disk cache so an interrupted sweep resumes where it stopped.

The cache heals itself: an entry that cannot be read is reported (a :class:`CacheWarning`
naming the file), moved aside as ``<name>.corrupt`` and recomputed; a failed simulation
is retried once on a later sweep before it is taken from the cache; every entry is written
atomically. The key of an entry is a hash of the adapter's settings
(:meth:`ProvidesData.cache_key`), the versions of the adapter's distribution and of the
distributions it requires (the simulator), and the parameters.

Worker processes of a ``ProcessPoolExecutor`` end when the process that runs the sweep
dies (even by ``kill -9``): the first task a worker runs starts a watchdog thread there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import re
import threading
import traceback
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import CacheWarning, InvalidArgumentError

if TYPE_CHECKING:
    from ..data._dataset import Dataset
    from ._contract import ProvidesData

__all__ = ["SweepFailure", "SweepResult", "run_sweep"]

#: how often a simulation is tried, over all sweeps on one cache, before its failure is
#: taken from the cache (a transient failure gets one more chance on a later sweep)
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class SweepFailure:
    """A simulation of a sweep that failed: its index, parameters and the error message.

    ``attempts`` counts the tries over every sweep on the same cache (1 without a cache).
    """

    index: int
    params: dict[str, float]
    error: str
    message: str
    attempts: int = 1


@dataclass
class SweepResult:
    """Results of a sweep, in the order of the parameter sets.

    Attributes:
        params: the parameter sets, in order.
        results: one :class:`~hybridml.Dataset` per parameter set, ``None`` where it failed.
        failures: the failed runs with their parameters and messages.
        n_cached: how many results (and final failures) were read from the cache instead
            of computed.
    """

    params: list[dict[str, float]]
    results: list[Dataset | None]
    failures: list[SweepFailure] = field(default_factory=list)
    n_cached: int = 0

    @property
    def n_failed(self) -> int:
        """Number of failed simulations."""
        return len(self.failures)

    @property
    def succeeded(self) -> list[tuple[dict[str, float], Dataset]]:
        """(params, dataset) pairs of the runs that succeeded."""
        return [(p, r) for p, r in zip(self.params, self.results, strict=True) if r is not None]

    def summary(self) -> str:
        """One line: how many ran, failed, came from the cache."""
        n = len(self.params)
        return (
            f"{n - self.n_failed}/{n} simulations succeeded, {self.n_failed} failed, "
            f"{self.n_cached} from cache"
        )


# ---------------------------------------------------------------- the cache key


@functools.cache
def _distribution_versions(module: str) -> tuple[tuple[str, str], ...]:
    """(name, version) of the distribution that installs ``module``'s top-level package and
    of every distribution it requires (outside extras), sorted; empty for a module that
    no distribution installs (a script, a test file)."""
    top = module.split(".", 1)[0]
    found: dict[str, str] = {}
    for dist in metadata.packages_distributions().get(top, []):
        try:
            found[dist.lower()] = metadata.version(dist)
            requires = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:  # pragma: no cover - half-installed
            continue
        for req in requires:
            if "extra ==" in req.replace("extra==", "extra =="):
                continue
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
            if match is None:  # pragma: no cover - not a requirement line
                continue
            name = match.group(1).lower()
            try:
                found.setdefault(name, metadata.version(name))
            except metadata.PackageNotFoundError:  # an optional or platform dependency
                pass
    return tuple(sorted(found.items()))


def simulator_versions(adapter: ProvidesData) -> dict[str, str]:
    """The versions a sweep cache keys on: the distribution that provides the adapter's
    class and the distributions it requires (for the PyBaMM adapter: ``hybridml-pybamm``,
    ``pybamm``, ``numpy``, ...). Upgrading any of them starts a fresh cache."""
    return dict(_distribution_versions(type(adapter).__module__))


def _key(adapter_key: str, versions: Mapping[str, str], params: Mapping[str, float]) -> str:
    payload = json.dumps(
        {
            "adapter": adapter_key,
            "versions": dict(versions),
            "params": {k: float(v) for k, v in sorted(params.items())},
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


# ---------------------------------------------------------------- workers


_WATCHING_PID: int | None = None  # the worker process whose watchdog runs (fork copies it)


def _exit_with(owner: int) -> None:
    """In a worker process started by process ``owner`` (a ``ProcessPoolExecutor`` of the
    sweep): start, once, a daemon thread that ends this process as soon as its parent
    dies, so that ``kill -9`` of a sweep leaves no worker behind. Nothing is done in the
    sweeping process itself (threads, serial) or in a process that ``owner`` did not start
    (a Dask worker on another machine)."""
    global _WATCHING_PID
    pid = os.getpid()
    if pid == owner or _WATCHING_PID == pid or os.name != "posix":
        return
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid != owner:
        return
    _WATCHING_PID = pid
    ppid = os.getppid()

    def watch() -> None:
        while True:
            parent.join(0.5)  # returns at once when the parent's end of its pipe closes
            # an orphan is adopted by another process, so its ppid changes (this also
            # catches siblings that hold the parent's pipe open after a fork)
            if not parent.is_alive() or os.getppid() != ppid:
                os._exit(70)  # the parent is gone: nobody waits for this result

    threading.Thread(target=watch, name="hybridml-sweep-watchdog", daemon=True).start()


def _run_one(
    adapter: ProvidesData, params: dict[str, float], owner: int | None = None
) -> tuple[bool, Any]:
    # Runs in a worker: any exception of the simulation becomes a recorded failure.
    if owner is not None:
        _exit_with(owner)
    try:
        return True, adapter.simulate(params)
    except Exception as exc:  # recorded, not swallowed: the sweep reports every failure
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return False, (type(exc).__name__, f"{exc}{where}")


# ---------------------------------------------------------------- cache entries


def _move_aside(path: Path, reason: str) -> None:
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
        where = f"moved to '{aside}'"
    except OSError:  # pragma: no cover - a read-only cache: the entry is recomputed anyway
        where = "left in place (it could not be moved)"
    warnings.warn(
        f"sweep cache entry '{path}' cannot be read ({reason}); it was {where} and the "
        "simulation is run again. Delete the .corrupt file once you have looked at it.",
        CacheWarning,
        stacklevel=4,
    )


def _read_result(path: Path) -> Dataset | None:
    """The dataset of a cache entry; None (after a warning) when it cannot be read."""
    from ..data._dataset import Dataset

    try:
        return Dataset.load(path)
    except FileNotFoundError:  # removed by someone else meanwhile: compute it
        return None
    except Exception as exc:  # any damage (DataError, OSError, ...): heal, do not die
        _move_aside(path, f"{type(exc).__name__}: {exc}")
        return None


def _read_failure(path: Path) -> dict[str, Any] | None:
    """The record of a failed simulation; None (after a warning) when it cannot be read."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise InvalidArgumentError("not a JSON object")
        return {
            "error": str(info["error"]),
            "message": str(info["message"]),
            "attempts": int(info.get("attempts", 1)),
        }
    except FileNotFoundError:
        return None
    except Exception as exc:
        _move_aside(path, f"{type(exc).__name__}: {exc}")
        return None


def _cache_folder(cache_dir: str | Path) -> Path:
    cache = Path(cache_dir)
    if cache.exists() and not cache.is_dir():
        raise InvalidArgumentError(
            f"cache_dir {str(cache)!r} is a file, not a folder; pass a folder (it is "
            "created if missing) or move the file away."
        )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot create the sweep cache folder {str(cache)!r}: {exc.strerror or exc}; "
            "pass a writable cache_dir."
        ) from exc
    return cache


def run_sweep(
    adapter: ProvidesData,
    param_sets: Sequence[Mapping[str, float]],
    *,
    executor: Executor | None = None,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Run ``adapter.simulate`` for each parameter set; see :meth:`ProvidesData.sweep`."""
    from .._atomic import atomic_write
    from .._progress import progress_bar

    params = [{k: float(v) for k, v in p.items()} for p in param_sets]
    results: list[Dataset | None] = [None] * len(params)
    failures: dict[int, SweepFailure] = {}
    tried: dict[int, int] = {}  # index -> attempts recorded in the cache before this sweep
    cache = _cache_folder(cache_dir) if cache_dir is not None else None
    versions = simulator_versions(adapter) if cache is not None else {}
    keys = [_key(adapter.cache_key(), versions, p) for p in params]
    todo: list[int] = []
    n_cached = 0
    for i, key in enumerate(keys):
        if cache is not None and (cache / f"{key}.npz").exists():
            results[i] = _read_result(cache / f"{key}.npz")
            if results[i] is not None:
                n_cached += 1
                continue
        if cache is not None and (cache / f"{key}.failed.json").exists():
            info = _read_failure(cache / f"{key}.failed.json")
            if info is not None and info["attempts"] >= MAX_ATTEMPTS:
                failures[i] = SweepFailure(
                    i, params[i], info["error"], info["message"], info["attempts"]
                )
                n_cached += 1
                continue
            tried[i] = info["attempts"] if info is not None else 0
        todo.append(i)

    def record(i: int, ok: bool, value: Any) -> None:
        if ok:
            results[i] = value
            if cache is not None:
                value.save(cache / f"{keys[i]}.npz")  # atomic (Dataset.save)
                (cache / f"{keys[i]}.failed.json").unlink(missing_ok=True)
            return
        attempts = tried.get(i, 0) + 1
        failures[i] = SweepFailure(i, params[i], value[0], value[1], attempts)
        if cache is not None:
            text = json.dumps(
                {"params": params[i], "error": value[0], "message": value[1], "attempts": attempts}
            )
            atomic_write(cache / f"{keys[i]}.failed.json", lambda f: f.write(text))

    bar = progress_bar(total=len(todo), desc="sweep", enabled=progress)
    try:
        if executor is None:
            for i in todo:
                record(i, *_run_one(adapter, params[i]))
                bar.update(1)
        else:
            owner = os.getpid()
            futures: dict[Future[tuple[bool, Any]], int] = {
                executor.submit(_run_one, adapter, params[i], owner): i for i in todo
            }
            for fut in as_completed(futures):
                record(futures[fut], *fut.result())
                bar.update(1)
    finally:
        bar.close()
    return SweepResult(
        params=params,
        results=results,
        failures=[failures[i] for i in sorted(failures)],
        n_cached=n_cached,
    )
