"""Watching a capacity model in use: when does :class:`hybridml.Monitor` raise the drift
alarm on a cell's cycles after N?

The bundled XJTU fleet (55 cells, 6 cycling conditions) is split by a fixed rule on the
sorted cell ids: every 5th cell (positions 4, 9, ...) is a test cell, the cell before each
of them a held-out cell, the rest training cells. A small network
(:class:`hybridml.HybridRegressor`) learns a cell's normalised capacity
``capacity / initial capacity`` at a cycle after N from

* ``cycles after N [100 cycles]``,
* ``level at N [1]``: the cell's mean normalised capacity over cycles N-9..N,
* ``fade at N [1/100 cycles]``: its least-squares slope over cycles N-49..N,

on the training cells' cycles N+1..N+horizon. An :class:`hybridml.Monitor` is fitted with
those rows and with the errors of the held-out cells' cycles (cells the network never saw,
so the error scale is that of a new cell, not of the fit). Then the cycles after N of two
cells are fed in cycle order, one cycle per check:

* ``normal``: the test cell whose normalised capacity over cycles N+1..N+horizon is
  closest (root mean square) to the training fleet's median trajectory, among the test
  cells measured over the whole horizon;
* ``accelerated``: the same cell with a documented perturbation: from cycle N+onset its
  capacity loses an extra ``--extra-fade`` of its initial capacity per 100 cycles (an
  onset of fast fade such as lithium plating that the fleet never showed); its early
  window, hence its inputs, are those of the normal cell;

and, for information, ``farthest``: the real test cell farthest from the fleet's median
trajectory (not asserted: the network may well predict it from its early window).

The drift test is a two-sided CUSUM (``hm.CUSUM``) with a false-alarm probability of 1 %
over the horizon. Prediction errors of one cell are correlated from cycle to cycle (a cell
sits a little above or below the fleet for its whole life), which the test reads as a
shift; the default ``--shift 2`` (allowance of 1 standard deviation of the held-out
errors) lets a cell stay within one such standard deviation of the model for good without
an alarm, and a cell that drifts further is caught (mean delay ``expected_delay``).

Run:  python examples/battery_ageing/monitor_demo.py [--quick] [--json PATH] [--plot PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from hybridml_battery import Cell, dataset_path, load_cells

import hybridml as hm

INPUTS = ("cycles after N [100 cycles]", "level at N [1]", "fade at N [1/100 cycles]")
OUTPUT = "capacity [1]"


def split(ids: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(training, held-out, test) cells by position in the sorted ids: position 4 mod 5
    is a test cell, 3 mod 5 a held-out cell, the others training cells."""
    ids = sorted(ids)
    test = [c for i, c in enumerate(ids) if i % 5 == 4]
    held = [c for i, c in enumerate(ids) if i % 5 == 3]
    train = [c for i, c in enumerate(ids) if i % 5 < 3]
    return train, held, test


def early_window(cell: Cell, known: int) -> tuple[float, float]:
    """The cell's normalised level over cycles N-9..N and its slope over N-49..N
    [1/100 cycles]."""
    q = cell.capacity / cell.initial_capacity
    level = float(np.mean(q[(cell.cycle > known - 10) & (cell.cycle <= known)]))
    w = (cell.cycle > known - 50) & (cell.cycle <= known)
    slope = float(np.polyfit(cell.cycle[w] / 100.0, q[w], 1)[0])
    return level, slope


def rows(
    cell: Cell, known: int, horizon: int, every: int = 1, capacity: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (n, 3), targets (n, 1) and cycles of the cell's cycles N+1..N+horizon (each
    ``every``-th), with ``capacity`` in place of the measured one when given."""
    cap = cell.capacity if capacity is None else capacity
    level, slope = early_window(cell, known)
    sel = (cell.cycle > known) & (cell.cycle <= known + horizon)
    sel &= (cell.cycle - known - 1) % every == 0
    cyc = cell.cycle[sel]
    x = np.column_stack([(cyc - known) / 100.0, np.full(cyc.size, level), np.full(cyc.size, slope)])
    return x, (cap[sel] / cell.initial_capacity)[:, None], cyc


def stack(cells: list[Cell], known: int, horizon: int, every: int) -> tuple[Any, Any]:
    parts = [rows(c, known, horizon, every) for c in cells]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def trajectory_distance(cell: Cell, median: np.ndarray, known: int, horizon: int) -> float:
    """RMS distance of the cell's normalised capacity over N+1..N+horizon to ``median``
    (cycles the cell lacks are left out)."""
    q = cell.capacity / cell.initial_capacity
    sel = (cell.cycle > known) & (cell.cycle <= known + horizon)
    idx = (cell.cycle[sel] - known - 1).astype(int)
    return float(np.sqrt(np.nanmean((q[sel] - median[idx]) ** 2)))


def accelerated(cell: Cell, known: int, onset: int, extra_fade: float) -> np.ndarray:
    """The cell's capacity with an extra loss of ``extra_fade`` of its initial capacity per
    100 cycles from cycle N+onset on."""
    after = np.clip(cell.cycle - (known + onset), 0.0, None)
    return cell.capacity - extra_fade * cell.initial_capacity * after / 100.0


def run(
    *,
    known: int = 100,
    horizon: int = 200,
    onset: int = 50,
    extra_fade: float = 0.05,
    shift: float = 2.0,
    false_alarm: float = 0.01,
    quick: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit, monitor the three cells and return the figures (see the module docstring)."""
    data = load_cells(dataset_path("xjtu"))
    cells = data.cells
    train, held, test = split(list(cells))
    train = [c for c in train if cells[c].last_cycle > known]
    held = [c for c in held if cells[c].last_cycle > known]
    every = 10 if quick else 5
    x_tr, y_tr = stack([cells[c] for c in train], known, horizon, every)
    x_ho, y_ho = stack([cells[c] for c in held], known, horizon, 1)
    model = hm.HybridRegressor(
        inputs=list(INPUTS),
        outputs=[OUTPUT],
        hidden=(16, 16),
        adam_steps=600 if quick else 2000,
        lr=3e-3,
        quasi_newton_steps=0 if quick else 100,
        seed=seed,
        progress=False,
    ).fit(x_tr, y_tr)
    test_rule = hm.CUSUM(shift=shift, false_alarm=false_alarm, horizon=horizon)
    monitor = hm.Monitor(model, drift=test_rule).fit(x_tr, y_tr, errors=(x_ho, y_ho))

    # the fleet's median trajectory over N+1..N+horizon (training cells that reach a cycle)
    grid = np.full((len(train), horizon), np.nan)
    for i, c in enumerate(train):
        cell = cells[c]
        sel = (cell.cycle > known) & (cell.cycle <= known + horizon)
        grid[i, (cell.cycle[sel] - known - 1).astype(int)] = (
            cell.capacity[sel] / cell.initial_capacity
        )
    median = np.nanmedian(grid, axis=0)
    dist = {c: trajectory_distance(cells[c], median, known, horizon) for c in test}
    full = [c for c in test if cells[c].last_cycle >= known + horizon]
    normal_id = min(full, key=dist.__getitem__)
    far_id = max(test, key=dist.__getitem__)
    normal = cells[normal_id]
    streams = {
        "normal": (normal, None),
        "accelerated": (normal, accelerated(normal, known, onset, extra_fade)),
        "farthest": (cells[far_id], None),
    }
    out: dict[str, Any] = {
        "dataset": "xjtu",
        "known_cycles": known,
        "horizon": horizon,
        "onset_cycle": known + onset,
        "extra_fade_per_100_cycles": extra_fade,
        "cusum": {
            "shift": shift,
            "false_alarm": false_alarm,
            "horizon": horizon,
            "threshold": test_rule.threshold(),
            "expected_delay_at_shift": test_rule.expected_delay(),
        },
        "training_cells": train,
        "held_out_cells": held,
        "error_std": float(monitor.error_std_[0]),  # type: ignore[index]
        "cells": {},
    }
    for name, (cell, cap) in streams.items():
        monitor.reset()
        x, y, cyc = rows(cell, known, horizon, 1, capacity=cap)
        stat, alarm = [], []
        for i in range(len(cyc)):  # one cycle at a time, as measurements arrive
            rep = monitor.check(x[i : i + 1], y[i : i + 1])
            stat.append(float(rep.drift_statistic[0]))  # type: ignore[index]
            alarm.append(bool(rep.drift_alarm[0]))
        pred = np.asarray(model.predict(x), dtype=float)[:, 0].tolist()
        first = next((int(c) for c, a in zip(cyc, alarm, strict=True) if a), None)
        out["cells"][name] = {
            "cell": cell.cell_id,
            "distance_to_fleet_median": dist[cell.cell_id],
            "cycles_checked": len(cyc),
            "first_alarm_cycle": first,
            "max_statistic": max(stat),
            "cycle": cyc.astype(int).tolist(),
            "capacity": y[:, 0].tolist(),
            "predicted": pred,
            "statistic": stat,
        }
    return out


def table(res: dict[str, Any]) -> str:
    """The results as a text table."""
    c = res["cusum"]
    lines = [
        f"XJTU, N = {res['known_cycles']}, cycles N+1..N+{res['horizon']} fed one by one; "
        f"CUSUM shift {c['shift']} sd, false alarm <= {c['false_alarm']:.0%} over "
        f"{c['horizon']} cycles (threshold {c['threshold']:.2f}); held-out error sd "
        f"{res['error_std']:.4f}",
        f"{'stream':<12} {'cell':<22} {'dist':>7} {'cycles':>6} {'max stat':>8} {'alarm at':>9}",
    ]
    for name, r in res["cells"].items():
        first = "-" if r["first_alarm_cycle"] is None else str(r["first_alarm_cycle"])
        lines.append(
            f"{name:<12} {r['cell']:<22} {r['distance_to_fleet_median']:>7.4f} "
            f"{r['cycles_checked']:>6} {r['max_statistic']:>8.2f} {first:>9}"
        )
    lines.append(
        f"accelerated: extra fade {res['extra_fade_per_100_cycles']:.0%} of initial capacity "
        f"per 100 cycles from cycle {res['onset_cycle']}; statistic 1 = alarm"
    )
    return "\n".join(lines)


def plot(res: dict[str, Any], path: str | Path) -> None:
    """Capacity (measured and predicted) and the CUSUM statistic with the alarms."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for (name, r), color in zip(res["cells"].items(), ("C0", "C3", "C2"), strict=True):
        ax1.plot(r["cycle"], r["capacity"], color=color, label=f"{name} ({r['cell']})")
        ax1.plot(r["cycle"], r["predicted"], color=color, ls="--", lw=1)
        ax2.plot(r["cycle"], r["statistic"], color=color, label=name)
        if r["first_alarm_cycle"] is not None:
            for ax in (ax1, ax2):
                ax.axvline(r["first_alarm_cycle"], color=color, ls=":")
    ax2.axhline(1.0, color="k", lw=0.8)
    ax1.set_ylabel("capacity / initial (dashed: model)")
    ax2.set_ylabel("CUSUM / threshold")
    ax2.set_xlabel("cycle")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: run, print the table, write the JSON and the figure if asked."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--known", type=int, default=100, help="N, the last early cycle")
    ap.add_argument("--horizon", type=int, default=200, help="cycles after N to monitor")
    ap.add_argument("--onset", type=int, default=50, help="perturbation onset after N")
    ap.add_argument("--extra-fade", type=float, default=0.05, help="per 100 cycles")
    ap.add_argument("--shift", type=float, default=2.0, help="CUSUM shift [sd]")
    ap.add_argument("--false-alarm", type=float, default=0.01)
    ap.add_argument("--quick", action="store_true", help="fewer rows and steps")
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--plot", default=None, help="draw the figure here")
    a = ap.parse_args(argv)
    res = run(
        known=a.known,
        horizon=a.horizon,
        onset=a.onset,
        extra_fade=a.extra_fade,
        shift=a.shift,
        false_alarm=a.false_alarm,
        quick=a.quick,
    )
    print(table(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    if a.plot:
        plot(res, a.plot)
    return res


if __name__ == "__main__":
    main()
