"""The typed study configuration :func:`~hybridml.load_config` returns: one frozen
dataclass per table of the file (their keys are described in ``docs/config.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StudyConfig"]


@dataclass(frozen=True)
class DataConfig:
    path: Path
    inputs: list[str]
    outputs: list[str]
    group: str | None = None
    coordinate: str | None = None
    test_path: Path | None = None


@dataclass(frozen=True)
class SimulatorConfig:
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    callables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    hidden: list[int] = field(default_factory=lambda: [32, 32, 32])
    activation: str = "tanh"


@dataclass(frozen=True)
class TrainingConfig:
    """The ``[training]`` table; ``lbfgs_steps`` is the quasi-Newton iterations (L-BFGS or
    BFGS, by ``quasi_newton``), whichever of its two names was written."""

    adam_steps: int
    lr: float
    lbfgs_steps: int
    balancer: str = "fixed"
    weights: dict[str, float] = field(default_factory=dict)
    quasi_newton: str = "lbfgs"


@dataclass(frozen=True)
class PhaseConfig:
    """One ``[[phases]]`` entry: the optimiser, its steps and its other settings."""

    type: str
    steps: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransformConfig:
    """One ``[[transforms]]`` entry: a hard constraint on one output."""

    output: str
    type: str
    lower: float | None = None
    upper: float | None = None
    minimum: float = 0.0


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int
    min_delta: float
    every: int
    fraction: float
    path: Path | None


@dataclass(frozen=True)
class SyntheticConfig:
    params: list[dict[str, float]]
    path: Path | None
    every: int
    weight: float


@dataclass(frozen=True)
class FinetuneConfig:
    freeze: int | list[str]
    unfreeze: list[int | list[str]]
    adam_steps: int
    lr: float
    quasi_newton_steps: int


@dataclass(frozen=True)
class EnsembleConfig:
    kind: str
    members: int
    bootstrap: bool
    calibration: float | None
    coverage: float
    weight_decay: float


@dataclass(frozen=True)
class CrossValidationConfig:
    splitter: str
    n_splits: int
    groups: str | None
    raise_on_error: bool


@dataclass(frozen=True)
class PredictConfig:
    grid: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: what to fit, with which physics, how to train and check.

    Each attribute is one table of the file (see ``docs/config.md``); an optional table
    that is absent is None (a list: empty).
    """

    path: Path
    text: str
    name: str
    seed: int
    data: DataConfig
    simulator: SimulatorConfig | None
    model: ModelConfig
    training: TrainingConfig
    predict: PredictConfig
    checks: list[dict[str, Any]]
    check_policy: str
    phases: list[PhaseConfig] = field(default_factory=list)
    transforms: list[TransformConfig] = field(default_factory=list)
    early_stopping: EarlyStoppingConfig | None = None
    synthetic: SyntheticConfig | None = None
    finetune: FinetuneConfig | None = None
    ensemble: EnsembleConfig | None = None
    cross_validation: CrossValidationConfig | None = None
    device: str | None = None
