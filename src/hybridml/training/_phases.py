"""The optimiser phases of a :class:`~hybridml.Trainer`: Adam, L-BFGS and BFGS.

The L-BFGS phase: strong-Wolfe L-BFGS in float32 after an Adam phase often stalls (the line
search returns a zero step and the optimiser exits after a few iterations). By default the
model and all loss terms are therefore converted to float64 for the phase and back to their
original dtype afterwards. Each trainer step of the phase is one real L-BFGS iteration; the
phase ends before its step budget only when L-BFGS has converged (gradient below
``tolerance_grad``, or no change of the parameters), which is recorded in
:attr:`History.events`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

__all__ = ["BFGS", "LBFGS", "Adam", "Phase"]

_MAX_LINE_SEARCH_EVALS = 25  # torch's default for strong-Wolfe line searches


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}.")


def _check_positive(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{owner}: {name} must be finite and > 0, got {value!r}.")


def _check_quasi_newton(owner: str, phase: Any) -> None:
    """The checks ``LBFGS`` and ``BFGS`` share: steps, lr, dtype and the tolerances."""
    _check_int(owner, "steps", phase.steps, 0)
    _check_positive(owner, "lr", phase.lr)
    dtype = phase.dtype
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise ValueError(
            f"{owner}: dtype must be a floating-point torch.dtype or None, got {dtype!r}."
        )
    for name in ("tolerance_grad", "tolerance_change"):
        value = getattr(phase, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{owner}: {name} must be a number >= 0, got {value!r}.")


@dataclass(frozen=True)
class Adam:
    """An Adam phase.

    Args:
        steps: number of optimiser steps.
        lr: learning rate.
        resample_every: redraw the collocation points of every loss term
            (:meth:`LossTerm.resample`, from the trainer's seeded generator) every this many
            steps, starting with the phase's first step; ``None`` keeps the points.
        lr_decay: if given, the learning rate decays exponentially from ``lr`` to
            ``lr * lr_decay`` over the phase (``0 < lr_decay <= 1``).
    """

    steps: int
    lr: float = 1e-3
    _: KW_ONLY
    resample_every: int | None = None
    lr_decay: float | None = None

    name: ClassVar[str] = "adam"

    def __post_init__(self) -> None:
        _check_int("Adam", "steps", self.steps, 0)
        _check_positive("Adam", "lr", self.lr)
        if self.resample_every is not None:
            _check_int("Adam", "resample_every", self.resample_every, 1)
        if self.lr_decay is not None:
            _check_positive("Adam", "lr_decay", self.lr_decay)
            if self.lr_decay > 1:
                raise ValueError(f"Adam: lr_decay must be in (0, 1], got {self.lr_decay!r}.")


@dataclass(frozen=True)
class LBFGS:
    """An L-BFGS phase (``torch.optim.LBFGS``), one trainer step per L-BFGS iteration.

    The loss weights are frozen during the phase. The phase stops before ``steps``
    iterations only when L-BFGS has converged: the largest gradient entry is at most
    ``tolerance_grad``, or an iteration changed no parameter by more than
    ``tolerance_change``.

    Args:
        steps: maximum number of L-BFGS iterations.
        lr: initial step length of each line search (1.0 is right for L-BFGS).
        history_size: number of correction pairs kept.
        dtype: dtype the model and loss terms are converted to for the phase (converted
            back afterwards); float64 avoids the float32 line-search stall. ``None`` keeps
            the model's dtype.
        line_search: ``"strong_wolfe"`` or ``None`` (fixed step ``lr``; rarely useful).
        tolerance_grad: convergence tolerance on the largest absolute gradient entry.
        tolerance_change: convergence tolerance on the largest parameter change of an
            iteration (and on the directional derivative).
    """

    steps: int
    _: KW_ONLY
    lr: float = 1.0
    history_size: int = 50
    dtype: torch.dtype | None = torch.float64
    line_search: Literal["strong_wolfe"] | None = "strong_wolfe"
    tolerance_grad: float = 1e-12
    tolerance_change: float = 1e-15

    name: ClassVar[str] = "lbfgs"

    def __post_init__(self) -> None:
        _check_quasi_newton("LBFGS", self)
        _check_int("LBFGS", "history_size", self.history_size, 1)
        if self.line_search not in ("strong_wolfe", None):
            raise ValueError(
                f"LBFGS: line_search must be 'strong_wolfe' or None, got {self.line_search!r}."
            )


@dataclass(frozen=True)
class BFGS:
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
        scaling: ``"al-baali"`` (self-scaled BFGS; Urbán, Stefanou & Pons 2025) or ``None``
            (plain BFGS, which on PINNs does no better than L-BFGS).
        max_params: the most trainable parameters allowed (the matrix grows as their
            square); above it the phase raises an error suggesting :class:`LBFGS`.
        tolerance_grad: convergence tolerance on the largest absolute gradient entry.
        tolerance_change: convergence tolerance on the largest parameter change of an
            iteration (and on the directional derivative).
    """

    steps: int
    _: KW_ONLY
    lr: float = 1.0
    dtype: torch.dtype | None = torch.float64
    scaling: Literal["al-baali"] | None = "al-baali"
    max_params: int = 10_000
    tolerance_grad: float = 1e-12
    tolerance_change: float = 1e-15

    name: ClassVar[str] = "bfgs"

    def __post_init__(self) -> None:
        _check_quasi_newton("BFGS", self)
        _check_int("BFGS", "max_params", self.max_params, 1)
        if self.scaling not in ("al-baali", None):
            raise ValueError(f"BFGS: scaling must be 'al-baali' or None, got {self.scaling!r}.")


Phase = Adam | LBFGS | BFGS


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
