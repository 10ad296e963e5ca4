"""Choosing a design of the hybrid without looking at the test cells: nested leave-one-out.

With four cells every design choice made by looking at the leave-one-cell-out results is
a choice made on the test cells. This script shows the honest way to compare designs: for
each test cell (outer fold) it runs a leave-one-cell-out over that fold's three *training*
cells only (inner folds, two cells as fleet) and scores each design there; the test
cell's later cycles are used only for the outer score, printed beside it so that one can
see whether the inner folds point the right way.

Designs compared:

* ``hybrid``: the study's default hybrid (network input: the prior's state of health);
* ``rate-feature``: the network also gets the cell's rate factor as an input
  (``HybridMethod(..., rate_feature=True)``);
* ``physics-fleet``: the hybrid's physics prior without network and rate factor (the
  study's ablation).

Per N it prints the mean RMSE after N of the inner folds (what a choice may see) and of
the outer folds, with the outer mean EOL error (1.4 Ah).

Run:  python examples/battery_ageing/nested_variants.py [N ...]   (default 20 40 60 80;
about 10-20 minutes on one core). Results in docs/examples/battery-ageing.md.
"""

import sys
from collections.abc import Callable

import numpy as np
import torch
from hybridml_battery import (
    Cell,
    HybridMethod,
    Method,
    NetSettings,
    PhysicsMethod,
    SweepDesign,
    Window,
    dataset_path,
    default_cache_dir,
    fade_library,
    load_cells,
)

torch.set_num_threads(1)
EOL_AH = 1.4


def rmse_after(method: Method, cell: Cell, n: int) -> float:
    unk = cell.cycle > n
    return float(np.sqrt(np.mean((method.predict(cell.cycle[unk])[0] - cell.capacity[unk]) ** 2)))


def eol_error(method: Method, cell: Cell, n: int) -> float | None:
    hit = np.flatnonzero(cell.capacity <= EOL_AH)
    if not hit.size:
        return None
    true = float(cell.cycle[hit[0]])
    grid = np.arange(n + 1, 3 * cell.last_cycle + 1, dtype=float)
    below = np.flatnonzero(method.predict(grid)[0] <= EOL_AH)
    pred = float(grid[below[0]]) if below.size else float(grid[-1])
    return abs(pred - true) / true


def main(ns: list[int]) -> None:
    cells = load_cells(dataset_path("nasa"), cells=["B0005", "B0006", "B0007", "B0018"])
    library = fade_library(SweepDesign.default(False), cache_dir=default_cache_dir(), workers=1)
    designs: dict[str, Callable[[int], Method]] = {
        "hybrid": lambda seed: HybridMethod(library, NetSettings(), seed),
        "rate-feature": lambda seed: HybridMethod(library, NetSettings(), seed, rate_feature=True),
        "physics-fleet": lambda seed: PhysicsMethod(library, fleet=True),
    }
    ids = list(cells.cells)
    print(f"{'N':>3} {'design':>14} {'inner rmse':>11} {'outer rmse':>11} {'outer eol':>10}")
    for n in ns:
        window = Window(float(n))
        for name, make in designs.items():
            inner: list[float] = []
            outer: list[float] = []
            eol: list[float] = []
            for cid in ids:
                test = cells.cells[cid]
                train = [cells.cells[k] for k in ids if k != cid]
                for j, held in enumerate(train):
                    rest = [c for i, c in enumerate(train) if i != j]
                    inner.append(rmse_after(make(1000 * (j + 1)).fit(rest, held, window), held, n))
                fitted = make(0).fit(train, test, window)
                outer.append(rmse_after(fitted, test, n))
                e = eol_error(fitted, test, n)
                if e is not None:
                    eol.append(e)
            print(
                f"{n:>3} {name:>14} {np.mean(inner):>11.4f} {np.mean(outer):>11.4f} "
                f"{np.mean(eol):>10.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [20, 40, 60, 80])
