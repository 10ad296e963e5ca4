"""The monitor's battery demo (examples/battery_ageing/monitor_demo.py), quick mode."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

_SCRIPT = Path(__file__).parents[1] / "monitor_demo.py"


def test_accelerated_fade_raises_the_alarm_and_the_normal_cell_does_not(
    tmp_path: Path, load_script: Callable[[Path, str], ModuleType]
) -> None:
    demo = load_script(_SCRIPT, "battery_monitor_demo")
    out_json, out_png = tmp_path / "res.json", tmp_path / "monitor.png"
    res = demo.main(["--quick", "--json", str(out_json), "--plot", str(out_png)])
    assert json.loads(out_json.read_text())["cells"].keys() == res["cells"].keys()
    assert out_png.stat().st_size > 0

    normal, fast = res["cells"]["normal"], res["cells"]["accelerated"]
    # both streams are the same real cell over the whole horizon; only the capacity after
    # the onset differs (the perturbation is the documented extra fade)
    assert normal["cell"] == fast["cell"]
    assert normal["cycles_checked"] == fast["cycles_checked"] == res["horizon"]
    assert normal["capacity"][:50] == fast["capacity"][:50]

    # Why these hold on any machine: the data, the split rule and the seeds are fixed, and
    # nothing is timed; only float round-off of the network can differ between machines.
    # The margins dwarf it: measured in quick mode, the normal cell's CUSUM statistic peaks
    # at 0.05 of the threshold, while the extra fade (5 % of the initial capacity per 100
    # cycles, about 3 held-out error sd per 100 cycles) crosses it 36 cycles after the
    # onset, with 114 cycles of the horizon still to go. The alarm cannot come before the
    # onset, where the two streams are identical and the normal one stays far below 1.
    assert normal["first_alarm_cycle"] is None
    assert normal["max_statistic"] < 0.5
    onset, last = res["onset_cycle"], res["known_cycles"] + res["horizon"]
    assert fast["first_alarm_cycle"] is not None
    assert onset < fast["first_alarm_cycle"] < last
