"""hybridml-battery: the battery-ageing study, a plug-in of hybridml.

Predict capacity fade and end of life of cells from their early cycles::

    from hybridml_battery import run_battery_ageing
    result = run_battery_ageing(known_cycles=60, eol_ah=1.4, out="runs/battery")
    print(result.summary())

The plug-in adds the command ``hybridml battery-ageing`` (entry-point group
``hybridml.commands``) and ships the NASA PCoE battery data (``dataset_path("nasa")``,
provenance in ``hybridml_battery/data/README.md``). It is built on the public API of
``hybridml`` and of the PyBaMM adapter ``hybridml_pybamm``.

Names are imported lazily so that the ``hybridml`` command stays fast; torch is imported
when a method trains and PyBaMM only when a study runs its sweep.
"""

# ruff: noqa: F401 (the TYPE_CHECKING imports are for type checkers; names resolve lazily)
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # the study
    "run_battery_ageing": "_study",
    "BatteryResult": "_study",
    "BENCHMARK_CELLS": "_study",
    # data
    "load_cells": "_data",
    "known_mask": "_data",
    "Cell": "_data",
    "CellData": "_data",
    "DroppedRow": "_data",
    "BatteryDataWarning": "_data",
    "DATASETS": "_datasets",
    "BundledDataset": "_datasets",
    "bundled_dataset": "_datasets",
    "dataset_path": "_datasets",
    # methods
    "ABLATIONS": "_methods",
    "ABLATION_NOTES": "_methods",
    "METHODS": "_methods",
    "SHRINK_GRID": "_methods",
    "EMPIRICAL_LAWS": "_baselines",
    "EmpiricalMethod": "_baselines",
    "LinearMethod": "_baselines",
    "FLEET_CONFIGS": "_fleet",
    "FleetConfig": "_fleet",
    "FleetMethod": "_fleet",
    "FleetHybridMethod": "_hybrid",
    "Candidate": "_hybrid",
    "WEIGHT_GRID": "_hybrid",
    "MIN_CONDITION_CELLS": "_hybrid",
    "HybridMethod": "_ensembles",
    "Method": "_methods",
    "NNMethod": "_ensembles",
    "NetSettings": "_methods",
    "PhysicsMethod": "_methods",
    "Window": "_methods",
    # physics prior
    "FadeLibrary": "_physics",
    "FleetPrior": "_identify",
    "PhysicsPrior": "_identify",
    "SweepDesign": "_physics",
    "default_cache_dir": "_physics",
    "fade_library": "_physics",
    "fleet_prior": "_identify",
    "identify": "_identify",
    "with_onsets": "_physics",
    # protocol
    "CURVE_FRACTIONS": "_protocol",
    "CellFolds": "_protocol",
    "FoldJob": "_protocol",
    "cell_folds": "_protocol",
    "error_curve_grid": "_protocol",
    "fold_jobs": "_protocol",
    "run_jobs": "_protocol",
    "leave_out_short_cells": "_protocol",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hybridml_battery' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from ._baselines import EMPIRICAL_LAWS, EmpiricalMethod, LinearMethod
    from ._data import (
        BatteryDataWarning,
        Cell,
        CellData,
        DroppedRow,
        known_mask,
        load_cells,
    )
    from ._datasets import DATASETS, BundledDataset, bundled_dataset, dataset_path
    from ._ensembles import HybridMethod, NNMethod
    from ._fleet import FLEET_CONFIGS, FleetConfig, FleetMethod
    from ._hybrid import MIN_CONDITION_CELLS, WEIGHT_GRID, Candidate, FleetHybridMethod
    from ._identify import FleetPrior, PhysicsPrior, fleet_prior, identify
    from ._methods import (
        ABLATION_NOTES,
        ABLATIONS,
        METHODS,
        SHRINK_GRID,
        Method,
        NetSettings,
        PhysicsMethod,
        Window,
    )
    from ._physics import (
        FadeLibrary,
        SweepDesign,
        default_cache_dir,
        fade_library,
        with_onsets,
    )
    from ._protocol import (
        CURVE_FRACTIONS,
        CellFolds,
        FoldJob,
        cell_folds,
        error_curve_grid,
        fold_jobs,
        leave_out_short_cells,
        run_jobs,
    )
    from ._study import BENCHMARK_CELLS, BatteryResult, run_battery_ageing
