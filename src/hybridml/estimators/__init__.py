"""Estimators (scikit-learn style): the regressor, model selection, ensembles, active
learning,
fine-tuning and conformal calibration over groups."""

from ._active import ActiveLearner, Recommendation
from ._batched import BatchedEnsemble
from ._conformal import (
    ConformalCalibration,
    ConformalFallbackWarning,
    JackknifePlusInterval,
    TooFewScoresError,
    conformal_calibration,
    conformal_scores,
    coverage_by_group,
    jackknife_plus,
)
from ._ensemble import (
    Calibration,
    DeepEnsemble,
    EnsembleMemberWarning,
    EnsemblePrediction,
    MemberFailure,
)
from ._file_format import ModelFileError, read_model_file, write_model_file
from ._finetune import (
    FineTuneResult,
    augmented_losses,
    layer_names,
    mixed_data_loss,
    pretrain_finetune,
)
from ._model_meta import ModelFileWarning, data_hash, load_model
from ._model_selection import CVResult, FoldResult, GroupKFold, LeaveOneGroupOut, cross_validate
from ._regressor import HybridRegressor, Prediction

__all__ = [
    "ActiveLearner",
    "BatchedEnsemble",
    "CVResult",
    "Calibration",
    "ConformalCalibration",
    "ConformalFallbackWarning",
    "DeepEnsemble",
    "EnsembleMemberWarning",
    "EnsemblePrediction",
    "FineTuneResult",
    "FoldResult",
    "GroupKFold",
    "HybridRegressor",
    "JackknifePlusInterval",
    "LeaveOneGroupOut",
    "MemberFailure",
    "ModelFileError",
    "ModelFileWarning",
    "Prediction",
    "Recommendation",
    "TooFewScoresError",
    "augmented_losses",
    "conformal_calibration",
    "conformal_scores",
    "coverage_by_group",
    "cross_validate",
    "data_hash",
    "jackknife_plus",
    "layer_names",
    "load_model",
    "mixed_data_loss",
    "pretrain_finetune",
    "read_model_file",
    "write_model_file",
]
