"""Datasets: named columns with units, group labels and a measured/simulated mask.

A :class:`Dataset` is the one container that measurements (CSV, NumPy files), simulator
outputs and predictions share. Column names carry their units the PyBaMM way
(``"Voltage [V]"``), so measured, simulated and predicted quantities line up by name.
Every loader validates what it reads and raises :class:`DataError` naming the file, the
column and the row, and saying what to do.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..exceptions import DataError, MissingColumnError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["DataError", "Dataset", "MissingColumnError", "parse_unit"]

_FORMAT = "hybridml.Dataset"
_FORMAT_VERSION = 1
_META_KEY = "__hybridml_dataset__"
_UNIT_RE = re.compile(r"^(?P<base>.*?)\s*\[(?P<unit>[^\[\]]*)\]\s*$")
_TRUE = {"1", "true", "yes", "y", "t", "measured"}
_FALSE = {"0", "false", "no", "n", "f", "simulated"}


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


def _suggest(name: str, options: Iterable[str]) -> str:
    """ " Did you mean ...?" with close names (ignoring case), or ""."""
    options = list(options)
    lowered = {o.lower(): o for o in options}
    close = [lowered[c] for c in difflib.get_close_matches(name.lower(), lowered, n=3, cutoff=0.5)]
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def _missing_column(
    name: str, available: Iterable[str], source: str, what: str = "column"
) -> MissingColumnError:
    available = list(available)
    hint = _suggest(name, available)
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


def _atomic_write(path: Path, write: Callable[[Any], None], binary: bool) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it.

    The temporary file is created with ``open(..., "x")`` (not ``mkstemp``) so that the
    result gets the usual permissions from the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        if binary:
            with open(tmp, "xb") as fb:
                write(fb)
        else:
            with open(tmp, "x", encoding="utf-8", newline="") as ft:
                write(ft)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- Dataset


class Dataset(Mapping[str, np.ndarray]):
    """Named 1-d columns of equal length, with units, group labels and a measured mask.

    A ``Dataset`` is an immutable ``Mapping`` from column name to a 1-d NumPy array:
    ``len(ds)`` is the number of *columns*, ``ds.n_rows`` the number of rows, and
    ``ds["Voltage [V]"]`` returns a copy of that column. All columns hold floats except the
    group column, which holds string labels (numbers given as labels are written as
    strings, integral values without a decimal point: ``1.0 -> "1"``).

    Args:
        columns: column name -> 1-d array-like, all of one length.
        units: column name -> unit, overriding the unit parsed from the name
            (``"Capacity [A.h]"`` has unit ``"A.h"``; a name without brackets has ``""``).
        group: name of the column holding group labels (cell, experiment), if any.
        coordinate: name of the column that orders the rows within a group (time, cycle
            number); with it, two rows with the same (group, coordinate) are an error.
        measured: per-row flags, True for measured and False for simulated points;
            all True by default.
        source: where the data came from (a file path or a description in ``<...>``);
            used in error messages and kept by :meth:`save`.

    Raises:
        DataError: for empty data, columns of unequal length or not 1-d, non-numeric,
            NaN or infinite values, missing group labels, duplicated (group, coordinate)
            rows, or ``units``/``group``/``coordinate`` naming a column that does not exist.
    """

    __slots__ = ("_coordinate", "_data", "_group", "_measured", "_source", "_units")

    def __init__(
        self,
        columns: Mapping[str, ArrayLike],
        *,
        units: Mapping[str, str] | None = None,
        group: str | None = None,
        coordinate: str | None = None,
        measured: ArrayLike | None = None,
        source: str = "<arrays>",
    ) -> None:
        self._init(
            columns,
            units=units,
            group=group,
            coordinate=coordinate,
            measured=measured,
            source=str(source),
            rows=_Rows(),
        )

    def _init(
        self,
        columns: Mapping[str, Any],
        *,
        units: Mapping[str, str] | None,
        group: str | None,
        coordinate: str | None,
        measured: Any,
        source: str,
        rows: _Rows,
    ) -> None:
        where = _where(source)
        if not isinstance(columns, Mapping):
            raise TypeError(
                f"Dataset: columns must be a mapping of name -> 1-d array, "
                f"got {type(columns).__name__}"
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
        self._data = data
        self._units = unit_map
        self._group = group
        self._coordinate = coordinate
        self._measured = mask
        self._source = source

    @classmethod
    def _new(
        cls,
        columns: Mapping[str, Any],
        *,
        units: Mapping[str, str] | None,
        group: str | None,
        coordinate: str | None,
        measured: Any,
        source: str,
        rows: _Rows,
    ) -> Dataset:
        self = cls.__new__(cls)
        self._init(
            columns,
            units=units,
            group=group,
            coordinate=coordinate,
            measured=measured,
            source=source,
            rows=rows,
        )
        return self

    def _derive(
        self,
        columns: Mapping[str, Any],
        measured: np.ndarray,
        *,
        source: str | None = None,
        rows: _Rows | None = None,
    ) -> Dataset:
        """A new dataset with this one's settings (units kept for the surviving columns)."""
        unit_map = {k: v for k, v in self._units.items() if k in columns and k != self._group}
        return Dataset._new(
            columns,
            units=unit_map,
            group=self._group if self._group in columns else None,
            coordinate=self._coordinate if self._coordinate in columns else None,
            measured=measured,
            source=self._source if source is None else source,
            rows=_Rows() if rows is None else rows,
        )

    # ---------------------------------------------------------------- Mapping protocol

    def __getitem__(self, name: str) -> np.ndarray:
        """Return a copy of column ``name`` (a 1-d array)."""
        try:
            return self._data[name].copy()
        except KeyError:
            raise _missing_column(name, self._data, self._source) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return (
            list(self._data) == list(other._data)
            and self._units == other._units
            and self._group == other._group
            and self._coordinate == other._coordinate
            and np.array_equal(self._measured, other._measured)
            and all(np.array_equal(v, other._data[k]) for k, v in self._data.items())
        )

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={v!r}"
            for k, v in (("group", self._group), ("coordinate", self._coordinate))
            if v is not None
        )
        n_meas = int(self._measured.sum())
        return (
            f"Dataset(n_rows={self.n_rows}, columns={list(self._data)}{extra}, "
            f"measured={n_meas}/{self.n_rows}, source={self._source!r})"
        )

    # ---------------------------------------------------------------- properties

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self._measured.shape[0])

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, in order."""
        return tuple(self._data)

    @property
    def units(self) -> dict[str, str]:
        """Column name -> unit (``""`` when a column has none; always ``""`` for the group)."""
        return dict(self._units)

    @property
    def group(self) -> str | None:
        """Name of the group-label column, or None."""
        return self._group

    @property
    def coordinate(self) -> str | None:
        """Name of the coordinate column (time, cycle) that orders rows in a group, or None."""
        return self._coordinate

    @property
    def measured(self) -> np.ndarray:
        """Per-row flags: True for measured points, False for simulated ones (a copy)."""
        return self._measured.copy()

    @property
    def source(self) -> str:
        """Where the data came from: a file path, or a description in ``<...>``."""
        return self._source

    # ---------------------------------------------------------------- conversion

    def array(self, names: str | Sequence[str]) -> np.ndarray:
        """Stack numeric columns into a float64 array.

        Args:
            names: a column name or a sequence of names.

        Returns:
            A new array of shape ``(n_rows, len(names))`` (``(n_rows, 1)`` for one name).
        """
        cols = [names] if isinstance(names, str) else list(names)
        if not cols:
            raise ValueError("Dataset.array: names is empty; pass at least one column name.")
        for name in cols:
            if name not in self._data:
                raise _missing_column(name, self._data, self._source)
            if name == self._group:
                raise DataError(
                    f"{_where(self._source)}: column {name!r} is the group column and holds "
                    "labels, not numbers; leave it out (use groups()/where_group() to split)."
                )
        return np.stack([self._data[c] for c in cols], axis=1)

    def to_tensor(self, names: str | Sequence[str], dtype: torch.dtype | None = None) -> Tensor:
        """Stack numeric columns into a tensor.

        Args:
            names: a column name or a sequence of names.
            dtype: the tensor's dtype; torch's default dtype when None.

        Returns:
            A new tensor of shape ``(n_rows, len(names))``.
        """
        import torch

        arr = self.array(names)
        return torch.as_tensor(arr, dtype=torch.get_default_dtype() if dtype is None else dtype)

    # ---------------------------------------------------------------- selection

    def select(self, index: ArrayLike | slice) -> Dataset:
        """Return the rows picked by a boolean mask, integer indices or a slice.

        Args:
            index: a boolean mask of length ``n_rows``, integer row indices (0-based), or
                a slice.

        Returns:
            A new dataset with the same columns, units, group, coordinate and source.

        Raises:
            DataError: if the mask has the wrong length, an index is out of range, or the
                selection is empty.
        """
        n = self.n_rows
        if isinstance(index, slice):
            idx = np.arange(n)[index]
        else:
            arr = np.asarray(index)
            if arr.dtype.kind == "b":
                if arr.shape != (n,):
                    raise DataError(
                        f"{_where(self._source)}: boolean mask has shape {arr.shape} but the "
                        f"data has {n} rows; pass one True/False per row."
                    )
                idx = np.flatnonzero(arr)
            elif arr.dtype.kind in "iu" or arr.size == 0:
                idx = arr.astype(np.intp).reshape(-1)
                out = idx[(idx < -n) | (idx >= n)]
                if out.size:
                    raise DataError(
                        f"{_where(self._source)}: row index {int(out[0])} is out of range for "
                        f"{n} rows (0-based indices 0..{n - 1})."
                    )
            else:
                raise TypeError(
                    "Dataset.select: pass a boolean mask, integer indices or a slice, "
                    f"got an array of dtype {arr.dtype}"
                )
        if idx.size == 0:
            raise DataError(f"{_where(self._source)}: the selection is empty; no rows match.")
        return self._derive({k: v[idx] for k, v in self._data.items()}, self._measured[idx])

    def groups(self) -> list[str]:
        """The distinct group labels, in order of first appearance.

        Raises:
            DataError: if the dataset has no group column.
        """
        labels = self._labels()
        _, first = np.unique(labels, return_index=True)
        return [str(labels[i]) for i in sorted(first)]

    def where_group(self, labels: Any) -> Dataset:
        """Return the rows of one group label or of several.

        Args:
            labels: a label or a sequence of labels; numbers match their string form
                (``1`` matches ``"1"``).

        Returns:
            A new dataset with the rows of those groups, in their original order.

        Raises:
            DataError: if the dataset has no group column or a label does not occur.
        """
        col = self._labels()
        wanted_raw = [labels] if isinstance(labels, str) or np.ndim(labels) == 0 else list(labels)
        wanted = [_label(v) for v in wanted_raw]
        known = self.groups()
        for raw, lab in zip(wanted_raw, wanted, strict=True):
            if lab is None or lab not in known:
                hint = _suggest(str(lab), known)
                raise DataError(
                    f"{_where(self._source)}: group {raw!r} does not occur in column "
                    f"{self._group!r}.{hint} Groups: {', '.join(map(repr, known))}."
                )
        return self.select(np.isin(col, np.asarray(wanted, dtype=str)))

    def _labels(self) -> np.ndarray:
        if self._group is None:
            raise DataError(
                f"{_where(self._source)}: this dataset has no group column; pass group= "
                "(the column with cell or experiment labels) when creating it."
            )
        return self._data[self._group]

    # ---------------------------------------------------------------- combination

    def concat(self, other: Dataset) -> Dataset:
        """Append the rows of ``other`` (e.g. simulated points to measured ones).

        Args:
            other: a dataset with the same column names (any order), units, group and
                coordinate columns.

        Returns:
            A new dataset, rows of ``self`` first; its source names both sources.

        Raises:
            DataError: if the columns, units, group or coordinate differ, or the combined
                rows repeat a (group, coordinate) pair.
        """
        if not isinstance(other, Dataset):
            raise TypeError(f"Dataset.concat: expected a Dataset, got {type(other).__name__}")
        pre = f"cannot concatenate {_where(self._source)} and {_where(other._source)}"
        if set(self._data) != set(other._data):
            only_a = sorted(set(self._data) - set(other._data))
            only_b = sorted(set(other._data) - set(self._data))
            raise DataError(
                f"{pre}: the columns differ (only in the first: {only_a}; only in the "
                f"second: {only_b}). Rename or drop columns so both have the same names."
            )
        if (self._group, self._coordinate) != (other._group, other._coordinate):
            raise DataError(
                f"{pre}: group/coordinate columns differ ({self._group!r}/{self._coordinate!r}"
                f" vs {other._group!r}/{other._coordinate!r}); create both with the same ones."
            )
        diff = [k for k in self._units if self._units[k] != other._units[k]]
        if diff:
            k = diff[0]
            raise DataError(
                f"{pre}: column {k!r} has unit {self._units[k]!r} in the first and "
                f"{other._units[k]!r} in the second; convert one of them first."
            )
        cols = {k: np.concatenate([v, other._data[k]]) for k, v in self._data.items()}
        mask = np.concatenate([self._measured, other._measured])
        note = f" in the combined data; the second part starts at row {self.n_rows}"
        return self._derive(
            cols, mask, source=f"{self._source} + {other._source}", rows=_Rows(note=note)
        )

    def with_columns(
        self, columns: Mapping[str, ArrayLike] | None = None, /, **more: ArrayLike
    ) -> Dataset:
        """Return a copy with columns added or replaced.

        Names with units in brackets do not fit keywords; pass them in a mapping:
        ``ds.with_columns({"Power [W]": p})``; plain names may be keywords:
        ``ds.with_columns(soh=s)``.

        Args:
            columns: name -> 1-d array-like of length ``n_rows``.
            **more: further name -> array pairs.

        Returns:
            A new dataset; a replaced column keeps its unit, a new one takes the unit in
            its name.
        """
        new = {**dict(columns or {}), **more}
        if self._group is not None and self._group in new:
            raise DataError(
                f"{_where(self._source)}: with_columns cannot replace the group column "
                f"{self._group!r}; create a new Dataset instead."
            )
        cols: dict[str, Any] = dict(self._data)
        cols.update(new)
        return self._derive(cols, self._measured)

    # ---------------------------------------------------------------- files

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the dataset to a ``.npz`` file that :meth:`load` reads back exactly.

        Everything is kept: columns (in order), units, group labels, coordinate, measured
        mask and source. The file is written atomically (temporary file, then rename), so
        an interrupted save never leaves a truncated file. No pickling is used.

        Args:
            path: the file to write (conventionally ending in ``.npz``); written as given.
        """
        names = list(self._data)
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "columns": names,
            "units": self._units,
            "group": self._group,
            "coordinate": self._coordinate,
            "source": self._source,
        }
        arrays: dict[str, Any] = {f"c{i}": self._data[k] for i, k in enumerate(names)}
        arrays["measured"] = self._measured
        arrays[_META_KEY] = np.asarray(json.dumps(meta))
        _atomic_write(Path(path), lambda f: np.savez(f, **arrays), binary=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        """Read a dataset written by :meth:`save`.

        Args:
            path: the ``.npz`` file.

        Returns:
            The dataset, equal to the one saved (same source).

        Raises:
            DataError: if the file was not written by :meth:`Dataset.save` (use
                :meth:`from_numpy` for plain ``.npz`` files) or is damaged.
        """
        path = Path(path)
        with _open_npz(path) as z:
            if _META_KEY not in z.files:
                raise DataError(
                    f"file '{path}' was not written by Dataset.save (it has no "
                    f"{_META_KEY!r} entry); read plain NumPy files with Dataset.from_numpy."
                )
            return cls._from_npz(z, path)

    @classmethod
    def _from_npz(cls, z: Any, path: Path) -> Dataset:
        try:
            meta = json.loads(str(z[_META_KEY][()]))
            if meta.get("format") != _FORMAT:
                raise ValueError("unknown format")
            if meta.get("version", 0) > _FORMAT_VERSION:
                raise DataError(
                    f"file '{path}' was written by a newer hybridml (format version "
                    f"{meta['version']}); upgrade hybridml to read it."
                )
            cols = {name: z[f"c{i}"] for i, name in enumerate(meta["columns"])}
            measured = z["measured"]
        except (KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(
                f"file '{path}' is a damaged Dataset file ({exc}); write it again with "
                "Dataset.save."
            ) from None
        return cls._new(
            cols,
            units=meta["units"],
            group=meta["group"],
            coordinate=meta["coordinate"],
            measured=measured,
            source=meta["source"],
            rows=_Rows(),
        )

    def to_csv(self, path: str | os.PathLike[str], *, measured_column: str | None = None) -> None:
        """Write the dataset as a CSV file (header line, then one line a row).

        Floats are written with full precision (they read back exactly). Units travel only
        in the column names; use :meth:`save` to keep ``units=`` overrides and the source.

        Args:
            path: the file to write (written atomically).
            measured_column: if given, also write the measured mask as a column of that
                name (1 = measured, 0 = simulated); read it back with
                ``from_csv(..., measured_column=...)``.
        """
        names = list(self._data)
        if measured_column is not None and measured_column in self._data:
            raise DataError(
                f"{_where(self._source)}: measured_column={measured_column!r} is already a "
                "column; choose another name."
            )
        header = names + ([measured_column] if measured_column is not None else [])
        cols = [
            self._data[k].tolist()
            if k == self._group
            else [repr(v) for v in self._data[k].tolist()]
            for k in names
        ]
        if measured_column is not None:
            cols.append(["1" if m else "0" for m in self._measured])

        def write(f: Any) -> None:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(zip(*cols, strict=True))

        _atomic_write(Path(path), write, binary=False)

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        *,
        columns: Sequence[str] | None = None,
        group: str | None = None,
        coordinate: str | None = None,
        units: Mapping[str, str] | None = None,
        measured_column: str | None = None,
        delimiter: str = ",",
    ) -> Dataset:
        """Read a CSV file with a header line of column names.

        Extra columns are fine: with ``columns=`` only those (plus the group, coordinate
        and measured columns) are read, and the others are not parsed at all. Without it,
        every column is read and must be numeric (except the group column). Names and
        values are stripped of surrounding spaces; a UTF-8 byte-order mark is ignored.

        Args:
            path: the CSV file.
            columns: the columns to load; all when None.
            group: the column of group labels (cell, experiment), if any.
            coordinate: the column ordering rows within a group (time, cycle), if any.
            units: column name -> unit, overriding units parsed from the names.
            measured_column: a column of 1/0 (or true/false) flags that becomes the
                measured mask (and is not a data column); all rows are measured otherwise.
            delimiter: the field separator.

        Returns:
            The dataset; its ``source`` is the path.

        Raises:
            DataError: naming the file, column and line (counting the header as line 1)
                for a missing column, an empty, non-numeric, NaN or infinite value, a line
                with the wrong number of fields, duplicated (group, coordinate) rows, or a
                file without data rows.
        """
        path = Path(path)
        src = str(path)
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                records = list(_records(csv.reader(f, delimiter=delimiter)))
        except UnicodeDecodeError as exc:
            raise DataError(
                f"file '{path}' is not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
                "as UTF-8 CSV."
            ) from None
        except csv.Error as exc:
            raise DataError(f"file '{path}' is not valid CSV: {exc}") from None
        if not records:
            raise DataError(
                f"file '{path}' is empty; expected a header line with column names, then "
                "one line a row."
            )
        _, header = records[0]
        names = [h.strip() for h in header]
        for j, h in enumerate(names):
            if not h:
                raise DataError(
                    f"file '{path}', line 1 (the header): column {j + 1} has no name; name it "
                    "or delete the empty column (a trailing delimiter makes one)."
                )
            if h in names[:j]:
                raise DataError(
                    f"file '{path}', line 1 (the header): column name {h!r} occurs twice "
                    f"(columns {names.index(h) + 1} and {j + 1}); rename one."
                )
        body = records[1:]
        if not body:
            raise DataError(f"file '{path}' has a header but no data rows; the data is empty.")
        wanted = _wanted(names, columns, group, coordinate, measured_column, src)
        for line, rec in body:
            if len(rec) != len(names):
                raise DataError(
                    f"file '{path}', line {line} (counting the header as line 1): the line has "
                    f"{len(rec)} fields but the header has {len(names)}; check for a missing "
                    f"or extra {delimiter!r}, or quote values that contain it."
                )
        rows = _Rows([line for line, _ in body])
        raw: dict[str, list[str]] = {}
        for name in wanted:
            j = names.index(name)
            raw[name] = [rec[j].strip() for _, rec in body]
        measured = None
        if measured_column is not None:
            measured = _as_mask(raw.pop(measured_column), src, rows, len(body), measured_column)
        return cls._new(
            raw,
            units=units,
            group=group,
            coordinate=coordinate,
            measured=measured,
            source=src,
            rows=rows,
        )

    @classmethod
    def from_numpy(
        cls,
        path: str | os.PathLike[str],
        *,
        columns: Sequence[str] | None = None,
        group: str | None = None,
        coordinate: str | None = None,
        units: Mapping[str, str] | None = None,
        measured_column: str | None = None,
    ) -> Dataset:
        """Read a NumPy file: ``.npz`` with one named 1-d array a column, or a 2-d ``.npy``.

        Args:
            path: a ``.npz`` file (array names are column names) or a ``.npy`` file
                holding a 2-d array of shape ``(n_rows, n_columns)`` (or 1-d: one column).
                A ``.npz`` written by :meth:`save` is read as by :meth:`load`.
            columns: for ``.npz``, the columns to load (all when None; the group,
                coordinate and measured columns are added); for ``.npy``, required: the
                names of all its columns, in order.
            group: the column of group labels, if any.
            coordinate: the column ordering rows within a group, if any.
            units: column name -> unit, overriding units parsed from the names.
            measured_column: a column of 1/0 flags that becomes the measured mask.

        Returns:
            The dataset; its ``source`` is the path.

        Raises:
            DataError: naming the file, column and row (0-based index, as NumPy counts)
                for missing columns, wrong shapes, NaN or infinite values, duplicated
                (group, coordinate) rows or empty data.
        """
        path = Path(path)
        src = str(path)
        rows = _Rows()
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise DataError(
                    f"file '{path}' could not be read as a NumPy array ({exc}); object "
                    "arrays are not supported, store numbers only."
                ) from None
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise DataError(
                    f"file '{path}' holds an array of shape {arr.shape}; expected a 2-d "
                    "array (rows x columns)."
                )
            if columns is None or len(columns) != arr.shape[1]:
                got = "no names" if columns is None else f"{len(columns)} name(s)"
                raise DataError(
                    f"file '{path}' holds an array with {arr.shape[1]} column(s) but {got} "
                    "were given; pass columns=[...] naming every column, in order."
                )
            raw: dict[str, Any] = {name: arr[:, j] for j, name in enumerate(columns)}
            if len(raw) != len(columns):
                raise DataError(f"file '{path}': columns= repeats a name: {list(columns)}.")
            _wanted(list(raw), None, group, coordinate, measured_column, src)
        else:
            with _open_npz(path) as z:
                if _META_KEY in z.files:
                    ds = cls._from_npz(z, path)
                    if columns is None:
                        return ds
                    keep = _wanted(list(ds), columns, ds.group, ds.coordinate, None, src)
                    return ds._derive({k: ds._data[k] for k in keep}, ds._measured)
                names = list(z.files)
                wanted = _wanted(names, columns, group, coordinate, measured_column, src)
                try:
                    raw = {name: z[name] for name in wanted}
                except ValueError as exc:
                    raise DataError(
                        f"file '{path}' holds an array that cannot be read without pickling "
                        f"({exc}); store numbers or strings only."
                    ) from None
        measured = None
        if measured_column is not None:
            flags = raw.pop(measured_column)
            measured = _as_mask(flags, src, rows, np.shape(flags)[0], measured_column)
        return cls._new(
            raw,
            units=units,
            group=group,
            coordinate=coordinate,
            measured=measured,
            source=src,
            rows=rows,
        )


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each non-blank record of a ``csv.reader``."""
    last = 0
    for rec in reader:
        start = last + 1
        last = reader.line_num
        if rec and any(field.strip() for field in rec):
            yield start, rec


def _wanted(
    names: list[str],
    columns: Sequence[str] | None,
    group: str | None,
    coordinate: str | None,
    measured_column: str | None,
    source: str,
) -> list[str]:
    """The columns to read, in file order, after checking that they all exist."""
    if isinstance(columns, str):
        raise TypeError(f"columns must be a sequence of names, not the string {columns!r}")
    asked: list[tuple[str, str]] = [
        (c, "column") for c in (columns if columns is not None else names)
    ]
    for c, what in ((group, "group"), (coordinate, "coordinate"), (measured_column, "measured")):
        if c is not None:
            asked.append((c, f"{what} column"))
    for c, what in asked:
        if c not in names:
            raise _missing_column(c, names, source, what)
    want = {c for c, _ in asked}
    return [n for n in names if n in want]


class _open_npz:
    """Context manager: np.load of an .npz without pickling, errors as DataError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.z: Any = None

    def __enter__(self) -> Any:
        try:
            self.z = np.load(self.path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (ValueError, OSError) as exc:
            raise DataError(f"file '{self.path}' is not a readable .npz file ({exc}).") from None
        if isinstance(self.z, np.ndarray):
            raise DataError(
                f"file '{self.path}' holds a single array, not named arrays; read a 2-d .npy "
                "with Dataset.from_numpy(path, columns=[...])."
            )
        return self.z

    def __exit__(self, *exc: object) -> None:
        self.z.close()


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
