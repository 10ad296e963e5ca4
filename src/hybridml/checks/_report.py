"""Reports of consistency checks and the policy that decides what a failed one does."""

from __future__ import annotations

import enum
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import (
    ConsistencyError,
    ConsistencyWarning,
    InvalidArgumentError,
    UnknownNameError,
)

if TYPE_CHECKING:
    from ._base import CheckResult

__all__ = ["ConsistencyError", "ConsistencyReport", "ConsistencyWarning", "Policy"]


class Policy(enum.Enum):
    """What a failed consistency report does: raise, warn or only record."""

    RAISE = "raise"
    WARN = "warn"
    RECORD = "record"


@dataclass(frozen=True)
class ConsistencyReport:
    """The results of a set of checks on one prediction.

    A report is a sequence of its results: ``len(report)`` is the number of checks and
    ``for result in report`` goes through the :class:`CheckResult` objects in the order
    the checks were given; ``report[name]`` looks one up by the check's name.
    """

    results: tuple[CheckResult, ...]

    def __iter__(self) -> Iterator[CheckResult]:
        """The results, in the order the checks were given."""
        return iter(self.results)

    def __len__(self) -> int:
        """The number of checks (results) in the report."""
        return len(self.results)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(r for r in self.results if not r.passed)

    def __getitem__(self, name: str) -> CheckResult:
        """The result of the check named ``name`` (``KeyError`` listing the names if none)."""
        for r in self.results:
            if r.name == name:
                return r
        raise UnknownNameError(f"no check named {name!r}; checks: {[r.name for r in self.results]}")

    def summary(self) -> str:
        """A table of the results, one line a check."""
        lines = [f"{'check':<32} {'status':<6} {'worst':>11} {'violating':>9}  where"]
        for r in self.results:
            where = ", ".join(f"{k}={_fmt(v)}" for k, v in r.where.items())
            lines.append(
                f"{r.name:<32} {'PASS' if r.passed else 'FAIL':<6} {r.worst_violation:>11.4g} "
                f"{100 * r.fraction_violating:>8.1f}%  {where}"
            )
        lines.append(
            "all checks passed" if self.passed else f"{len(self.failures)} check(s) failed"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"passed": self.passed, "checks": [r.to_dict() for r in self.results]}

    def to_json(self, path: Any) -> None:
        """Write the report as JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)

    def enforce(self, policy: Policy | str = Policy.RAISE) -> ConsistencyReport:
        """Apply ``policy`` to this report and return it.

        ``Policy.RAISE`` raises :class:`ConsistencyError` if any check failed,
        ``Policy.WARN`` issues a :class:`ConsistencyWarning`, ``Policy.RECORD`` does nothing.
        """
        try:
            policy = Policy(policy)
        except ValueError:
            valid = ", ".join(repr(p.value) for p in Policy)
            raise InvalidArgumentError(
                f"unknown policy {policy!r}; use a hybridml.Policy or one of {valid}"
            ) from None
        if self.passed or policy is Policy.RECORD:
            return self
        if policy is Policy.RAISE:
            raise ConsistencyError(self)
        warnings.warn(
            f"physics-consistency checks failed:\n{self.summary()}",
            ConsistencyWarning,
            stacklevel=2,
        )
        return self


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return str(v)
