"""The file methods of :class:`~hybridml.Dataset` (a mixin): ``save``/``load``, CSV,
NumPy and pandas. The reading and writing itself lives in ``_io`` and ``_frames``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from . import _io

if TYPE_CHECKING:
    from ._dataset import Dataset

__all__ = ["DatasetFiles"]


class DatasetFiles:
    """Methods of :class:`~hybridml.Dataset` that read and write files and frames."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the dataset to a ``.npz`` file that :meth:`load` reads back exactly.

        Everything is kept: columns (in order), units, group labels, coordinate, measured
        mask and source. The file is written atomically (temporary file, then rename), so
        an interrupted save never leaves a truncated file. No pickling is used.

        Args:
            path: the file to write (conventionally ending in ``.npz``); written as given.
        """
        _io.save(cast("Dataset", self), path)

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
        return _io.load(cast("type[Dataset]", cls), path)

    @classmethod
    def from_frame(cls, frame: Any, **options: Any) -> Dataset:
        """A dataset of a pandas DataFrame's columns, by name (units in the names).

        Takes the options of :meth:`from_csv` (``columns``, ``group``, ``coordinate``,
        ``units``, ``measured_column``) and ``source`` (default ``"<DataFrame>"``); the same
        validation and :class:`DataError` apply.
        """
        from ._frames import from_frame

        return from_frame(cast("type[Dataset]", cls), frame, **options)

    def to_frame(self, *, measured_column: str | None = None) -> Any:
        """The dataset as a pandas DataFrame: one column a column, a unit given by ``units=``
        added to the name as ``"name [unit]"``; ``measured_column`` adds the mask."""
        from ._frames import to_frame

        return to_frame(cast("Dataset", self), measured_column=measured_column)

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
        _io.to_csv(cast("Dataset", self), path, measured_column=measured_column)

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
        encoding: str = "utf-8",
    ) -> Dataset:
        """Read a CSV file with a header line of column names.

        Extra columns are fine: with ``columns=`` only those (plus the group, coordinate
        and measured columns) are read, and the others are not parsed at all. Without it,
        every column is read and must be numeric (except the group column). Names and
        values are stripped of surrounding spaces; a UTF-8 byte-order mark is ignored.
        A file whose name ends in ``.gz`` is decompressed (gzip) as it is read.

        Args:
            path: the CSV file (or ``.csv.gz``).
            columns: the columns to load; all when None.
            group: the column of group labels (cell, experiment), if any.
            coordinate: the column ordering rows within a group (time, cycle), if any.
            units: column name -> unit, overriding units parsed from the names.
            measured_column: a column of 1/0 (or true/false) flags that becomes the
                measured mask (and is not a data column); all rows are measured otherwise.
            delimiter: the field separator.
            encoding: the file's text encoding (e.g. ``"cp1252"`` or ``"latin-1"`` for
                files some spreadsheet programs save).

        Returns:
            The dataset; its ``source`` is the path.

        Raises:
            DataError: naming the file, column and line (counting the header as line 1)
                for a missing column, an empty, non-numeric, NaN, infinite or huge
                (beyond float32) value, a line with the wrong number of fields, duplicated
                (group, coordinate) rows, or a file without data rows; naming the file (and
                line and column where there is one) for a folder, an empty file, a binary
                file, a zip or NumPy file, gzip data whose name does not end in ``.gz``,
                or bytes that are not text in ``encoding``.
            FileNotFoundError: the file does not exist.
        """
        return _io.from_csv(
            cast("type[Dataset]", cls),
            path,
            columns=columns,
            group=group,
            coordinate=coordinate,
            units=units,
            measured_column=measured_column,
            delimiter=delimiter,
            encoding=encoding,
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
                for missing columns, wrong shapes, NaN, infinite or huge (beyond float32)
                values, duplicated (group, coordinate) rows or empty data; naming the file
                for a folder, an empty, truncated or damaged file, or one that is not
                NumPy's (CSV text, gzip data).
            FileNotFoundError: the file does not exist.
        """
        return _io.from_numpy(
            cast("type[Dataset]", cls),
            path,
            columns=columns,
            group=group,
            coordinate=coordinate,
            units=units,
            measured_column=measured_column,
        )
