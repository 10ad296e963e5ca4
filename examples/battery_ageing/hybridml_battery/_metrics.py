"""The study's metrics (RMSE after N, end-of-life error, interval coverage, per cell and
mean over cells; the error-vs-N curve) and its physics-consistency checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._data import CellData
from ._folds import _eol, _Fold
from ._methods import ABLATIONS, METHODS
from ._physics import REFERENCE_AH, REGEN_TOL_AH

__all__ = ["REGEN_TOL_AH"]


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _checks(initial: float, scale: float = REFERENCE_AH) -> list[Any]:
    """Physics-consistency checks of one cell's predictions (the regeneration tolerance
    scales with the cell's capacity ``scale``, :func:`._physics.capacity_scale`).
    ``initial``: the highest capacity the cell has shown in its known cycles (its initial
    capacity, or more where it rose during its first cycles, as some cells do while they
    are formed)."""
    from hybridml import Bounds, CustomCheck, Monotone

    def interval_ordered(data: Any, model: Any = None) -> Any:
        lo = np.asarray(data["capacity_ah_lower"], dtype=float)
        hi = np.asarray(data["capacity_ah_upper"], dtype=float)
        mu = np.asarray(data["capacity_ah_pred"], dtype=float)
        if np.all(np.isnan(lo)):
            return np.zeros_like(mu)
        return np.maximum(lo - mu, 0.0) + np.maximum(mu - hi, 0.0)

    tol = REGEN_TOL_AH * (scale / REFERENCE_AH)
    return [
        # capacity is positive and cannot exceed the highest capacity the cell has shown
        # by more than the largest regeneration step
        Bounds(
            "capacity_ah_pred",
            lower=0.0,
            upper=initial + tol,
            name="capacity within (0, highest known + regeneration]",
        ),
        # a cell does not gain capacity over cycles, except by a regeneration step
        Monotone(
            "capacity_ah_pred",
            "cycle",
            direction="decreasing",
            tolerance=tol,
            name=f"capacity fades (rises <= {tol:g} Ah)",
        ),
        CustomCheck(interval_ordered, name="interval contains the prediction"),
    ]


def _metrics(cd: CellData, folds: list[_Fold], thresholds: dict[str, float]) -> dict[str, Any]:
    cells: dict[str, dict[str, Any]] = {}
    for f in folds:
        c = cd.cells[f.cell]
        unk = c.cycle > f.known
        y = c.capacity[unk]
        eol_true = _eol(c.cycle, c.capacity, thresholds[f.cell])
        rel = None
        if eol_true is not None:
            pred = f.eol_pred if f.eol_pred is not None else float(3 * c.last_cycle)
            rel = abs(pred - eol_true) / eol_true
        cov = None
        if f.lower is not None and f.upper is not None:
            cov = float(np.mean((y >= f.lower) & (y <= f.upper)))
        cells.setdefault(f.cell, {})[f.method] = {
            "rmse_ah": float(np.sqrt(np.mean((f.mean - y) ** 2))),
            "eol_true": eol_true,
            "eol_pred": f.eol_pred,
            "eol_rel_error": rel,
            "coverage90": cov,
        }
    summary: dict[str, dict[str, Any]] = {"methods": {}, "ablations": {}}
    for key, names in (("methods", METHODS), ("ablations", ABLATIONS)):
        for name in names:
            rows = [cells[c][name] for c in cells if name in cells[c]]
            if not rows:
                continue
            summary[key][name] = {
                "rmse_ah": _mean([r["rmse_ah"] for r in rows]),
                "eol_rel_error": _mean([r["eol_rel_error"] for r in rows]),
                "coverage90": _mean([r["coverage90"] for r in rows]),
                # every tested cell counts in the RMSE; the EOL error only where the
                # cell's measured capacity reaches EOL
                "n_cells": len(rows),
                "n_cells_eol": sum(r["eol_rel_error"] is not None for r in rows),
            }
    never = [c for c, per in cells.items() if all(v["eol_true"] is None for v in per.values())]
    eol = {"n_cells": len(cells), "n_reach_eol": len(cells) - len(never), "never_reach_eol": never}
    # what the hybrid and its ablations chose on each test cell's training cells
    choices: dict[str, dict[str, Any]] = {}
    for f in folds:
        if f.choices:
            choices.setdefault(f.method, {})[f.cell] = f.choices
    return {"cells": cells, **summary, "eol": eol, "choices": choices}


def _curve(cd: CellData, folds: list[_Fold], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for n in sorted({f.known for f in folds}):
        summary = _metrics(cd, [f for f in folds if f.known == n], thresholds)
        for name, v in {**summary["methods"], **summary["ablations"]}.items():
            rows.append(
                {
                    "known_cycles": n,
                    "method": name,
                    "rmse_ah": v["rmse_ah"],
                    "eol_rel_error": v["eol_rel_error"],
                    "n_cells": v["n_cells"],
                    "n_cells_eol": v["n_cells_eol"],
                }
            )
    return rows


def _consistency(cd: CellData, folds: list[_Fold]) -> dict[str, Any]:
    from hybridml import run_checks

    out: dict[str, Any] = {"cells": {}, "passed": {}}
    for f in folds:
        nan = np.full(f.cycles.shape, np.nan)
        data = {
            "cycle": f.cycles,
            "capacity_ah_pred": f.mean,
            "capacity_ah_lower": f.lower if f.lower is not None else nan,
            "capacity_ah_upper": f.upper if f.upper is not None else nan,
        }
        c = cd.cells[f.cell]
        # the ceiling: the cell's initial capacity, or the highest it reached in its
        # known cycles (XJTU's RW cells gain 15 % over their first 35 cycles)
        ceiling = max(c.initial_capacity, float(c.capacity[c.cycle <= f.known].max()))
        report = run_checks(_checks(ceiling, c.capacity_scale), data)
        out["cells"].setdefault(f.cell, {})[f.method] = report.to_dict()
    for name in (*METHODS, *ABLATIONS):
        out["passed"][name] = all(
            out["cells"][c][name]["passed"] for c in out["cells"] if name in out["cells"][c]
        )
    return out
