"""The check contract: :class:`Check`, its :class:`CheckResult`, and :func:`run_checks`.

A check looks at a prediction (named columns of numbers) and returns a
:class:`CheckResult`: pass/fail, the worst violation and where it happened, and the
fraction of points that violate. Checks never raise on a failed check; a
:class:`~hybridml.Policy` decides what a failed report does.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ._report import ConsistencyReport

__all__ = ["Check", "CheckResult", "run_checks"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check.

    Attributes:
        name: the check's name.
        passed: whether the check passed.
        worst_violation: the largest violation (0.0 when there is none), in the units of
            the checked quantity.
        where: coordinates of the worst violation (column name -> value), empty if none.
        fraction_violating: fraction of checked points that violate (0.0 .. 1.0).
        n_points: number of points checked.
        message: a sentence a person can read.
    """

    name: str
    passed: bool
    worst_violation: float
    where: dict[str, Any] = field(default_factory=dict)
    fraction_violating: float = 0.0
    n_points: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        d = asdict(self)
        d["where"] = {k: _jsonable(v) for k, v in self.where.items()}
        return d


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


class Check(abc.ABC):
    """A physics-consistency check.

    Contract for implementations:

    * ``name`` identifies the check in reports (unique within one report).
    * ``__call__(data, model=None)`` evaluates the check on ``data``, a mapping of column
      name -> 1-d numpy array (all of one length; a :class:`~hybridml.Dataset` or a plain
      dict). ``model`` is the fitted torch model, for checks that evaluate it at fresh
      points (e.g. a residual check); others ignore it.
    * It returns a :class:`CheckResult` and does not raise because a check failed; it
      raises ``KeyError``/``ValueError`` only for a mis-specified check (e.g. a missing
      column), with a message naming the column.
    """

    name: str

    @abc.abstractmethod
    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Evaluate the check."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def run_checks(
    checks: Sequence[Check], data: Mapping[str, Any], model: Any = None
) -> ConsistencyReport:
    """Run ``checks`` on ``data`` and collect a :class:`ConsistencyReport`.

    Args:
        checks: the checks, with unique names.
        data: column name -> 1-d array (a :class:`~hybridml.Dataset` or a dict).
        model: the fitted model, for checks that evaluate it (e.g. :class:`ResidualBelow`).

    Returns:
        The report, one result per check in the order given; apply a :class:`Policy`
        with :meth:`ConsistencyReport.enforce`.

    Raises:
        TypeError: if an element of ``checks`` is not a :class:`Check`.
        ValueError: if two checks share a name.
    """
    for c in checks:
        if not isinstance(c, Check):
            raise InvalidTypeError(
                f"run_checks: {c!r} is not a hybridml.Check; wrap a function in "
                "CustomCheck(fn, name=...)."
            )
    names = [c.name for c in checks]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InvalidArgumentError(
            f"checks must have unique names; repeated: {sorted(dup)}. Pass name= to tell "
            "checks of the same kind apart."
        )
    return ConsistencyReport(tuple(c(data, model) for c in checks))
