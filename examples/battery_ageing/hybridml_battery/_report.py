"""Figures and the markdown report of the battery-ageing study."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._data import CellData
from ._methods import ABLATIONS, METHODS, Window

if TYPE_CHECKING:
    from ._folds import _Fold

__all__ = ["write_figures", "write_report"]

_STYLE = {
    "hybrid": {"color": "C3", "lw": 2.0, "ls": "-"},
    "nn": {"color": "C0", "lw": 1.2, "ls": "--"},
    "physics": {"color": "C2", "lw": 1.2, "ls": "-."},
    "linear": {"color": "C1", "lw": 1.0, "ls": (0, (5, 2))},
    "fleet": {"color": "C9", "lw": 1.4, "ls": "-"},
    "empirical": {"color": "C4", "lw": 1.2, "ls": ":"},
    "physics-fleet": {"color": "C7", "lw": 1.0, "ls": (0, (1, 1))},
    "hybrid-no-network": {"color": "C6", "lw": 1.0, "ls": (0, (2, 2))},
    "hybrid-no-physics": {"color": "C5", "lw": 1.0, "ls": (0, (3, 1, 1, 1))},
    "hybrid-no-fleet": {"color": "C8", "lw": 1.0, "ls": (0, (3, 1, 1, 1, 1, 1))},
}


def write_figures(
    folder: Path,
    cd: CellData,
    folds: list[_Fold],
    thresholds: dict[str, float],
    curve: list[dict[str, Any]],
    window: Window,
) -> list[str]:
    """Capacity vs cycle per cell, and error vs N; returns the file names."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = []
    for cid, cell in cd.cells.items():
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        known = window.mask(cell)
        ax.plot(
            cell.cycle[~known],
            cell.capacity[~known],
            "o",
            ms=3,
            color="0.55",
            label="measured (hidden from the model)",
        )
        ax.plot(
            cell.cycle[known], cell.capacity[known], "o", ms=3, color="k", label="measured (known)"
        )
        for f in folds:
            if f.cell != cid or f.method not in METHODS:  # ablations: error-vs-N only
                continue
            st = _STYLE[f.method]
            ax.plot(f.cycles, f.mean, color=st["color"], lw=st["lw"], ls=st["ls"], label=f.method)
            if f.lower is not None and f.upper is not None and f.method == "hybrid":
                ax.fill_between(
                    f.cycles,
                    f.lower,
                    f.upper,
                    color=st["color"],
                    alpha=0.18,
                    label="hybrid 90 % interval",
                )
        ax.axvline(window.known_cycles, color="0.3", lw=0.8, ls="--")
        ax.axhline(
            thresholds[cid],
            color="k",
            lw=0.8,
            ls=(0, (4, 2)),
            label=f"EOL {thresholds[cid]:.3g} Ah",
        )
        ax.set_xlabel("cycle")
        ax.set_ylabel("discharge capacity [A.h]")
        lo = min(float(cell.capacity.min()), thresholds[cid]) - 0.1
        ax.set_ylim(lo, float(cell.capacity.max()) + 0.08)
        ax.set_title(f"cell {cid}: known cycles <= {window.known_cycles:g}")
        ax.legend(fontsize=7, loc="lower left", ncol=2)
        fig.tight_layout()
        name = f"capacity_{_safe(cid)}.png"
        fig.savefig(folder / name)
        plt.close(fig)
        names.append(name)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for method in (*METHODS, *ABLATIONS):
        rows = [r for r in curve if r["method"] == method]
        if not rows:
            continue
        label = f"{method} (ablation)" if method in ABLATIONS else method
        ns = [r["known_cycles"] for r in rows]
        st = _STYLE[method]
        for ax, key in zip(axes, ("rmse_ah", "eol_rel_error"), strict=True):
            vals = [np.nan if r[key] is None else r[key] for r in rows]
            ax.plot(ns, vals, marker="o", color=st["color"], ls=st["ls"], label=label)
    axes[0].set_ylabel("mean RMSE after N [A.h]")
    axes[1].set_ylabel("mean relative EOL error")
    for ax in axes:
        ax.set_xlabel("known cycles N")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "error_vs_known_cycles.png")
    plt.close(fig)
    names.append("error_vs_known_cycles.png")
    return names


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _list(ids: list[str], most: int = 10) -> str:
    return ", ".join(ids[:most]) + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _f(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def write_report(
    path: Path,
    cd: CellData,
    metrics: dict[str, Any],
    consistency: dict[str, Any],
    figures: list[str],
    skipped: list[str],
    run: dict[str, Any] | None = None,
) -> None:
    """Write ``report.md``: settings, methods table, per cell, checks, figures, drops;
    ``run``: what this run took (the ``run`` section of ``manifest.json``)."""
    s = metrics["settings"]
    run = run or {}
    resumed = run.get("fold_jobs_resumed", 0)
    eol = (
        f"{s['eol_ah']} Ah"
        if s["eol_ah"] is not None
        else (f"{s['eol_fraction']} x initial capacity")
    )
    every = f" (every {s['every']}th)" if s["every"] > 1 else ""
    n_out = len(s.get("left_out_cells") or {})
    left_out = f" ({n_out} more left out: their data end at or before N)" if n_out else ""
    lines = [
        "# Battery ageing: capacity fade and end of life from early cycles",
        "",
        f"Data: `{s['data']}`; cells {', '.join(s['cells'])}"
        f"{left_out}. Protocol: {s.get('split', 'leave one cell out')}: each test "
        f"cell is seen only for cycles <= {s['known_cycles']}"
        f"{every}; its fold's training cells in full. "
        f"EOL: first cycle at or below {eol}. Seed {s['seed']}"
        f"{', quick run' if s['quick'] else ''}; wall time {run.get('seconds', 0):.0f} s"
        f"{f' ({resumed} fold jobs resumed from a killed run)' if resumed else ''}.",
        "",
        "## Methods (mean over cells)",
        "",
        "| method | rmse_ah | eol_rel_error | coverage90 | checks | cells (EOL) |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in metrics["methods"].items():
        ok = "pass" if consistency["passed"].get(name) else "FAIL"
        lines.append(
            f"| {name} | {_f(m['rmse_ah'])} | {_f(m['eol_rel_error'])} | "
            f"{_f(m['coverage90'], 3)} | {ok} | {m.get('n_cells', '?')} "
            f"({m.get('n_cells_eol', '?')}) |"
        )
    eol_counts = metrics.get("eol") or {}
    never = eol_counts.get("never_reach_eol") or []
    if eol_counts:
        lines += [
            "",
            f"{eol_counts['n_cells']} cells tested; {eol_counts['n_reach_eol']} reach EOL within "
            f"their data, {len(never)} never do"
            f"{f' ({_list(never)})' if never else ''}: every tested cell counts in `rmse_ah` "
            "(and `coverage90`), only those that reach EOL in `eol_rel_error` (cells (EOL) "
            "above).",
        ]
    ablations = metrics.get("ablations") or {}
    if ablations:
        lines += [
            "",
            "Ablation (not a baseline: it shows where the hybrid's accuracy comes from):",
            "",
            "| ablation | rmse_ah | eol_rel_error | what it is |",
            "|---|---|---|---|",
        ]
        for name, m in ablations.items():
            what = s.get("ablations", {}).get(name, "")
            lines.append(f"| {name} | {_f(m['rmse_ah'])} | {_f(m['eol_rel_error'])} | {what} |")
    chosen = (metrics.get("choices") or {}).get("hybrid") or {}
    if chosen:
        counts: dict[tuple[str, float, float], int] = {}
        for c in chosen.values():
            k = (str(c.get("prior", "fleet")), float(c["weight"]), float(c["share"]))
            counts[k] = counts.get(k, 0) + 1
        what = ", ".join(
            (f"{p} prior, w = {w:g}, lam = {lam:g}" if w > 0 else "the fleet forecast alone")
            + f" for {n} cell(s)"
            for (p, w, lam), n in sorted(counts.items())
        )
        lines += [
            "",
            "The hybrid's choice on the training cells (inner cross-validation): the physics "
            "prior (`fleet`: time scale from the training cells, corrected by the network; "
            "`own`: from the cell's window alone), its weight `w` against the fleet forecast "
            f"and the network's share `lam`: {what}.",
        ]
        n_matched = sum(bool(c.get("matched")) for c in chosen.values())
        n_learned = sum(bool(c.get("learned")) for c in chosen.values())
        n_flat = sum(bool(c.get("flat")) for c in chosen.values())
        n_own = sum(bool(c.get("by_condition")) for c in chosen.values())
        lines += [
            "",
            "The physics prior's time scales came from the training cells of the cell's own "
            f"condition for {n_matched} of {len(chosen)} cell(s), and were learned from the "
            f"cell's window (regressed on the training cells) for {n_learned}, and were not "
            f"taken from the training cells (the window alone) for {n_flat} (chosen on the "
            "training cells; pooled over the whole fleet for the others). The choice above "
            "was the cell's "
            f"condition's own (its held-out training cells chose another candidate than the "
            f"whole fleet's) for {n_own} of {len(chosen)} cell(s).",
        ]
    lines += [
        "",
        "`rmse_ah`: RMSE of the capacity after N; `eol_rel_error`: |predicted - true EOL| / "
        "true EOL, over the cells that reach EOL; `coverage90`: fraction of the measured "
        "capacities after N inside the 90 % interval (conformal, calibrated on the training "
        "cells; the methods with a predictive scale). Baselines: `linear`, a robust straight "
        "line through the known points; `fleet`, data only, the training cells' measured "
        "trajectories nearest to the test cell's early cycles, re-anchored at its level "
        "(settings chosen by leave-one-cell-out over the training cells); `empirical`, a "
        "bounded fade law (power law or monotone double exponential, chosen on the training "
        "cells).",
        "",
        "## Per cell",
        "",
        "| cell | method | rmse_ah | eol_true | eol_pred | eol_rel_error | coverage90 |",
        "|---|---|---|---|---|---|---|",
    ]
    for cid, per in metrics["cells"].items():
        for name, m in per.items():
            lines.append(
                f"| {cid} | {name} | {_f(m['rmse_ah'])} | {_f(m['eol_true'], 0)} | "
                f"{_f(m['eol_pred'], 0)} | {_f(m['eol_rel_error'], 3)} | "
                f"{_f(m['coverage90'], 3)} |"
            )
    lines += [
        "",
        "## Error against the number of known cycles N",
        "",
        "| N | method | rmse_ah | eol_rel_error |",
        "|---|---|---|---|",
    ]
    for r in metrics["error_vs_known"]:
        lines.append(
            f"| {r['known_cycles']} | {r['method']} | {_f(r['rmse_ah'])} | "
            f"{_f(r['eol_rel_error'], 3)} |"
        )
    lines += ["", "## Physics-consistency checks", ""]
    for cid, per in consistency["cells"].items():
        for name, rep in per.items():
            failed = [c["name"] for c in rep["checks"] if not c["passed"]]
            status = "all passed" if not failed else f"FAILED: {', '.join(failed)}"
            lines.append(f"- {cid} / {name}: {status}")
    lines += ["", "## Figures", ""]
    lines += [f"![{n}](figures/{n})" for n in figures]
    sw = s["pybamm_sweep"]
    lines += [
        "",
        "## Physics",
        "",
        f"{sw['description']}. {sw['n_succeeded']}/{sw['n_simulations']} simulations "
        f"succeeded ({run.get('pybamm_n_cached', 0)} from the cache) in "
        f"{run.get('pybamm_sweep_seconds', 0)} s.",
    ]
    for fail in sw["failures"]:
        lines.append(f"- failed simulation: {fail}")
    data = f"bundled data set `{s['dataset']}`" if s.get("dataset") else "your file"
    lines += [
        "",
        "## Reproduce",
        "",
        f"- data: {data}, `{s['data']}` (its SHA-256 is in `manifest.json`)",
        f"- protocol: {s['split']} over {len(s['cells'])} cells; N = "
        f"{s['known_cycles']}{every}; EOL at {eol}; error vs N at "
        f"{', '.join(str(n) for n in s['known_curve'])}"
        f"{f' ({rule})' if (rule := s.get('known_curve_rule')) else ''}; "
        f"{s['coverage']:.0%} intervals"
        f"{'; quick run' if s['quick'] else ''}",
        f"- seed: {s['seed']}",
        "- `manifest.json` holds the command, the data hash, the seed, the protocol and the "
        "versions of the packages.",
    ]
    lines += ["", "## Data: what was used and what was dropped", ""]
    n_used = sum(len(c.cycle) for c in cd.cells.values())
    lines.append(
        f"{cd.n_rows} rows in the file; {n_used} used; {len(cd.dropped)} dropped; "
        f"{cd.n_unselected} belong to cells not selected."
    )
    for d in cd.dropped:
        cyc = "?" if d.cycle is None else f"{d.cycle:g}"
        lines.append(f"- dropped line {d.line} (cell {d.cell_id}, cycle {cyc}): {d.reason}")
    for cid, v in (s.get("left_out_cells") or {}).items():
        lines.append(
            f"- left out: cell {cid}, its data end at cycle {v['last_cycle']:g}, at or before "
            f"N={s['known_cycles']} (neither tested nor used for training)"
        )
    for note in skipped:
        lines.append(f"- not evaluated: {note}")
    for cid, c in cd.cells.items():
        items = [*([f"condition {c.condition!r}"] if c.condition else [])]
        items += [f"{k}={v:g}" for k, v in c.conditions.items()]
        conds = ", ".join(items) or "none given"
        lines.append(
            f"- {cid}: {len(c.cycle)} cycles ({c.cycle[0]:g}-{c.last_cycle:g}), "
            f"initial capacity {c.initial_capacity:.3f} Ah; conditions: {conds}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
