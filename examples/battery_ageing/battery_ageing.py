"""Predict capacity fade and end of life of the NASA PCoE cells from their first 60 cycles.

Run:  python examples/battery_ageing/battery_ageing.py [--quick]
(the same as `hybridml battery-ageing [--quick] --out runs/battery-ageing`).
"""

import sys

import torch
from hybridml_battery import run_battery_ageing

# Many tiny networks train faster on one thread (this is our script, so we may set it).
torch.set_num_threads(1)

result = run_battery_ageing(
    None,  # or "my_cells.csv" with columns cell_id, cycle, capacity_ah
    known_cycles=60,  # the model sees each test cell's cycles <= 60
    eol_ah=1.4,  # end of life: first cycle at or below 1.4 Ah
    out="runs/battery-ageing",
    quick="--quick" in sys.argv,
)
print(result.summary())
print("report:", result.out / "report.md")
