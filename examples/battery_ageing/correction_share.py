"""How much of the hybrid's network correction to trust: an ablation on the NASA cells.

For each N and each test cell (leave one cell out) the hybrid is fitted with
``shrink=SHRINK_GRID``: it also runs a leave-one-cell-out over the *training* cells and
picks the share ``lam`` of its correction (prediction ``prior + lam * correction``) with
the lowest mean RMSE after N there. The script prints, per N, the mean over the test cells
of the RMSE after N and the EOL error (1.4 Ah) of the fleet-informed physics prior
(`physics-fleet`: the hybrid without its network), of the hybrid at
each fixed share, and of the hybrid at the share chosen by the inner folds; and the inner
folds' own mean RMSE per share (what the choice sees). The test cells' later cycles are
used only to score.

Run:  python examples/battery_ageing/correction_share.py [N ...]   (default 20 40 60 80;
about 25-55 s per test cell and N on one core, depending on load). Results in
docs/examples/battery-ageing.md.
"""

import sys

import numpy as np
import torch
from hybridml_battery import (
    SHRINK_GRID,
    HybridMethod,
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


def first_below(cycles: np.ndarray, capacity: np.ndarray) -> float | None:
    hit = np.flatnonzero(capacity <= EOL_AH)
    return float(cycles[hit[0]]) if hit.size else None


def main(ns: list[int]) -> None:
    cells = load_cells(dataset_path("nasa"), cells=["B0005", "B0006", "B0007", "B0018"])
    library = fade_library(SweepDesign.default(False), cache_dir=default_cache_dir(), workers=1)
    ids = list(cells.cells)
    cols = ["physics-fleet", *[f"lam={lam:g}" for lam in SHRINK_GRID], "chosen"]
    print(f"{'N':>3} {'':>8} " + " ".join(f"{c:>15}" for c in cols))
    for n in ns:
        window = Window(float(n))
        rmse: dict[str, list[float]] = {c: [] for c in cols}
        eol: dict[str, list[float]] = {c: [] for c in cols}
        inner = np.zeros(len(SHRINK_GRID))
        chosen = []
        for cid in ids:
            test = cells.cells[cid]
            train = [cells.cells[k] for k in ids if k != cid]
            hyb = HybridMethod(library, NetSettings(), 0, shrink=SHRINK_GRID)
            hyb.fit(train, test, window)
            phys = PhysicsMethod(library, fleet=True).fit(train, test, window)
            unk = test.cycle > n
            grid = np.arange(n + 1, 3 * test.last_cycle + 1, dtype=float)
            eol_true = first_below(test.cycle, test.capacity)
            base_u, corr_u = hyb._parts(test.cycle[unk])
            base_g, corr_g = hyb._parts(grid)
            preds = {"physics-fleet": (phys.predict(test.cycle[unk])[0], phys.predict(grid)[0])}
            for lam in SHRINK_GRID:
                preds[f"lam={lam:g}"] = (
                    base_u + lam * corr_u.mean(axis=0),
                    base_g + lam * corr_g.mean(axis=0),
                )
            preds["chosen"] = preds[f"lam={hyb.shrink_:g}"]
            for c, (pu, pg) in preds.items():
                rmse[c].append(float(np.sqrt(np.mean((pu - test.capacity[unk]) ** 2))))
                if eol_true is not None:
                    e = first_below(grid, pg)
                    eol[c].append(abs((e if e is not None else grid[-1]) - eol_true) / eol_true)
            inner += np.array([hyb.inner_rmse_[float(lam)] for lam in SHRINK_GRID]) / len(ids)
            chosen.append(hyb.shrink_)
        print(
            f"{n:>3} {'rmse/eol':>8} "
            + " ".join(f"{np.mean(rmse[c]):>7.4f}/{np.mean(eol[c]):>7.3f}" for c in cols)
        )
        print(
            f"{'':>3} {'inner':>8} {'':>15} "
            + " ".join(f"{v:>15.4f}" for v in inner)
            + f"   chosen per cell: {chosen}",
            flush=True,
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [20, 40, 60, 80])
