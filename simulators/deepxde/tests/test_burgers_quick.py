"""CI run of the Burgers benchmark in its quick mode (benchmarks/pinn_burgers.py --quick).

The quick mode trains for a few hundred iterations instead of thousands, so it checks that
the whole pipeline runs and improves on its start, with bounds far looser than the
benchmark's goals (those are for the full run; see docs/simulators/deepxde.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

# runs a benchmark or an example end to end: leave out with -m 'not slow'
pytestmark = pytest.mark.slow

NU = 0.01 / math.pi
BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "pinn_burgers.py"


@pytest.mark.skipif(not BENCHMARK.exists(), reason="benchmarks/ is not in this checkout")
def test_quick_benchmark(tmp_path: Path, load_script: Callable[[Path, str], ModuleType]) -> None:
    module = load_script(BENCHMARK, "pinn_burgers")
    out = tmp_path / "quick.json"
    result = module.main(["--quick", "--json", str(out)])
    saved = json.loads(out.read_text())
    for key in (
        "hybridml_l2_median",
        "hybridml_l2_seeds",
        "hybridml_wall_s_median",
        "deepxde_l2",
        "deepxde_wall_s",
        "time_to_deepxde_error_ratio",
        "adam_its_per_s_ratio",
        "inverse_nu_rel_error",
        "peak_memory_mb",
    ):
        assert key in saved, f"the JSON lacks {key!r}"
    # 400 Adam + 200 BFGS iterations on 1000 points: the untrained network's error is
    # about 1 (u = 0 gives exactly 1); a working set-up gets well below 0.3.
    assert result["hybridml_l2_median"] < 0.3
    # The time-to-DeepXDE's-error ratio is not asserted: in 600 iterations neither set-up
    # has converged, and which is ahead then says little about the full run.
    ratio = result["time_to_deepxde_error_ratio"]
    assert ratio is None or ratio > 0
    # identical net and points (hybridml's compiled jet against DeepXDE's autograd):
    # hybridml must not be much slower than DeepXDE per Adam iteration. Wall-clock timings of
    # 100 iterations on a shared 2-core CI machine vary by 2-3x, hence 0.25 (the full run's
    # goal is 1.5).
    assert result["adam_its_per_s_ratio"] > 0.25
    # nu from 200 noisy observations after a short fit: it has moved from its start (0.05)
    # towards the truth (0.0032); the 2 % goal is for the full run.
    nu = result["inverse_nu"]
    assert math.isfinite(nu) and abs(nu - NU) < abs(0.05 - NU)
    assert result["peak_memory_mb"] < 2048  # the whole pytest process, DeepXDE included
