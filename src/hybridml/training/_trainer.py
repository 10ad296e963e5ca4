"""Training: optimiser phases, loss balancing, early stopping, checkpoints and history.

One verb: ``Trainer(...).fit(model, losses)``. The options are objects: the optimiser
phases (:class:`Phase` objects; by default :class:`Adam`, then :class:`LBFGS`), a
:class:`~hybridml.Balancer` for the loss weights and :class:`EarlyStopping` on validation
losses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._device import resolve_device
from ..exceptions import InvalidArgumentError, InvalidTypeError
from ..losses._base import LossTerm
from ._balancing import Balancer, FixedWeights, check_balancer_terms
from ._checkpoint import load_checkpoint
from ._engine import Callback, _Engine
from ._history import History
from ._phase import Phase, _check_int, check_phase
from ._phases import default_phases
from ._stopping import EarlyStopping

__all__ = ["Trainer"]

_DEFAULT_PHASES = default_phases()


class Trainer:
    """Fits a model by minimising a weighted sum of named loss terms, in optimiser phases.

    Args:
        phases: optimiser phases (:class:`~hybridml.Phase` objects) run in order, e.g.
            ``(Adam(2000), LBFGS(500))``; by default :func:`~hybridml.default_phases`:
            ``(Adam(2000, lr=1e-3), LBFGS(200))``, as the estimator and the study config.
        balancer: how the loss terms are weighted: a :class:`~hybridml.Balancer`, a mapping
            term name -> fixed weight, or ``None`` (all weights 1).
        early_stopping: stop on a stalled validation loss (needs ``val_losses`` in
            :meth:`fit`).
        checkpoint: file to write checkpoints to (atomically), or ``None``.
        checkpoint_every: write a checkpoint every this many steps of a phase, and at the
            end of every phase. A checkpoint holds the model, loss-term and optimiser
            state, balancer state, position in the phases, generator states, history and
            best weights, and the fingerprint of the fit (digests of the loss terms' data
            and settings and of the model's architecture; the phases, balancer, early
            stopping and seed); it loads with ``torch.load(path, weights_only=True)``.
        seed: seed of the trainer's own generator (collocation resampling) and of the
            global torch CPU RNG *inside* the fit (e.g. dropout; the caller's RNG state is
            restored afterwards); the same seed gives bitwise the same numbers. ``None``
            draws a random seed and leaves the global RNG alone.
        progress: show a progress bar (with the current loss); ``None`` shows it only
            when stderr is a terminal.
        callbacks: callables ``callback(trainer, step_info)`` run after every step.
        device: where the fit runs: ``"auto"`` (a CUDA GPU when one is available, else
            the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device`.
            :meth:`fit` moves the model and the loss terms (their data: buffers, and their
            parameters) there, in place, before training, and draws collocation points
            from a generator on that device; the model stays there afterwards. ``None``
            (the default) moves nothing and draws on the CPU, as before. On the CPU,
            ``"cpu"`` gives bitwise the numbers of ``None``; on a GPU the numbers agree
            with the CPU's to rounding, but the random draws (resampling, dropout) come
            from the GPU's generators and differ. Inside the loop the only
            device-to-host copies are the loss values of each step (one copy per step on
            a GPU) for the history and the NaN check.
        budget_s: a wall-time budget in seconds for each :meth:`fit`, counted from the call
            (``None``: no limit). It is checked after every step: once it is spent, the fit
            ends after that step, at most one step late (a step of a quasi-Newton phase is
            one iteration with its line search), the remaining steps and phases are skipped
            and a ``"budget_spent"`` event is recorded. Stopping there is safe: a phase that
            runs in another dtype converts the model and the loss terms back, a checkpoint
            is written (recording the fit as finished: ``fit(resume=True)`` does not
            continue it), and the history and model are those of the last step taken.

    Attributes:
        history_: the :class:`History` of the last fit (also set when a fit raised).
    """

    history_: History

    def __init__(
        self,
        phases: Sequence[Phase] = _DEFAULT_PHASES,
        *,
        balancer: Balancer | Mapping[str, float] | None = None,
        early_stopping: EarlyStopping | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 100,
        seed: int | None = 0,
        progress: bool | None = None,
        callbacks: Iterable[Callback] = (),
        device: str | torch.device | None = None,
        budget_s: float | None = None,
    ) -> None:
        self.phases = phases
        self.balancer = balancer
        self.early_stopping = early_stopping
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.seed = seed
        self.progress = progress
        self.callbacks = callbacks
        self.device = device
        self.budget_s = budget_s
        self._stop_request: str | None = None

    def stop(self, reason: str = "stopped by a callback") -> None:
        """End the running fit after the current step; call it from a callback.

        The step in progress completes and is recorded, then the fit ends as when
        ``budget_s`` is spent (see there): the remaining steps and phases are skipped, a
        phase run in another dtype converts the model and the loss terms back, a
        checkpoint is written, and a ``"stopped"`` event with ``reason`` is recorded in the
        history. This is the supported way for a callback to end a fit (e.g. when a loss
        stalls); the next :meth:`fit` starts without the request.

        Args:
            reason: why, recorded in the event.
        """
        self._stop_request = str(reason)

    def fit(
        self,
        model: nn.Module,
        losses: Mapping[str, LossTerm],
        *,
        val_losses: Mapping[str, LossTerm] | None = None,
        resume: bool = False,
    ) -> History:
        """Train ``model`` in place.

        Args:
            model: the model; its parameters (and those of the loss terms) are trained.
            losses: named loss terms; the objective is ``sum_i w_i * L_i``.
            val_losses: named validation loss terms (not trained on); their unweighted sum
                is the validation loss, evaluated every ``EarlyStopping.every`` steps (10
                without early stopping) and at the end, and recorded in the history.
            resume: continue from ``checkpoint`` if that file exists (a missing file starts
                a fresh fit). The checkpoint must belong to this fit: the same loss terms
                with the same data, a model of the same architecture (its weights come from
                the checkpoint), the same phases, balancer, early stopping and seed.

        Returns:
            The :class:`History` (also stored as ``history_``).

        Raises:
            DeviceError: a ``device`` this machine cannot use (e.g. ``"cuda"`` without
                CUDA), before anything is moved.
            NonFiniteLossError: a loss term became NaN/inf (best weights restored first).
            CheckpointMismatchError: the checkpoint belongs to another fit or cannot be
                read (the message says what differs; a ``ValueError``).
            ValueError: invalid settings; a balancer that differentiates each term
                separately (``LRAnnealing``) with a term whose compiled derivatives can be
                backpropagated only once (``derivatives="compiled"``).
        """
        started = time.perf_counter()
        self._stop_request = None
        phases = self._checked_phases()
        budget = self.budget_s
        if budget is not None and (
            isinstance(budget, bool)
            or not isinstance(budget, (int, float))
            or not math.isfinite(budget)
            or budget <= 0
        ):
            raise InvalidArgumentError(
                f"Trainer: budget_s must be a finite number of seconds > 0 or None, got {budget!r}."
            )
        if not isinstance(model, nn.Module):
            raise InvalidTypeError(
                f"fit: model must be a torch.nn.Module, got {type(model).__name__}."
            )
        terms = _checked_terms(losses, "losses")
        val_terms = _checked_terms(val_losses, "val_losses") if val_losses is not None else {}
        if self.early_stopping is not None and not isinstance(self.early_stopping, EarlyStopping):
            raise InvalidTypeError(
                "Trainer: early_stopping must be an EarlyStopping(...) or None, got "
                f"{self.early_stopping!r}."
            )
        if self.early_stopping is not None and not val_terms:
            raise InvalidArgumentError(
                "Trainer: early_stopping needs validation losses; pass "
                "fit(..., val_losses={'name': DataLoss(x_val, y_val)})."
            )
        _check_int("Trainer", "checkpoint_every", self.checkpoint_every, 1)
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise InvalidArgumentError(f"Trainer: seed must be an int or None, got {self.seed!r}.")
        callbacks = list(self.callbacks)
        for cb in callbacks:
            if not callable(cb):
                raise InvalidTypeError(f"Trainer: callbacks must be callables, got {cb!r}.")
        path = None if self.checkpoint is None else Path(self.checkpoint)
        if resume and path is None:
            raise InvalidArgumentError("fit(resume=True) needs Trainer(checkpoint=PATH).")
        balancer = _as_balancer(self.balancer)
        check_balancer_terms(balancer, terms)
        device = resolve_device(self.device, what="Trainer: device")
        if device is not None:  # the model and the terms' data move once, before the loop
            model.to(device)
            for term in (*terms.values(), *val_terms.values()):
                term.to(device)

        self.history_ = History(list(terms), [p.name for p in phases])
        engine = _Engine(
            self,
            phases,
            model,
            terms,
            val_terms,
            balancer,
            callbacks,
            path,
            self.history_,
            device,
            None if budget is None else started + float(budget),
        )
        for p in phases:  # checked before any training, not when the phase starts
            p.check_parameters(engine.params)
        cuda = [] if device is None or device.type != "cuda" else [device.index]
        with torch.random.fork_rng(devices=cuda, enabled=self.seed is not None):
            if self.seed is not None:
                torch.default_generator.manual_seed(self.seed)
                if cuda:  # dropout and other global draws on the GPU are seeded too
                    torch.cuda.default_generators[cuda[0]].manual_seed(self.seed)
            if resume and path is not None and path.exists():
                engine.restore(load_checkpoint(path))
                self.history_ = engine.history
            engine.run()
        return self.history_

    def _checked_phases(self) -> tuple[Phase, ...]:
        if isinstance(self.phases, Phase):
            raise InvalidTypeError(
                f"Trainer: phases must be a sequence of phases, got the single phase "
                f"{self.phases!r}; pass phases=({self.phases!r},)."
            )
        phases = tuple(self.phases)
        if not phases:
            raise InvalidArgumentError(
                "Trainer: phases is empty; pass e.g. phases=(Adam(2000), LBFGS(500))."
            )
        for p in phases:
            if not isinstance(p, Phase):
                raise InvalidTypeError(
                    "Trainer: each phase must be a hybridml.Phase (Adam(...), LBFGS(...), "
                    f"BFGS(...) or a subclass of Phase), got {p!r}."
                )
            check_phase(p)  # also for a subclass whose __post_init__ skips it
        return phases

    def __repr__(self) -> str:
        return (
            f"Trainer(phases={tuple(self.phases)!r}, balancer={self.balancer!r}, "
            f"early_stopping={self.early_stopping!r}, checkpoint={self.checkpoint!r}, "
            f"seed={self.seed!r}"
            + ("" if self.device is None else f", device={self.device!r}")
            + ("" if self.budget_s is None else f", budget_s={self.budget_s!r}")
            + ")"
        )


# --------------------------------------------------------------------------- helpers


def _checked_terms(losses: Any, what: str) -> dict[str, LossTerm]:
    if not isinstance(losses, Mapping):
        raise InvalidTypeError(
            f"fit: {what} must be a mapping name -> LossTerm, e.g. "
            f"{{'data': DataLoss(x, y)}}; got {type(losses).__name__}."
        )
    if not losses:
        raise InvalidArgumentError(f"fit: {what} is empty; pass at least one named loss term.")
    out: dict[str, LossTerm] = {}
    for name, term in losses.items():
        if not isinstance(name, str) or not name:
            raise InvalidTypeError(f"fit: {what} names must be non-empty strings, got {name!r}.")
        if not isinstance(term, LossTerm):
            raise InvalidTypeError(
                f"fit: {what}[{name!r}] is a {type(term).__name__}, not a LossTerm; subclass "
                "hybridml.LossTerm (forward(model) -> 0-d tensor)."
            )
        out[name] = term
    return out


def _as_balancer(balancer: Any) -> Balancer:
    if balancer is None:
        return FixedWeights()
    if isinstance(balancer, Balancer):
        return balancer
    if isinstance(balancer, Mapping):
        return FixedWeights(balancer)
    raise InvalidTypeError(
        "Trainer: balancer must be a Balancer (FixedWeights, LRAnnealing, ReLoBRaLo), a "
        f"mapping name -> weight, or None; got {balancer!r}."
    )
