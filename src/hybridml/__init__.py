"""hybridml: physics-informed, hybrid (physics + neural network) modelling for small data.

Public names are imported lazily (PEP 562) so that ``import hybridml`` and the
``hybridml`` command start fast; importing hybridml never imports a simulator (PyBaMM,
DeepXDE) and never changes torch's global settings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> private module that defines it
_EXPORTS: dict[str, str] = {
    # adapter contract
    "SimulatorAdapter": "contract",
    "ProvidesData": "contract",
    "ProvidesConstraints": "contract",
    "ProvidesChecks": "contract",
    "ProvidesForward": "contract",
    "SimulationError": "contract",
    "UnknownSimulatorError": "contract",
    "available_simulators": "contract",
    "capabilities": "contract",
    "load_simulator": "contract",
    # data
    "Dataset": "_data",
    "DataError": "_data",
    "MissingColumnError": "_data",
    "data_path": "_bundled",
    "SweepResult": "_sweep",
    "SweepFailure": "_sweep",
    # losses and sampling
    "LossTerm": "_losses",
    "DataLoss": "_losses",
    "ResidualLoss": "_models",
    "BoxSampler": "_models",
    "TrajectoryLoss": "_models",
    "partial": "_models",
    # models
    "MLP": "_models",
    "OutputTransform": "_models",
    "Bounded": "_models",
    "Positive": "_models",
    "HardBoundary": "_models",
    "Constrained": "_models",
    "ResidualModel": "_models",
    "UDE": "_models",
    "LinearForcingUDE": "_models",
    "PhysicalParameter": "_models",
    # training
    "Trainer": "_trainer",
    "Adam": "_trainer",
    "LBFGS": "_trainer",
    "BFGS": "_trainer",
    "SelfScaledBFGS": "_bfgs",
    "EarlyStopping": "_trainer",
    "History": "_trainer",
    "StepInfo": "_trainer",
    "NonFiniteLossError": "_trainer",
    "Balancer": "_balancing",
    "FixedWeights": "_balancing",
    "LRAnnealing": "_balancing",
    "ReLoBRaLo": "_balancing",
    # consistency checks
    "Check": "_checks",
    "CheckResult": "_checks",
    "ConsistencyReport": "_checks",
    "ConsistencyError": "_checks",
    "ConsistencyWarning": "_checks",
    "Policy": "_checks",
    "run_checks": "_checks",
    "Bounds": "_checks",
    "Monotone": "_checks",
    "Conservation": "_checks",
    "ResidualBelow": "_checks",
    "CustomCheck": "_checks",
    # small-data tools
    "cross_validate": "_cv",
    "GroupKFold": "_cv",
    "LeaveOneGroupOut": "_cv",
    "CVResult": "_cv",
    "FoldResult": "_cv",
    "DeepEnsemble": "_ensemble",
    "EnsemblePrediction": "_ensemble",
    "Calibration": "_ensemble",
    "MemberFailure": "_ensemble",
    "EnsembleMemberWarning": "_ensemble",
    "ActiveLearner": "_active",
    "Recommendation": "_active",
    "pretrain_finetune": "_finetune",
    "FineTuneResult": "_finetune",
    "layer_names": "_finetune",
    "mixed_data_loss": "_finetune",
    "augmented_losses": "_finetune",
    # estimator facade
    "HybridRegressor": "_estimator",
    "Prediction": "_estimator",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hybridml' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._active import ActiveLearner, Recommendation
    from ._balancing import Balancer, FixedWeights, LRAnnealing, ReLoBRaLo
    from ._bfgs import SelfScaledBFGS
    from ._bundled import data_path
    from ._checks import (
        Bounds,
        Check,
        CheckResult,
        Conservation,
        ConsistencyError,
        ConsistencyReport,
        ConsistencyWarning,
        CustomCheck,
        Monotone,
        Policy,
        ResidualBelow,
        run_checks,
    )
    from ._cv import CVResult, FoldResult, GroupKFold, LeaveOneGroupOut, cross_validate
    from ._data import DataError, Dataset, MissingColumnError
    from ._ensemble import (
        Calibration,
        DeepEnsemble,
        EnsembleMemberWarning,
        EnsemblePrediction,
        MemberFailure,
    )
    from ._estimator import HybridRegressor, Prediction
    from ._finetune import (
        FineTuneResult,
        augmented_losses,
        layer_names,
        mixed_data_loss,
        pretrain_finetune,
    )
    from ._losses import DataLoss, LossTerm
    from ._models import (
        MLP,
        UDE,
        Bounded,
        BoxSampler,
        Constrained,
        HardBoundary,
        LinearForcingUDE,
        OutputTransform,
        PhysicalParameter,
        Positive,
        ResidualLoss,
        ResidualModel,
        TrajectoryLoss,
        partial,
    )
    from ._sweep import SweepFailure, SweepResult
    from ._trainer import (
        BFGS,
        LBFGS,
        Adam,
        EarlyStopping,
        History,
        NonFiniteLossError,
        StepInfo,
        Trainer,
    )
    from .contract import (
        ProvidesChecks,
        ProvidesConstraints,
        ProvidesData,
        ProvidesForward,
        SimulationError,
        SimulatorAdapter,
        UnknownSimulatorError,
        available_simulators,
        capabilities,
        load_simulator,
    )
