"""The battery active-learning demo (examples/battery_ageing/active_learning.py), quick mode."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hybridml_battery import dataset_path, load_cells

# runs a benchmark or an example end to end: leave out with -m 'not slow'
pytestmark = pytest.mark.slow

_HAS_ADAPTER = importlib.util.find_spec("hybridml_pybamm") is not None
_SCRIPT = Path(__file__).parents[1] / "active_learning.py"


@pytest.mark.skipif(not _HAS_ADAPTER, reason="the PyBaMM adapter (simulators/pybamm) is needed")
def test_quick_demo_recommends_unmeasured_cycles_and_tracks_eol(
    tmp_path: Path, load_script: Callable[[Path, str], ModuleType]
) -> None:
    al = load_script(_SCRIPT, "battery_active_learning")
    known, rounds, batch = 30, 2, 3
    out_json = tmp_path / "res.json"
    res = al.main(
        ["--quick", "--rounds", str(rounds), "--batch", str(batch), "--random-seeds", "1",
         "--known", str(known), "--out", str(tmp_path / "figs"),
         "--cache-dir", str(tmp_path / "cache"), "--json", str(out_json)]
    )  # fmt: skip
    assert json.loads(out_json.read_text())["measurements"] == [0, 3, 6]
    assert Path(res["figure"]).stat().st_size > 0

    cell = load_cells(dataset_path("nasa"), cells=["B0006"]).cells["B0006"]
    c = res["cells"]["B0006"]
    # B0006 first reaches 1.4 Ah at cycle 109 in the bundled data
    assert c["eol_true"] == 109.0
    pool = set(cell.cycle[cell.cycle > known].tolist())
    assert c["pool_size"] == len(pool)
    starts = set()
    for name in al.STRATEGIES:
        assert name in c
        for run in c[name]["runs"]:
            picks = [p for batch_picks in run["picks"] for p in batch_picks]
            # every recommendation is a not-yet-measured cycle of the pool, none twice
            assert len(run["picks"]) == rounds and all(len(b) == batch for b in run["picks"])
            assert set(picks) <= pool and len(set(picks)) == len(picks)
            assert set(run["needed"]) == {"0.05", "0.02"}
            err = run["eol_rel_error"]
            assert len(err) == rounds + 1 and all(math.isfinite(e) and e >= 0 for e in err)
            starts.add(round(err[0], 9))
            # sane, not a race: from the first 30 cycles alone the EOL is 39 % off (the cell
            # fades faster than its prior); six capacities of later cycles, wherever they
            # lie, bring every strategy to within 15 % in our runs (5-10 % typical)
            assert err[-1] < 0.15 < err[0]
    # before any new measurement every strategy fits the same data with the same seed
    assert len(starts) == 1
    for name in al.STRATEGIES:
        assert np.allclose(res["mean_error"][name], c[name]["mean_error"])
