"""The study's protocol over cells: which cells take part, and the folds that test them."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hybridml import GroupKFold, LeaveOneGroupOut
from hybridml.exceptions import InvalidArgumentError

from ._data import BatteryDataWarning, CellData

__all__ = ["LOO_MAX_CELLS", "CellFolds", "cell_folds", "leave_out_short_cells"]

#: up to this many cells the default protocol is leave one cell out; above, 5 folds
LOO_MAX_CELLS = 10


@dataclass(frozen=True)
class CellFolds:
    """Folds over cells: each cell is tested once, by a model fitted on other cells only.

    Attributes:
        split: the protocol in words (``"leave one cell out"`` or ``"K-fold grouped by
            cell"``).
        n_folds: the number of folds.
        fold_of: cell id -> the index of the fold that tests it.
        train_of: cell id -> the ids of the training cells of its fold (in file order).
    """

    split: str
    n_folds: int
    fold_of: dict[str, int]
    train_of: dict[str, list[str]]


def cell_folds(ids: Sequence[str], folds: int | None = None) -> CellFolds:
    """The folds of the study over the cells ``ids``.

    Leave one cell out (:class:`hybridml.LeaveOneGroupOut`) when ``folds`` is None and there
    are at most :data:`LOO_MAX_CELLS` cells, or when ``folds`` equals the number of cells;
    otherwise :class:`hybridml.GroupKFold` with ``folds`` folds (5 by default), one row per
    cell, so that the folds hold as many cells as can be.

    Raises:
        hybridml.InvalidArgumentError: ``folds`` is below 2 or larger than the number of
            cells (the message names both).
    """
    ids = list(ids)
    n = len(ids)
    if folds is None:
        k = n if n <= LOO_MAX_CELLS else 5
    else:
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            raise InvalidArgumentError(f"folds (--folds) must be an integer >= 2, got {folds!r}.")
        if folds > n:
            raise InvalidArgumentError(
                f"--folds {folds} is larger than the number of cells, {n} "
                f"({', '.join(ids[:10])}{', ...' if n > 10 else ''}); each fold tests at least "
                f"one whole cell. Use --folds {n} or fewer."
            )
        k = folds
    rows = np.arange(n)[:, None]
    splitter = LeaveOneGroupOut() if k == n else GroupKFold(n_splits=k)
    fold_of: dict[str, int] = {}
    train_of: dict[str, list[str]] = {}
    for f, (train_idx, test_idx) in enumerate(splitter.split(rows, groups=np.asarray(ids))):
        train = [ids[i] for i in sorted(train_idx.tolist())]
        for i in test_idx.tolist():
            fold_of[ids[i]] = f
            train_of[ids[i]] = train
    split = "leave one cell out" if k == n else f"{k}-fold grouped by cell"
    return CellFolds(split=split, n_folds=k, fold_of=fold_of, train_of=train_of)


def leave_out_short_cells(cd: CellData, known_cycles: float) -> tuple[CellData, dict[str, float]]:
    """Leave out the cells whose data end at or before N = ``known_cycles``.

    Such a cell has nothing to predict after N, and no trajectory after N to teach the
    other cells' models; it is neither tested nor used for training. One
    :class:`~hybridml_battery.BatteryDataWarning` names them all.

    Returns:
        The data without those cells, and cell id -> its last cycle for each cell left out.
    """
    short = {cid: c.last_cycle for cid, c in cd.cells.items() if not (c.cycle > known_cycles).any()}
    if not short:
        return cd, {}
    names = ", ".join(f"{cid} (last cycle {last:g})" for cid, last in short.items())
    warnings.warn(
        f"file '{cd.source}': {len(short)} of {len(cd.cells)} cell(s) end at or before "
        f"N={known_cycles:g} and are left out (counted in the report): {names}.",
        BatteryDataWarning,
        stacklevel=3,
    )
    kept = {cid: c for cid, c in cd.cells.items() if cid not in short}
    return dataclasses.replace(cd, cells=kept), short
