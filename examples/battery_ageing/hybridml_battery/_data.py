"""Reading and validating a battery-ageing CSV: one row per (cell, discharge cycle).

Required columns: ``cell_id``, ``cycle``, ``capacity_ah``. Optional: ``temperature_c`` or
``ambient_temperature_c``, ``discharge_c_rate``, ``rated_capacity_ah``,
``hours_since_prev_discharge_end`` (numbers) and ``condition`` (a label of the cell's test
condition, e.g. its batch). Errors name the file, the cell and the line; rows that
are dropped (a missing capacity, a non-positive one) are warned about one by one and counted,
never dropped silently.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybridml import DataError, HybridMLWarning

__all__ = [
    "CONDITION_COLUMN",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "BatteryDataWarning",
    "Cell",
    "CellData",
    "DroppedRow",
    "known_mask",
    "load_cells",
]

REQUIRED_COLUMNS = ("cell_id", "cycle", "capacity_ah")
OPTIONAL_COLUMNS = (
    "temperature_c",
    "ambient_temperature_c",
    "discharge_c_rate",
    "rated_capacity_ah",
    "hours_since_prev_discharge_end",
)
#: the optional label column: a cell's test condition (batch, chemistry, protocol)
CONDITION_COLUMN = "condition"
_MISSING = {"", "nan", "na", "n/a", "none", "null"}


class BatteryDataWarning(HybridMLWarning):
    """A row of the battery data was dropped or looks suspicious (the message says which)."""


@dataclass(frozen=True)
class DroppedRow:
    """A row that was not used, with the reason.

    Attributes:
        line: the line of the CSV file (the header is line 1).
        cell_id: the cell of the row.
        cycle: its cycle number (None when it could not be read).
        reason: why it was dropped.
    """

    line: int
    cell_id: str
    cycle: float | None
    reason: str


@dataclass(frozen=True)
class Cell:
    """The measurements of one cell, sorted by cycle.

    Attributes:
        cell_id: the cell's label.
        cycle: cycle numbers, shape ``(n,)``.
        capacity: measured discharge capacity [A.h], shape ``(n,)``.
        lines: the CSV line of each row (header = line 1).
        conditions: optional operating conditions found in the file (column -> median
            value over the cell's rows), e.g. ``temperature_c``.
        condition: the cell's label in the optional ``condition`` column (its most frequent
            value over the cell's rows; None when the file has no such column or the field
            is empty).
    """

    cell_id: str
    cycle: np.ndarray
    capacity: np.ndarray
    lines: np.ndarray
    conditions: dict[str, float] = field(default_factory=dict)
    condition: str | None = None

    @property
    def initial_capacity(self) -> float:
        """Mean capacity of the first 5 measured cycles [A.h]."""
        return float(np.mean(self.capacity[:5]))

    @property
    def last_cycle(self) -> float:
        """The last measured cycle."""
        return float(self.cycle[-1])


@dataclass(frozen=True)
class CellData:
    """Validated battery-ageing data.

    Attributes:
        source: the file read.
        cells: cell id -> :class:`Cell`, in the order of first appearance.
        dropped: the rows that were not used, each with its reason.
        n_rows: rows in the file (not counting the header).
        n_unselected: rows of cells not selected with ``cells=``.
    """

    source: str
    cells: dict[str, Cell]
    dropped: tuple[DroppedRow, ...]
    n_rows: int
    n_unselected: int = 0


def _float(text: str) -> float | None:
    """The number in ``text``; None when the field is empty/NaN; raises ValueError if text."""
    t = text.strip()
    if t.lower() in _MISSING:
        return None
    v = float(t)
    return None if math.isnan(v) else v


def load_cells(
    path: str | Path,
    *,
    cells: Sequence[str] | None = None,
    min_points: int = 3,
) -> CellData:
    """Read and validate a battery-ageing CSV.

    Args:
        path: the CSV file (one row per cell and discharge cycle), or a gzip-compressed
            one (``.csv.gz``).
        cells: the cell ids to keep (all cells when None); an unknown id is an error that
            lists the cells in the file.
        min_points: the least number of usable rows a cell must have.

    Returns:
        The validated :class:`CellData`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        hybridml.DataError: a missing required column, a non-numeric value, a cycle that
            is not finite, a duplicated (cell, cycle), an unknown ``cells`` id or a cell
            with fewer than ``min_points`` usable rows. The message names the cell and the
            line.

    Warns:
        BatteryDataWarning: for each row dropped because its capacity is missing, NaN,
            infinite or not positive (the row is counted in :attr:`CellData.dropped`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"battery data file '{path}' does not exist.")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"file '{path}': the file is empty; expected a header row.") from None
        rows = list(reader)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"file '{path}': required column(s) {', '.join(map(repr, missing))} missing. "
            f"A battery-ageing CSV needs the columns {', '.join(REQUIRED_COLUMNS)} (optional: "
            f"{', '.join((*OPTIONAL_COLUMNS, CONDITION_COLUMN))}); the file has "
            f"{', '.join(map(repr, header))}."
        )
    idx = {
        name: header.index(name)
        for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        if name in header
    }
    label_col = header.index(CONDITION_COLUMN) if CONDITION_COLUMN in header else None
    labels: dict[str, list[str]] = {}
    raw: dict[str, list[tuple[int, float, float, dict[str, float]]]] = {}
    dropped: list[DroppedRow] = []
    n_rows = 0
    for k, row in enumerate(rows):
        line = k + 2
        if not row or all(not x.strip() for x in row):
            continue  # a blank line is not a row
        n_rows += 1
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))
        cell = row[idx["cell_id"]].strip()
        if not cell:
            raise DataError(
                f"file '{path}', line {line}: column 'cell_id' is empty; every row needs the "
                "id of its cell."
            )
        where = f"file '{path}', line {line} (cell {cell!r})"
        values: dict[str, float | None] = {}
        for name, j in idx.items():
            if name == "cell_id":
                continue
            try:
                values[name] = _float(row[j])
            except ValueError:
                raise DataError(
                    f"{where}: column {name!r} holds {row[j]!r}, which is not a number. Fix "
                    "the value (use an empty field for a missing optional value)."
                ) from None
        cyc = values["cycle"]
        if cyc is None or not math.isfinite(cyc):
            raise DataError(
                f"{where}: column 'cycle' is {row[idx['cycle']]!r}; every row needs a finite "
                "cycle number."
            )
        cap = values["capacity_ah"]
        reason = None
        if cap is None:
            reason = "capacity_ah is missing or NaN"
        elif not math.isfinite(cap):
            reason = f"capacity_ah is {cap}"
        elif cap <= 0:
            reason = f"capacity_ah is {cap:g} (not positive)"
        if reason is not None:
            if cells is None or cell in cells:
                warnings.warn(
                    f"{where}, cycle {cyc:g}: {reason}; the row is dropped (counted in the "
                    "report).",
                    BatteryDataWarning,
                    stacklevel=2,
                )
            dropped.append(DroppedRow(line, cell, cyc, reason))
            continue
        assert cap is not None
        cond = {n: v for n, v in values.items() if n in OPTIONAL_COLUMNS and v is not None}
        raw.setdefault(cell, []).append((line, cyc, cap, cond))
        if label_col is not None and row[label_col].strip():
            labels.setdefault(cell, []).append(row[label_col].strip())
    if n_rows == 0:
        raise DataError(f"file '{path}': no data rows after the header.")
    available = list(dict.fromkeys([*raw, *(d.cell_id for d in dropped)]))
    if cells is not None:
        unknown = [c for c in cells if c not in available]
        if unknown:
            raise DataError(
                f"file '{path}': unknown cell id(s) {', '.join(map(repr, unknown))} in "
                f"--cells; the file has the cells {', '.join(available)}."
            )
        keep = list(dict.fromkeys(cells))
    else:
        keep = available
    n_unselected = sum(len(v) for c, v in raw.items() if c not in keep)
    dropped = [d for d in dropped if d.cell_id in keep]
    out: dict[str, Cell] = {}
    for cid in keep:
        entries = sorted(raw.get(cid, []), key=lambda e: e[1])
        for a, b in itertools.pairwise(entries):
            if a[1] == b[1]:
                raise DataError(
                    f"file '{path}': cell {cid!r} has cycle {a[1]:g} twice (lines {a[0]} and "
                    f"{b[0]}); keep one row per cell and cycle."
                )
        if len(entries) < min_points:
            raise DataError(
                f"file '{path}': cell {cid!r} has {len(entries)} usable row(s); at least "
                f"{min_points} are needed. Add measurements or leave the cell out with --cells."
            )
        conds: dict[str, float] = {}
        for name in OPTIONAL_COLUMNS:
            vals = [e[3][name] for e in entries if name in e[3]]
            if vals:
                conds[name] = float(np.median(vals))
        out[cid] = Cell(
            cell_id=cid,
            cycle=np.array([e[1] for e in entries], dtype=float),
            capacity=np.array([e[2] for e in entries], dtype=float),
            lines=np.array([e[0] for e in entries], dtype=int),
            conditions=conds,
            condition=_most_frequent(labels.get(cid, [])),
        )
    return CellData(
        source=str(path),
        cells=out,
        dropped=tuple(dropped),
        n_rows=n_rows,
        n_unselected=n_unselected,
    )


def _most_frequent(values: list[str]) -> str | None:
    """The most frequent value (the first seen among equals); None for no values."""
    if not values:
        return None
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=lambda v: counts[v])


def known_mask(cell: Cell, known_cycles: float, every: int = 1) -> np.ndarray:
    """Rows of ``cell`` the model may see: cycles <= ``known_cycles``, every ``every``-th."""
    early = np.flatnonzero(cell.cycle <= known_cycles)
    mask = np.zeros(cell.cycle.shape, bool)
    mask[early[::every]] = True
    return mask
