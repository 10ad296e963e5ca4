"""Guarded choices on inner folds: keep a default unless the held-out cells show that
another candidate helps (shared by the hybrid's candidates, their choice per operating
condition and its physics prior's condition matching)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
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


def _choice_by_group(
    per_cell: Mapping[_K, np.ndarray],
    groups: Sequence[str | None],
    fallback: _K,
    key: Callable[[_K], Any],
    min_cells: int,
    confidence: float = 0.9,
) -> dict[str, _K]:
    """The candidate of each group of held-out cells (e.g. the cells of one operating
    condition) where the group's own cells show that it differs from ``fallback`` (the
    choice over all cells): :func:`_guarded_choice` over the group's cells with
    ``fallback`` as the default. Only groups of at least ``min_cells`` held-out cells, and
    only when the cells fall in two groups or more (one group: the choice over all cells
    is its choice); cells without a group (None) keep ``fallback``. Returns the groups
    whose candidate is not ``fallback``."""
    labels = np.asarray([g if g is not None else "" for g in groups], dtype=object)
    named = {str(g) for g in groups if g is not None}
    if len(named) < 2 and not (len(named) == 1 and (labels == "").any()):
        return {}
    out: dict[str, _K] = {}
    for g in sorted(named):
        idx = np.flatnonzero(labels == g)
        if idx.size < min_cells:
            continue
        sub = {c: np.asarray(v)[idx] for c, v in per_cell.items()}
        c = _guarded_choice(sub, fallback, key=key, confidence=confidence)
        if c != fallback:
            out[g] = c
    return out
