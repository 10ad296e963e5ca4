"""CI run of the PDE suite in its quick mode (benchmarks/pde_suite.py --quick).

Every case trains for a few seconds with each method, so this checks that the cases, the
recipe, DeepXDE's baseline, the table, the JSON and the plot all work end to end; the
accuracy goals are for full runs (docs/simulators/deepxde-benchmark-notes.md). The shipped
reference data computed by the suite's own solvers are checked against a rerun of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

# runs a benchmark end to end: leave out with -m 'not slow'
pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
SUITE = BENCHMARKS / "pde_suite.py"
CASES = ("burgers", "poisson_lshape", "ns2d_c", "poisson_boltzmann2d")
CASES += ("reaction_inverse", "allen_cahn")


@pytest.mark.skipif(not SUITE.exists(), reason="benchmarks/ is not in this checkout")
# DeepXDE's Polygon (the L-shaped domain) calls np.cross on 2-d vectors, which NumPy 2
# deprecates: DeepXDE's warning, not the suite's
@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
def test_quick_suite(tmp_path: Path, load_script: Callable[[Path, str], ModuleType]) -> None:
    module = load_script(SUITE, "pde_suite")
    out, png = tmp_path / "quick.json", tmp_path / "quick.png"
    result = module.main(["--quick", "--json", str(out), "--plot", str(png)])
    saved = json.loads(out.read_text())
    assert saved["quick"] is True and set(saved["cases"]) == set(CASES)
    assert set(saved["goals"]) == set(CASES)
    for name in CASES:
        case = saved["cases"][name]
        for method in ("recipe", "deepxde"):
            r = case[method]
            # a few seconds of training: no accuracy bound, but the errors must be numbers
            # (NaN would mean a broken reference or a diverged fit) and the runs must have
            # trained and been measured
            assert math.isfinite(r["l2"]) and r["l2"] > 0, (name, method, r["l2"])
            assert r["wall_s"] > 0 and r["peak_memory_mb"] > 0
        assert case["deepxde"]["adam_iterations"] > 0
        assert case["deepxde"]["settings"]["source"]
        assert isinstance(case["recipe"]["settings"], dict) and case["recipe"]["settings"]
    inverse = saved["cases"]["reaction_inverse"]
    for method in ("recipe", "deepxde"):
        coefficients = inverse[method]["coefficients"]
        assert set(coefficients) == {"kf", "D"}
        # finite (a NaN would mean a diverged fit); not necessarily positive: after a few
        # seconds DeepXDE's raw, unconstrained variables can still be on the wrong side of 0
        # (kf = -0.02 on a fast machine), and how far each gets depends on the machine
        assert all(math.isfinite(v) for v in coefficients.values())
        assert math.isfinite(inverse[method]["coefficient_error"])
        assert math.isfinite(inverse[method]["coefficient_error"])
    # the table lists every case and method; the plot is a PNG
    table = module.table(
        {n: {m: result["cases"][n][m] for m in ("recipe", "deepxde")} for n in CASES}
    )
    assert all(f"| {n} | recipe |" in table and f"| {n} | deepxde |" in table for n in CASES)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not SUITE.exists(), reason="benchmarks/ is not in this checkout")
def test_shipped_references_match_their_solvers(
    load_script: Callable[[Path, str], ModuleType],
) -> None:
    cases = load_script(BENCHMARKS / "pde_cases.py", "pde_cases")
    with np.load(cases.DATA / "allen_cahn.npz") as f:
        x, t, u = (np.asarray(f[k], dtype=np.float64) for k in ("x", "t", "u"))
    # the solver is deterministic; the shipped file holds its output rounded to float32
    # (relative 6e-8 of values of order 1)
    assert np.abs(cases.solve_allen_cahn(t, x) - u).max() < 1e-6
    with np.load(cases.DATA / "reaction.npz") as f:
        x, t, ca, cb = (np.asarray(f[k], dtype=np.float64) for k in ("x", "t", "ca", "cb"))
    a, b = cases.solve_reaction(t, x)
    assert np.abs(a - ca).max() < 1e-6 and np.abs(b - cb).max() < 1e-6
