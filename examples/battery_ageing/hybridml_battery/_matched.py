"""Which time-scale prior the physics prior takes from the training cells: pooled over
them, matched to the cell's operating condition, learned from the cell's window, or none
(flat).

A cell's time-scale prior (:func:`.fleet_prior`) pools the training cells' time scales
(``"pooled"``). Cells cycled under other conditions (another C-rate, batch or chemistry)
age on other time scales, so where the fleet mixes conditions the pooled prior can be
worse than none. The **matched** prior (``"matched"``) takes the time scales of the
training cells of the cell's own ``condition`` only (at least :data:`MIN_MATCHED` of
them; otherwise the whole fleet). The **learned** prior (``"learned"``,
:func:`._learned.learned_prior`) regresses the training cells' time scales on what their
windows show (the window's shape, and the operating conditions where the cells carry
them). The **flat** prior (``"flat"``) takes none from them: the fade library is
identified from the cell's window alone (as the ``physics`` baseline), with the training
cells' recovery time; where a few training cells of other batches or conditions give a
confident but wrong time scale, the window alone is the better guess.

Which one to use is chosen on the training cells, never on the test cell: each training
cell is predicted after N from its own window with each prior (the other training cells
as fleet, the fleet's recovery time), and a prior other than the pooled one is used only
if it beats pooling in the paired t-test of :func:`._choice._guarded_choice` over those
cells (then the first within one standard error of the best: pooled, matched, learned,
flat; the window alone is used only where no prior from the fleet comes close). The
matched prior is a candidate only where the cells carry conditions (``by_condition``),
the learned one only with at least :data:`._learned.MIN_LEARNED` other cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._baselines import _eligible, _memo_key, _memoised
from ._choice import _guarded_choice
from ._data import Cell
from ._identify import FleetPrior, fleet_prior, identify
from ._learned import MIN_LEARNED, learned_prior
from ._methods import Window
from ._physics import FadeLibrary

#: a matched prior needs at least this many training cells of the cell's condition
MIN_MATCHED = 2
#: the time-scale priors, in their order of preference within one standard error: the
#: fleet's own time scales first, the window alone (``"flat"``) last
SCALE_PRIORS = ("pooled", "matched", "learned", "flat")


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
    scale_prior: str,
    window: Window,
    by_condition: bool = True,
) -> FleetPrior:
    """``cell``'s time-scale prior from ``fleet`` (one of :data:`SCALE_PRIORS`), with the
    recovery time ``regen_tau``; the learned prior sees the cells' windows ``window``
    (and their conditions with ``by_condition``)."""
    if scale_prior == "flat":  # no prior on the time scale: infinite spread
        n = len(library)
        return FleetPrior(mean=np.zeros(n), std=np.full(n, np.inf), regen_tau=regen_tau)
    if scale_prior == "learned":
        return learned_prior(library, fleet, cell, window, regen_tau, by_condition)
    group = matched_cells(fleet, cell) if scale_prior == "matched" else list(fleet)
    return fleet_prior(library, [(c.cycle, c.capacity) for c in group], True, regen_tau=regen_tau)


def choose_prior(
    library: FadeLibrary,
    train: Sequence[Cell],
    window: Window,
    regen_tau: float | None,
    by_condition: bool,
    memo: dict[Any, Any] | None = None,
) -> str:
    """The time-scale prior to use (one of :data:`SCALE_PRIORS`), from the training cells
    alone (see the module docstring; memoised in ``memo``)."""
    key = _memo_key("scale-prior", train, window, regen_tau, by_condition, id(library))
    return str(
        _memoised(memo, key, lambda: _choose(library, list(train), window, regen_tau, by_condition))
    )


def _choose(
    library: FadeLibrary,
    train: list[Cell],
    window: Window,
    regen_tau: float | None,
    by_condition: bool,
) -> str:
    if len(train) < 2:  # no other cell to take a prior from
        return "pooled"
    modes = ["pooled", "flat"]  # the order of preference is SCALE_PRIORS's
    if by_condition and len({c.condition for c in train if c.condition is not None}) >= 2:
        modes.append("matched")
    if len(train) - 1 >= MIN_LEARNED:
        modes.append("learned")
    errs: dict[str, list[float]] = {k: [] for k in modes}
    for cell in _eligible(train, window):
        others = [c for c in train if c.cell_id != cell.cell_id]
        m = window.mask(cell)
        fut = cell.cycle > window.known_cycles
        for mode in modes:
            fp = prior_for(library, others, cell, regen_tau, mode, window, by_condition)
            prior = identify(library, cell.cycle[m], cell.capacity[m], fp)
            pred = prior(cell.cycle[fut]) + prior.transient(cell.cycle[fut])
            errs[mode].append(float(np.sqrt(np.mean((pred - cell.capacity[fut]) ** 2))))
    if len(errs["pooled"]) < 2:
        return "pooled"
    per_cell = {k: np.asarray(v) for k, v in errs.items()}
    return _guarded_choice(per_cell, "pooled", key=SCALE_PRIORS.index)
