"""The best weights of a fit: validation losses, early stopping, snapshots and restoring
them, and the non-finite loss guard that restores them before it raises.

Functions of the :class:`~hybridml.training._engine._Engine` state (``best``,
``best_value``, ``best_step``, ``early_ref``, ``early_bad``), as :mod:`._checkpoint` is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..exceptions import NonFiniteLossError
from ._params import _first_nonfinite
from ._phase import Phase

if TYPE_CHECKING:
    from ._engine import _Engine


def eval_val(engine: _Engine) -> float:
    """The validation loss: the sum of the validation terms at the current weights."""
    floats = [float(t(engine.model).detach()) for t in engine.val_terms]
    if not math.isfinite(sum(floats)):
        i = _first_nonfinite(floats)
        raise_nonfinite(engine, floats, engine.phases[engine.phase_index], index=i, val=True)
    return sum(floats)


def observe_val(engine: _Engine, val: float) -> bool:
    """Record a validation loss; return True when early stopping ends the fit."""
    g = engine.global_step
    engine.history.val_step.append(g)
    engine.history.val_loss.append(val)
    if val < engine.best_value:
        snapshot(engine, val, g)
    early = engine.early
    if early is None:
        return False
    if val < engine.early_ref - early.min_delta:
        engine.early_ref = val
        engine.early_bad = 0
        return False
    engine.early_bad += 1
    if engine.early_bad < early.patience:
        return False
    engine.stopped = True
    engine.history.events.append(
        {
            "event": "early_stopping",
            "step": g,
            "best_step": engine.best_step,
            "best_val": engine.best_value,
        }
    )
    return True


def snapshot(engine: _Engine, value: float, step: int) -> None:
    """Keep the current weights as the best, with their loss ``value`` at ``step``."""
    if engine.best is None or len(engine.best) != len(engine._data):
        engine.best = [d.clone() for d in engine._data]
    else:
        torch._foreach_copy_(engine.best, engine._data)  # one call for all tensors
    engine.best_value = value
    engine.best_step = step


def restore_best(engine: _Engine) -> None:
    """Copy the best weights (if any were kept) back into the parameters."""
    if engine.best is None:
        return
    with torch.no_grad():
        for p, b in zip(engine.params, engine.best, strict=True):
            p.copy_(b)


def raise_nonfinite(
    engine: _Engine,
    floats: list[float],
    phase: Phase,
    *,
    index: int | None = None,
    val: bool = False,
) -> None:
    """Restore the best weights, record the event and raise :class:`NonFiniteLossError`."""
    i = _first_nonfinite(floats) if index is None else index
    name = (engine.val_names if val else engine.names)[i]
    value = floats[i]
    kind = "validation loss term" if val else "loss term"
    g = engine.global_step
    if engine.best is not None:
        restore_best(engine)
        what = "validation" if engine.val_terms else "unweighted training"
        restored = (
            f"The weights with the best {what} loss so far (step {engine.best_step}, "
            f"loss {engine.best_value:.6g}) were restored."
        )
    else:
        restored = "No finite loss was seen before, so the weights were left as they are."
    engine.history.events.append(
        {"event": "non_finite_loss", "term": name, "value": value, "step": g}
    )
    hint = phase.advice()
    raise NonFiniteLossError(
        f"{kind} {name!r} is {value} at step {g} (phase {engine.phase_index} "
        f"{phase.name!r}, step {engine.phase_step} of {phase.steps}). {restored} "
        f"What to do: {hint}; check the inputs and targets for NaN/inf and badly scaled "
        "values; check the loss term for operations that can overflow or are undefined "
        "(exp, log or sqrt of non-positive values, division by values near zero).",
        term=name,
        value=value,
        step=g,
        phase=phase.name,
    )
