"""The built-in optimiser phases: :class:`Adam`, :class:`LBFGS`, :class:`BFGS`, and the
default phases of the trainer, the estimator and the study config.

The L-BFGS phase: strong-Wolfe L-BFGS in float32 after an Adam phase often stalls (the line
search returns a zero step and the optimiser exits after a few iterations). By default the
model and all loss terms are therefore converted to float64 for the phase and back to their
original dtype afterwards. Each trainer step of the phase is one real L-BFGS iteration; the
phase ends before its step budget only when L-BFGS has converged (gradient below
``tolerance_grad``, or no change of the parameters), which is recorded in
:attr:`History.events`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ._bfgs import SelfScaledBFGS
from ._phase import Converged, Phase, _check_int, _check_positive

__all__ = [
    "BFGS",
    "DEFAULT_ADAM_STEPS",
    "DEFAULT_LR",
    "DEFAULT_QUASI_NEWTON_STEPS",
    "LBFGS",
    "Adam",
    "default_phases",
]

_MAX_LINE_SEARCH_EVALS = 25  # torch's default for strong-Wolfe line searches

DEFAULT_ADAM_STEPS = 2000
"""Adam steps of :func:`default_phases` (the trainer's, the estimator's, the config's)."""
DEFAULT_LR = 1e-3
"""Adam learning rate of :func:`default_phases`."""
DEFAULT_QUASI_NEWTON_STEPS = 200
"""Quasi-Newton (L-BFGS or BFGS) iterations of :func:`default_phases`."""


@dataclass(frozen=True)
class Adam(Phase):
    """An Adam phase (``torch.optim.Adam``, fused where the parameters allow it).

    The loss weights follow the balancer at every step.

    Args:
        steps: number of optimiser steps.
        lr: learning rate.
        dtype: the dtype the phase runs in (the model and loss terms are converted for the
            phase and back afterwards); ``None`` (the default) keeps the model's.
        resample_every: redraw the collocation points of every loss term
            (:meth:`LossTerm.resample`, from the trainer's seeded generator) before steps
            ``resample_every``, ``2 * resample_every``, ... of the phase; ``None`` keeps
            the points. Never before the first step: the initial points are trained on
            first, and a residual-based redraw (RAD, RAR) then sees a trained model.
        lr_decay: if given, the learning rate decays exponentially from ``lr`` to
            ``lr * lr_decay`` over the phase (``0 < lr_decay <= 1``).
    """

    lr: float = DEFAULT_LR
    _: KW_ONLY
    resample_every: int | None = None
    lr_decay: float | None = None

    name: ClassVar[str] = "adam"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resample_every is not None:
            _check_int("Adam", "resample_every", self.resample_every, 1)
        if self.lr_decay is not None:
            _check_positive("Adam", "lr_decay", self.lr_decay)
            if self.lr_decay > 1:
                raise InvalidArgumentError(
                    f"Adam: lr_decay must be in (0, 1], got {self.lr_decay!r}."
                )

    def make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """``torch.optim.Adam`` with ``lr``; fused when all parameters allow it."""
        return torch.optim.Adam(params, lr=self.lr, fused=_can_fuse(params) or None)

    def step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Tensor], index: int
    ) -> Converged | None:
        """One Adam update, at the decayed learning rate if ``lr_decay`` is set."""
        if self.lr_decay is not None:
            optimizer.param_groups[0]["lr"] = self.lr * self.lr_decay ** (index / self.steps)
        optimizer.step(closure)  # type: ignore[arg-type]  # torch types the loss as float
        return None

    def resamples(self, index: int) -> bool:
        """Before every ``resample_every``-th step (not before the first), if set."""
        return _every(self.resample_every, index)


@dataclass(frozen=True)
class _QuasiNewton(Phase):
    """What :class:`LBFGS` and :class:`BFGS` share: one trainer step per iteration of a
    closure-driven optimiser with a line search, in float64 by default, with the loss
    weights frozen, ending early only when converged."""

    _: KW_ONLY
    lr: float = 1.0
    dtype: torch.dtype | None = torch.float64
    tolerance_grad: float = 1e-12
    tolerance_change: float = 1e-15
    resample_every: int | None = None

    freezes_weights: ClassVar[bool] = True
    #: the optimiser's state key of the gradient the next curvature pair starts from
    _prev_grad_key: ClassVar[str] = "prev_flat_grad"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resample_every is not None:
            _check_int(type(self).__name__, "resample_every", self.resample_every, 1)
        for name in ("tolerance_grad", "tolerance_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidArgumentError(
                    f"{type(self).__name__}: {name} must be a number >= 0, got {value!r}."
                )

    def step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Tensor], index: int
    ) -> Converged | None:
        """One iteration; :class:`Converged` when the optimiser made none (gradient below
        ``tolerance_grad``) or moved no parameter by more than ``tolerance_change``."""
        params: list[Tensor] = optimizer.param_groups[0]["params"]
        state = optimizer.state[params[0]]
        n_before = state.get("n_iter", 0)
        x_before = _flat(params)
        if self.resamples(index) and state.get(self._prev_grad_key) is not None:
            # the points were just redrawn: the objective changed. The gradient at the
            # current parameters on the new points replaces the stored one, so the next
            # curvature pair (y = g_new - g_prev) is zero and skipped, instead of mixing
            # two objectives; the inverse-Hessian approximation is kept. (The optimiser's
            # own first evaluation below is answered from the trainer's cache.)
            closure()
            state[self._prev_grad_key] = _flat_grad(params)
        optimizer.step(closure)  # type: ignore[arg-type]  # torch types the loss as float
        if state.get("n_iter", 0) == n_before:
            return Converged("gradient below tolerance_grad", stepped=False)
        change = float((_flat(params) - x_before).abs().max())
        if change <= self.tolerance_change:
            return Converged("no parameter change above tolerance_change")
        return None

    def resamples(self, index: int) -> bool:
        """Before every ``resample_every``-th iteration (not before the first), if set."""
        return _every(self.resample_every, index)

    def advice(self) -> str:
        """Start from a better Adam solution, or a shorter first step."""
        return "start L-BFGS from a better Adam solution or lower LBFGS(lr=...)"


@dataclass(frozen=True)
class LBFGS(_QuasiNewton):
    """An L-BFGS phase (``torch.optim.LBFGS``), one trainer step per L-BFGS iteration.

    The loss weights are frozen during the phase. The phase stops before ``steps``
    iterations only when L-BFGS has converged: the largest gradient entry is at most
    ``tolerance_grad``, or an iteration changed no parameter by more than
    ``tolerance_change``.

    Args:
        steps: maximum number of L-BFGS iterations.
        lr: initial step length of each line search (1.0 is right for L-BFGS).
        dtype: dtype the model and loss terms are converted to for the phase (converted
            back afterwards); float64 avoids the float32 line-search stall. ``None`` keeps
            the model's dtype.
        tolerance_grad: convergence tolerance on the largest absolute gradient entry.
        tolerance_change: convergence tolerance on the largest parameter change of an
            iteration (and on the directional derivative).
        history_size: number of correction pairs kept.
        resample_every: redraw the loss terms' collocation points before every this many
            iterations (not before the first; ``None``: never). The curvature memory is
            kept: the iteration after a redraw adds no correction pair (the gradient
            difference would mix the old and the new points) and steps along the
            direction of the memory so far.
        line_search: ``"strong_wolfe"`` or ``None`` (fixed step ``lr``; rarely useful).
    """

    _: KW_ONLY
    history_size: int = 50
    line_search: Literal["strong_wolfe"] | None = "strong_wolfe"

    name: ClassVar[str] = "lbfgs"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("LBFGS", "history_size", self.history_size, 1)
        if self.line_search not in ("strong_wolfe", None):
            raise InvalidArgumentError(
                f"LBFGS: line_search must be 'strong_wolfe' or None, got {self.line_search!r}."
            )

    def make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """``torch.optim.LBFGS`` doing one iteration per ``step``."""
        return torch.optim.LBFGS(
            params,
            lr=self.lr,
            max_iter=1,
            max_eval=_MAX_LINE_SEARCH_EVALS + 1,
            tolerance_grad=self.tolerance_grad,
            tolerance_change=self.tolerance_change,
            history_size=self.history_size,
            line_search_fn=self.line_search,
        )


@dataclass(frozen=True)
class BFGS(_QuasiNewton):
    """A dense self-scaled BFGS phase (:class:`~hybridml.SelfScaledBFGS`), one trainer step
    per iteration.

    For small networks (up to ``max_params`` parameters: it keeps an ``n x n``
    inverse-Hessian approximation, ``8 n**2`` bytes in float64), and then much stronger than
    L-BFGS: on the Burgers PINN benchmark (4x32 net, 3300 parameters) it reaches a relative
    L2 error of 1e-3 in 6-11 times fewer iterations than L-BFGS after the same Adam phase
    (about 2.5 times sooner: an iteration costs 1.6 times more) and ends an order of
    magnitude lower. As in :class:`LBFGS`, the loss weights are frozen during
    the phase, it runs in float64 by default, and it stops early only when converged.

    Args:
        steps: maximum number of BFGS iterations.
        lr: initial step length of each line search (1.0 is right for BFGS).
        dtype: dtype the model and loss terms are converted to for the phase (converted
            back afterwards); ``None`` keeps the model's dtype.
        tolerance_grad: convergence tolerance on the largest absolute gradient entry.
        tolerance_change: convergence tolerance on the largest parameter change of an
            iteration (and on the directional derivative).
        resample_every: redraw the loss terms' collocation points before every this many
            iterations (not before the first; ``None``: never). The inverse-Hessian
            approximation is kept: the iteration after a redraw skips its update (the
            gradient difference would mix the old and the new points) and steps along
            ``-H g`` with ``g`` the gradient on the new points.
        scaling: ``"al-baali"`` (self-scaled BFGS; Urbán, Stefanou & Pons 2025) or ``None``
            (plain BFGS, which on PINNs does no better than L-BFGS).
        max_params: the most trainable parameters allowed (the matrix grows as their
            square); above it the fit raises an error suggesting :class:`LBFGS` before any
            training.
    """

    _: KW_ONLY
    scaling: Literal["al-baali"] | None = "al-baali"
    max_params: int = 10_000

    name: ClassVar[str] = "bfgs"
    _prev_grad_key: ClassVar[str] = "g_prev"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("BFGS", "max_params", self.max_params, 1)
        if self.scaling not in ("al-baali", None):
            raise InvalidArgumentError(
                f"BFGS: scaling must be 'al-baali' or None, got {self.scaling!r}."
            )

    def make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """:class:`~hybridml.SelfScaledBFGS` doing one iteration per ``step``."""
        return SelfScaledBFGS(
            params,
            lr=self.lr,
            max_iter=1,
            max_eval=_MAX_LINE_SEARCH_EVALS + 1,
            tolerance_grad=self.tolerance_grad,
            tolerance_change=self.tolerance_change,
            scaling=self.scaling,
        )

    def check_parameters(self, params: Sequence[Tensor]) -> None:
        """Refuse more than ``max_params`` parameters (the matrix would not fit)."""
        n_params = sum(p.numel() for p in params)
        if n_params > self.max_params:
            raise InvalidArgumentError(
                f"BFGS: the model has {n_params} trainable parameters, more than "
                f"max_params={self.max_params}; its {n_params} x {n_params} inverse-Hessian "
                f"approximation would take {8 * n_params**2 / 2**30:.1f} GiB in float64. "
                "Use LBFGS(...) for large models, or raise BFGS(max_params=...) if the "
                "memory is there."
            )


def default_phases(
    adam_steps: int = DEFAULT_ADAM_STEPS,
    quasi_newton_steps: int = DEFAULT_QUASI_NEWTON_STEPS,
    *,
    lr: float = DEFAULT_LR,
    quasi_newton: str = "lbfgs",
) -> tuple[Phase, ...]:
    """The default phases: Adam, then L-BFGS (or BFGS) in float64.

    The one place the defaults live: ``Trainer()``, :class:`~hybridml.HybridRegressor` and
    the ``[training]`` table of a study config all use it, so all three train alike.

    Args:
        adam_steps: Adam steps (the Adam phase is there even with 0 steps).
        quasi_newton_steps: quasi-Newton iterations after Adam; 0 leaves that phase out.
        lr: Adam learning rate.
        quasi_newton: ``"lbfgs"`` (:class:`LBFGS`) or ``"bfgs"`` (:class:`BFGS`).

    Returns:
        ``(Adam(adam_steps, lr=lr), LBFGS(quasi_newton_steps))`` or with ``BFGS``.
    """
    if quasi_newton not in ("lbfgs", "bfgs"):
        raise InvalidArgumentError(f"quasi_newton must be 'lbfgs' or 'bfgs', got {quasi_newton!r}.")
    phases: list[Phase] = [Adam(adam_steps, lr=lr)]
    _check_int("default_phases", "quasi_newton_steps", quasi_newton_steps, 0)
    if quasi_newton_steps > 0:
        qn = BFGS if quasi_newton == "bfgs" else LBFGS
        phases.append(qn(quasi_newton_steps))
    return tuple(phases)


def _can_fuse(params: Sequence[Tensor]) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` takes these parameters.

    The fused step is one kernel for all parameters instead of a dozen small operations per
    parameter tensor: for the small networks of PINNs on a CPU that is a noticeable share of
    an iteration. Same update rule; results agree to float rounding.
    """
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64)
        for p in params
    )


def _flat(params: Sequence[Tensor]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def _flat_grad(params: Sequence[Tensor]) -> Tensor:
    """The parameters' gradients as one vector (zeros where a gradient is None)."""
    return torch.cat(
        [torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1) for p in params]
    )


def _every(every: int | None, index: int) -> bool:
    """Whether step ``index`` of a phase is a resampling step: every ``every``-th, not 0."""
    return every is not None and index > 0 and index % every == 0


def phases_from_settings(
    owner: str,
    *,
    phases: Any,
    adam_steps: Any,
    lr: Any,
    quasi_newton_steps: Any,
    lbfgs_steps: Any,
    quasi_newton: Any,
) -> tuple[Phase, ...]:
    """The phases of an estimator: ``phases`` if given, else :func:`default_phases` from
    the shortcut settings; every error names the setting of ``owner`` it is about.

    ``lbfgs_steps`` is the older name of ``quasi_newton_steps`` (it also sets BFGS
    iterations); both given with different values is an error. ``None`` for both: the
    default, :data:`DEFAULT_QUASI_NEWTON_STEPS`.
    """
    if quasi_newton not in ("lbfgs", "bfgs"):
        raise InvalidArgumentError(
            f"{owner}: quasi_newton must be 'lbfgs' or 'bfgs', got {quasi_newton!r}."
        )
    if phases is not None:
        example = "e.g. phases=(hm.Adam(2000), hm.BFGS(200))"
        if isinstance(phases, (Phase, str)) or not isinstance(phases, Sequence):
            raise InvalidTypeError(
                f"{owner}: phases must be a sequence of hybridml.Phase objects, {example}; "
                f"got {phases!r}."
            )
        if not phases:
            raise InvalidArgumentError(f"{owner}: phases is empty; {example}, or phases=None.")
        for i, p in enumerate(phases):
            if not isinstance(p, Phase):
                raise InvalidTypeError(
                    f"{owner}: phases[{i}] is {p!r} ({type(p).__name__}), not a hybridml.Phase; "
                    f"{example}."
                )
        return tuple(phases)
    if quasi_newton_steps is not None and lbfgs_steps is not None:
        if quasi_newton_steps != lbfgs_steps:
            raise InvalidArgumentError(
                f"{owner}: quasi_newton_steps={quasi_newton_steps!r} and "
                f"lbfgs_steps={lbfgs_steps!r} disagree; lbfgs_steps is the older name of "
                "quasi_newton_steps, give one of them."
            )
    qn_name, qn_steps = (
        ("lbfgs_steps", lbfgs_steps)
        if quasi_newton_steps is None
        else ("quasi_newton_steps", quasi_newton_steps)
    )
    if qn_steps is None:
        qn_steps = DEFAULT_QUASI_NEWTON_STEPS
    _check_int(owner, "adam_steps", adam_steps, 0)
    _check_positive(owner, "lr", lr)
    _check_int(owner, qn_name, qn_steps, 0)
    return default_phases(adam_steps, qn_steps, lr=lr, quasi_newton=quasi_newton)
