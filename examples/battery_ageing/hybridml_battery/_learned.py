"""The physics prior's time scale learned from the window: a regression across the
training cells from what a cell's first N cycles show to the time scales its full life
takes.

The pooled prior (:func:`.fleet_prior`) gives every new cell the fleet's mean log time
scale per library trajectory, whatever its early cycles show. Cells that fade faster
early mostly age faster later too, and cells of one operating condition age alike, so
the learned prior regresses each trajectory's best-fit log time scale of the training
cells (:func:`.time_scale_rows`) on what the cell's window shows (its normalised drop per
N cycles over the window's second half and over its first half, and its level at the
window's end) and, where the study uses conditions, on one indicator per ``condition``
label and on the numeric operating conditions every cell carries
(:attr:`.Cell.conditions`, e.g. ``temperature_c``; :func:`numeric_conditions`). It is a
ridge regression on standardised inputs whose penalty is chosen by its leave-one-cell-out
error over the training cells (closed form);
the prior's spread per trajectory is the regression's leave-one-cell-out residual spread
(floored as the pooled prior's). The output is a :class:`.FleetPrior`, so the network and
the identification use it as they use the pooled one.

Whether the hybrid uses it is chosen on the training cells (:func:`._matched.choose_prior`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._data import Cell
from ._identify import _TAU_FLOOR, FleetPrior, fleet_prior, time_scale_rows
from ._methods import Window, window_first_half_slope, window_summary
from ._physics import FadeLibrary

__all__ = ["MIN_LEARNED", "RIDGE_PENALTIES", "learned_prior", "numeric_conditions"]

#: the learned prior needs at least this many training cells (else the pooled prior)
MIN_LEARNED = 4
#: penalties of the ridge regression (on standardised inputs); the one with the lowest
#: leave-one-cell-out error over the training cells is used
RIDGE_PENALTIES = (0.1, 1.0, 10.0, 100.0)


def numeric_conditions(fleet: Sequence[Cell], cell: Cell) -> list[str]:
    """The numeric operating conditions (:attr:`.Cell.conditions`, e.g. ``temperature_c``)
    that every cell of ``fleet`` and ``cell`` carry, sorted by name."""
    names = set(cell.conditions)
    for c in fleet:
        names &= set(c.conditions)
    return sorted(names)


def _inputs(
    cells: Sequence[Cell], window: Window, conditions: Sequence[str], numeric: Sequence[str]
) -> np.ndarray:
    """Each cell's window shape (the normalised drop per N cycles over the window's second
    half, its level at the window's end, its drop over the first half), one indicator per
    ``condition`` label and its ``numeric`` conditions, ``(n_cells, 3 + n_cond + n_num)``."""
    rows = []
    for c in cells:
        _, level, slope = window_summary(c, window)
        rows.append(
            [
                slope,
                level,
                window_first_half_slope(c, window),
                *(float(c.condition == k) for k in conditions),
                *(float(c.conditions[k]) for k in numeric),
            ]
        )
    return np.asarray(rows, dtype=float)


def learned_prior(
    library: FadeLibrary,
    fleet: Sequence[Cell],
    cell: Cell,
    window: Window,
    regen_tau: float | None,
    by_condition: bool = True,
) -> FleetPrior:
    """``cell``'s time-scale prior regressed from its window on the cells of ``fleet``
    (see the module docstring); the conditions are used with ``by_condition``.

    Fewer than :data:`MIN_LEARNED` fleet cells: the pooled prior of ``fleet``.
    """
    fleet = [c for c in fleet if c.cell_id != cell.cell_id]
    if len(fleet) < MIN_LEARNED:
        cells = [(c.cycle, c.capacity) for c in fleet]
        return fleet_prior(library, cells, True, regen_tau=regen_tau)
    conditions: list[str] = []
    numeric: list[str] = []
    if by_condition:
        conditions = sorted({c.condition for c in fleet if c.condition is not None})
        numeric = numeric_conditions(fleet, cell)
    y = time_scale_rows(library, [(c.cycle, c.capacity) for c in fleet], regen_tau)
    x = _inputs(fleet, window, conditions, numeric)
    x_new = _inputs([cell], window, conditions, numeric)[0]
    mean, std = _ridge(x, y, x_new)
    return FleetPrior(mean=mean, std=np.maximum(std, _TAU_FLOOR), regen_tau=regen_tau)


def _ridge(x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ridge prediction at ``x_new`` of every column of ``y`` and each column's
    leave-one-out residual spread, with the penalty of :data:`RIDGE_PENALTIES` of least
    leave-one-out error (summed over the columns). Constant inputs are dropped."""
    keep = x.std(axis=0) > 1e-9
    x, x_new = x[:, keep], x_new[keep]
    mu, sd = x.mean(axis=0), x.std(axis=0)
    n = x.shape[0]
    z = np.column_stack([np.ones(n), (x - mu) / sd])
    z_new = np.concatenate([[1.0], (x_new - mu) / sd])
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for alpha in RIDGE_PENALTIES:
        pen = alpha * np.eye(z.shape[1])
        pen[0, 0] = 0.0  # the intercept is not shrunk
        inv = np.linalg.inv(z.T @ z + pen)
        coef = inv @ z.T @ y
        lev = np.einsum("ij,jk,ik->i", z, inv, z)
        loo = (y - z @ coef) / np.maximum(1.0 - lev, 1e-6)[:, None]
        err = float((loo**2).mean())
        if best is None or err < best[0]:
            best = (err, z_new @ coef, np.sqrt((loo**2).mean(axis=0)))
    assert best is not None
    return best[1], best[2]
