"""The record of a fit: :class:`History` (per step) and :class:`StepInfo` (for callbacks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["History", "StepInfo"]


@dataclass(frozen=True)
class StepInfo:
    """What a callback learns about a completed step.

    Attributes:
        step: global step index (0-based) of the completed step.
        phase: phase name (``"adam"``, ``"lbfgs"`` or ``"bfgs"``).
        phase_index: index of the phase in ``Trainer.phases``.
        phase_step: step index within the phase.
        loss: weighted total loss evaluated at this step (before the update).
        terms: unweighted loss of each term.
        weights: weight of each term.
        val_loss: validation loss evaluated at this step, or ``None``.
    """

    step: int
    phase: str
    phase_index: int
    phase_step: int
    loss: float
    terms: dict[str, float]
    weights: dict[str, float]
    val_loss: float | None


class History:
    """Per-step record of a fit.

    Each step ``i`` has the global step ``step[i]``, its phase, the weighted total loss
    ``loss[i]``, the unweighted loss of every term (:attr:`terms`), the weights
    (:attr:`weights`) and the elapsed seconds ``time[i]``; losses are evaluated before the
    step's update. Validation losses are in ``val_step``/``val_loss`` (evaluated every
    few steps, on the same weights as the training loss of that step, and once at the end).
    ``events`` lists what else happened (L-BFGS convergence, early stopping, non-finite
    losses) as dicts.

    Args:
        names: loss term names.
        phases: phase names, in order.
    """

    def __init__(self, names: Sequence[str] = (), phases: Sequence[str] = ()) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self.phases: tuple[str, ...] = tuple(phases)
        self.step: list[int] = []
        self.phase_index: list[int] = []
        self.loss: list[float] = []
        self.time: list[float] = []
        self.val_step: list[int] = []
        self.val_loss: list[float] = []
        self.events: list[dict[str, Any]] = []
        self._terms: list[list[float]] = []
        self._weights: list[list[float]] = []

    def __len__(self) -> int:
        return len(self.step)

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.3e}" if self.loss else ""
        return f"History({len(self)} steps, terms {list(self.names)}{last})"

    @property
    def phase(self) -> list[str]:
        """Phase name of each step."""
        return [self.phases[i] for i in self.phase_index]

    @property
    def terms(self) -> dict[str, list[float]]:
        """Unweighted loss of each term at each step, by term name."""
        return {n: [row[j] for row in self._terms] for j, n in enumerate(self.names)}

    @property
    def weights(self) -> dict[str, list[float]]:
        """Weight of each term at each step, by term name."""
        return {n: [row[j] for row in self._weights] for j, n in enumerate(self.names)}

    @property
    def best_val(self) -> float | None:
        """Lowest validation loss recorded, or ``None`` if none was evaluated."""
        return min(self.val_loss) if self.val_loss else None

    @property
    def best_val_step(self) -> int | None:
        """Global step of :attr:`best_val` (first occurrence), or ``None``."""
        if not self.val_loss:
            return None
        return self.val_step[self.val_loss.index(min(self.val_loss))]

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping ended the fit."""
        return any(e.get("event") == "early_stopping" for e in self.events)

    def records(self) -> list[dict[str, Any]]:
        """Return one dict per step (step, phase, loss, terms, weights, val_loss, time)."""
        val = dict(zip(self.val_step, self.val_loss, strict=True))
        return [
            {
                "step": s,
                "phase": self.phases[p],
                "loss": loss,
                "terms": dict(zip(self.names, t, strict=True)),
                "weights": dict(zip(self.names, w, strict=True)),
                "val_loss": val.get(s),
                "time": tm,
            }
            for s, p, loss, t, w, tm in zip(
                self.step,
                self.phase_index,
                self.loss,
                self._terms,
                self._weights,
                self.time,
                strict=True,
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return the history as plain lists and dicts (JSON- and checkpoint-friendly)."""
        return {
            "names": list(self.names),
            "phases": list(self.phases),
            "step": list(self.step),
            "phase_index": list(self.phase_index),
            "phase": self.phase,
            "loss": list(self.loss),
            "terms": self.terms,
            "weights": self.weights,
            "time": list(self.time),
            "val_step": list(self.val_step),
            "val_loss": list(self.val_loss),
            "events": [dict(e) for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Rebuild a history from :meth:`to_dict` output."""
        out = cls(data["names"], data["phases"])
        out.step = [int(v) for v in data["step"]]
        out.phase_index = [int(v) for v in data["phase_index"]]
        out.loss = [float(v) for v in data["loss"]]
        out.time = [float(v) for v in data["time"]]
        out.val_step = [int(v) for v in data["val_step"]]
        out.val_loss = [float(v) for v in data["val_loss"]]
        out.events = [dict(e) for e in data["events"]]
        terms = [data["terms"][n] for n in out.names]
        weights = [data["weights"][n] for n in out.names]
        out._terms = (
            [list(map(float, row)) for row in zip(*terms, strict=True)] if out.names else []
        )
        out._weights = (
            [list(map(float, row)) for row in zip(*weights, strict=True)] if out.names else []
        )
        return out

    def plot(self, ax: Any = None) -> Any:
        """Plot total, per-term and validation losses against the step (log scale).

        Args:
            ax: a matplotlib ``Axes``; a new figure is made if ``None``.

        Returns:
            The ``Axes``.
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots()
        ax.plot(self.step, self.loss, label="total (weighted)", color="k")
        for name, column in self.terms.items():
            ax.plot(self.step, column, label=name, linewidth=0.8)
        if self.val_step:
            ax.plot(self.val_step, self.val_loss, "o-", markersize=3, label="validation")
        for i in range(1, len(self.step)):
            if self.phase_index[i] != self.phase_index[i - 1]:
                ax.axvline(self.step[i], color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        return ax
