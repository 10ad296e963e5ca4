"""Estimators (scikit-learn style): the regressor, model selection, ensembles, active
learning and fine-tuning."""

from ._active import ActiveLearner, Recommendation
from ._ensemble import (
    Calibration,
    DeepEnsemble,
    EnsembleMemberWarning,
    EnsemblePrediction,
    MemberFailure,
)
from ._finetune import (
    FineTuneResult,
    augmented_losses,
    layer_names,
    mixed_data_loss,
    pretrain_finetune,
)
from ._model_selection import CVResult, FoldResult, GroupKFold, LeaveOneGroupOut, cross_validate
from ._regressor import HybridRegressor, Prediction

__all__ = [
    "ActiveLearner",
    "CVResult",
    "Calibration",
    "DeepEnsemble",
    "EnsembleMemberWarning",
    "EnsemblePrediction",
    "FineTuneResult",
    "FoldResult",
    "GroupKFold",
    "HybridRegressor",
    "LeaveOneGroupOut",
    "MemberFailure",
    "Prediction",
    "Recommendation",
    "augmented_losses",
    "cross_validate",
    "layer_names",
    "mixed_data_loss",
    "pretrain_finetune",
]
