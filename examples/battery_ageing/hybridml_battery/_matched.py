"""The physics prior's fleet matched to a cell's operating condition.

A cell's time-scale prior (:func:`.fleet_prior`) pools the training cells' time scales.
Cells cycled under other conditions (another C-rate, batch or chemistry) age on other time
scales, so where the fleet mixes conditions the pooled prior can be worse than none. The
matched prior takes the time scales of the training cells of the cell's own
``condition`` only (at least :data:`MIN_MATCHED` of them; otherwise the whole fleet).

Whether to match is chosen on the training cells, never on the test cell: each training
cell whose condition has enough other cells is predicted after N from its own window with
the pooled and with the matched prior (the other training cells as fleet, the fleet's
recovery time), and matching is used only if it beats pooling in the paired t-test of
:func:`._choice._guarded_choice` over those cells. A data set without conditions, or
with one condition, never matches (the prior is the pooled one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._baselines import _eligible, _memo_key, _memoised
from ._choice import _guarded_choice
from ._data import Cell
from ._identify import FleetPrior, fleet_prior, identify
from ._methods import Window
from ._physics import FadeLibrary

#: a matched prior needs at least this many training cells of the cell's condition
MIN_MATCHED = 2


def matched_cells(fleet: Sequence[Cell], cell: Cell) -> list[Cell]:
    """The cells of ``fleet`` cycled under ``cell``'s condition, if there are at least
    :data:`MIN_MATCHED` of them (and ``cell`` has a condition); else all of ``fleet``."""
    if cell.condition is None:
        return list(fleet)
    same = [c for c in fleet if c.condition == cell.condition and c.cell_id != cell.cell_id]
    return same if len(same) >= MIN_MATCHED else list(fleet)


def prior_for(
    library: FadeLibrary,
    fleet: Sequence[Cell],
    cell: Cell,
    regen_tau: float | None,
    matched: bool,
) -> FleetPrior:
    """``cell``'s time-scale prior from ``fleet`` (its condition's cells with
    ``matched``), with the recovery time ``regen_tau``."""
    group = matched_cells(fleet, cell) if matched else list(fleet)
    return fleet_prior(library, [(c.cycle, c.capacity) for c in group], True, regen_tau=regen_tau)


def choose_matched(
    library: FadeLibrary,
    train: Sequence[Cell],
    window: Window,
    regen_tau: float | None,
    memo: dict[Any, Any] | None = None,
) -> bool:
    """Whether the physics prior should be matched to the cell's condition, from the
    training cells alone (see the module docstring; memoised in ``memo``)."""
    key = _memo_key("matched-prior", train, window, regen_tau, id(library))
    return bool(_memoised(memo, key, lambda: _choose(library, list(train), window, regen_tau)))


def _choose(
    library: FadeLibrary, train: list[Cell], window: Window, regen_tau: float | None
) -> bool:
    pooled, matched = [], []
    for cell in _eligible(train, window):
        others = [c for c in train if c.cell_id != cell.cell_id]
        if len(matched_cells(others, cell)) == len(others):
            continue  # no match: both priors are the pooled one
        m = window.mask(cell)
        fut = cell.cycle > window.known_cycles
        errs = []
        for match in (False, True):
            fp = prior_for(library, others, cell, regen_tau, match)
            prior = identify(library, cell.cycle[m], cell.capacity[m], fp)
            pred = prior(cell.cycle[fut]) + prior.transient(cell.cycle[fut])
            errs.append(float(np.sqrt(np.mean((pred - cell.capacity[fut]) ** 2))))
        pooled.append(errs[0])
        matched.append(errs[1])
    if len(pooled) < 2:
        return False
    per_cell = {False: np.asarray(pooled), True: np.asarray(matched)}
    return bool(_guarded_choice(per_cell, False, key=lambda b: b))
