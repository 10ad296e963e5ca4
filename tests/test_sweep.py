"""Sweeps: any Executor, failures recorded with parameters, resumable on-disk cache."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

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
    # the first two (one success, one failure) came from the cache; only 2 new solves
    assert calls == ["1.0", "-1.0", "2.0", "3.0"]
    assert full.n_cached == 2 and full.n_failed == 1
    np.testing.assert_allclose(full.results[0]["y [1]"], first.results[0]["y [1]"])
