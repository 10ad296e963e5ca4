"""Loss balancing: how the trainer weighs named loss terms against each other.

The trainer minimises ``sum_i w_i * L_i`` over the named loss terms ``L_i``. A
:class:`Balancer` chooses the weights ``w_i``: fixed (:class:`FixedWeights`) or adapted
during the Adam phase from the gradients (:class:`LRAnnealing`) or from the relative
progress of the terms (:class:`ReLoBRaLo`). During an L-BFGS phase the weights are frozen at
their last value, because L-BFGS needs one fixed objective.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..exceptions import InvalidArgumentError, InvalidTypeError, TrainingError

__all__ = ["Balancer", "FixedWeights", "LRAnnealing", "ReLoBRaLo"]

_FIX = (
    "use the uncompiled Taylor-mode derivatives (derivatives='taylor': the same values, "
    "somewhat slower), or a balancer that needs no extra backward pass: fixed weights "
    "(balancer={'pde': 1.0, ...}) or ReLoBRaLo()"
)


def backward_once(term: Any) -> bool:
    """Whether a loss term's graph can be backpropagated only once per evaluation.

    A term says so with a ``backward_once`` attribute (True/False); a term with
    ``derivatives == "compiled"`` (a residual whose derivatives come from a compiled
    network jet: torch runs a compiled backward only once per graph, "donated buffers")
    counts as such without it.
    """
    flag = getattr(term, "backward_once", None)
    if flag is not None:
        return bool(flag)
    return getattr(term, "derivatives", None) == "compiled"


def check_balancer_terms(balancer: Balancer, terms: Mapping[str, Any]) -> None:
    """Refuse, before training, a balancer that backpropagates each term separately
    together with terms whose backward can run only once (see :func:`backward_once`)."""
    if not balancer.backpropagates_terms:
        return
    once = [name for name, term in terms.items() if backward_once(term)]
    if once:
        raise InvalidArgumentError(
            f"{type(balancer).__name__} differentiates each loss term separately (a second "
            f"backward pass through each term's graph), but loss term "
            f"{', '.join(map(repr, once))} uses compiled derivatives (derivatives="
            "'compiled'), whose compiled backward torch runs only once per evaluation "
            f'("donated buffers"). Fix: {_FIX}.'
        )


@contextlib.contextmanager
def explain_single_backward() -> Iterator[None]:
    """Turn torch's "donated buffers" error (a compiled backward run a second time) into a
    :class:`~hybridml.exceptions.TrainingError` that names the cause and the fix."""
    try:
        yield
    except RuntimeError as exc:
        if "donated buffer" not in str(exc):
            raise
        raise TrainingError(
            "a loss term's compiled derivatives were backpropagated twice in one step, "
            'which torch refuses ("donated buffers"): a balancer that differentiates each '
            "term separately (LRAnnealing) cannot be combined with derivatives='compiled' "
            f"(here switched on during the fit). Fix: {_FIX}."
        ) from exc


def _names_list(names: Sequence[str]) -> list[str]:
    out = list(names)
    if not out:
        raise InvalidArgumentError("a balancer needs at least one loss term name.")
    if len(set(out)) != len(out):
        raise InvalidArgumentError(f"loss term names must be unique, got {out}.")
    return out


def _check_loaded_names(owner: str, state: Mapping[str, Any], names: Sequence[str]) -> None:
    saved = list(state.get("names", []))
    if saved != list(names):
        raise InvalidArgumentError(
            f"{owner}.load_state_dict: the state is for loss terms {saved}, but this balancer "
            f"was initialised with {list(names)}; use the same loss term names as the run "
            "that saved the state."
        )


class Balancer(abc.ABC):
    """Chooses the weight of each named loss term; the trainer minimises ``sum_i w_i * L_i``.

    Contract for implementations:

    * :meth:`init` is called once at the start of a fit with the loss term names (in the
      order of the ``losses`` mapping) and resets all state.
    * :meth:`weights` is called once per Adam step, before the backward pass, with the
      unweighted loss values (0-d tensors still attached to the autograd graph, so an
      implementation may differentiate them with ``retain_graph=True``) and the trainable
      parameters. It returns a weight (a finite float >= 0) for every name. Returning the
      same dict object as on the previous call tells the trainer nothing changed.
    * During L-BFGS phases :meth:`weights` is not called: the weights are frozen.
    * :meth:`state_dict` holds only tensors, floats, ints, strings, lists and dicts, so a
      checkpoint loads with ``torch.load(..., weights_only=True)``;
      :meth:`load_state_dict` (called after :meth:`init`) restores it exactly.
    * ``backpropagates_terms`` (class attribute, default ``False``): set it to ``True`` when
      :meth:`weights` differentiates the loss terms itself. The trainer then refuses,
      before training, loss terms whose backward can run only once (compiled
      derivatives), with a message naming the term and the fix.
    """

    backpropagates_terms: ClassVar[bool] = False

    def init(self, names: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Reset the balancer for a new fit over the loss terms ``names``."""

    @abc.abstractmethod
    def weights(
        self, step: int, losses: dict[str, Tensor], params: list[Tensor]
    ) -> dict[str, float]:
        """Return the weight of every loss term for this step.

        Args:
            step: global step counter of the fit (0 for the first step).
            losses: unweighted loss values by name (0-d tensors with autograd graph).
            params: the trainable parameters.

        Returns:
            A dict mapping every loss term name to its weight.
        """

    def state_dict(self) -> dict[str, Any]:
        """Return the balancer's state (checkpointable with ``weights_only=True``)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore a state returned by :meth:`state_dict` (after :meth:`init`)."""


class FixedWeights(Balancer):
    """Constant weights, given by loss term name; terms not named get weight 1.0.

    Args:
        weights: mapping loss term name -> weight (a finite float >= 0).

    Raises:
        ValueError: at :meth:`init` if a name is not one of the loss terms, or when a weight
            is negative or not finite.
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        given = dict(weights or {})
        for name, value in given.items():
            if not isinstance(name, str):
                raise InvalidTypeError(f"FixedWeights: weight names must be strings, got {name!r}.")
            w = float(value)
            if not math.isfinite(w) or w < 0.0:
                raise InvalidArgumentError(
                    f"FixedWeights: the weight of {name!r} is {value!r}; weights must be finite "
                    "and >= 0."
                )
            given[name] = w
        self.given = given
        self._weights: dict[str, float] = {}

    def init(self, names: Sequence[str]) -> None:
        """Check the names and fix the weights (1.0 for terms not given)."""
        names = _names_list(names)
        unknown = sorted(set(self.given) - set(names))
        if unknown:
            raise InvalidArgumentError(
                f"FixedWeights: no loss term named {', '.join(map(repr, unknown))}; "
                f"the loss terms are {names}."
            )
        self._weights = {n: self.given.get(n, 1.0) for n in names}

    def weights(
        self, step: int, losses: dict[str, Tensor], params: list[Tensor]
    ) -> dict[str, float]:
        """Return the fixed weights (always the same dict)."""
        return self._weights

    def __repr__(self) -> str:
        return f"FixedWeights({self.given!r})"


class LRAnnealing(Balancer):
    """Learning-rate annealing (Wang, Teng & Perdikaris 2021, SIAM J. Sci. Comput.).

    Every ``every`` steps, for each term ``i`` other than the reference term ``r``::

        lambda_hat_i = max_theta |grad L_r| / mean_theta |grad L_i|
        lambda_i     = alpha * lambda_i + (1 - alpha) * lambda_hat_i

    (the moving average of the authors' reference implementation: ``alpha`` is the weight
    of the old value). The reference term keeps weight 1. The maximum and the mean run over
    all entries of all trainable parameters (entries a term does not depend on count as 0).
    A term whose gradient is zero everywhere keeps its weight. As in the paper, a term
    that the model satisfies almost exactly (a few boundary points, say) has tiny gradients
    and its weight can grow by orders of magnitude; watch ``History.weights``.

    Args:
        reference: name of the reference term (the PDE residual in the paper); ``None``
            uses the first term of the ``losses`` mapping.
        every: update the weights every this many steps (costs one extra backward pass
            per term).
        alpha: moving-average factor in [0, 1); larger is smoother.
        max_weight: optional upper bound on every weight (``None``, the default, is the
            paper's unbounded rule). Set it (e.g. ``1e3``) when a nearly satisfied term's
            weight runs away and swamps the others.

    Not with compiled derivatives (``derivatives="compiled"`` of a PINN residual): torch
    runs a compiled backward only once per evaluation, and this balancer backpropagates
    each term separately before the step's own backward pass. ``Trainer.fit`` refuses the
    combination before training, naming the term and the fix (uncompiled
    ``derivatives="taylor"``, fixed weights or :class:`ReLoBRaLo`).
    """

    backpropagates_terms: ClassVar[bool] = True

    def __init__(
        self,
        reference: str | None = None,
        every: int = 10,
        alpha: float = 0.9,
        *,
        max_weight: float | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InvalidArgumentError(f"LRAnnealing: every must be an int >= 1, got {every!r}.")
        if not 0.0 <= float(alpha) < 1.0:
            raise InvalidArgumentError(f"LRAnnealing: alpha must be in [0, 1), got {alpha!r}.")
        if max_weight is not None and not (
            math.isfinite(float(max_weight)) and float(max_weight) > 0.0
        ):
            raise InvalidArgumentError(
                f"LRAnnealing: max_weight must be a finite number > 0 or None, got {max_weight!r}."
            )
        self.reference = reference
        self.every = every
        self.alpha = float(alpha)
        self.max_weight = None if max_weight is None else float(max_weight)
        self._names: list[str] = []
        self._ref = ""
        self._weights: dict[str, float] = {}

    def init(self, names: Sequence[str]) -> None:
        """Check the reference name and reset all weights to 1."""
        self._names = _names_list(names)
        ref = self._names[0] if self.reference is None else self.reference
        if ref not in self._names:
            raise InvalidArgumentError(
                f"LRAnnealing: reference={ref!r} is not a loss term; the loss terms are "
                f"{self._names}."
            )
        self._ref = ref
        self._weights = dict.fromkeys(self._names, 1.0)

    def weights(
        self, step: int, losses: dict[str, Tensor], params: list[Tensor]
    ) -> dict[str, float]:
        """Update the weights every ``every`` steps from per-term gradients."""
        if step % self.every != 0 or len(self._names) == 1:
            return self._weights
        ref_loss = losses[self._ref]
        if not ref_loss.requires_grad:
            return self._weights
        ref_grads = torch.autograd.grad(ref_loss, params, retain_graph=True, allow_unused=True)
        maxima = [g.detach().abs().max() for g in ref_grads if g is not None and g.numel()]
        if not maxima:
            return self._weights
        max_ref = float(torch.stack(maxima).max())
        n_entries = sum(p.numel() for p in params)
        new = dict(self._weights)
        for name in self._names:
            loss = losses[name]
            if name == self._ref or not loss.requires_grad:
                continue
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            sums = [g.detach().abs().sum() for g in grads if g is not None]
            if not sums:
                continue
            mean = float(torch.stack(sums).sum()) / n_entries
            if mean > 0.0 and math.isfinite(mean) and math.isfinite(max_ref):
                lam_hat = max_ref / mean
                new[name] = self.alpha * new[name] + (1.0 - self.alpha) * lam_hat
                if self.max_weight is not None:
                    new[name] = min(new[name], self.max_weight)
        self._weights = new
        return new

    def state_dict(self) -> dict[str, Any]:
        """Return the names and current weights."""
        return {"names": list(self._names), "weights": dict(self._weights)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the weights saved by :meth:`state_dict`."""
        _check_loaded_names("LRAnnealing", state, self._names)
        self._weights = {n: float(state["weights"][n]) for n in self._names}

    def __repr__(self) -> str:
        cap = "" if self.max_weight is None else f", max_weight={self.max_weight}"
        return (
            f"LRAnnealing(reference={self.reference!r}, every={self.every}, "
            f"alpha={self.alpha}{cap})"
        )


class ReLoBRaLo(Balancer):
    """Relative loss balancing with random lookback (Bischof & Kraus 2021, arXiv:2110.09813).

    With ``m`` terms, temperature ``T`` and the losses ``L(t)`` of step ``t``::

        bal_i(t, t') = m * softmax_i(L_i(t) / (T * L_i(t')))
        hist_i(t)    = rho * lambda_i(t-1) + (1 - rho) * bal_i(t, 0)
        lambda_i(t)  = alpha * hist_i(t) + (1 - alpha) * bal_i(t, t-1)

    where ``rho`` is a Bernoulli draw with mean ``expected_rho`` ("random lookback" to the
    first step's losses). Weights start at 1. A term that falls faster than the others
    relative to its own history gets a smaller weight.

    Args:
        alpha: weight of the history (the paper's exponential decay), in [0, 1].
        temperature: softmax temperature ``T`` > 0.
        expected_rho: probability of keeping the history rather than looking back to the
            first step, in [0, 1].
        seed: seed of the balancer's own :class:`torch.Generator` for ``rho`` (the global
            RNG is never used); the generator is reset by :meth:`init`.
    """

    def __init__(
        self,
        alpha: float = 0.999,
        temperature: float = 0.1,
        expected_rho: float = 0.999,
        *,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= float(alpha) <= 1.0:
            raise InvalidArgumentError(f"ReLoBRaLo: alpha must be in [0, 1], got {alpha!r}.")
        if not float(temperature) > 0.0 or not math.isfinite(float(temperature)):
            raise InvalidArgumentError(f"ReLoBRaLo: temperature must be > 0, got {temperature!r}.")
        if not 0.0 <= float(expected_rho) <= 1.0:
            raise InvalidArgumentError(
                f"ReLoBRaLo: expected_rho must be in [0, 1], got {expected_rho!r}."
            )
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.expected_rho = float(expected_rho)
        self.seed = int(seed)
        self._names: list[str] = []
        self._lambdas: list[float] = []
        self._initial: list[float] | None = None
        self._previous: list[float] | None = None
        self._generator = torch.Generator()

    def init(self, names: Sequence[str]) -> None:
        """Reset the weights to 1, forget the loss history and reseed the generator."""
        self._names = _names_list(names)
        self._lambdas = [1.0] * len(self._names)
        self._initial = None
        self._previous = None
        self._generator.manual_seed(self.seed)

    def _balanced(self, current: list[float], past: list[float]) -> list[float]:
        tiny = 1e-30  # guards a term that was exactly zero in the past
        logits = [c / (self.temperature * max(p, tiny)) for c, p in zip(current, past, strict=True)]
        top = max(logits)
        exps = [math.exp(z - top) for z in logits]
        total = sum(exps)
        m = len(current)
        return [m * e / total for e in exps]

    def weights(
        self, step: int, losses: dict[str, Tensor], params: list[Tensor]
    ) -> dict[str, float]:
        """Update the weights from the current losses (every step)."""
        current = [float(losses[n].detach()) for n in self._names]
        if self._initial is None or self._previous is None:
            self._initial = current
            self._previous = current
            return dict(zip(self._names, self._lambdas, strict=True))
        rho = float(torch.rand((), generator=self._generator).item() < self.expected_rho)
        bal_prev = self._balanced(current, self._previous)
        bal_init = self._balanced(current, self._initial)
        self._lambdas = [
            self.alpha * (rho * lam + (1.0 - rho) * b0) + (1.0 - self.alpha) * b1
            for lam, b0, b1 in zip(self._lambdas, bal_init, bal_prev, strict=True)
        ]
        self._previous = current
        return dict(zip(self._names, self._lambdas, strict=True))

    def state_dict(self) -> dict[str, Any]:
        """Return weights, loss history and generator state."""
        return {
            "names": list(self._names),
            "lambdas": list(self._lambdas),
            "initial": None if self._initial is None else list(self._initial),
            "previous": None if self._previous is None else list(self._previous),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""
        _check_loaded_names("ReLoBRaLo", state, self._names)
        self._lambdas = [float(v) for v in state["lambdas"]]
        self._initial = None if state["initial"] is None else [float(v) for v in state["initial"]]
        self._previous = (
            None if state["previous"] is None else [float(v) for v in state["previous"]]
        )
        self._generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return (
            f"ReLoBRaLo(alpha={self.alpha}, temperature={self.temperature}, "
            f"expected_rho={self.expected_rho}, seed={self.seed})"
        )
