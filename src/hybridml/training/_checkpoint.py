"""Trainer checkpoints: what they hold, written atomically, read with ``weights_only``.

A checkpoint also holds the *fingerprint* of its fit (:func:`fingerprint`): digests of the
loss terms' data and settings and of the model's architecture, the phases, the balancer,
early stopping and the seed. A fit resumes a checkpoint only when its own fingerprint is
the same; otherwise :class:`~hybridml.exceptions.CheckpointMismatchError` says what differs.
"""

from __future__ import annotations

import hashlib
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .._atomic import atomic_write
from ..exceptions import CheckpointMismatchError, HybridMLWarning
from ..losses._base import LossTerm
from ._history import History
from ._phase import Phase

if TYPE_CHECKING:
    from ._engine import _Engine

_FORMAT = "hybridml.trainer.checkpoint/1"


def atomic_save(obj: Any, path: Path) -> None:
    """Write ``obj`` with ``torch.save`` atomically (a temporary file, then a rename)."""
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU (``map_location``), whatever device wrote it: the
    fit copies the tensors to its own device when it loads them."""
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise CheckpointMismatchError(
            f"could not read the checkpoint {str(path)!r} ({exc}); delete it or pass "
            "fit(resume=False) to start over."
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise CheckpointMismatchError(
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
        "fingerprint": engine.fingerprint,
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
        # a CUDA generator's state is not a CPU generator's: resume checks the kind
        "generator_device": engine.generator.device.type,
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
        raise CheckpointMismatchError(
            f"checkpoint {where!r} was written for loss terms {ckpt['loss_names']}, but "
            f"fit() got {engine.names}; {advice}"
        )
    if set(ckpt["val_names"]) != set(engine.val_names):
        raise CheckpointMismatchError(
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
        raise CheckpointMismatchError(
            f"checkpoint {where!r} does not match the model (parameter names/shapes "
            f"differ: {detail}); {advice}"
        )
    if list(ckpt["phases"]) != [p.name for p in engine.phases]:
        raise CheckpointMismatchError(
            f"checkpoint {where!r} was written for phases {ckpt['phases']}, but the trainer "
            f"has {[p.name for p in engine.phases]}; use the same phases, or "
            "fit(resume=False) to start over."
        )
    _check_fingerprint(engine, ckpt.get("fingerprint"))
    engine.phase_index = int(ckpt["phase_index"])
    engine.phase_step = int(ckpt["phase_step"])
    engine.global_step = int(ckpt["global_step"])
    engine.finished = bool(ckpt["finished"])
    engine.stopped = bool(ckpt["stopped"])
    engine.balancer.load_state_dict(ckpt["balancer"])
    engine.weights = None if ckpt["weights"] is None else [float(v) for v in ckpt["weights"]]
    engine._weights_source = None
    _restore_generator(engine, ckpt)
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
        raise CheckpointMismatchError(
            f"checkpoint {where!r} does not match the model or loss terms ({exc}); pass "
            "the same model and losses, or fit(resume=False) to start over."
        ) from exc
    engine.optimizer_state = ckpt["optimizer"]
    best = ckpt["best"]
    engine.best = (
        None
        if best is None
        else [
            b.to(device=p.device, dtype=p.dtype) for b, p in zip(best, engine.params, strict=True)
        ]
    )


def _restore_generator(engine: _Engine, ckpt: dict[str, Any]) -> None:
    """Restore the resampling generator's state; a checkpoint written with the generator
    on another kind of device (a GPU's, resumed on the CPU, or back) cannot carry it over:
    the generator is then seeded from the seed and the step, with a warning."""
    saved = ckpt.get("generator_device", "cpu")  # older checkpoints: a CPU generator
    here = engine.generator.device.type
    if saved == here:
        engine.generator.set_state(ckpt["generator"])
        return
    seed = engine.trainer.seed
    if seed is None:
        engine.generator.seed()
    else:
        engine.generator.manual_seed(int(seed) + int(ckpt["global_step"]))
    warnings.warn(
        f"checkpoint {str(engine.path)!r} was written with its random generator on the "
        f"{saved} and is resumed on the {here}: the weights, optimiser state and history "
        "carry over, but collocation points drawn from now on differ from those of an "
        "uninterrupted run on one device.",
        HybridMLWarning,
        stacklevel=5,
    )


# --------------------------------------------------------------------------- fingerprint

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _text(obj: object) -> str:
    """``repr(obj)`` without memory addresses (they differ between processes)."""
    return _ADDRESS.sub("", repr(obj))


def _digest() -> Any:
    return hashlib.blake2b(digest_size=16)


def _hash_values(h: Any, t: Tensor) -> None:
    """Feed the bytes of ``t`` to ``h`` through a numpy view (no copy of a CPU tensor)."""
    flat = t.detach().reshape(-1)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    flat = flat.resolve_conj().resolve_neg().contiguous()
    h.update(flat.view(torch.uint8).numpy())


def _structure(module: nn.Module, h: Any) -> None:
    """Feed the architecture of ``module`` to ``h``: each submodule's class and settings
    (``extra_repr``), and the names, shapes and dtypes of its parameters and buffers.

    The ``extra_repr`` of a module that holds parameters itself is left out: it may show
    their values (e.g. a physical parameter's), which training changes and the checkpoint
    restores, so they say nothing about which fit this is.
    """
    for name, sub in module.named_modules():
        cls = type(sub)
        h.update(f"module {name} {cls.__module__}.{cls.__qualname__}\n".encode())
        if next(sub.parameters(recurse=False), None) is None:
            h.update(f"  {_text(sub.extra_repr())}\n".encode())
    for name, p in module.named_parameters():
        h.update(f"param {name} {tuple(p.shape)} {p.dtype}\n".encode())
    for name, b in module.named_buffers():
        h.update(f"buffer {name} {tuple(b.shape)} {b.dtype}\n".encode())


def _may_resample(phases: Sequence[Phase]) -> bool:
    """Whether any phase asks the loss terms to redraw their points during the fit."""
    return any(
        p.resamples(k)
        for p in phases
        if type(p).resamples is not Phase.resamples
        for k in range(p.steps)
    )


def _term_fingerprint(term: LossTerm, values: bool) -> dict[str, str]:
    """Digests of a loss term: ``setup`` (class, settings, tensor names and shapes) and
    ``data`` (the values of its buffers, if ``values``; its parameters' values are
    trained and restored from the checkpoint, so they are left out)."""
    setup = _digest()
    _structure(term, setup)
    data = _digest()
    if values:
        for name, b in term.named_buffers():
            data.update(f"{name} {tuple(b.shape)} {b.dtype}\n".encode())
            _hash_values(data, b)
    return {"setup": setup.hexdigest(), "data": data.hexdigest()}


def fingerprint(engine: _Engine) -> dict[str, Any]:
    """What identifies the fit ``engine`` runs, as plain containers of strings and ints.

    It is computed once, when the fit starts (before any step), and saved with every
    checkpoint. It holds digests of each loss term's setup and data (the values of its
    buffers; for a term that the phases resample, only their names and shapes: its
    points are drawn during the fit and restored from the checkpoint) and of the model's
    architecture (modules, settings, parameter and buffer names, shapes and dtypes, but
    not their values: a resumed fit takes every value from the checkpoint), and the
    phases, balancer, early stopping and seed as text.
    """
    resampled = _may_resample(engine.phases)

    def terms(names: list[str], items: list[LossTerm]) -> dict[str, dict[str, str]]:
        return {
            name: _term_fingerprint(
                term, values=not (resampled and type(term).resample is not LossTerm.resample)
            )
            for name, term in zip(names, items, strict=True)
        }

    model = _digest()
    _structure(engine.model, model)
    trainer = engine.trainer
    return {
        "terms": terms(engine.names, engine.terms),
        "val_terms": terms(engine.val_names, engine.val_terms),
        "model": model.hexdigest(),
        "phases": [_text(p) for p in engine.phases],
        "balancer": _text(engine.balancer),
        "early_stopping": _text(trainer.early_stopping),
        "seed": trainer.seed,
    }


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, as phrases (the data first)."""
    out: list[str] = []
    for kind, label in (("terms", "loss term"), ("val_terms", "validation loss term")):
        old, new = saved.get(kind, {}), now[kind]
        for name in new:
            if name not in old:
                out.append(f"the {label} {name!r} is new")
            elif old[name].get("data") != new[name]["data"]:
                out.append(f"the data of {label} {name!r} differ")
        for name in new:
            if name in old and old[name].get("setup") != new[name]["setup"]:
                out.append(
                    f"the settings of {label} {name!r} (its class, options or tensor shapes) differ"
                )
    if saved.get("model") != now["model"]:
        out.append("the model's architecture (its modules or their settings) differs")
    for key, label in (
        ("phases", "the phases"),
        ("balancer", "the balancer"),
        ("early_stopping", "early stopping"),
        ("seed", "the seed"),
    ):
        if saved.get(key) != now[key]:
            out.append(
                f"{label} differ{'' if key == 'phases' else 's'} (checkpoint "
                f"{saved.get(key)!r}, this fit {now[key]!r})"
            )
    return out


def _check_fingerprint(engine: _Engine, saved: Any) -> None:
    """Refuse to resume a checkpoint whose fingerprint is not this fit's."""
    where = str(engine.path)
    now = engine.fingerprint
    if now is None:  # pragma: no cover - a fit with a checkpoint path always has one
        return
    if saved is None:
        warnings.warn(
            f"checkpoint {where!r} was written by an older hybridml and has no fingerprint, "
            "so it cannot be checked against this fit's data and settings; it is resumed "
            "as it is. Delete it to start fresh if it may belong to another fit.",
            HybridMLWarning,
            stacklevel=4,
        )
        return
    diffs = _differences(saved, now)
    if diffs:
        raise CheckpointMismatchError(
            f"checkpoint {where!r} belongs to another fit: {'; '.join(diffs)}. Resuming it "
            "would continue (or return) that other fit. To start fresh, delete the file or "
            "pass another checkpoint path (Trainer(checkpoint=...), "
            "HybridRegressor(checkpoint=...)); a Trainer's fit(resume=False) starts over "
            "and overwrites it."
        )
