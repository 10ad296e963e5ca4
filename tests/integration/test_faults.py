"""The bad-input and fault catalogue: what a user gets for a file, argument or cache entry
that is wrong.

One test per case. Every case asserts two things about the message: it names the place
(the file, and the line, column or parameter where there is one) and it says what to do.
A case that the library handles instead of refusing asserts the correct result. Add your
area's cases here; ``docs/reliability.md`` describes the promises they test.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import hybridml as hm
from hybridml.adapters import ProvidesData
from hybridml.exceptions import CacheWarning, DataError, InvalidArgumentError

GOOD_CSV = "t [s],y [m]\n0,1\n1,2\n2,3\n"


def _dataset() -> hm.Dataset:
    return hm.Dataset({"t [s]": np.arange(200.0), "y [m]": np.linspace(0.0, 1.0, 200)})


@dataclass(frozen=True)
class Case:
    """A bad input: ``write(folder)`` makes it and returns the path a user would pass;
    ``read(path)`` is what the user calls. The message must match every pattern of
    ``where`` (the place) and ``remedy`` (what to do)."""

    write: Callable[[Path], Path]
    read: Callable[[Path], object]
    where: tuple[str, ...]
    remedy: str
    error: type[Exception] = DataError


def _text(name: str, text: str, encoding: str = "utf-8") -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(text.encode(encoding))
        return folder / name

    return write


def _bytes(name: str, make: Callable[[], bytes]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(make())
        return folder / name

    return write


def _folder(name: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).mkdir()
        (folder / name / "cells.csv").write_text(GOOD_CSV)
        return folder / name

    return write


def _saved(name: str, cut: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    """A file written by Dataset.save, then damaged by ``cut``."""

    def write(folder: Path) -> Path:
        _dataset().save(folder / name)
        (folder / name).write_bytes(cut((folder / name).read_bytes()))
        return folder / name

    return write


def _npz(name: str, **arrays: object) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        np.savez(folder / name, **arrays)  # type: ignore[arg-type]
        return folder / name

    return write


def _plain_npz_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, a=np.arange(500.0), b=np.ones(500))
    return buf.getvalue()


def _npy_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ones((100, 2)))
    return buf.getvalue()


def from_csv(path: Path) -> object:
    return hm.Dataset.from_csv(path)


def from_numpy(path: Path) -> object:
    return hm.Dataset.from_numpy(path)


def load(path: Path) -> object:
    return hm.Dataset.load(path)


def from_npy(path: Path) -> object:
    return hm.Dataset.from_numpy(path, columns=["a [m]", "b [m]"])


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


CASES: dict[str, Case] = {
    # ---- a CSV file that is not (readable) CSV text
    "csv-is-a-folder": Case(
        _folder("cells"), from_csv, ("'.*cells' is a folder",), "pass the file itself.*cells.csv"
    ),
    "csv-is-binary": Case(
        _bytes("data.csv", lambda: bytes(range(256)) * 8),
        from_csv,
        ("data.csv", "line 1, column 1"),
        "pass the CSV file",
    ),
    "csv-latin-1-header": Case(
        _text("data.csv", "t [s],Température [°C]\n0,1\n", "latin-1"),
        from_csv,
        ("data.csv", "line 1, column 2", "Temp"),
        "encoding='cp1252' or encoding='latin-1'",
    ),
    "csv-latin-1-value": Case(
        _text("data.csv", "t [s],site\n0,a\n1,Zürich\n", "latin-1"),
        from_csv,
        ("data.csv", "line 3, column 2 \\('site'\\)"),
        "save it as UTF-8",
    ),
    "csv-gzip-not-named-gz": Case(
        _bytes("data.csv", lambda: gzip.compress(GOOD_CSV.encode())),
        from_csv,
        ("data.csv",),
        "rename it to 'data.csv.gz'",
    ),
    "csv-gz-truncated": Case(
        _bytes("data.csv.gz", lambda: half(gzip.compress((GOOD_CSV * 50).encode()))),
        from_csv,
        ("data.csv.gz",),
        "compress or download it again",
    ),
    "csv-is-a-zip": Case(
        _bytes("data.csv", _plain_npz_bytes),
        from_csv,
        ("data.csv",),
        "read an .npz with Dataset.from_numpy, export a spreadsheet as CSV",
    ),
    "csv-is-npy": Case(
        _bytes("data.csv", _npy_bytes),
        from_csv,
        ("data.csv",),
        "Dataset.from_numpy\\(path, columns=",
    ),
    "csv-utf-16": Case(
        _text("data.csv", GOOD_CSV, "utf-16"), from_csv, ("data.csv",), "encoding='utf-16'"
    ),
    "csv-nul-byte": Case(
        _text("data.csv", "t [s],y [m]\n0,1\x00\n"),
        from_csv,
        ("data.csv", "line 2, column 2"),
        "pass the CSV file",
    ),
    "csv-empty": Case(_text("data.csv", ""), from_csv, ("data.csv",), "expected a header line"),
    "csv-header-only": Case(
        _text("data.csv", "t [s],y [m]\n"),
        from_csv,
        ("data.csv",),
        "add one line a row below the header",
    ),
    # ---- values that are not allowed
    "csv-nan": Case(
        _text("data.csv", "t [s],y [m]\n0,1\n1,nan\n"),
        from_csv,
        ("data.csv", "'y \\[m\\]'", "line 3"),
        "Remove the row or fill in a finite value",
    ),
    "csv-inf": Case(
        _text("data.csv", "t [s],y [m]\n0,-inf\n1,2\n"),
        from_csv,
        ("data.csv", "'y \\[m\\]'", "line 2"),
        "Remove the row or fill in a finite value",
    ),
    "csv-1e300": Case(
        _text("data.csv", "t [s],y [m]\n0,1\n1,1e300\n"),
        from_csv,
        ("data.csv", "'y \\[m\\]'", "line 3", "1e\\+300"),
        "Check the value for a typo and the column for its unit",
    ),
    "csv-1e400-overflows": Case(
        _text("data.csv", "t [s],y [m]\n0,1e400\n"),
        from_csv,
        ("data.csv", "'y \\[m\\]'", "line 2"),
        "fill in a finite value",
    ),
    "csv-not-a-number": Case(
        _text("data.csv", "t [s],y [m]\n0,1\n1,n/a\n"),
        from_csv,
        ("data.csv", "'y \\[m\\]'", "line 3", "'n/a'"),
        "Fix or remove the value",
    ),
    "csv-missing-field": Case(
        _text("data.csv", "t [s],y [m]\n0,1\n1\n"),
        from_csv,
        ("data.csv", "line 3"),
        "check for a missing or extra ','",
    ),
    # ---- NumPy files
    "npz-truncated-load": Case(
        _saved("data.npz", half), load, ("data.npz", "truncated"), "write it again"
    ),
    "npz-truncated-from-numpy": Case(
        _bytes("data.npz", lambda: half(_plain_npz_bytes())),
        from_numpy,
        ("data.npz", "truncated"),
        "write it again",
    ),
    "npz-empty": Case(
        _saved("data.npz", lambda data: b""),
        load,
        ("data.npz", "empty \\(0 bytes\\)"),
        "write it again",
    ),
    "npz-is-csv-text": Case(
        _text("data.npz", GOOD_CSV),
        from_numpy,
        ("data.npz",),
        "read a CSV file with Dataset.from_csv",
    ),
    "npz-gzip-compressed": Case(
        _bytes("data.npz", lambda: gzip.compress(_plain_npz_bytes())),
        from_numpy,
        ("data.npz",),
        "decompress it",
    ),
    "npz-is-a-folder": Case(_folder("run"), load, ("'.*run' is a folder",), "pass the file itself"),
    "npy-empty": Case(
        _bytes("data.npy", lambda: b""), from_npy, ("data.npy", "empty"), "write it again"
    ),
    "npy-truncated": Case(
        _bytes("data.npy", lambda: _npy_bytes()[:300]),
        from_npy,
        ("data.npy", "truncated"),
        "write it again with numpy.save",
    ),
    "npz-nan": Case(
        _npz("data.npz", a=np.array([1.0, np.nan])),
        from_numpy,
        ("data.npz", "column 'a', row 1"),
        "fill in a finite value",
    ),
    "npz-1e300": Case(
        _npz("data.npz", a=np.array([1.0, -1e300])),
        from_numpy,
        ("data.npz", "column 'a', row 1"),
        "rescale the column",
    ),
    # ---- arguments
    "csv-unknown-encoding": Case(
        _text("data.csv", GOOD_CSV),
        lambda p: hm.Dataset.from_csv(p, encoding="utf8x"),
        ("encoding='utf8x'",),
        "use e.g. 'utf-8'",
        InvalidArgumentError,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_message_naming_the_place_and_the_remedy(
    tmp_path: Path, case: str
) -> None:
    c = CASES[case]
    path = c.write(tmp_path)
    with pytest.raises(c.error) as info:
        c.read(path)
    message = str(info.value)
    assert isinstance(info.value, hm.HybridMLError), "not one of the library's errors"
    for where in c.where:
        assert re.search(where, message), f"the message does not name {where!r}: {message}"
    assert re.search(c.remedy, message), f"the message does not say {c.remedy!r}: {message}"
    assert "\n" not in message, "one line: the command line prints it as it is"


def test_a_gzip_csv_named_gz_is_read(tmp_path: Path) -> None:
    # handled, not refused: the same data as the plain file
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(GOOD_CSV.encode()))
    (tmp_path / "data.csv").write_text(GOOD_CSV)
    assert hm.Dataset.from_csv(tmp_path / "data.csv.gz") == hm.Dataset.from_csv(
        tmp_path / "data.csv"
    )


# ---------------------------------------------------------------- sweep caches


class Square(ProvidesData):
    name = "square-test"

    def __repr__(self) -> str:
        return "Square()"

    def simulate(self, params: Mapping[str, float] | None = None) -> hm.Dataset:
        k = float((params or {}).get("k", 1.0))
        return hm.Dataset({"t [s]": np.arange(4.0), "y [1]": k * np.arange(4.0) ** 2})


def test_sweep_cache_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file")
    with pytest.raises(InvalidArgumentError) as info:
        Square().sweep([{"k": 1.0}], cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "cache_dir" in message and f"{tmp_path / 'cache'}" in message
    assert "pass a folder" in message


@pytest.mark.parametrize(
    "damage",
    {
        "truncated": half,
        "empty": lambda data: b"",
        "garbage": lambda data: b"\x00garbage" * 20,
    }.items(),
    ids=lambda d: d[0],
)
def test_sweep_cache_entry_damaged(
    tmp_path: Path, damage: tuple[str, Callable[[bytes], bytes]]
) -> None:
    cache = tmp_path / "cache"
    first = Square().sweep([{"k": 2.0}], cache_dir=cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(damage[1](entry.read_bytes()))
    with pytest.warns(CacheWarning) as record:
        second = Square().sweep([{"k": 2.0}], cache_dir=cache)
    message = str(record[0].message)
    assert f"'{entry}'" in message  # names the file
    assert "moved to" in message and ".corrupt" in message and "run again" in message
    assert second.results == first.results  # and the result is right: recomputed
