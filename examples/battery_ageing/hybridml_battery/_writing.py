"""What the study writes: ``predictions.csv``, the JSON files and ``manifest.json``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ._data import CellData
from ._folds import _Fold


def _protocol(settings: dict[str, Any]) -> dict[str, Any]:
    """The protocol of a run, as the manifest and the report name it."""
    return {
        "split": settings["split"],
        "folds": settings["folds"],
        "known_cycles": settings["known_cycles"],
        "every": settings["every"],
        "eol_ah": settings["eol_ah"],
        "eol_fraction": settings["eol_fraction"],
        "known_curve": settings["known_curve"],
        "coverage": settings["coverage"],
        "quick": settings["quick"],
    }


def _manifest(
    settings: dict[str, Any], cd: CellData, run: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``manifest.json``: what a colleague needs to reproduce the run, and what this run
    took (``run``: wall time, PyBaMM cache hits, fold jobs resumed from a killed run)."""
    from hybridml import run_manifest

    from . import __version__

    return run_manifest(
        seed=int(settings["seed"]),
        inputs={"data": cd.source},
        study="battery-ageing",
        plugin={"hybridml-battery": __version__},
        dataset=settings["dataset"],
        cells=list(settings["cells"]),
        protocol=_protocol(settings),
        run=run or {},
    )


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (:func:`hybridml.atomic_write`): a reader never
    sees a half-written file."""
    from hybridml import atomic_write

    atomic_write(path, lambda f: json.dump(obj, f, indent=2))


def _write_predictions(path: Path, folds: list[_Fold]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "cell_id",
                "cycle",
                "method",
                "capacity_ah_pred",
                "capacity_ah_lower",
                "capacity_ah_upper",
            ]
        )
        for fold in folds:
            for i, cyc in enumerate(fold.cycles):
                lo = "" if fold.lower is None else f"{fold.lower[i]:.6f}"
                hi = "" if fold.upper is None else f"{fold.upper[i]:.6f}"
                w.writerow([fold.cell, f"{cyc:g}", fold.method, f"{fold.mean[i]:.6f}", lo, hi])
