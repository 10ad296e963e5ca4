"""Parameter sweeps on any ``concurrent.futures.Executor``, with failures recorded and an
on-disk cache so an interrupted sweep resumes where it stopped."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..data._dataset import Dataset
    from ._contract import ProvidesData

__all__ = ["SweepFailure", "SweepResult", "run_sweep"]


@dataclass(frozen=True)
class SweepFailure:
    """A simulation of a sweep that failed: its index, parameters and the error message."""

    index: int
    params: dict[str, float]
    error: str
    message: str


@dataclass
class SweepResult:
    """Results of a sweep, in the order of the parameter sets.

    Attributes:
        params: the parameter sets, in order.
        results: one :class:`~hybridml.Dataset` per parameter set, ``None`` where it failed.
        failures: the failed runs with their parameters and messages.
        n_cached: how many results were read from the cache instead of computed.
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


def _key(adapter_key: str, params: Mapping[str, float]) -> str:
    payload = json.dumps(
        {"adapter": adapter_key, "params": {k: float(v) for k, v in sorted(params.items())}},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _run_one(adapter: ProvidesData, params: dict[str, float]) -> tuple[bool, Any]:
    # Runs in a worker: any exception of the simulation becomes a recorded failure.
    try:
        return True, adapter.simulate(params)
    except Exception as exc:  # recorded, not swallowed: the sweep reports every failure
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return False, (type(exc).__name__, f"{exc}{where}")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run_sweep(
    adapter: ProvidesData,
    param_sets: Sequence[Mapping[str, float]],
    *,
    executor: Executor | None = None,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Run ``adapter.simulate`` for each parameter set; see :meth:`ProvidesData.sweep`."""
    from .._progress import progress_bar
    from ..data._dataset import Dataset

    params = [{k: float(v) for k, v in p.items()} for p in param_sets]
    results: list[Dataset | None] = [None] * len(params)
    failures: dict[int, SweepFailure] = {}
    cache = Path(cache_dir) if cache_dir is not None else None
    keys = [_key(adapter.cache_key(), p) for p in params]
    todo: list[int] = []
    n_cached = 0
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(keys):
        if cache is not None and (cache / f"{key}.npz").exists():
            results[i] = Dataset.load(cache / f"{key}.npz")
            n_cached += 1
        elif cache is not None and (cache / f"{key}.failed.json").exists():
            info = json.loads((cache / f"{key}.failed.json").read_text(encoding="utf-8"))
            failures[i] = SweepFailure(i, params[i], info["error"], info["message"])
            n_cached += 1
        else:
            todo.append(i)

    def record(i: int, ok: bool, value: Any) -> None:
        if ok:
            results[i] = value
            if cache is not None:
                value.save(cache / f"{keys[i]}.npz")
        else:
            failures[i] = SweepFailure(i, params[i], value[0], value[1])
            if cache is not None:
                _atomic_write_text(
                    cache / f"{keys[i]}.failed.json",
                    json.dumps({"params": params[i], "error": value[0], "message": value[1]}),
                )

    bar = progress_bar(total=len(todo), desc="sweep", enabled=progress)
    try:
        if executor is None:
            for i in todo:
                record(i, *_run_one(adapter, params[i]))
                bar.update(1)
        else:
            futures: dict[Future[tuple[bool, Any]], int] = {
                executor.submit(_run_one, adapter, params[i]): i for i in todo
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
