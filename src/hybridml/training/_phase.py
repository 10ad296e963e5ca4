"""The optimiser-phase contract: :class:`Phase`, the base of every phase a Trainer runs.

A :class:`~hybridml.Trainer` runs its phases in order. The engine knows nothing of the
concrete phases (:class:`~hybridml.Adam`, :class:`~hybridml.LBFGS`, :class:`~hybridml.BFGS`):
everything it needs is in this file, so a new optimiser is a new :class:`Phase` subclass.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..exceptions import InvalidArgumentError, InvalidTypeError

__all__ = ["Converged", "Phase"]


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}.")


def _check_positive(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{owner}: {name} must be a number, got {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"{owner}: {name} must be finite and > 0, got {value!r}.")


@dataclass(frozen=True)
class Converged:
    """What :meth:`Phase.step` returns to end its phase early (the optimiser converged).

    Attributes:
        reason: why, for the ``"<name>_converged"`` event in :attr:`History.events`.
        stepped: whether this step still updated the parameters. ``True``: the step is
            recorded in the history like any other, then the phase ends. ``False``: the
            optimiser did nothing (e.g. the gradient was already below its tolerance); the
            step is not recorded.
    """

    reason: str
    stepped: bool = True


@dataclass(frozen=True)
class Phase(abc.ABC):
    """One optimiser phase of a :class:`~hybridml.Trainer`: an optimiser run for some steps.

    A phase is immutable settings; the engine keeps the progress (step index, optimiser,
    checkpoints), so one phase object can be reused and a fit can resume. This is all the
    engine relies on:

    * ``name`` (class attribute): a short lowercase name, recorded in the history and in
      checkpoints (a checkpoint resumes only with phases of the same names), and used in
      events (``"<name>_converged"``).
    * ``steps``: the most steps the phase takes (an int >= 0). ``lr``: its learning rate,
      or the initial step length of a line search (> 0).
    * ``dtype``: the floating-point dtype the phase runs in, or ``None`` to keep the
      model's. With a dtype, the engine converts the model and every loss term to it
      before the phase and back afterwards (also when the phase fails); the quasi-Newton
      phases run in float64.
    * ``freezes_weights`` (class attribute, default ``False``): ``False``: the balancer is
      asked for the loss weights at the first loss evaluation of every step. ``True``:
      the weights are kept as they are when the phase starts (a line search needs a fixed
      objective); and the engine then answers a closure call at the parameters it just
      evaluated from memory (torch's L-BFGS re-evaluates the point its line search
      accepted).
    * :meth:`make_optimizer`: a fresh ``torch.optim.Optimizer`` over the parameters (in
      the phase's dtype). Its ``state_dict()`` is what a checkpoint keeps of the phase; on
      resume the engine makes a new optimiser and loads that state into it, so the state
      must load with ``torch.load(weights_only=True)`` (tensors, numbers, strings, lists,
      dicts): that of every ``torch.optim`` optimiser does.
    * :meth:`step`: one step, which calls the closure (the weighted loss) at least once.
    * :meth:`resamples`, :meth:`check_parameters`, :meth:`advice`: optional hooks with
      defaults (no resampling, any parameters, "lower the learning rate").

    Subclass it as a frozen dataclass (it has the fields ``steps``, ``lr`` and the
    keyword-only ``dtype``; redeclare one to change its default), set ``name`` and
    implement :meth:`make_optimizer`; the default :meth:`step` is ``optimizer.step(closure)``,
    which suits every ``torch.optim`` optimiser. A plain SGD phase::

        @dataclass(frozen=True)
        class SGD(hm.Phase):
            lr: float = 0.01
            momentum: float = 0.0

            name: ClassVar[str] = "sgd"

            def make_optimizer(self, params):
                return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)

        hm.Trainer((hm.Adam(1000), SGD(500, momentum=0.9))).fit(model, losses)

    Args:
        steps: the most steps of the phase.
        lr: learning rate (or initial step length).
        dtype: the dtype the phase runs in; ``None`` keeps the model's.
    """

    steps: int
    lr: float
    _: KW_ONLY
    dtype: torch.dtype | None = None

    name: ClassVar[str]
    freezes_weights: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_phase(self)

    @abc.abstractmethod
    def make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        """Return a new optimiser over ``params`` (the trainable parameters, in order)."""

    def step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Tensor], index: int
    ) -> Converged | None:
        """Take step ``index`` (0-based within the phase) with ``optimizer``.

        ``closure()`` evaluates the weighted loss at the current parameters, sets the
        ``.grad`` of every parameter and returns the loss (a detached 0-d tensor). Call it
        at least once, first at the parameters the step starts from: that first value is
        the loss recorded for the step. A non-finite loss raises
        :class:`~hybridml.NonFiniteLossError` from inside the closure.

        Returns:
            ``None`` to go on, or a :class:`Converged` to end the phase early.
        """
        optimizer.step(closure)  # type: ignore[arg-type]  # torch types the loss as float
        return None

    def resamples(self, index: int) -> bool:
        """Whether the loss terms redraw their collocation points before step ``index``
        (:meth:`LossTerm.resample`, with the trainer's seeded generator). Default: never."""
        return False

    def check_parameters(self, params: Sequence[Tensor]) -> None:
        """Called once before any training with the trainable parameters; raise a
        ``ValueError`` if the phase cannot train them. Default: any parameters."""
        return None

    def advice(self) -> str:
        """What to try when the loss becomes non-finite during the phase (it ends the
        message of :class:`~hybridml.NonFiniteLossError`)."""
        return f"lower the learning rate (e.g. {type(self).__name__}(steps, lr={self.lr / 10:g}))"


def check_phase(phase: Phase) -> None:
    """The checks every phase gets: a ``name``, ``steps``, ``lr`` and ``dtype``."""
    owner = type(phase).__name__
    name = getattr(type(phase), "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidTypeError(
            f"{owner}: a Phase subclass must set the class attribute name (a non-empty "
            f"string such as 'sgd'), got {name!r}."
        )
    _check_int(owner, "steps", phase.steps, 0)
    _check_positive(owner, "lr", phase.lr)
    dtype = phase.dtype
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise InvalidArgumentError(
            f"{owner}: dtype must be a floating-point torch.dtype or None, got {dtype!r}."
        )
