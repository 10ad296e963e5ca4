"""Guarded choices on inner folds: keep a default unless the held-out cells show that
another candidate helps (shared by the hybrid's candidates and its physics prior's
condition matching)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

import numpy as np

_K = TypeVar("_K", bound=Hashable)


def _guarded_choice(
    per_cell: Mapping[_K, np.ndarray],
    default: _K,
    key: Callable[[_K], Any],
    confidence: float = 0.9,
) -> _K:
    """The candidate to use, from each candidate's per-cell inner score (lower is better;
    the same held-out cells, in the same order, for every candidate).

    A candidate other than ``default`` is used only where the inner folds show that it
    helps: the best one (lowest mean) must beat ``default`` in a one-sided paired t-test
    over the held-out cells at ``confidence``; else ``default`` is kept. When it does, the
    simplest candidate (the smallest ``key``) whose mean is within one standard error (of
    its paired difference) of the best one's is used. With few cells the inner scores are
    noisy and the test rarely passes (three cells need an improvement of 1.9 standard
    errors); with a fleet of tens of cells a consistent improvement passes easily.
    """
    from scipy.stats import t as student_t

    order = sorted(per_cell, key=key)
    best = min(order, key=lambda c: float(per_cell[c].mean()))
    n = per_cell[best].size

    def se(diff: np.ndarray) -> float:
        return float(diff.std(ddof=1)) / np.sqrt(n) if n > 1 else 0.0

    if best == default or n < 2:
        return default
    gain = per_cell[default] - per_cell[best]
    if not float(gain.mean()) > float(student_t.ppf(confidence, n - 1)) * se(gain):
        return default
    for c in order:
        diff = per_cell[c] - per_cell[best]
        if float(diff.mean()) <= se(diff):
            return c
    return best


def _one_se_choice(per_cell: dict[float, np.ndarray], confidence: float = 0.9) -> float:
    """The share of the correction from each share's per-cell inner RMSE: the smallest
    share (no correction) unless a larger one is clearly better (:func:`_guarded_choice`)."""
    shares = sorted(per_cell)
    return _guarded_choice(per_cell, shares[0], key=lambda s: s, confidence=confidence)
