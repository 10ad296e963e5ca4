"""The engine of a fit: the loop over phases and steps, the state a checkpoint snapshots."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .._progress import progress_bar
from ..exceptions import InvalidArgumentError, TrainingError
from ..losses._base import LossTerm
from . import _best, _checkpoint
from ._balancing import Balancer, explain_single_backward
from ._history import History, StepInfo
from ._params import _collect_params, _module_dtype
from ._phase import Converged, Phase

if TYPE_CHECKING:
    from ._trainer import Trainer

Callback = Callable[["Trainer", StepInfo], object]


class _Engine:
    """The state of one fit; checkpoints are a snapshot of this object."""

    def __init__(
        self,
        trainer: Trainer,
        phases: tuple[Phase, ...],
        model: nn.Module,
        terms: dict[str, LossTerm],
        val_terms: dict[str, LossTerm],
        balancer: Balancer,
        callbacks: list[Callback],
        path: Path | None,
        history: History,
        device: torch.device | None,
        deadline: float | None = None,
    ) -> None:
        self.trainer = trainer
        self.phases = phases
        self.model = model
        self.names = list(terms)
        self.terms = list(terms.values())
        self.val_names = list(val_terms)
        self.val_terms = list(val_terms.values())
        self.modules: list[nn.Module] = [model, *self.terms, *self.val_terms]
        self.params = _collect_params([model, *self.terms])
        # detached views of the parameters (share storage): cheap snapshots without autograd
        self._data = [p.detach() for p in self.params]
        if not self.params:
            raise InvalidArgumentError(
                "fit: the model (and loss terms) have no trainable parameters "
                "(requires_grad=True); nothing to train."
            )
        self.dtypes = [(m, _module_dtype(m)) for m in self.modules]
        self.balancer = balancer
        balancer.init(self.names)
        self.callbacks = callbacks
        self.path = path
        self.history = history
        self.generator = torch.Generator(device or "cpu")  # resampling: on the fit's device
        if trainer.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(trainer.seed)
        self.early = trainer.early_stopping
        self.val_every = self.early.every if self.early is not None else 10
        self.checkpoint_every = trainer.checkpoint_every
        # progress of the fit
        self.phase_index = 0
        self.phase_step = 0
        self.global_step = 0
        self.finished = False
        self.stopped = False
        self.deadline = deadline  # time.perf_counter() at which the budget is spent
        self.optimizer: torch.optim.Optimizer | None = None
        self.optimizer_state: dict[str, Any] | None = None
        self.weights: list[float] | None = None
        self._weights_source: object = None
        # best weights: lowest validation loss if there are val_losses, else lowest
        # unweighted training loss
        self.best: list[Tensor] | None = None
        self.best_value = math.inf
        self.best_step = -1
        self.early_ref = math.inf
        self.early_bad = 0
        self.time_offset = 0.0
        self.t0 = time.perf_counter()
        self.pending: dict[str, Any] | None = None
        self.bar: Any = None
        self.bar_on = False
        self._first: tuple[list[float], float] | None = None
        self._checked = False
        self._cache: tuple[list[Tensor], list[Tensor | None], list[float], float, Tensor] | None
        self._cache = None
        # what identifies this fit, saved with every checkpoint and checked on resume;
        # computed once here, before any step (the data are hashed once per fit)
        self.fingerprint: dict[str, Any] | None = (
            None if path is None else _checkpoint.fingerprint(self)
        )

    # ------------------------------------------------------------------ driver

    def run(self) -> None:
        total = sum(p.steps for p in self.phases)
        self.bar = progress_bar(total=total, desc="fit", enabled=self.trainer.progress)
        self.bar_on = not getattr(self.bar, "disable", True)
        if self.bar_on and len(self.history):
            self.bar.update(len(self.history))
        self.t0 = time.perf_counter()
        try:
            if self.finished:
                self._load_pending()
                return
            while self.phase_index < len(self.phases):
                phase = self.phases[self.phase_index]
                if self.history.step and self._stop_now():
                    break
                self._run_phase(phase)
                if self.bar_on and self.history.loss:
                    self.bar.set_postfix(loss=f"{self.history.loss[-1]:.3e}", refresh=True)
                if self.stopped:
                    break
                self.phase_index += 1
                self.phase_step = 0
                self.optimizer = None
                self.optimizer_state = None
                self._save()
            if self.pending is not None:  # resumed a checkpoint written after the last phase
                self._load_pending()
            self._finish()
        finally:
            self.bar.close()

    def _finish(self) -> None:
        if self.val_terms and not self.stopped:
            val = _best.eval_val(self)
            _best.observe_val(self, val)
        if self.early is not None and self.best is not None:
            _best.restore_best(self)
            self.history.events.append(
                {"event": "restored_best", "step": self.best_step, "val_loss": self.best_value}
            )
        self.finished = True
        self.optimizer = None
        self._save()

    # ------------------------------------------------------------------ phases

    def _run_phase(self, phase: Phase) -> None:
        """Run ``phase`` from step ``phase_step``: one :meth:`Phase.step` per trainer step."""
        dtype = phase.dtype
        convert = dtype is not None and any(d is not None and d != dtype for _, d in self.dtypes)
        try:
            if convert and dtype is not None:
                self._convert(dtype)
            self._load_pending()
            opt = phase.make_optimizer(list(self.params))
            if self.optimizer_state is not None:
                opt.load_state_dict(self.optimizer_state)
                self.optimizer_state = None
            self.optimizer = opt
            self._cache = None
            self._checked = False
            track_val = bool(self.val_terms)
            closure = self._make_closure(phase)
            for k in range(self.phase_step, phase.steps):
                g = self.global_step
                if phase.resamples(k):
                    for term in self.terms:
                        term.resample(self.generator)
                    self._cache = None
                val = None
                if track_val and g % self.val_every == 0:
                    val = _best.eval_val(self)
                    if _best.observe_val(self, val):
                        return
                self._first = None
                try:
                    result = phase.step(opt, closure, k)
                except RuntimeError as exc:
                    if convert and ("dtype" in str(exc) or "Double" in str(exc)):
                        raise TrainingError(
                            f"the {type(phase).__name__} phase runs the model and loss terms "
                            f"in {dtype}, but a tensor kept another dtype ({exc}). Register "
                            "every tensor a model or loss term uses as a buffer "
                            "(register_buffer) and create new tensors with the dtype of the "
                            f"inputs, or pass {type(phase).__name__}(..., dtype=None) to keep "
                            "the model's dtype."
                        ) from exc
                    raise
                if self._first is None:
                    raise TrainingError(
                        f"{type(phase).__name__}.step did not call the closure; a phase's "
                        "step must evaluate the loss (closure()) at least once."
                    )
                floats, total_f = self._first
                if result is not None and not result.stepped:
                    self._converged(phase, result, g, k, total_f)
                    return
                stop = result is not None
                self._completed(phase, k, total_f, floats, self.weights or [], val, stop)
                if result is None and self._stop_now():
                    return
                if result is not None:
                    self._converged(phase, result, g, k + 1, total_f)
                    return
        finally:
            self._cache = None
            self._first = None
            if convert:
                self._convert_back()

    def _stop_now(self) -> bool:
        """Whether the fit ends now: ``Trainer.stop()`` was called or the budget is spent."""
        reason = self.trainer._stop_request
        event = "stopped"
        if reason is None and self.deadline is not None and time.perf_counter() >= self.deadline:
            reason, event = f"budget_s={self.trainer.budget_s} seconds spent", "budget_spent"
        if reason is None:
            return False
        self.stopped = True
        self.history.events.append({"event": event, "reason": reason, "step": self.global_step})
        return True

    def _converged(
        self, phase: Phase, result: Converged, step: int, iterations: int, loss: float
    ) -> None:
        self.history.events.append(
            {
                "event": f"{phase.name}_converged",
                "reason": result.reason,
                "step": step,
                "iterations": iterations,
                "loss": loss,
            }
        )

    def _make_closure(self, phase: Phase) -> Callable[[], Tensor]:
        """The closure a phase's step calls: the weighted loss and the gradients.

        The first evaluation of a step is recorded (``_first``) and asks the balancer for
        the weights unless the phase freezes them. With frozen weights, the last evaluation
        is kept and reused at the same parameters.
        """
        model, terms, params = self.model, self.terms, self.params
        n_terms = len(terms)
        track_val = bool(self.val_terms)
        frozen = phase.freezes_weights

        def closure() -> Tensor:
            first = self._first is None
            cache = self._cache
            if cache is not None and all(
                torch.equal(p, c) for p, c in zip(params, cache[0], strict=True)
            ):
                # L-BFGS re-evaluates the point its line search just accepted: reuse it
                _, grads, floats, total_f, loss = cache
                for p, grad in zip(params, grads, strict=True):
                    p.grad = grad
            else:
                values = [term(model) for term in terms]
                if not self._checked:
                    self._check_values(values)
                    self._checked = True
                if n_terms <= 4 and params[0].is_cpu:  # .item()s: cheaper on the CPU only
                    floats = [v.item() for v in values]
                else:
                    floats = torch.stack([v.detach() for v in values]).tolist()
                if not math.isfinite(sum(floats)):
                    _best.raise_nonfinite(self, floats, phase)
                if self.weights is None or (first and not frozen):
                    with explain_single_backward():
                        self._weights_for(self.global_step, values)
                w = self.weights
                assert w is not None
                total = values[0] if w[0] == 1.0 else values[0] * w[0]
                total_f = w[0] * floats[0]
                for i in range(1, n_terms):
                    total = total + (values[i] if w[i] == 1.0 else values[i] * w[i])
                    total_f += w[i] * floats[i]
                for p in params:
                    p.grad = None
                with explain_single_backward():
                    total.backward()
                loss = total.detach()
                if frozen:
                    self._cache = (
                        [p.detach().clone() for p in params],
                        [p.grad for p in params],
                        floats,
                        total_f,
                        loss,
                    )
            if first:
                self._first = (floats, total_f)
                unweighted = sum(floats)
                if not track_val and unweighted < self.best_value:
                    _best.snapshot(self, unweighted, self.global_step)
            return loss

        return closure

    # ------------------------------------------------------------------ per step

    def _completed(
        self,
        phase: Phase,
        k: int,
        total_f: float,
        floats: list[float],
        w: list[float],
        val: float | None,
        stop: bool,
    ) -> None:
        """Record step ``k`` of the current phase, then progress, checkpoint, callbacks."""
        g = self.global_step
        h = self.history
        h.step.append(g)
        h.phase_index.append(self.phase_index)
        h.loss.append(total_f)
        h._terms.append(floats)
        h._weights.append(w)
        h.time.append(time.perf_counter() - self.t0 + self.time_offset)
        self.global_step = g + 1
        self.phase_step = k + 1
        if self.bar_on:
            self.bar.update(1)
            if g % 10 == 0:
                self.bar.set_postfix(loss=f"{total_f:.3e}", refresh=False)
        if (
            not stop
            and self.path is not None
            and self.phase_step % self.checkpoint_every == 0
            and self.phase_step < phase.steps
        ):
            self._save()
        if self.callbacks:
            info = StepInfo(
                step=g,
                phase=phase.name,
                phase_index=self.phase_index,
                phase_step=k,
                loss=total_f,
                terms=dict(zip(self.names, floats, strict=True)),
                weights=dict(zip(self.names, w, strict=True)),
                val_loss=val,
            )
            for cb in self.callbacks:
                cb(self.trainer, info)

    def _check_values(self, values: list[Tensor]) -> None:
        for name, v in zip(self.names, values, strict=True):
            if not isinstance(v, Tensor) or v.ndim != 0:
                shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise InvalidArgumentError(
                    f"loss term {name!r} returned {shape}; forward(model) must return a 0-d "
                    "tensor (e.g. end with .mean())."
                )
            if not v.requires_grad:
                raise InvalidArgumentError(
                    f"loss term {name!r} does not depend on any trainable parameter (its value "
                    "has no gradient); check that it evaluates the model it is given."
                )

    def _weights_for(self, step: int, values: list[Tensor]) -> list[float]:
        w = self.balancer.weights(step, dict(zip(self.names, values, strict=True)), self.params)
        if w is not self._weights_source or self.weights is None:
            weights: list[float] = []
            for name in self.names:
                if name not in w:
                    raise InvalidArgumentError(
                        f"{self.balancer!r} returned no weight for loss term {name!r}; it must "
                        f"return a weight for each of {self.names}."
                    )
                value = float(w[name])
                if not math.isfinite(value) or value < 0:
                    raise InvalidArgumentError(
                        f"{self.balancer!r} returned weight {value!r} for loss term {name!r} "
                        f"at step {step}; weights must be finite and >= 0."
                    )
                weights.append(value)
            self.weights = weights
            self._weights_source = w
        return self.weights

    # ------------------------------------------------------------------ dtype

    def _convert(self, dtype: torch.dtype) -> None:
        for module, original in self.dtypes:
            if original is not None:
                module.to(dtype)
        self._recollect()
        if self.best is not None:
            self.best = [b.to(dtype) if b.is_floating_point() else b for b in self.best]

    def _convert_back(self) -> None:
        for module, original in self.dtypes:
            if original is not None:
                module.to(original)
        self._recollect()
        if self.best is not None:
            self.best = [b.to(p.dtype) for b, p in zip(self.best, self.params, strict=True)]

    def _recollect(self) -> None:
        params = _collect_params([self.model, *self.terms])
        if len(params) != len(self.params):  # pragma: no cover - defensive
            raise TrainingError("the number of trainable parameters changed during the fit.")
        self.params = params
        self._data = [p.detach() for p in params]

    # ------------------------------------------------------------------ checkpoints

    def _save(self) -> None:
        if self.path is None:
            return
        _checkpoint.atomic_save(_checkpoint.checkpoint_state(self), self.path)

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Check a loaded checkpoint against this fit and restore its state."""
        _checkpoint.restore(self, ckpt)

    def _load_pending(self) -> None:
        _checkpoint.load_pending(self)
