"""Errors and warnings of hybridml.

Every error the library raises is a :class:`HybridMLError`, and also the built-in
exception it has always been (a bad argument is still a :class:`ValueError`, a missing
column still a :class:`KeyError`), so ``except ValueError`` keeps working and
``except hybridml.HybridMLError`` catches everything the library reports. The command line
catches :class:`HybridMLError` and prints its message as one line (exit status 2).

Adapters raise these too (or subclasses of them): a simulator that failed raises
:class:`SimulationError`, a bad parameter name :class:`InvalidArgumentError` made with
:func:`did_you_mean`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CacheWarning",
    "CheckpointMismatchError",
    "ConfigError",
    "ConsistencyError",
    "ConsistencyWarning",
    "DataError",
    "EnsembleMemberWarning",
    "HybridMLError",
    "HybridMLWarning",
    "InvalidArgumentError",
    "InvalidIndexError",
    "InvalidTypeError",
    "MissingColumnError",
    "NonFiniteLossError",
    "NotFittedError",
    "SimulationError",
    "TrainingError",
    "UnknownNameError",
    "UnknownSimulatorError",
    "did_you_mean",
]


class HybridMLError(Exception):
    """Base class of every error hybridml raises."""


class HybridMLWarning(UserWarning):
    """Base class of every warning hybridml issues."""


class InvalidArgumentError(HybridMLError, ValueError):
    """An argument, setting or option has a value the library cannot use; the message
    names the parameter and says what it accepts."""


class InvalidTypeError(HybridMLError, TypeError):
    """An argument has the wrong type; the message names the parameter and the type
    expected."""


class InvalidIndexError(HybridMLError, IndexError):
    """An index (an output column, an input dimension, a member) is out of range; the
    message says the valid range."""


class UnknownNameError(HybridMLError, KeyError):
    """A name (a check, a metric) that does not exist was asked for; the message lists
    the names that do."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NotFittedError(HybridMLError, RuntimeError):
    """An estimator was used before ``fit``; the message says what to call."""


class TrainingError(HybridMLError, RuntimeError):
    """Training could not go on (every ensemble member failed, a fold failed, a phase broke
    its contract, a tensor kept the wrong dtype); the message says why and what to do."""


class DataError(HybridMLError, ValueError):
    """Invalid or inconsistent data; the message names the file, row and column."""


class MissingColumnError(DataError, KeyError):
    """A column that does not exist was asked for; the message lists the close names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CheckpointMismatchError(HybridMLError, ValueError):
    """A training checkpoint belongs to another fit (other data, settings or model), or
    cannot be read; the message names the file, says what differs and how to start fresh."""


class ConfigError(HybridMLError, ValueError):
    """An invalid study configuration; the message names the file and the key."""


class SimulationError(HybridMLError, RuntimeError):
    """A simulator failed to produce a result (raised by adapters)."""


class UnknownSimulatorError(HybridMLError, KeyError):
    """No adapter with the requested name is installed."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NonFiniteLossError(HybridMLError, FloatingPointError):
    """A loss term evaluated to NaN or infinity during training.

    The trainer restores the best weights seen so far before raising.

    Attributes:
        term: name of the first non-finite loss term.
        value: its value (``nan``, ``inf`` or ``-inf``).
        step: global step at which it happened.
        phase: name of the phase (``"adam"``, ``"lbfgs"`` or ``"bfgs"``).
    """

    def __init__(self, message: str, *, term: str, value: float, step: int, phase: str) -> None:
        super().__init__(message)
        self.term = term
        self.value = value
        self.step = step
        self.phase = phase


class ConsistencyError(HybridMLError, RuntimeError):
    """Raised by :meth:`~hybridml.ConsistencyReport.enforce` under ``Policy.RAISE``;
    ``report`` is the :class:`~hybridml.ConsistencyReport` with every result."""

    def __init__(self, report: Any) -> None:
        self.report = report
        super().__init__(f"physics-consistency checks failed:\n{report.summary()}")


class ConsistencyWarning(HybridMLWarning):
    """A prediction failed a physics-consistency check under ``Policy.WARN``."""


class CacheWarning(HybridMLWarning):
    """A cache entry (of a sweep) could not be read; it was moved aside as
    ``<name>.corrupt`` and is computed again. The message names the file."""


class EnsembleMemberWarning(HybridMLWarning):
    """An ensemble member failed to train and was left out (it is recorded in
    ``DeepEnsemble.failures_``)."""


def did_you_mean(name: str, options: Iterable[str], *, n: int = 3, cutoff: float = 0.6) -> str:
    """Return ``" Did you mean 'a', 'b'?"`` naming the options closest to ``name`` (case
    is ignored), or ``""`` when none is close.

    The one spelling helper of the library and its adapters: error messages append it
    after the sentence that names the unknown ``name``.
    """
    options = [str(o) for o in options]
    lowered: dict[str, str] = {}
    for o in options:
        lowered.setdefault(o.lower(), o)
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=cutoff)
    return f" Did you mean {', '.join(repr(lowered[c]) for c in close)}?" if close else ""
