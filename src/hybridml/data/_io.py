"""Reading and writing datasets: CSV, NumPy (``.npz``/``.npy``) and the ``.npz`` format of
:meth:`~hybridml.Dataset.save`; every file is written atomically.

:class:`~hybridml.Dataset`'s file methods (``save``, ``load``, ``to_csv``, ``from_csv``,
``from_numpy``) delegate to the functions here; their docstrings are the contract.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import atomic_write
from ..exceptions import DataError, InvalidArgumentError, InvalidTypeError
from ._validate import _as_mask, _missing_column, _Rows, _where

if TYPE_CHECKING:
    from ._dataset import Dataset

__all__: list[str] = []

_FORMAT = "hybridml.Dataset"
_FORMAT_VERSION = 1
_META_KEY = "__hybridml_dataset__"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
#: what reading a damaged NumPy file can raise (numpy, zipfile and zlib errors)
_DAMAGED = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def save(ds: Dataset, path: str | os.PathLike[str]) -> None:
    """Write ``ds`` to ``path`` (see :meth:`Dataset.save`)."""
    names = list(ds._data)
    meta = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "columns": names,
        "units": ds._units,
        "group": ds._group,
        "coordinate": ds._coordinate,
        "source": ds._source,
    }
    arrays: dict[str, Any] = {f"c{i}": ds._data[k] for i, k in enumerate(names)}
    arrays["measured"] = ds._measured
    arrays[_META_KEY] = np.asarray(json.dumps(meta))
    atomic_write(Path(path), lambda f: np.savez(f, **arrays), binary=True)


def load(cls: type[Dataset], path: str | os.PathLike[str]) -> Dataset:
    """Read a file written by :func:`save` (see :meth:`Dataset.load`)."""
    path = Path(path)
    with _open_npz(path) as z:
        if _META_KEY not in z.files:
            raise DataError(
                f"file '{path}' was not written by Dataset.save (it has no "
                f"{_META_KEY!r} entry); read plain NumPy files with Dataset.from_numpy."
            )
        return from_npz(cls, z, path)


def from_npz(cls: type[Dataset], z: Any, path: Path) -> Dataset:
    """The dataset stored in an open ``.npz`` that :func:`save` wrote."""
    try:
        meta = json.loads(str(z[_META_KEY][()]))
        if meta.get("format") != _FORMAT:
            raise InvalidArgumentError("unknown format")
        if meta.get("version", 0) > _FORMAT_VERSION:
            raise DataError(
                f"file '{path}' was written by a newer hybridml (format version "
                f"{meta['version']}); upgrade hybridml to read it."
            )
        cols = {name: z[f"c{i}"] for i, name in enumerate(meta["columns"])}
        measured = z["measured"]
    except (KeyError, TypeError, *_DAMAGED) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"file '{path}' is a damaged Dataset file ({exc}); write it again with Dataset.save."
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


def to_csv(
    ds: Dataset, path: str | os.PathLike[str], *, measured_column: str | None = None
) -> None:
    """Write ``ds`` as CSV (see :meth:`Dataset.to_csv`)."""
    names = list(ds._data)
    if measured_column is not None and measured_column in ds._data:
        raise DataError(
            f"{_where(ds._source)}: measured_column={measured_column!r} is already a "
            "column; choose another name."
        )
    header = names + ([measured_column] if measured_column is not None else [])
    cols = [
        ds._data[k].tolist() if k == ds._group else [repr(v) for v in ds._data[k].tolist()]
        for k in names
    ]
    if measured_column is not None:
        cols.append(["1" if m else "0" for m in ds._measured])

    def write(f: Any) -> None:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(zip(*cols, strict=True))

    atomic_write(Path(path), write)


def from_csv(
    cls: type[Dataset],
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
    """Read a CSV file (see :meth:`Dataset.from_csv`)."""
    path = Path(path)
    src = str(path)
    text = _read_text(path, encoding, delimiter)
    try:
        records = list(_records(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)))
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
        raise DataError(
            f"file '{path}' has a header but no data rows; add one line a row below the "
            "header, or pass the file that holds the data."
        )
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


def from_numpy(
    cls: type[Dataset],
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    group: str | None = None,
    coordinate: str | None = None,
    units: Mapping[str, str] | None = None,
    measured_column: str | None = None,
) -> Dataset:
    """Read a ``.npz`` or ``.npy`` file (see :meth:`Dataset.from_numpy`)."""
    path = Path(path)
    src = str(path)
    rows = _Rows()
    if path.suffix.lower() == ".npy":
        _check_numpy_file(path)
        try:
            arr = np.load(path, allow_pickle=False)
        except _DAMAGED as exc:
            if "allow_pickle" in str(exc):
                raise DataError(
                    f"file '{path}' holds an object array, which is read only by unpickling; "
                    "store numbers only (numpy.save of a float array)."
                ) from None
            raise DataError(
                f"file '{path}' is a truncated or damaged .npy file ({exc}); write it again "
                "with numpy.save."
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
                ds = from_npz(cls, z, path)
                if columns is None:
                    return ds
                keep = _wanted(list(ds), columns, ds.group, ds.coordinate, None, src)
                return ds._derive({k: ds._data[k] for k in keep}, ds._measured)
            names = list(z.files)
            wanted = _wanted(names, columns, group, coordinate, measured_column, src)
            try:
                raw = {name: z[name] for name in wanted}
            except _DAMAGED as exc:
                if "allow_pickle" in str(exc):
                    raise DataError(
                        f"file '{path}' holds an array that cannot be read without pickling "
                        f"({exc}); store numbers or strings only."
                    ) from None
                raise DataError(
                    f"file '{path}' is a truncated or damaged .npz file ({exc}); write it "
                    "again (Dataset.save or numpy.savez)."
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
        raise InvalidTypeError(f"columns must be a sequence of names, not the string {columns!r}")
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
        self.f: Any = None

    def __enter__(self) -> Any:
        _check_numpy_file(self.path)
        # our own file object: np.load leaves its own open when the zip is damaged
        self.f = open(self.path, "rb")  # closed in __exit__, or below on an error
        try:
            self.z = np.load(self.f, allow_pickle=False)
        except _DAMAGED as exc:
            self.f.close()
            raise DataError(
                f"file '{self.path}' is a truncated or damaged NumPy file "
                f"({type(exc).__name__}: {exc}); write it again (Dataset.save or numpy.savez)."
            ) from None
        if isinstance(self.z, np.ndarray):
            self.f.close()
            raise DataError(
                f"file '{self.path}' holds a single array, not named arrays; read a 2-d .npy "
                "with Dataset.from_numpy(path, columns=[...])."
            )
        return self.z

    def __exit__(self, *exc: object) -> None:
        self.z.close()
        self.f.close()


# ------------------------------------------------------------ what a file really is


def _not_a_folder(path: Path, kind: str) -> None:
    """Refuse a folder given where a file belongs, listing files that might be meant."""
    if not path.is_dir():
        return
    names = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    hint = f" It holds {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}." if names else ""
    raise DataError(f"'{path}' is a folder, not a {kind} file; pass the file itself.{hint}")


def _check_numpy_file(path: Path) -> None:
    """Refuse, by its first bytes, a file that is empty or not NumPy's (.npz or .npy)."""
    _not_a_folder(path, "NumPy")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise DataError(
            f"file '{path}' is empty (0 bytes): it was not written completely; write it "
            "again (Dataset.save, numpy.savez or numpy.save)."
        )
    if head.startswith((*_ZIP_MAGICS, _NPY_MAGIC)):
        return
    if head.startswith(_GZIP_MAGIC):
        what = "it is gzip-compressed; decompress it (gunzip) first"
    elif all(b in b"\t\n\r" or 32 <= b < 127 or b >= 128 for b in head):
        what = "it looks like text: read a CSV file with Dataset.from_csv"
    else:
        what = "write it again with Dataset.save or numpy.savez"
    raise DataError(
        f"file '{path}' is not a NumPy file (.npz or .npy): it does not start with their "
        f"signature; {what}."
    )


def _read_text(path: Path, encoding: str, delimiter: str) -> str:
    """The text of a CSV file; ``.gz`` files are decompressed. Anything that is not text
    in ``encoding`` is refused naming the file, and line and column where there is one."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise InvalidArgumentError(
            f"encoding={encoding!r} is not a text encoding Python knows; use e.g. 'utf-8', "
            "'cp1252' or 'latin-1'."
        ) from None
    _not_a_folder(path, "CSV")
    raw = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"file '{path}' ends in .gz but is not a complete gzip file ({exc}); "
                "compress or download it again (or rename it if it is plain CSV text)."
            ) from None
    elif raw.startswith(_GZIP_MAGIC):
        raise DataError(
            f"file '{path}' is gzip-compressed but its name does not end in .gz; rename it "
            f"to '{path.name}.gz' (hybridml reads .gz files directly) or decompress it (gunzip)."
        )
    if raw.startswith(_ZIP_MAGICS):
        raise DataError(
            f"file '{path}' is a zip archive (an .npz, .xlsx or .zip file), not CSV text; read "
            "an .npz with Dataset.from_numpy, export a spreadsheet as CSV (UTF-8), or unzip it."
        )
    if raw.startswith(_NPY_MAGIC):
        raise DataError(
            f"file '{path}' is a NumPy .npy file, not CSV text; read it with "
            "Dataset.from_numpy(path, columns=[...])."
        )
    wide = codec.startswith(("utf-16", "utf-32"))  # NUL bytes are normal there
    if not wide and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(
            f"file '{path}' is UTF-16 text (it starts with a UTF-16 byte-order mark); pass "
            "encoding='utf-16' or save it as UTF-8 CSV."
        )
    if not wide and _looks_binary(raw[:8192]):
        line, col = _line_col(raw, raw.find(b"\x00") if b"\x00" in raw[:8192] else 0, delimiter)
        raise DataError(
            f"file '{path}' is a binary file, not CSV text (binary bytes from line {line}, "
            f"column {col}); pass the CSV file (text: a header line, then one line a row)."
        )
    try:
        text = raw.decode("utf-8-sig" if codec == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw, exc.start, delimiter)
        names = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").split(delimiter)
        name = f" ({names[col - 1].strip()!r})" if col <= len(names) else ""
        hint = (
            "if it was saved as Windows-1252 or Latin-1 (e.g. by Excel), pass "
            "encoding='cp1252' or encoding='latin-1', or save it as UTF-8 CSV"
            if codec == "utf-8"
            else f"pass the encoding the file was saved in (not {encoding!r}), or save it as "
            "UTF-8 CSV"
        )
        raise DataError(
            f"file '{path}', line {line}, column {col}{name}: byte 0x{raw[exc.start]:02x} is not "
            f"{'UTF-8' if codec == 'utf-8' else encoding} text ({exc.reason}); {hint}."
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(
            f"file '{path}', line {line}: the line holds a NUL character (binary data); the "
            "file is damaged or not CSV text: export the data as CSV again."
        )
    return text


def _looks_binary(head: bytes) -> bool:
    """A NUL byte, or more than 10 % control bytes (text has almost none)."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in b"\t\n\r\f\v")
    return control > 0.1 * len(head)


def _line_col(raw: bytes, offset: int, delimiter: str) -> tuple[int, int]:
    """(line, column), 1-based, of byte ``offset``: columns counted by delimiters."""
    start = raw.rfind(b"\n", 0, offset) + 1
    sep = delimiter.encode("utf-8", errors="replace") or b","
    return raw.count(b"\n", 0, offset) + 1, raw[start:offset].count(sep) + 1
