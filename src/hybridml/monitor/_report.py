"""What a :class:`~hybridml.Monitor` returns for a batch of new inputs (and measurements)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._atomic import atomic_write
from ..checks import ConsistencyReport

__all__ = ["FLAGS", "MonitorReport"]

#: the per-row flags, in the order they are reported
FLAGS = ("outside_range", "far_from_training", "disagreement", "drift_alarm")


def _num(v: Any) -> Any:
    """A JSON number (None for NaN or infinity)."""
    f = float(v)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class MonitorReport:
    """The monitor's findings for a batch of rows, row by row.

    ``report.flagged`` marks the rows with any flag; ``report.reasons[i]`` says why row
    ``i`` was flagged, one sentence a flag; :meth:`summary` is a table a person reads and
    :meth:`to_json` writes everything (atomically).

    Attributes:
        inputs: the input names.
        outputs: the output names.
        steps: each row's number in the monitor's stream (rows checked since ``fit`` or
            :meth:`~hybridml.Monitor.reset`, from 0), shape ``(n,)``.
        outside_range: rows with an input outside the training range, shape ``(n,)``.
        distance: each row's k-nearest-neighbour distance to the training inputs (in
            standard deviations of the inputs), shape ``(n,)``.
        far_from_training: rows whose distance exceeds :attr:`distance_threshold`.
        distance_threshold: the distance threshold fitted on the training inputs.
        std: the ensemble members' standard deviation, shape ``(n, n_outputs)``; None for
            a single model.
        disagreement: rows where some output's ``std`` exceeds :attr:`std_threshold`.
        std_threshold: the per-output ``std`` threshold fitted on the reference inputs
            (None for a single model).
        errors: standardised prediction errors ``(y - prediction - mean) / sd`` with the
            reference errors' mean and sd, shape ``(n, n_outputs)`` (NaN: not measured);
            None when no measurements were given.
        drift_statistic: the CUSUM statistic after each row, as a fraction of its
            threshold (1 is an alarm); None without measurements.
        drift_alarm: rows at which the CUSUM test raised an alarm.
        consistency: the consistency report of the model's checks on this batch (None
            when the model runs no checks).
        reasons: per row, one sentence per flag that was raised.
        false_flag_rates: the stated bounds, by flag: the probability that a row drawn
            like the reference rows is flagged ``far_from_training`` / ``disagreement``
            (per output), and of a ``drift_alarm`` within the CUSUM's horizon when the
            errors do not drift.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    steps: np.ndarray
    outside_range: np.ndarray
    distance: np.ndarray
    far_from_training: np.ndarray
    distance_threshold: float
    std: np.ndarray | None
    disagreement: np.ndarray
    std_threshold: np.ndarray | None
    errors: np.ndarray | None
    drift_statistic: np.ndarray | None
    drift_alarm: np.ndarray
    consistency: ConsistencyReport | None
    reasons: tuple[tuple[str, ...], ...]
    false_flag_rates: dict[str, float]

    @property
    def n_rows(self) -> int:
        """The number of rows checked."""
        return int(self.steps.shape[0])

    @property
    def flagged(self) -> np.ndarray:
        """Per row: True when any flag was raised, shape ``(n,)``."""
        return self.outside_range | self.far_from_training | self.disagreement | self.drift_alarm

    @property
    def passed(self) -> bool:
        """True when no row was flagged and the consistency checks passed."""
        checks_ok = self.consistency is None or self.consistency.passed
        return bool(not self.flagged.any() and checks_ok)

    @property
    def first_alarm(self) -> int | None:
        """The stream step of the first drift alarm in this batch, or None."""
        hits = np.flatnonzero(self.drift_alarm)
        return int(self.steps[hits[0]]) if hits.size else None

    def counts(self) -> dict[str, int]:
        """The number of rows with each flag (and ``"flagged"``: with any)."""
        out = {name: int(np.count_nonzero(getattr(self, name))) for name in FLAGS}
        out["flagged"] = int(np.count_nonzero(self.flagged))
        return out

    def summary(self, max_rows: int = 20) -> str:
        """A text report: the counts, the first drift alarm, the failed consistency checks
        and the first ``max_rows`` flagged rows with their reasons."""
        c = self.counts()
        lines = [
            f"monitor report: {self.n_rows} row(s), {c['flagged']} flagged",
            f"  outside the training range      {c['outside_range']}",
            f"  far from the training inputs    {c['far_from_training']}"
            f"  (distance > {self.distance_threshold:.4g})",
            f"  ensemble disagreement           {c['disagreement']}"
            + ("" if self.std is not None else "  (not an ensemble)"),
            f"  drift alarms                    {c['drift_alarm']}"
            + ("" if self.errors is not None else "  (no measurements)"),
        ]
        if self.first_alarm is not None:
            lines.append(f"first drift alarm at step {self.first_alarm}")
        if self.consistency is not None:
            failed = self.consistency.failures
            lines.append(
                "consistency checks: all passed"
                if not failed
                else "consistency checks failed: " + ", ".join(r.name for r in failed)
            )
        rows = np.flatnonzero(self.flagged)
        for i in rows[:max_rows]:
            lines.append(f"  row {i} (step {int(self.steps[i])}): " + "; ".join(self.reasons[i]))
        if rows.size > max_rows:
            lines.append(f"  ... and {rows.size - max_rows} more flagged row(s) (see the JSON)")
        lines.append("no row flagged" if self.passed else "ATTENTION: see the flagged rows")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-serialisable dict (one entry per row under ``"rows"``)."""
        rows = []
        for i in range(self.n_rows):
            row: dict[str, Any] = {
                "row": i,
                "step": int(self.steps[i]),
                "flags": [name for name in FLAGS if bool(getattr(self, name)[i])],
                "reasons": list(self.reasons[i]),
                "distance": _num(self.distance[i]),
            }
            if self.std is not None:
                row["std"] = [_num(v) for v in self.std[i]]
            if self.errors is not None and self.drift_statistic is not None:
                row["error"] = [_num(v) for v in self.errors[i]]
                row["drift_statistic"] = _num(self.drift_statistic[i])
            rows.append(row)
        return {
            "n_rows": self.n_rows,
            "passed": self.passed,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "counts": self.counts(),
            "first_drift_alarm": self.first_alarm,
            "distance_threshold": _num(self.distance_threshold),
            "std_threshold": None
            if self.std_threshold is None
            else [_num(v) for v in self.std_threshold],
            "false_flag_rates": {k: _num(v) for k, v in self.false_flag_rates.items()},
            "consistency": None if self.consistency is None else self.consistency.to_dict(),
            "rows": rows,
        }

    def to_json(self, path: Any) -> None:
        """Write :meth:`to_dict` as JSON to ``path``, atomically (a reader never sees part
        of a file)."""
        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda f: f.write(text + "\n"))
