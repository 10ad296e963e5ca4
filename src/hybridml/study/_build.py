"""From a :class:`~hybridml.study.StudyConfig` to the objects of the Python API, and the
fits ``hybridml run`` makes with them.

Nothing here trains in a way the Python API cannot: the phases are :class:`~hybridml.Adam`,
:class:`~hybridml.LBFGS` and :class:`~hybridml.BFGS`; the estimator is a
:class:`~hybridml.HybridRegressor`, wrapped in a :class:`~hybridml.DeepEnsemble` or replaced
by a :class:`~hybridml.BatchedEnsemble`; cross-validation is :func:`~hybridml.cross_validate`
and fine-tuning :func:`~hybridml.pretrain_finetune`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..exceptions import ConfigError, InvalidArgumentError
from ..nn import Bounded, OutputTransform, Positive
from ._config import config_error, parse_checks
from ._config_types import PhaseConfig, StudyConfig

__all__: list[str] = []

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
}


class _PerOutput(OutputTransform):
    """Constraints on some output columns (``parts``: column -> transform); the other
    columns pass as they are."""

    def __init__(self, n_outputs: int, parts: dict[int, OutputTransform]) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.columns = list(parts)
        self.parts = nn.ModuleList(parts.values())

    def forward(self, x: Tensor, y_raw: Tensor) -> Tensor:
        """Each constrained column through its transform, the others unchanged."""
        cols = [y_raw[..., j : j + 1] for j in range(self.n_outputs)]
        for j, part in zip(self.columns, self.parts, strict=True):
            cols[j] = part(x, cols[j])
        return torch.cat(cols, dim=-1)


def transform(cfg: StudyConfig) -> OutputTransform | None:
    """The ``[[transforms]]`` as one output transform (None without any)."""
    if not cfg.transforms:
        return None
    parts: dict[int, OutputTransform] = {}
    for t in cfg.transforms:
        j = cfg.data.outputs.index(t.output)
        parts[j] = Bounded(t.lower, t.upper) if t.type == "bounded" else Positive(minimum=t.minimum)
    return _PerOutput(len(cfg.data.outputs), parts)


def _phase(cfg: StudyConfig, i: int, p: PhaseConfig) -> Any:
    from ..training import BFGS, LBFGS, Adam

    opts = dict(p.options)
    dtype = opts.pop("dtype")
    opts["dtype"] = None if dtype == "model" else getattr(torch, dtype)
    for key in ("line_search", "scaling"):
        if opts.get(key) == "none":
            opts[key] = None
    cls = {"adam": Adam, "lbfgs": LBFGS, "bfgs": BFGS}[p.type]
    try:
        return cls(p.steps, **opts)
    except (InvalidArgumentError, TypeError, ValueError) as exc:
        raise ConfigError(f"{cfg.path}: [[phases]] entry {i + 1} ({p.type}): {exc}") from None


def phases(cfg: StudyConfig) -> tuple[Any, ...] | None:
    """The ``[[phases]]`` as phase objects (None: the ``[training]`` shortcuts apply)."""
    return tuple(_phase(cfg, i, p) for i, p in enumerate(cfg.phases)) or None


def _weights(cfg: StudyConfig) -> Any:
    from ..training._balancing import LRAnnealing, ReLoBRaLo

    if cfg.training.balancer == "lr-annealing":
        return LRAnnealing()
    if cfg.training.balancer == "relobralo":
        return ReLoBRaLo()
    return cfg.training.weights or None


def regressor(cfg: StudyConfig, adapters: list[Any], checkpoint: str | None = None) -> Any:
    """The :class:`~hybridml.HybridRegressor` the config describes (``checkpoint``: the
    file its training progress is saved to and resumed from)."""
    from ..estimators import HybridRegressor
    from ..training import EarlyStopping

    es = cfg.early_stopping
    kwargs: dict[str, Any] = {}
    if cfg.phases:
        kwargs["phases"] = phases(cfg)
    else:
        kwargs.update(
            adam_steps=cfg.training.adam_steps,
            lr=cfg.training.lr,
            quasi_newton_steps=cfg.training.lbfgs_steps,
            quasi_newton=cfg.training.quasi_newton,
        )
    return HybridRegressor(
        inputs=cfg.data.inputs,
        outputs=cfg.data.outputs,
        hidden=tuple(cfg.model.hidden),
        activation=_ACTIVATIONS[cfg.model.activation],
        adapters=adapters,
        weights=_weights(cfg),
        transform=transform(cfg),
        checks=parse_checks(cfg.checks, source=str(cfg.path)),
        check_policy=cfg.check_policy,
        synthetic_weight=cfg.synthetic.weight if cfg.synthetic is not None else 1.0,
        early_stopping=None if es is None else EarlyStopping(es.patience, es.min_delta, es.every),
        seed=cfg.seed,
        device=cfg.device,
        checkpoint=checkpoint,
        **kwargs,
    )


def estimator(cfg: StudyConfig, adapters: list[Any], checkpoint: str | None = None) -> Any:
    """The configured estimator: a regressor, or the ``[ensemble]`` of them. With
    ``checkpoint``, training progress is saved there and resumed from there (a
    :class:`~hybridml.DeepEnsemble`'s members and cross-validation folds derive their own
    files from it; a :class:`~hybridml.BatchedEnsemble` saves none)."""
    return _estimator(cfg, adapters, checkpoint)


def build_estimator(cfg: StudyConfig, adapters: Sequence[Any] | None = None) -> Any:
    """The (unfitted) estimator a loaded study config describes, built with the Python
    API: a :class:`~hybridml.HybridRegressor`, or the ``[ensemble]``'s
    :class:`~hybridml.DeepEnsemble` / :class:`~hybridml.BatchedEnsemble` of them, with
    the config's phases, transforms, checks, early stopping and device.

    Args:
        cfg: a config from :func:`~hybridml.load_config`.
        adapters: the simulator adapters (instances) the physics comes from; ``None``
            builds the config's ``[simulator]`` from the registry.
    """
    if adapters is None:
        from ._run import _build_adapters

        adapters = _build_adapters(cfg)
    return _estimator(cfg, list(adapters))


def _estimator(cfg: StudyConfig, adapters: list[Any], checkpoint: str | None = None) -> Any:
    ens = cfg.ensemble
    if ens is None:
        return regressor(cfg, adapters, checkpoint)
    if ens.kind == "deep":
        from ..estimators import DeepEnsemble

        return DeepEnsemble(
            regressor(cfg, adapters, checkpoint),
            n_members=ens.members,
            bootstrap=ens.bootstrap,
            calibration=ens.calibration,
            coverage=ens.coverage,
            seed=cfg.seed,
            device=cfg.device,
        )
    from ..estimators import BatchedEnsemble
    from ..training import Adam

    return BatchedEnsemble(
        inputs=cfg.data.inputs,
        outputs=cfg.data.outputs,
        hidden=tuple(cfg.model.hidden),
        activation=_ACTIVATIONS[cfg.model.activation],
        n_members=ens.members,
        bootstrap=ens.bootstrap,
        phases=phases(cfg) or (Adam(cfg.training.adam_steps, lr=cfg.training.lr),),
        weight_decay=ens.weight_decay,
        calibration=ens.calibration,
        coverage=ens.coverage,
        seed=cfg.seed,
        device=cfg.device,
    )


def _columns(cfg: StudyConfig, data: Any, measured: bool, every: int = 1) -> dict[str, Any]:
    n = data.n_rows
    rows = np.arange(0, n, every)
    cols: dict[str, Any] = {}
    for name in (*cfg.data.inputs, *cfg.data.outputs):
        col = np.asarray(data[name], dtype=float) if name in data else np.full(n, np.nan)
        cols[name] = col[rows]
    cols["__measured"] = np.full(rows.size, measured)
    return cols


def synthetic_data(cfg: StudyConfig, adapters: list[Any], load: Any) -> list[Any]:
    """The ``[synthetic]`` rows: the simulator's runs (or the file), every n-th row, with
    the inputs and outputs of the study (an output a run lacks is NaN)."""
    from ..adapters import ProvidesData

    sc = cfg.synthetic
    assert sc is not None
    if sc.path is not None:
        return [_columns(cfg, load(sc.path), False, sc.every)]
    adapter = adapters[0]
    if not isinstance(adapter, ProvidesData):
        raise config_error(
            cfg.path,
            cfg.text,
            "synthetic",
            "params",
            f"the {type(adapter).__name__} adapter produces no data (capabilities: "
            f"{', '.join(adapter.capabilities())}); give [synthetic] path = a file instead.",
        )
    runs = [adapter.simulate(p or None) for p in (sc.params or [{}])]
    missing = [n for n in cfg.data.inputs if n not in runs[0]]
    if missing:
        raise config_error(
            cfg.path,
            cfg.text,
            "synthetic",
            "params",
            f"the simulated data has no input column(s) {missing}; its columns: "
            f"{', '.join(runs[0])}.",
        )
    return [_columns(cfg, run, False, sc.every) for run in runs]


def combined(cfg: StudyConfig, train: Any, synthetic: list[dict[str, Any]]) -> Any:
    """A Dataset of the study's columns: the measured rows (none when ``train`` is None),
    then the simulated ones. A column some rows lack (NaN) is left out: the estimator
    then treats that output as not measured in any row."""
    from ..data import Dataset

    parts = ([] if train is None else [_columns(cfg, train, True)]) + synthetic
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    measured = cols.pop("__measured").astype(bool)
    cols = {k: v for k, v in cols.items() if k in cfg.data.inputs or np.isfinite(v).all()}
    return Dataset(cols, measured=measured, source=f"{cfg.data.path} + simulated rows")


def finetune(est: Any, cfg: StudyConfig, train: Any, synthetic: list[dict[str, Any]]) -> Any:
    """Pre-train ``est`` on the simulated rows, then fine-tune its model on ``train`` with
    :func:`~hybridml.pretrain_finetune`; returns the :class:`~hybridml.FineTuneResult`."""
    from ..data._input import as_inputs
    from ..estimators import pretrain_finetune
    from ..losses import DataLoss
    from ..training import Trainer, default_phases

    ft = cfg.finetune
    assert ft is not None
    sim = combined(cfg, None, synthetic)
    est.set_params(synthetic_weight=1.0).fit(sim)  # pre-training: the simulated rows alone
    meas = as_inputs(train, inputs=cfg.data.inputs, outputs=cfg.data.outputs, require_y=True)
    losses = dict(est.losses_)
    losses["data"] = DataLoss(meas.X, meas.y)
    trainer = Trainer(
        default_phases(
            ft.adam_steps, ft.quasi_newton_steps, lr=ft.lr, quasi_newton=cfg.training.quasi_newton
        ),
        balancer=_weights(cfg),
        seed=cfg.seed,
    )
    try:
        return pretrain_finetune(
            est.model_, None, losses, freeze=ft.freeze, unfreeze=ft.unfreeze, finetuner=trainer
        )
    except InvalidArgumentError as exc:
        raise config_error(cfg.path, cfg.text, "finetune", "freeze", str(exc)) from None


def validation_split(cfg: StudyConfig, train: Any, load: Any) -> tuple[Any, Any]:
    """``(fit rows, validation rows)`` for early stopping: the file, or ``fraction`` of
    the rows (of the groups) held out at random (seeded by the study's seed)."""
    es = cfg.early_stopping
    assert es is not None
    if es.path is not None:
        return train, load(es.path)
    rng = np.random.default_rng(cfg.seed)
    n = train.n_rows
    labels = (
        np.arange(n) if cfg.data.group is None else np.asarray(train[cfg.data.group]).astype(str)
    )
    units = np.unique(labels)
    n_val = max(1, round(es.fraction * units.size))
    if n_val >= units.size:
        raise config_error(
            cfg.path,
            cfg.text,
            "early_stopping",
            "fraction",
            f"holding out {n_val} of {units.size} rows/groups leaves none to fit on.",
        )
    held = rng.permutation(units)[:n_val]
    is_val = np.isin(labels, held)
    return train.select(np.flatnonzero(~is_val)), train.select(np.flatnonzero(is_val))


def cross_validation(est: Any, cfg: StudyConfig, train: Any) -> Any:
    """:func:`~hybridml.cross_validate` of ``est`` on ``train`` as ``[cross_validation]``
    says (without a groups column, every row is its own group)."""
    from ..estimators import GroupKFold, LeaveOneGroupOut, cross_validate

    cv = cfg.cross_validation
    assert cv is not None
    column = cv.groups or cfg.data.group
    if cv.groups is not None and cv.groups not in train:
        raise config_error(
            cfg.path,
            cfg.text,
            "cross_validation",
            "groups",
            f"the data has no column {cv.groups!r}; its columns: {', '.join(train)}.",
        )
    groups: Any = column if column is not None else np.arange(train.n_rows)
    splitter: Any = GroupKFold(cv.n_splits) if cv.splitter == "group-kfold" else LeaveOneGroupOut()
    return cross_validate(est, train, groups=groups, cv=splitter, raise_on_error=cv.raise_on_error)


def check_calibration(cfg: StudyConfig, train: Any) -> None:
    """An ensemble calibrated on held-out rows needs every output measured in them: an
    output the data never measures (learned from the physics alone) cannot be."""
    ens = cfg.ensemble
    if ens is None or ens.calibration is None:
        return
    unmeasured = [
        n
        for n in cfg.data.outputs
        if n not in train or not np.isfinite(np.asarray(train[n], dtype=float)).any()
    ]
    if unmeasured:
        raise config_error(
            cfg.path,
            cfg.text,
            "ensemble",
            "calibration",
            f"the output(s) {unmeasured} are not measured in {cfg.data.path.name}, so their "
            "intervals cannot be calibrated on held-out rows; set calibration = false "
            "(uncalibrated mean ± 2 std) or measure them.",
        )
