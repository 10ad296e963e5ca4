"""Trainer checkpoints: what they hold, written atomically, read with ``weights_only``."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._history import History

if TYPE_CHECKING:
    from ._engine import _Engine

_FORMAT = "hybridml.trainer.checkpoint/1"


def atomic_save(obj: Any, path: Path) -> None:
    """Write ``obj`` with ``torch.save`` to a temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise ValueError(
            f"could not read the checkpoint {str(path)!r} ({exc}); delete it or pass "
            "fit(resume=False) to start over."
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a hybridml trainer checkpoint; pass another "
            "Trainer(checkpoint=...) or fit(resume=False)."
        )
    return ckpt


def model_keys(model: nn.Module) -> dict[str, list[int]]:
    """Names and shapes of the model's state, to check a checkpoint against the model."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def checkpoint_state(engine: _Engine) -> dict[str, Any]:
    """The state of a fit as a checkpoint: plain containers and tensors."""
    state: dict[str, Any] = {
        "format": _FORMAT,
        "loss_names": list(engine.names),
        "val_names": list(engine.val_names),
        "model_keys": model_keys(engine.model),
        "phases": [p.name for p in engine.phases],
        "phase_index": engine.phase_index,
        "phase_step": engine.phase_step,
        "global_step": engine.global_step,
        "finished": engine.finished,
        "stopped": engine.stopped,
        "model": engine.model.state_dict(),
        "losses": {n: t.state_dict() for n, t in zip(engine.names, engine.terms, strict=True)},
        "val_losses": {
            n: t.state_dict() for n, t in zip(engine.val_names, engine.val_terms, strict=True)
        },
        "optimizer": None if engine.optimizer is None else engine.optimizer.state_dict(),
        "balancer": engine.balancer.state_dict(),
        "weights": None if engine.weights is None else list(engine.weights),
        "generator": engine.generator.get_state(),
        "torch_rng": (
            torch.default_generator.get_state() if engine.trainer.seed is not None else None
        ),
        "history": engine.history.to_dict(),
        "best": engine.best,
        "best_value": engine.best_value,
        "best_step": engine.best_step,
        "early_ref": engine.early_ref,
        "early_bad": engine.early_bad,
        "time": time.perf_counter() - engine.t0 + engine.time_offset,
    }
    return state


def restore(engine: _Engine, ckpt: dict[str, Any]) -> None:
    """Check a loaded checkpoint against the fit ``engine`` and restore its state; the
    tensors are loaded by :func:`load_pending` once the phase has set the dtype."""
    where = str(engine.path)
    advice = "pass the same model and losses, or fit(resume=False) to start over."
    if set(ckpt["loss_names"]) != set(engine.names):
        raise ValueError(
            f"checkpoint {where!r} was written for loss terms {ckpt['loss_names']}, but "
            f"fit() got {engine.names}; {advice}"
        )
    if set(ckpt["val_names"]) != set(engine.val_names):
        raise ValueError(
            f"checkpoint {where!r} was written for validation loss terms "
            f"{ckpt['val_names']}, but fit() got {engine.val_names}; {advice}"
        )
    saved_keys: dict[str, list[int]] = ckpt["model_keys"]
    keys = model_keys(engine.model)
    if saved_keys != keys:
        diff = sorted(k for k in set(saved_keys) | set(keys) if saved_keys.get(k) != keys.get(k))
        detail = ", ".join(
            f"{k}: checkpoint {saved_keys.get(k)} vs model {keys.get(k)}" for k in diff[:5]
        )
        raise ValueError(
            f"checkpoint {where!r} does not match the model (parameter names/shapes "
            f"differ: {detail}); {advice}"
        )
    if list(ckpt["phases"]) != [p.name for p in engine.phases]:
        raise ValueError(
            f"checkpoint {where!r} was written for phases {ckpt['phases']}, but the trainer "
            f"has {[p.name for p in engine.phases]}; use the same phases, or "
            "fit(resume=False) to start over."
        )
    engine.phase_index = int(ckpt["phase_index"])
    engine.phase_step = int(ckpt["phase_step"])
    engine.global_step = int(ckpt["global_step"])
    engine.finished = bool(ckpt["finished"])
    engine.stopped = bool(ckpt["stopped"])
    engine.balancer.load_state_dict(ckpt["balancer"])
    engine.weights = None if ckpt["weights"] is None else [float(v) for v in ckpt["weights"]]
    engine._weights_source = None
    engine.generator.set_state(ckpt["generator"])
    if ckpt["torch_rng"] is not None and engine.trainer.seed is not None:
        torch.default_generator.set_state(ckpt["torch_rng"])
    engine.history = History.from_dict(ckpt["history"])
    engine.best_value = float(ckpt["best_value"])
    engine.best_step = int(ckpt["best_step"])
    engine.early_ref = float(ckpt["early_ref"])
    engine.early_bad = int(ckpt["early_bad"])
    engine.time_offset = float(ckpt["time"])
    engine.pending = ckpt  # tensors are loaded once the phase has set the dtype


def load_pending(engine: _Engine) -> None:
    """Load the tensors of a checkpoint restored by :func:`restore` into the fit."""
    ckpt = engine.pending
    if ckpt is None:
        return
    engine.pending = None
    where = str(engine.path)
    try:
        engine.model.load_state_dict(ckpt["model"])
        for name, term in zip(engine.names, engine.terms, strict=True):
            term.load_state_dict(ckpt["losses"][name])
        for name, term in zip(engine.val_names, engine.val_terms, strict=True):
            term.load_state_dict(ckpt["val_losses"][name])
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {where!r} does not match the model or loss terms ({exc}); pass "
            "the same model and losses, or fit(resume=False) to start over."
        ) from exc
    engine.optimizer_state = ckpt["optimizer"]
    best = ckpt["best"]
    engine.best = (
        None if best is None else [b.to(p.dtype) for b, p in zip(best, engine.params, strict=True)]
    )
