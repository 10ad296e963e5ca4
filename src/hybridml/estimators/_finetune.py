"""Learning from a simulator when measurements are few.

Two ways to use an imperfect simulator's (cheap, plentiful) output together with (costly,
scarce) measurements:

* **Pre-train, then fine-tune** (:func:`pretrain_finetune`): train the network on
  simulator data, then fine-tune on the measurements with chosen layers frozen, optionally
  unfreezing them gradually (the last frozen layer first, as in Howard & Ruder 2018,
  "Universal language model fine-tuning"). The frozen layers keep the features the
  simulator taught; the measurements only move the rest.
* **Augment** (:func:`mixed_data_loss`, :func:`augmented_losses`): train on measurements and
  simulator samples together, the simulator's share of the loss set by the user or left to
  the trainer's balancer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ..data._input import as_inputs
from ..exceptions import InvalidArgumentError, InvalidTypeError
from ..losses._base import DataLoss, LossTerm

if TYPE_CHECKING:
    from ..training import History, Trainer

__all__ = [
    "FineTuneResult",
    "augmented_losses",
    "layer_names",
    "mixed_data_loss",
    "pretrain_finetune",
]

LayerSpec = int | Sequence[str] | Callable[[str], bool]


def layer_names(model: nn.Module) -> list[str]:
    """Names of the modules that hold parameters themselves, in registration order.

    For an :class:`~hybridml.MLP` these are its linear layers, e.g. ``["layers.0",
    "layers.2", "layers.4"]``; these are the names :func:`pretrain_finetune` freezes.
    """
    return [
        name
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]


def _resolve(model: nn.Module, spec: LayerSpec, what: str, *, last: bool = False) -> list[str]:
    """The layer names a freeze/unfreeze spec picks (an int counts from the input, or from
    the output with ``last=True``)."""
    layers = layer_names(model)
    if callable(spec) and not isinstance(spec, int | str | Sequence):
        return [name for name in layers if spec(name)]
    if isinstance(spec, bool):
        raise InvalidTypeError(
            f"pretrain_finetune: {what} must be an int, layer names or a callable."
        )
    if isinstance(spec, int):
        if not 0 <= spec <= len(layers):
            raise InvalidArgumentError(
                f"pretrain_finetune: {what}={spec} but the model has {len(layers)} layers with "
                f"parameters ({', '.join(layers)})."
            )
        if spec == 0:
            return []
        return layers[-spec:] if last else layers[:spec]
    if isinstance(spec, str):
        spec = [spec]
    picked: list[str] = []
    for prefix in spec:
        match = [n for n in layers if n == prefix or n.startswith(prefix + ".") or prefix == ""]
        if not match:
            raise InvalidArgumentError(
                f"pretrain_finetune: {what} names {prefix!r}, which is not a layer (or a parent "
                f"of one) of the model; its layers are {', '.join(layers)}."
            )
        picked.extend(n for n in match if n not in picked)
    return picked


@dataclass
class FineTuneResult:
    """What :func:`pretrain_finetune` did.

    Attributes:
        model: the fine-tuned model (the one passed in, trained in place).
        pretrain_history: the history of pre-training on simulator data (None if skipped).
        finetune_histories: one history per fine-tuning stage.
        frozen: the layer names frozen during each fine-tuning stage.
    """

    model: nn.Module
    pretrain_history: History | None
    finetune_histories: list[History] = field(default_factory=list)
    frozen: list[list[str]] = field(default_factory=list)


def pretrain_finetune(
    model: nn.Module,
    synthetic_losses: Mapping[str, LossTerm] | None,
    measured_losses: Mapping[str, LossTerm],
    *,
    freeze: LayerSpec = (),
    unfreeze: Sequence[LayerSpec] = (),
    pretrainer: Trainer | None = None,
    finetuner: Trainer | Sequence[Trainer] | None = None,
    val_losses: Mapping[str, LossTerm] | None = None,
) -> FineTuneResult:
    """Pre-train ``model`` on simulator data, then fine-tune it on measurements.

    Args:
        model: the network (trained in place).
        synthetic_losses: loss terms on simulator data, e.g. ``{"simulated":
            DataLoss(x_sim, y_sim)}`` (plus physics terms if wanted); None skips
            pre-training (for a model pre-trained before).
        measured_losses: loss terms on the measurements, e.g. ``{"data": DataLoss(x, y)}``.
        freeze: layers frozen in the first fine-tuning stage: a number (the first ``k``
            layers from the input, see :func:`layer_names`), layer names (a name also
            matches the layers inside it, e.g. ``"net"``), or a callable ``name -> bool``.
        unfreeze: gradual unfreezing: one entry per further stage, each a number (the
            last ``k`` still-frozen layers, i.e. from the output side), names or a callable.
            After each unfreezing the model is fine-tuned again.
        pretrainer: the :class:`~hybridml.Trainer` for pre-training (default ``Trainer()``).
        finetuner: the trainer for the fine-tuning stages (default ``Trainer()``), or one
            trainer per stage (``1 + len(unfreeze)``); give fewer steps or a smaller Adam
            learning rate than for pre-training so fine-tuning does not forget.
        val_losses: validation terms for early stopping during fine-tuning.

    Returns:
        A :class:`FineTuneResult`. The parameters' ``requires_grad`` flags are restored
        afterwards, so the model can be trained further as usual.

    Raises:
        ValueError: if ``freeze``/``unfreeze`` name no layer of the model, or every
            parameter is frozen.
    """
    from ..training import Trainer

    if not isinstance(model, nn.Module):
        raise InvalidTypeError(
            f"pretrain_finetune: model must be an nn.Module, got {type(model).__name__}."
        )
    if not measured_losses:
        raise InvalidArgumentError(
            "pretrain_finetune: measured_losses is empty; give the measurement terms."
        )
    n_stages = 1 + len(unfreeze)
    if finetuner is None or isinstance(finetuner, Trainer):
        trainers = [finetuner or Trainer()] * n_stages
    else:
        trainers = list(finetuner)
        if len(trainers) != n_stages:
            raise InvalidArgumentError(
                f"pretrain_finetune: {len(trainers)} finetuner(s) for {n_stages} stage(s) "
                "(1 + len(unfreeze)); give one trainer or one per stage."
            )
    pre_history = None
    if synthetic_losses:
        pre_history = (pretrainer or Trainer()).fit(model, dict(synthetic_losses))

    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    frozen = _resolve(model, freeze, "freeze")
    modules = dict(model.named_modules())
    result = FineTuneResult(model, pre_history)
    try:
        for stage in range(n_stages):
            if stage > 0:
                spec = unfreeze[stage - 1]
                if isinstance(spec, int) and not isinstance(spec, bool):
                    if not 0 <= spec <= len(frozen):
                        raise InvalidArgumentError(
                            f"pretrain_finetune: unfreeze[{stage - 1}]={spec} but only "
                            f"{len(frozen)} layer(s) are frozen ({', '.join(frozen)})."
                        )
                    thaw = frozen[len(frozen) - spec :] if spec else []
                else:
                    thaw = _resolve(model, spec, f"unfreeze[{stage - 1}]")
                frozen = [n for n in frozen if n not in thaw]
            for name in layer_names(model):
                for pname, p in modules[name].named_parameters(recurse=False):
                    full = f"{name}.{pname}" if name else pname
                    p.requires_grad_(flags[full] and name not in frozen)
            if not any(p.requires_grad for p in model.parameters()):
                raise InvalidArgumentError(
                    f"pretrain_finetune: fine-tuning stage {stage} has every parameter frozen "
                    f"({', '.join(frozen)}); freeze fewer layers."
                )
            history = trainers[stage].fit(model, dict(measured_losses), val_losses=val_losses)
            result.finetune_histories.append(history)
            result.frozen.append(list(frozen))
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
    return result


# ----------------------------------------------------------------------------- augmentation


def _xy(x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``x``/``y`` through :func:`~hybridml.as_inputs`: (n, d) and (n, k) floats, n >= 1."""
    data = as_inputs(x, y, what=what, x_name="x", y_name="y", require_y=True)
    assert data.y is not None
    return data.X, data.y


def mixed_data_loss(
    x_measured: Any,
    y_measured: Any,
    x_synthetic: Any,
    y_synthetic: Any,
    *,
    synthetic_share: float = 0.2,
) -> DataLoss:
    """One data term on measurements and simulator samples, the simulator's share fixed.

    Per-point weights make the loss ``(1 - s) * MSE(measured) + s * MSE(synthetic)`` with
    ``s = synthetic_share``, whatever the numbers of points (for fully measured targets), so
    a thousand simulated points do not drown ten measurements.

    Args:
        x_measured: measured inputs, shape ``(n_m, d)``.
        y_measured: measured targets, shape ``(n_m, k)`` (NaN: not measured).
        x_synthetic: simulator inputs, shape ``(n_s, d)``.
        y_synthetic: simulator outputs, shape ``(n_s, k)``.
        synthetic_share: the simulator's share of the loss, in ``[0, 1)``.

    Returns:
        A :class:`~hybridml.DataLoss` with per-point weights.
    """
    xm, ym = _xy(x_measured, y_measured, "mixed_data_loss (measured)")
    xs, ys = _xy(x_synthetic, y_synthetic, "mixed_data_loss (synthetic)")
    if xm.shape[1] != xs.shape[1] or ym.shape[1] != ys.shape[1]:
        raise InvalidArgumentError(
            f"mixed_data_loss: measured data has {xm.shape[1]} inputs and {ym.shape[1]} outputs "
            f"but synthetic data has {xs.shape[1]} and {ys.shape[1]}."
        )
    s = float(synthetic_share)
    if not 0.0 <= s < 1.0:
        raise InvalidArgumentError(
            f"mixed_data_loss: synthetic_share must lie in [0, 1), got {synthetic_share!r}; "
            "1 would ignore the measurements."
        )
    # DataLoss divides by the number of measured entries after normalising weights to mean 1,
    # so per-point weights proportional to share / (entries of the part) give the mixture.
    n_m = max(int(np.isfinite(ym).sum()), 1)
    n_s = max(int(np.isfinite(ys).sum()), 1)
    w = np.concatenate([np.full(xm.shape[0], (1.0 - s) / n_m), np.full(xs.shape[0], s / n_s)])
    if s == 0.0:
        return DataLoss(xm, ym)
    return DataLoss(np.concatenate([xm, xs]), np.concatenate([ym, ys]), weights=w)


def augmented_losses(
    x_measured: Any,
    y_measured: Any,
    x_synthetic: Any,
    y_synthetic: Any,
    *,
    synthetic_share: float | None = None,
) -> dict[str, LossTerm]:
    """Loss terms that mix measurements with simulator samples.

    Args:
        x_measured: measured inputs, shape ``(n_m, d)``.
        y_measured: measured targets, shape ``(n_m, k)``.
        x_synthetic: simulator inputs, shape ``(n_s, d)``.
        y_synthetic: simulator outputs, shape ``(n_s, k)``.
        synthetic_share: the simulator's share of the loss (see :func:`mixed_data_loss`);
            None returns two separate terms, ``"data"`` and ``"synthetic"``, for the
            trainer's balancer (e.g. :class:`~hybridml.LRAnnealing`) or fixed weights.

    Returns:
        ``{"data": mixed}`` or ``{"data": measured, "synthetic": simulated}``.
    """
    if synthetic_share is not None:
        return {
            "data": mixed_data_loss(
                x_measured, y_measured, x_synthetic, y_synthetic, synthetic_share=synthetic_share
            )
        }
    xm, ym = _xy(x_measured, y_measured, "augmented_losses (measured)")
    xs, ys = _xy(x_synthetic, y_synthetic, "augmented_losses (synthetic)")
    if xm.shape[1] != xs.shape[1] or ym.shape[1] != ys.shape[1]:
        raise InvalidArgumentError(
            f"augmented_losses: measured data has {xm.shape[1]} inputs and {ym.shape[1]} "
            f"outputs but synthetic data has {xs.shape[1]} and {ys.shape[1]}."
        )
    return {"data": DataLoss(xm, ym), "synthetic": DataLoss(xs, ys)}
