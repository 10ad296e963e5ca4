"""Test-wide settings for every test under tests/ and simulators/*/tests/."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

# PyBaMM must never prompt for telemetry; DeepXDE must use the pytorch backend.
os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


def _load_script(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses (and forked workers) look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script() -> Callable[[Path, str], ModuleType]:
    """``load_script(path, name)``: import a script (a benchmark, an example) as a module."""
    return _load_script


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run each test with one torch thread, and restore the setting afterwards.

    The tests train tiny networks, for which torch's intra-op threads cost more than they
    give: on a 2-core machine that is also running other work they made tests 10-40x slower.
    The library itself never changes this setting; the tests choose it for speed.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
