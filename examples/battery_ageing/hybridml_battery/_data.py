"""Reading and validating a battery-ageing CSV: one row per (cell, discharge cycle).

Required columns: ``cell_id``, ``cycle``, ``capacity_ah``. Optional: ``temperature_c`` or
``ambient_temperature_c``, ``discharge_c_rate``, ``rated_capacity_ah``,
``hours_since_prev_discharge_end`` (numbers) and ``condition`` (a label of the cell's test
condition, e.g. its batch). Errors name the file, the cell and the line; rows that
are dropped (a missing capacity, a non-positive one) are warned about one by one and counted,
never dropped silently.

Capacities are in A.h (``capacity_unit="mAh"`` converts a file in mA.h). A file whose
median capacity is above :data:`MAX_PLAUSIBLE_MEDIAN_AH` is refused unless its unit is
stated, because a study run on mA.h as if they were A.h finishes with wrong end-of-life
predictions and passing checks. Cycle numbers count discharge cycles from 1: they must be
whole numbers >= 1 and at most :data:`MAX_CYCLE`.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridml import DataError, HybridMLWarning

__all__ = [
    "CAPACITY_UNITS",
    "CONDITION_COLUMN",
    "MAX_CAPACITY_AH",
    "MAX_CYCLE",
    "MAX_PLAUSIBLE_MEDIAN_AH",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "BatteryDataWarning",
    "Cell",
    "CellData",
    "DroppedRow",
    "check_eol_thresholds",
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
#: units ``capacity_unit`` (``--capacity-unit``) takes, with how many of them make 1 A.h
CAPACITY_UNITS = {"Ah": 1.0, "mAh": 1000.0}
#: a file whose median capacity is above this many A.h is refused unless its unit is stated
#: (single cells hold 0.01-300 A.h; 18650 cells in mA.h read 1500-3500)
MAX_PLAUSIBLE_MEDIAN_AH = 100.0
#: no single cell holds this much [A.h]: a larger value is a typo or another unit
MAX_CAPACITY_AH = 1e4
#: no cell is cycled this often (the longest tests run ~10^4-10^5 cycles); a larger cycle
#: number is a typo, and the study's prediction grid (3 x the last cycle) would not fit in
#: memory
MAX_CYCLE = 1e6


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
    def capacity_scale(self) -> float:
        """The cell's nominal capacity [A.h] that the study's capacity thresholds scale with
        (see :func:`hybridml_battery._physics.capacity_scale`)."""
        from ._physics import capacity_scale

        return capacity_scale(self.capacity)

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


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, plain or gzip-compressed (recognised by its first
    bytes, whatever its name); every way the file can fail to be a CSV is a DataError
    naming the file and saying what to do."""
    if path.is_dir():
        raise DataError(
            f"'{path}' is a folder; --data takes a CSV file (e.g. '{path / 'cells.csv'}')."
        )
    with open(path, "rb") as raw:
        magic = raw.read(2)
    compressed = magic == b"\x1f\x8b"
    if path.suffix == ".gz" and not compressed:
        raise DataError(
            f"file '{path}' is named .gz but is not gzip-compressed; rename it to .csv if it "
            "is a plain CSV, or compress it again."
        )
    try:
        opener = gzip.open if compressed else open
        with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise DataError(
                    f"file '{path}': the file is empty; expected a header row."
                ) from None
            rows = list(reader)
    except UnicodeDecodeError as exc:
        text = "" if compressed else " (compress with gzip, or save as UTF-8 text)"
        raise DataError(
            f"file '{path}' is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start} cannot be decoded. Save the CSV as UTF-8 (from latin-1: "
            f"`iconv -f latin1 -t utf-8`){text}; a spreadsheet or binary file must be "
            "exported as CSV first."
        ) from None
    except csv.Error as exc:
        raise DataError(
            f"file '{path}' is not a CSV text file ({exc}); it looks binary. Export the "
            "data as a CSV with the columns cell_id, cycle, capacity_ah."
        ) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"file '{path}' is a damaged or truncated gzip file ({type(exc).__name__}: "
            f"{exc}); copy or download it again (`gzip -t` tests it)."
        ) from None
    return header, rows


def load_cells(
    path: str | Path,
    *,
    cells: Sequence[str] | None = None,
    min_points: int = 3,
    capacity_unit: str | None = None,
) -> CellData:
    """Read and validate a battery-ageing CSV.

    Args:
        path: the CSV file (one row per cell and discharge cycle), or a gzip-compressed
            one (recognised by its content, e.g. ``.csv.gz``).
        cells: the cell ids to keep (all cells when None); an unknown id is an error that
            lists the cells in the file.
        min_points: the least number of usable rows a cell must have.
        capacity_unit: the unit of the ``capacity_ah`` and ``rated_capacity_ah`` columns,
            ``"Ah"`` or ``"mAh"`` (converted to A.h). None: A.h, and a file whose median
            capacity is above :data:`MAX_PLAUSIBLE_MEDIAN_AH` is refused (it is almost
            certainly in mA.h); give ``"Ah"`` for cells that really hold that much.

    Returns:
        The validated :class:`CellData`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        hybridml.DataError: a folder, a binary, non-UTF-8 or damaged gzip file; a missing
            required column, a non-numeric value, a cycle that is not a whole number in
            [1, :data:`MAX_CYCLE`], a capacity above :data:`MAX_CAPACITY_AH`, a median
            capacity implausible for A.h (without ``capacity_unit``), a duplicated (cell,
            cycle), an unknown ``cells`` id or a cell with fewer than ``min_points`` usable
            rows. The message names the file, and the cell and the line where there is one.
        hybridml.InvalidArgumentError: an unknown ``capacity_unit``.

    Warns:
        BatteryDataWarning: for each row dropped because its capacity is missing, NaN,
            infinite or not positive, or is a one-cycle dip deeper than any capacity
            regeneration (below both neighbouring cycles by more than 0.15 A.h for a 2 A.h
            cell: a measurement artefact) (the row is counted in :attr:`CellData.dropped`);
            once per cell whose first cycle is not 1 (its cycle numbers are taken as
            counted from the cell's first use: N and the EOL cycles refer to them).
    """
    from hybridml.exceptions import InvalidArgumentError, did_you_mean

    if capacity_unit is not None and capacity_unit not in CAPACITY_UNITS:
        raise InvalidArgumentError(
            f"capacity_unit (--capacity-unit) must be one of {', '.join(CAPACITY_UNITS)}, got "
            f"{capacity_unit!r}.{did_you_mean(str(capacity_unit), CAPACITY_UNITS)}"
        )
    per_ah = CAPACITY_UNITS[capacity_unit or "Ah"]
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"battery data file '{path}' does not exist.")
    header, rows = _read_csv(path)
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
        _check_cycle(where, cyc)
        for name in ("capacity_ah", "rated_capacity_ah"):
            v = values.get(name)
            if v is not None and per_ah != 1.0:
                values[name] = v / per_ah
        cap = values["capacity_ah"]
        if cap is not None and math.isfinite(cap) and cap > MAX_CAPACITY_AH:
            raise DataError(
                f"{where}: capacity_ah is {row[idx['capacity_ah']].strip()}"
                f"{' mA.h' if per_ah != 1.0 else ''}, above {MAX_CAPACITY_AH:g} A.h, which "
                "no single cell holds: fix the value (a typo?)"
                f"{'' if capacity_unit else ', or pass --capacity-unit mAh for a file in mA.h'}."
            )
        reason = None
        if cap is None:
            reason = "capacity_ah is missing or NaN"
        elif not math.isfinite(cap):
            reason = f"capacity_ah is {cap}"
        elif cap <= 0:
            reason = f"capacity_ah is {cap:g} (not positive)"
        if reason is not None:
            selected = cells is None or cell in cells
            _drop(dropped, where, DroppedRow(line, cell, cyc, reason), cyc, selected, 1)
            continue
        assert cap is not None
        cond = {n: v for n, v in values.items() if n in OPTIONAL_COLUMNS and v is not None}
        raw.setdefault(cell, []).append((line, cyc, cap, cond))
        if label_col is not None and row[label_col].strip():
            labels.setdefault(cell, []).append(row[label_col].strip())
    if n_rows == 0:
        raise DataError(f"file '{path}': no data rows after the header.")
    _check_capacity_unit(path, raw, capacity_unit)
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
        entries = _drop_dips(path, cid, entries, dropped, warn=cells is None or cid in cells)
        if len(entries) < min_points:
            raise DataError(
                f"file '{path}': cell {cid!r} has {len(entries)} usable row(s); at least "
                f"{min_points} are needed. Add measurements or leave the cell out with --cells."
            )
        if entries and entries[0][1] != 1 and (cells is None or cid in cells):
            warnings.warn(
                f"file '{path}': cell {cid!r} starts at cycle {entries[0][1]:g} (line "
                f"{entries[0][0]}), not 1; its cycle numbers are taken as counted from the "
                "cell's first use (N and the EOL cycles refer to them). If they are shifted, "
                "renumber the cycles from 1.",
                BatteryDataWarning,
                stacklevel=2,
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


def _drop(
    dropped: list[DroppedRow], where: str, row: DroppedRow, cycle: float, warn: bool, depth: int
) -> None:
    """Count a dropped row, and warn about it when ``warn`` (its cell was selected);
    ``depth``: how many calls below the user's call of :func:`load_cells` this is."""
    if warn:
        warnings.warn(
            f"{where}, cycle {cycle:g}: {row.reason}; the row is dropped (counted in the report).",
            BatteryDataWarning,
            stacklevel=2 + depth,
        )
    dropped.append(row)


def _drop_dips(
    path: Path,
    cid: str,
    entries: list[Any],
    dropped: list[DroppedRow],
    *,
    warn: bool,
) -> list[Any]:
    """``entries`` (``(line, cycle, capacity, conditions)`` in cycle order) without the
    one-cycle dips: a capacity below both the previous and the next measured cycle's by
    more than the largest regeneration step (:data:`REGEN_TOL_AH`, scaled with the cell's
    :func:`capacity_scale`). A cell cannot lose that much in one cycle and get it back the
    next; such a row is a measurement artefact (a partial discharge, a logging fault).
    Each is warned about and counted in ``dropped``."""
    from ._physics import REFERENCE_AH, REGEN_TOL_AH, capacity_scale

    if len(entries) < 3:
        return entries
    cap = np.array([e[2] for e in entries], dtype=float)
    tol = REGEN_TOL_AH * capacity_scale(cap) / REFERENCE_AH
    depth = np.minimum(cap[:-2], cap[2:]) - cap[1:-1]
    dips = set((np.flatnonzero(depth > tol) + 1).tolist())
    for i in sorted(dips):
        line, cyc, q = entries[i][:3]
        reason = (
            f"capacity_ah {q:g} is {depth[i - 1]:.3g} A.h below both neighbouring cycles, a "
            f"one-cycle dip larger than any capacity regeneration ({tol:g} A.h): a "
            "measurement artefact"
        )
        where = f"file '{path}', line {line} (cell {cid!r})"
        _drop(dropped, where, DroppedRow(line, cid, cyc, reason), cyc, warn, 2)
    return [e for i, e in enumerate(entries) if i not in dips]


def _check_cycle(where: str, cycle: float) -> None:
    """Refuse a cycle number that is not a whole number in [1, MAX_CYCLE]."""
    if cycle < 1:
        raise DataError(
            f"{where}: cycle is {cycle:g}; cycle numbers count discharge cycles from 1 (the "
            "physics prior starts the fade at cycle 1, and N counts from there). If the file "
            "counts from 0, add 1 to every cycle."
        )
    if cycle != math.floor(cycle):
        raise DataError(
            f"{where}: cycle is {cycle:g}, not a whole number; cycle numbers count discharge "
            "cycles (1, 2, 3, ...). Renumber the rows, one per discharge cycle."
        )
    if cycle > MAX_CYCLE:
        raise DataError(
            f"{where}: cycle is {cycle:g}, above {MAX_CYCLE:g}, which no cell reaches (the "
            "study predicts up to 3 x a cell's last cycle); fix the value (a typo?)."
        )


def _check_capacity_unit(
    path: Path,
    raw: dict[str, list[tuple[int, float, float, dict[str, float]]]],
    capacity_unit: str | None,
) -> None:
    """Refuse a file whose capacities are implausible for A.h when no unit was given."""
    if capacity_unit is not None:
        return
    caps = [e[2] for entries in raw.values() for e in entries]
    if not caps:
        return
    median = float(np.median(caps))
    if median > MAX_PLAUSIBLE_MEDIAN_AH:
        raise DataError(
            f"file '{path}': the median of capacity_ah is {median:g}, implausible for A.h "
            f"(above {MAX_PLAUSIBLE_MEDIAN_AH:g}); the file is probably in mA.h. Pass "
            "--capacity-unit mAh (capacity_unit='mAh') to convert, or convert the column to "
            "A.h; for cells that really hold that much, pass --capacity-unit Ah."
        )


def check_eol_thresholds(data: CellData, thresholds: dict[str, float], option: str) -> None:
    """Refuse an end-of-life threshold that a cell has reached before its first cycles.

    A threshold at or above a cell's initial capacity (the mean of its first 5 cycles)
    makes its "end of life" its first cycle, which every method then predicts exactly
    (an EOL error of 0 that means nothing).

    Args:
        data: the cells of the study.
        thresholds: cell id -> EOL capacity [A.h].
        option: how the user set the threshold, for the message (e.g. ``"--eol-ah 2.5"``).

    Raises:
        hybridml.DataError: naming the cells, their initial capacity and what to do.
    """
    bad = [(cid, c) for cid, c in data.cells.items() if thresholds[cid] >= c.initial_capacity]
    if not bad:
        return
    shown = ", ".join(
        f"{cid} (initial {c.initial_capacity:.4g} A.h, line {int(c.lines[0])})"
        for cid, c in bad[:5]
    )
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    hint = ""
    if thresholds[bad[0][0]] > MAX_PLAUSIBLE_MEDIAN_AH:
        hint = " (--eol-ah is in A.h, not mA.h)"
    raise DataError(
        f"file '{data.source}': the end of life {option} ({thresholds[bad[0][0]]:.4g} A.h) "
        f"is at or above the initial capacity of {len(bad)} cell(s): {shown}{more}; they "
        "would reach end of life at their first cycle and every method would score an EOL "
        f"error of 0. Give a lower --eol-ah{hint}, use --eol-fraction, or leave those cells "
        "out with --cells."
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
