"""The study's conformal intervals: the multiplier ``q`` of a method's predictive scale,
calibrated on the training cells of a fold (never on its test cells)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._data import Cell
from ._ensembles import HybridMethod
from ._methods import Method, Window, _window_problem

COVERAGE = 0.9


def _conformal_q(scores: list[float], coverage: float) -> float | None:
    """Split-conformal multiplier: the ceil((n+1)·coverage)-th smallest score."""
    s = np.sort(np.asarray(scores))
    n = s.size
    k = math.ceil((n + 1) * coverage)
    if n == 0 or k > n:
        return None
    return float(s[k - 1])


def _calibrate(
    name: str,
    train: list[Cell],
    window: Window,
    make: Callable[[int], Method],
    seed: int,
    fitted: Method | None = None,
    memo: dict[Any, Any] | None = None,
) -> float | None:
    """Conformal multiplier from an inner leave-one-cell-out over the training cells.

    The hybrid reuses the inner folds it ran to choose its share of the correction
    (same training cells, seeds and settings), scored at the share it chose. A method that
    chose settings on the training cells is refitted with those settings
    (:meth:`Method.calibration_method`). The multiplier depends on the training cells and
    the window only (never on the test cell), so it is computed once per fold (``memo``).
    ``make(seed)`` builds a fresh method ``name`` with that seed."""
    if isinstance(fitted, HybridMethod) and fitted.inner_ is not None:
        q = _conformal_q(fitted.inner_scores(), COVERAGE)
        return q if q is not None else 1.645  # too few scores: a Gaussian 90 % multiplier
    key = ("conformal_q", name, window, tuple(c.cell_id for c in train))
    if memo is not None and key in memo:
        return float(memo[key])
    scores: list[float] = []
    for j, held in enumerate(train):
        if len(train) < 2 or _window_problem(held, window) is not None:
            continue
        rest = [c for i, c in enumerate(train) if i != j]
        fresh = fitted.calibration_method() if fitted is not None else None
        if fresh is None:
            fresh = make(seed + 1000 * (j + 1))
        m = fresh.fit(rest, held, window)
        unk = held.cycle > window.known_cycles
        mu, sd = m.predict(held.cycle[unk])
        assert sd is not None
        scores += list(np.abs(held.capacity[unk] - mu) / sd)
    q = _conformal_q(scores, COVERAGE)
    q = q if q is not None else 1.645  # too few scores: a Gaussian 90 % multiplier
    if memo is not None:
        memo[key] = q
    return q
