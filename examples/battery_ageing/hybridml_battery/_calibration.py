"""The study's conformal intervals: the multiplier ``q`` of a method's predictive scale,
calibrated on the training cells of a fold (never on its test cells)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._data import Cell
from ._ensembles import HybridMethod
from ._methods import Method, Window, _window_problem

COVERAGE = 0.9
#: up to this many training cells the calibration leaves one training cell out
INNER_LOO_MAX = 10
#: above it: this many inner folds of the training cells (grouped by cell) ...
INNER_FOLDS = 5
#: ... of which this many held-out cells each are scored (5 x 2 = 10 cells: enough for
#: a grouped conformal quantile to certify 90 %, 10/11)
INNER_HELD_PER_FOLD = 2
#: how the interval is calibrated, in words (``metrics.json``: settings.calibration)
CALIBRATION = (
    f"leave one training cell out, the scores of all held-out points pooled, up to "
    f"{INNER_LOO_MAX} training cells; above, grouped cross-conformal "
    f"(hybridml.conformal_calibration, every cell weighing the same) over {INNER_FOLDS} "
    f"inner folds of the training cells, {INNER_HELD_PER_FOLD} held-out cells scored in each"
)


def _conformal_q(
    scores: Any, coverage: float, groups: Any = None, grouped: bool = False
) -> float | None:
    """The conformal multiplier (:func:`hybridml.conformal_calibration`): over pooled
    points (``unit="rows"``: the ceil((n+1)·coverage)-th smallest score), or with
    ``grouped`` over the ``groups`` (each cell weighing the same); None when the scores
    are too few to certify ``coverage``."""
    from hybridml import TooFewScoresError, conformal_calibration

    if len(scores) == 0:
        return None
    try:
        if grouped:
            return float(conformal_calibration(scores, groups, coverage=coverage).quantile)
        return float(conformal_calibration(scores, coverage=coverage, unit="rows").quantile)
    except TooFewScoresError:
        return None


def _calibrate(
    name: str,
    train: list[Cell],
    window: Window,
    make: Callable[[int], Method],
    seed: int,
    fitted: Method | None = None,
    memo: dict[Any, Any] | None = None,
) -> float | None:
    """Conformal multiplier from inner folds over the training cells (:data:`CALIBRATION`).

    The hybrid reuses the inner folds it ran to choose its share of the correction
    (same training cells, seeds and settings), scored at the share it chose. A method that
    chose settings on the training cells is refitted with those settings
    (:meth:`Method.calibration_method`). The multiplier depends on the training cells and
    the window only (never on the test cell), so it is computed once per fold (``memo``).
    ``make(seed)`` builds a fresh method ``name`` with that seed."""
    if fitted is not None and fitted.conformal_q() is not None:
        return fitted.conformal_q()
    if isinstance(fitted, HybridMethod) and fitted.inner_ is not None:
        q_inner = _conformal_q(fitted.inner_scores(), COVERAGE)
        return q_inner if q_inner is not None else 1.645  # too few: a Gaussian 90 % one
    key = ("conformal_q", name, window, tuple(c.cell_id for c in train))
    if memo is not None and key in memo:
        return float(memo[key])
    scores: list[float] = []
    groups: list[str] = []
    for j, held, rest in _inner_splits(train, window):
        fresh = fitted.calibration_method() if fitted is not None else None
        if fresh is None:
            fresh = make(seed + 1000 * (j + 1))
        m = fresh.fit(rest, held, window)
        unk = held.cycle > window.known_cycles
        mu, sd = m.predict(held.cycle[unk])
        assert sd is not None
        scores += list(np.abs(held.capacity[unk] - mu) / sd)
        groups += [held.cell_id] * int(unk.sum())
    q = _conformal_q(scores, COVERAGE, groups, grouped=len(train) > INNER_LOO_MAX)
    q = q if q is not None else 1.645  # too few scores: a Gaussian 90 % multiplier
    if memo is not None:
        memo[key] = q
    return q


def _inner_splits(train: list[Cell], window: Window) -> list[tuple[int, Cell, list[Cell]]]:
    """``(j, held, rest)``: the training cells the calibration scores (``j`` their index in
    ``train``, the seed offset of their fit), each with the cells it is fitted on.

    Up to :data:`INNER_LOO_MAX` training cells: each cell held out in turn, fitted on all
    the others. Above: :data:`INNER_FOLDS` folds of the training cells
    (:func:`._protocol.cell_folds`); in each, :data:`INNER_HELD_PER_FOLD` of its cells
    (spread over its cells in file order) are scored, each fitted on the other folds'
    cells. A cell whose window leaves too little to fit or to score is not scored."""
    from ._protocol import cell_folds

    usable = [
        j for j, c in enumerate(train) if len(train) >= 2 and _window_problem(c, window) is None
    ]
    if len(train) <= INNER_LOO_MAX:
        return [(j, train[j], [c for i, c in enumerate(train) if i != j]) for j in usable]
    folds = cell_folds([c.cell_id for c in train], INNER_FOLDS)
    by_id = {c.cell_id: c for c in train}
    out = []
    for f in range(folds.n_folds):
        held = [j for j in usable if folds.fold_of[train[j].cell_id] == f]
        if not held:
            continue
        k = min(INNER_HELD_PER_FOLD, len(held))
        picks = sorted({held[int(i)] for i in np.linspace(0, len(held) - 1, k).round()})
        rest = [by_id[cid] for cid in folds.train_of[train[picks[0]].cell_id]]
        out += [(j, train[j], rest) for j in picks]
    return out
