"""Column validation of datasets: units in names, and the coercion of raw values into
checked arrays.

Every helper raises :class:`~hybridml.DataError` naming the source (file or ``<...>``
description), the column and the row, and saying what to do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import DataError, InvalidTypeError, MissingColumnError, did_you_mean

if TYPE_CHECKING:
    from ._dataset import Dataset

__all__ = ["parse_unit"]

_UNIT_RE = re.compile(r"^(?P<base>.*?)\s*\[(?P<unit>[^\[\]]*)\]\s*$")
_TRUE = {"1", "true", "yes", "y", "t", "measured"}
_FALSE = {"0", "false", "no", "n", "f", "simulated"}
#: the largest magnitude a value may have: float32's largest finite number, since models
#: train in torch's default float32 where a larger value becomes infinite
_MAX_ABS = float(np.finfo(np.float32).max)


def parse_unit(name: str) -> str:
    """Return the unit in a column name such as ``"Capacity [A.h]"`` (``""`` if none).

    Args:
        name: a column name; the unit is the text in the final square brackets.

    Returns:
        The unit text, stripped; an empty string when the name carries no unit.
    """
    m = _UNIT_RE.match(name)
    return m.group("unit").strip() if m else ""


# --------------------------------------------------------------------------- helpers


class _Rows:
    """Describes rows the way a user finds them: file lines, or 0-based indices."""

    def __init__(self, lines: Sequence[int] | None = None, note: str = "") -> None:
        self.lines = lines
        self.note = note

    def one(self, i: int) -> str:
        if self.lines is not None:
            return f"line {self.lines[i]} (counting the header as line 1)"
        return f"row {i} (0-based index{self.note})"

    def two(self, i: int, j: int) -> str:
        if self.lines is not None:
            return f"lines {self.lines[i]} and {self.lines[j]} (counting the header as line 1)"
        return f"rows {i} and {j} (0-based indices{self.note})"


def _where(source: str) -> str:
    return source if source.startswith("<") else f"file '{source}'"


def _missing_column(
    name: str, available: Iterable[str], source: str, what: str = "column"
) -> MissingColumnError:
    available = list(available)
    hint = did_you_mean(name, available, cutoff=0.5)
    return MissingColumnError(
        f"{_where(source)}: {what} {name!r} does not exist.{hint} "
        f"Available columns: {', '.join(map(repr, available)) or 'none'}. "
        "Check the spelling, including the unit in square brackets."
    )


def _label(value: Any) -> str | None:
    """Normalise one group label to a string; None when it is missing."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if not math.isfinite(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value)


def _as_labels(values: Any, column: str, source: str, rows: _Rows) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(
            f"{_where(source)}: group column {column!r} has shape {arr.shape}; "
            "pass one label per row (a 1-d sequence)."
        )
    labels: list[str] = []
    for i, v in enumerate(arr.tolist()):
        lab = _label(v)
        if lab is None:
            raise DataError(
                f"{_where(source)}: group column {column!r}, {rows.one(i)}: the group label "
                f"is missing ({v!r}). Give every row a label (e.g. the cell or experiment "
                "name) or remove the row."
            )
        labels.append(lab)
    return np.asarray(labels, dtype=str)


def _as_float(values: Any, column: str, source: str, rows: _Rows) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(
            f"{_where(source)}: column {column!r} has shape {arr.shape}; every column must "
            "be 1-d (one value per row). Split a 2-d array into named columns."
        )
    if arr.dtype.kind in "biuf":
        out = arr.astype(np.float64)
    else:
        out = np.empty(arr.shape[0], dtype=np.float64)
        for i, v in enumerate(arr.tolist()):
            if isinstance(v, str) and not v.strip():
                raise DataError(
                    f"{_where(source)}: column {column!r}, {rows.one(i)}: the value is empty. "
                    "Fill it in or remove the row; hybridml does not impute."
                )
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                raise DataError(
                    f"{_where(source)}: column {column!r}, {rows.one(i)}: {v!r} is not a "
                    "number. Fix or remove the value; if the column holds labels, pass it "
                    "as group=."
                ) from None
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        i = int(bad[0])
        more = f" ({bad.size - 1} more non-finite value(s) in this column)" if bad.size > 1 else ""
        raise DataError(
            f"{_where(source)}: column {column!r}, {rows.one(i)}: value is "
            f"{'NaN' if math.isnan(out[i]) else 'infinite'} ({arr[i]!s}){more}. "
            "Remove the row or fill in a finite value; hybridml does not impute."
        )
    huge = np.flatnonzero(np.abs(out) > _MAX_ABS)
    if huge.size:
        i = int(huge[0])
        more = f" ({huge.size - 1} more such value(s) in this column)" if huge.size > 1 else ""
        raise DataError(
            f"{_where(source)}: column {column!r}, {rows.one(i)}: value {out[i]:.6g} is "
            f"too large (beyond +-{_MAX_ABS:.3g}, the largest float32, the precision models "
            f"train in: it would become infinite){more}. Check the value for a typo and the "
            "column for its unit; rescale the column if the values are right."
        )
    return out


def _as_mask(values: Any, source: str, rows: _Rows, n: int, column: str = "measured") -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataError(
            f"{_where(source)}: {column} has shape {arr.shape} but the data has {n} rows; "
            "pass one True (measured) / False (simulated) per row."
        )
    if arr.dtype.kind == "b":
        return arr.copy()
    out = np.empty(n, dtype=bool)
    for i, v in enumerate(arr.tolist()):
        text = str(v).strip().lower()
        if isinstance(v, float) and v in (0.0, 1.0):
            text = str(int(v))
        if text in _TRUE:
            out[i] = True
        elif text in _FALSE:
            out[i] = False
        else:
            raise DataError(
                f"{_where(source)}: column {column!r}, {rows.one(i)}: {v!r} is not a "
                "measured flag. Use 1/0 or true/false (1 = measured, 0 = simulated)."
            )
    return out


def validate_columns(
    columns: Mapping[str, Any],
    *,
    units: Mapping[str, str] | None,
    group: str | None,
    coordinate: str | None,
    measured: Any,
    source: str,
    rows: _Rows,
) -> tuple[dict[str, np.ndarray], dict[str, str], np.ndarray]:
    """Check and convert the arguments of a :class:`~hybridml.Dataset`.

    Returns:
        ``(data, units, measured)``: read-only float (or label) arrays by column name, the
        unit of every column, and the read-only measured mask.
    """
    where = _where(source)
    if not isinstance(columns, Mapping):
        raise InvalidTypeError(
            f"Dataset: columns must be a mapping of name -> 1-d array, got {type(columns).__name__}"
        )
    if not columns:
        raise DataError(f"{where}: no columns were given; the data is empty.")
    for name in columns:
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{where}: column names must be non-empty strings, got {name!r}.")
    for what, col in (("group", group), ("coordinate", coordinate)):
        if col is not None and col not in columns:
            raise _missing_column(col, columns, source, f"{what} column")
    if group is not None and group == coordinate:
        raise DataError(
            f"{where}: group and coordinate are both {group!r}; the group column holds "
            "labels (cell, experiment), the coordinate column the time or cycle."
        )
    data: dict[str, np.ndarray] = {}
    n: int | None = None
    first = ""
    for name, values in columns.items():
        arr = (
            _as_labels(values, name, source, rows)
            if name == group
            else _as_float(values, name, source, rows)
        )
        if n is None:
            n, first = arr.shape[0], name
        elif arr.shape[0] != n:
            raise DataError(
                f"{where}: column {name!r} has {arr.shape[0]} rows but column {first!r} "
                f"has {n}; all columns must have the same length."
            )
        arr.flags.writeable = False
        data[name] = arr
    assert n is not None
    if n == 0:
        raise DataError(f"{where}: the data has no rows; there is nothing to learn from.")
    unit_map = {name: parse_unit(name) for name in data}
    for name, unit in (units or {}).items():
        if name not in data:
            raise _missing_column(name, data, source, "column in units=")
        unit_map[name] = str(unit)
    if group is not None:
        unit_map[group] = ""
    mask = np.ones(n, dtype=bool) if measured is None else _as_mask(measured, source, rows, n)
    mask.flags.writeable = False
    if coordinate is not None:
        _check_duplicates(data, group, coordinate, source, rows)
    return data, unit_map, mask


def _check_duplicates(
    data: Mapping[str, np.ndarray],
    group: str | None,
    coordinate: str,
    source: str,
    rows: _Rows,
) -> None:
    coord = data[coordinate]
    labels = data[group] if group is not None else None
    seen: dict[tuple[str, float], int] = {}
    for i, c in enumerate(coord.tolist()):
        key = ("" if labels is None else str(labels[i]), c)
        j = seen.setdefault(key, i)
        if j != i:
            what = f"{coordinate!r} = {c!r}"
            if group is not None:
                what = f"{group!r} = {key[0]!r} and {what}"
            raise DataError(
                f"{_where(source)}: {rows.two(j, i)} have the same {what}. Remove the "
                "duplicate, or give the rows different group labels if they come from "
                "different cells or experiments."
            )


def row_indices(index: Any, n: int, source: str) -> np.ndarray:
    """The 0-based row indices picked by a boolean mask, integer indices or a slice.

    Raises :class:`~hybridml.DataError` for a mask of the wrong length, an index out of
    range or an empty selection.
    """
    if isinstance(index, slice):
        idx = np.arange(n)[index]
    else:
        arr = np.asarray(index)
        if arr.dtype.kind == "b":
            if arr.shape != (n,):
                raise DataError(
                    f"{_where(source)}: boolean mask has shape {arr.shape} but the "
                    f"data has {n} rows; pass one True/False per row."
                )
            idx = np.flatnonzero(arr)
        elif arr.dtype.kind in "iu" or arr.size == 0:
            idx = arr.astype(np.intp).reshape(-1)
            out = idx[(idx < -n) | (idx >= n)]
            if out.size:
                raise DataError(
                    f"{_where(source)}: row index {int(out[0])} is out of range for "
                    f"{n} rows (0-based indices 0..{n - 1})."
                )
        else:
            raise InvalidTypeError(
                "Dataset.select: pass a boolean mask, integer indices or a slice, "
                f"got an array of dtype {arr.dtype}"
            )
    if idx.size == 0:
        raise DataError(f"{_where(source)}: the selection is empty; no rows match.")
    return idx


def check_concatenable(first: Dataset, second: Dataset) -> None:
    """Raise :class:`~hybridml.DataError` unless ``second``'s rows can follow ``first``'s:
    the same columns, group and coordinate columns and units."""
    pre = f"cannot concatenate {_where(first._source)} and {_where(second._source)}"
    if set(first._data) != set(second._data):
        only_a = sorted(set(first._data) - set(second._data))
        only_b = sorted(set(second._data) - set(first._data))
        raise DataError(
            f"{pre}: the columns differ (only in the first: {only_a}; only in the "
            f"second: {only_b}). Rename or drop columns so both have the same names."
        )
    if (first._group, first._coordinate) != (second._group, second._coordinate):
        raise DataError(
            f"{pre}: group/coordinate columns differ ({first._group!r}/{first._coordinate!r}"
            f" vs {second._group!r}/{second._coordinate!r}); create both with the same ones."
        )
    diff = [k for k in first._units if first._units[k] != second._units[k]]
    if diff:
        k = diff[0]
        raise DataError(
            f"{pre}: column {k!r} has unit {first._units[k]!r} in the first and "
            f"{second._units[k]!r} in the second; convert one of them first."
        )
