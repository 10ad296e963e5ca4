"""Datasets: named columns with units, group labels and a measured/simulated mask.

A :class:`Dataset` is the one container that measurements (CSV, NumPy files), simulator
outputs and predictions share. Column names carry their units the PyBaMM way
(``"Voltage [V]"``), so measured, simulated and predicted quantities line up by name.
Every loader validates what it reads and raises :class:`DataError` naming the file, the
column and the row, and saying what to do. The validation lives in ``_validate``; the file
methods (a mixin) in ``_files``, which delegate to ``_io`` and ``_frames``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..exceptions import DataError, InvalidArgumentError, InvalidTypeError, did_you_mean
from ._files import DatasetFiles
from ._validate import (
    _label,
    _missing_column,
    _Rows,
    _where,
    check_concatenable,
    row_indices,
    validate_columns,
)

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["Dataset"]


class Dataset(DatasetFiles, Mapping[str, np.ndarray]):
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
        data, unit_map, mask = validate_columns(
            columns,
            units=units,
            group=group,
            coordinate=coordinate,
            measured=measured,
            source=source,
            rows=rows,
        )
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
            raise InvalidArgumentError(
                "Dataset.array: names is empty; pass at least one column name."
            )
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
        idx = row_indices(index, self.n_rows, self._source)
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
                hint = did_you_mean(str(lab), known, cutoff=0.5)
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
            raise InvalidTypeError(
                f"Dataset.concat: expected a Dataset, got {type(other).__name__}"
            )
        check_concatenable(self, other)
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
