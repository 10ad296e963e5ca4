"""Dataset: construction, units, loaders (CSV, NumPy), validation messages, round trips."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hybridml as hm
from hybridml.data import MissingColumnError, parse_unit


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _cells() -> hm.Dataset:
    return hm.Dataset(
        {
            "cell": ["A", "A", "A", "B", "B"],
            "Cycle": [0, 1, 2, 0, 1],
            "Capacity [A.h]": [2.0, 1.9, 1.85, 2.1, 2.0],
            "x": [0.1, 0.2, 0.3, 0.4, 0.5],
        },
        units={"x": "m"},
        group="cell",
        coordinate="Cycle",
        measured=[True, True, False, True, False],
        source="<test cells>",
    )


CSV = (
    "cell,Time [s],Voltage [V],Current [A],note\n"
    "A,0,4.20,1.0,fresh\n"
    "A,10,4.10,1.0,\n"
    "B,0,4.15,1.0,second cell\n"
    "B,10,4.05,1.0,x\n"
)


# ------------------------------------------------------------------ construction, units


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("Capacity [A.h]", "A.h"),
        ("Voltage [V]", "V"),
        ("Temperature [K] ", "K"),
        ("x", ""),
        ("ratio [-]", "-"),
        ("a [b] [c]", "c"),  # the final brackets hold the unit
        ("weird]", ""),
    ],
)
def test_parse_unit(name: str, unit: str) -> None:
    assert parse_unit(name) == unit


def test_properties_units_groups_and_mask() -> None:
    ds = _cells()
    assert ds.n_rows == 5
    assert len(ds) == 4 and ds.columns == ("cell", "Cycle", "Capacity [A.h]", "x")
    # unit parsed from the name, overridden by units=, empty when absent and for the group
    assert ds.units == {"cell": "", "Cycle": "", "Capacity [A.h]": "A.h", "x": "m"}
    assert ds.group == "cell" and ds.coordinate == "Cycle" and ds.source == "<test cells>"
    assert ds.measured.tolist() == [True, True, False, True, False]
    assert ds["cell"].tolist() == ["A", "A", "A", "B", "B"]
    assert ds["Capacity [A.h]"].dtype == np.float64
    assert "x" in ds and "y" not in ds
    assert "Dataset(n_rows=5" in repr(ds)


def test_measured_defaults_to_all_true() -> None:
    ds = hm.Dataset({"t [s]": [0.0, 1.0, 2.0]})
    assert ds.measured.dtype == bool and ds.measured.all()


def test_columns_are_copies_so_the_dataset_cannot_be_changed() -> None:
    ds = _cells()
    col = ds["x"]
    col[0] = 99.0
    ds.measured[0] = False
    assert ds["x"][0] == 0.1 and ds.measured[0]
    # the copy is writable: torch.as_tensor must not warn about read-only arrays
    assert torch.as_tensor(ds["x"]).shape == (5,)


def test_numeric_group_labels_become_strings() -> None:
    # integral floats (e.g. from a 2-d numeric array) read as "1", not "1.0"
    ds = hm.Dataset({"cell": [1.0, 1.0, 2.0], "t": [0, 1, 0]}, group="cell", coordinate="t")
    assert ds.groups() == ["1", "2"]
    assert ds.where_group(2).n_rows == 1
    assert ds.where_group("1").n_rows == 2


def test_pickle_round_trip() -> None:
    # sweeps return datasets from worker processes
    ds = _cells()
    assert pickle.loads(pickle.dumps(ds)) == ds


# ------------------------------------------------------------------ validation of arrays


@pytest.mark.parametrize(
    ("columns", "kwargs", "fragments"),
    [
        ({"a": [1.0, np.nan, 3.0]}, {}, ["column 'a'", "row 1 (0-based index)", "NaN"]),
        ({"a": [1.0, 2.0, np.inf]}, {}, ["column 'a'", "row 2 (0-based index)", "infinite"]),
        ({"a": [1.0, "two", 3.0]}, {}, ["column 'a'", "row 1 (0-based index)", "'two'"]),
        ({"a": [1.0, 2.0], "b": [1.0]}, {}, ["column 'b'", "1 rows", "'a'", "2"]),
        ({"a": [[1.0, 2.0]]}, {}, ["column 'a'", "1-d"]),
        ({"a": []}, {}, ["no rows"]),
        ({}, {}, ["no columns"]),
        (
            {"g": ["A", "B", "A"], "t": [0.0, 0.0, 0.0]},
            {"group": "g", "coordinate": "t"},
            ["rows 0 and 2 (0-based indices)", "'g' = 'A'", "'t' = 0.0", "Remove the duplicate"],
        ),
        ({"g": ["A", ""], "t": [0.0, 1.0]}, {"group": "g"}, ["'g'", "row 1", "missing"]),
        ({"a": [1.0]}, {"group": "cel"}, ["group column 'cel'", "Available columns: 'a'"]),
        ({"a": [1.0]}, {"units": {"b": "m"}}, ["column in units= 'b'"]),
        ({"a": [1.0, 2.0]}, {"measured": [1, 0, 1]}, ["measured", "2 rows"]),
        ({"a": [1.0, 2.0]}, {"measured": [1, "maybe"]}, ["row 1", "'maybe'", "1/0"]),
        ({"t": [1.0, 2.0]}, {"group": "t", "coordinate": "t"}, ["both 't'"]),
    ],
)
def test_array_validation_errors(
    columns: dict[str, list[object]], kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(hm.DataError) as info:
        hm.Dataset(columns, source="<my arrays>", **kwargs)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "<my arrays>" in msg or "no columns" in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_duplicates_without_group_use_the_coordinate_alone() -> None:
    with pytest.raises(hm.DataError, match=r"rows 1 and 3 \(0-based indices\)"):
        hm.Dataset({"t": [0.0, 1.0, 2.0, 1.0]}, coordinate="t")
    # the same coordinate in different groups is fine
    ds = hm.Dataset({"g": ["a", "b"], "t": [1.0, 1.0]}, group="g", coordinate="t")
    assert ds.n_rows == 2


# ------------------------------------------------------------------ CSV


def test_from_csv_reads_columns_units_and_groups(tmp_path: Path) -> None:
    path = _write(tmp_path / "cells.csv", CSV)
    ds = hm.Dataset.from_csv(
        path, columns=["Voltage [V]"], group="cell", coordinate="Time [s]", units={"Time [s]": "h"}
    )
    # only the asked column plus group/coordinate, in file order; the text column
    # "note" (with an empty value) is never parsed
    assert ds.columns == ("cell", "Time [s]", "Voltage [V]")
    assert ds.units == {"cell": "", "Time [s]": "h", "Voltage [V]": "V"}
    assert ds["Voltage [V]"].tolist() == [4.20, 4.10, 4.15, 4.05]
    assert ds.groups() == ["A", "B"]
    assert ds.source == str(path)


def test_from_csv_all_columns_must_be_numeric(tmp_path: Path) -> None:
    path = _write(tmp_path / "cells.csv", CSV)
    with pytest.raises(hm.DataError) as info:
        hm.Dataset.from_csv(path, group="cell")
    msg = str(info.value)
    assert "cells.csv" in msg and "column 'note'" in msg
    assert "line 2 (counting the header as line 1)" in msg and "'fresh'" in msg


def test_from_csv_tolerates_bom_spaces_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeff t [s] , y \n0, 1.5\n\n1 ,2.5\n\n".encode())
    ds = hm.Dataset.from_csv(path)
    assert ds.columns == ("t [s]", "y")
    assert ds["y"].tolist() == [1.5, 2.5]


CSV_ERRORS = [
    # (file text, from_csv kwargs, expected fragments besides the file name)
    (
        CSV,
        {"columns": ["Voltag [V]"]},
        ["column 'Voltag [V]' does not exist", "Did you mean 'Voltage [V]'", "'Current [A]'"],
    ),
    (CSV, {"group": "cells"}, ["group column 'cells'", "Did you mean 'cell'"]),
    (
        "t [s],y\n0,1\n1,nan\n",
        {},
        ["column 'y'", "line 3 (counting the header as line 1)", "NaN", "(nan)"],
    ),
    ("t [s],y\n0,1\n1,2\n2,-inf\n", {}, ["column 'y'", "line 4", "infinite"]),
    ("t [s],y\n0,1\n1,1.2.3\n", {}, ["column 'y'", "line 3", "'1.2.3' is not a number"]),
    ("t [s],y\n0,1\n1,\n", {}, ["column 'y'", "line 3", "empty"]),
    ("t [s],y\n0,1\n\n1,2,3\n", {}, ["line 4", "3 fields", "header has 2"]),
    (
        "g,t [s],y\nA,0,1\nB,0,2\n\nA,0,3\n",
        {"group": "g", "coordinate": "t [s]"},
        ["lines 2 and 5 (counting the header as line 1)", "'g' = 'A'", "'t [s]' = 0.0"],
    ),
    ("", {}, ["is empty", "header"]),
    ("t [s],y\n", {}, ["no data rows"]),
    ("t,y,t\n1,2,3\n", {}, ["'t' occurs twice", "columns 1 and 3"]),
    ("t,y,\n1,2,\n", {}, ["column 3 has no name"]),
    ("t,m\n0,1\n1,maybe\n", {"measured_column": "m"}, ["column 'm'", "line 3", "'maybe'"]),
]


@pytest.mark.parametrize(("text", "kwargs", "fragments"), CSV_ERRORS)
def test_from_csv_errors_name_file_column_and_line(
    tmp_path: Path, text: str, kwargs: dict[str, object], fragments: list[str]
) -> None:
    path = _write(tmp_path / "measurements.csv", text)
    with pytest.raises(hm.DataError) as info:
        hm.Dataset.from_csv(path, **kwargs)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "measurements.csv" in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_missing_column_error_is_also_a_key_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "cells.csv", CSV)
    with pytest.raises(KeyError):
        hm.Dataset.from_csv(path, columns=["nope"])
    with pytest.raises(MissingColumnError):
        hm.Dataset.from_csv(path, coordinate="Time")


def test_from_csv_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("t,Temp [\xb0C]\n1,2\n".encode("latin-1"))
    with pytest.raises(hm.DataError, match=r"latin\.csv.*line 1, column 2.*not UTF-8"):
        hm.Dataset.from_csv(path)
    # the remedy the message names works: the file reads with its encoding
    ds = hm.Dataset.from_csv(path, encoding="latin-1")
    assert ds.columns == ("t", "Temp [\xb0C]") and ds.units["Temp [\xb0C]"] == "\xb0C"


def test_from_csv_reads_gzip_by_name(tmp_path: Path) -> None:
    import gzip

    text = "t [s],y [m]\n0,1\n1,2.5\n"
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "d.csv").write_text(text)
    assert hm.Dataset.from_csv(tmp_path / "d.csv.gz") == hm.Dataset.from_csv(tmp_path / "d.csv")


def test_csv_round_trip_is_exact(tmp_path: Path) -> None:
    ds = _cells().with_columns({"noise [V]": np.array([0.1 + 0.2, 1 / 3, 1e-300, -2.5e17, 7.0])})
    path = tmp_path / "out" / "cells.csv"  # the folder is created
    ds.to_csv(path, measured_column="is measured")
    back = hm.Dataset.from_csv(
        path, group="cell", coordinate="Cycle", measured_column="is measured", units={"x": "m"}
    )
    assert back == ds  # floats are written with repr, so they read back bit for bit
    assert back.measured.tolist() == ds.measured.tolist()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


# ------------------------------------------------------------------ NumPy files


def test_save_load_round_trips_everything(tmp_path: Path) -> None:
    ds = _cells()
    path = tmp_path / "cells.npz"
    ds.save(path)
    back = hm.Dataset.load(path)
    assert back == ds
    assert back.columns == ds.columns and back.units == ds.units
    assert back.group == "cell" and back.coordinate == "Cycle"
    assert back["cell"].tolist() == ["A", "A", "A", "B", "B"]
    assert back.measured.tolist() == ds.measured.tolist()
    assert back.source == "<test cells>"
    assert list(tmp_path.iterdir()) == [path]  # written atomically, no temp file left
    # the usual permissions (from the umask), as for any file the user writes
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    # the file needs no pickling: plain np.load with allow_pickle=False reads it
    with np.load(path, allow_pickle=False) as z:
        assert len(z.files) == len(ds) + 2


def test_save_writes_exactly_the_given_path(tmp_path: Path) -> None:
    # np.savez would append ".npz" to a name without it; sweeps cache under exact names
    path = tmp_path / "cache_entry"
    _cells().save(path)
    assert path.exists() and hm.Dataset.load(path) == _cells()


def test_load_rejects_other_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.arange(3.0))
    with pytest.raises(hm.DataError, match=r"plain\.npz.*not written by Dataset\.save"):
        hm.Dataset.load(plain)
    text = _write(tmp_path / "notes.npz", "not a zip file")
    with pytest.raises(hm.DataError, match=r"notes\.npz"):
        hm.Dataset.load(text)
    with pytest.raises(FileNotFoundError):
        hm.Dataset.load(tmp_path / "missing.npz")


def test_from_numpy_npz_named_arrays(tmp_path: Path) -> None:
    path = tmp_path / "sim.npz"
    arrays: dict[str, Any] = {
        "Time [s]": np.arange(4.0),
        "Voltage [V]": np.array([4.2, 4.1, 4.0, 3.9]),
        "cell": np.array(["a", "a", "b", "b"]),
        "flag": np.array([1, 1, 0, 0]),
        "image": np.zeros((4, 2)),
    }
    np.savez(path, **arrays)
    ds = hm.Dataset.from_numpy(
        path, columns=["Voltage [V]"], group="cell", coordinate="Time [s]", measured_column="flag"
    )
    assert set(ds.columns) == {"Time [s]", "Voltage [V]", "cell"}
    assert ds.measured.tolist() == [True, True, False, False]
    assert ds.units["Voltage [V]"] == "V"
    with pytest.raises(hm.DataError, match=r"sim\.npz.*column 'image' has shape \(4, 2\)"):
        hm.Dataset.from_numpy(path, group="cell")


def test_from_numpy_npz_nan_names_file_column_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, t=np.arange(3.0), y=np.array([1.0, 2.0, np.nan]))
    with pytest.raises(hm.DataError) as info:
        hm.Dataset.from_numpy(path)
    msg = str(info.value)
    assert "bad.npz" in msg and "column 'y'" in msg and "row 2 (0-based index)" in msg


def test_from_numpy_reads_a_saved_dataset(tmp_path: Path) -> None:
    path = tmp_path / "cells.npz"
    _cells().save(path)
    assert hm.Dataset.from_numpy(path) == _cells()
    sub = hm.Dataset.from_numpy(path, columns=["x"])
    assert sub.columns == ("cell", "Cycle", "x") and sub.units["x"] == "m"


def test_from_numpy_npy_needs_column_names(tmp_path: Path) -> None:
    path = tmp_path / "grid.npy"
    np.save(path, np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.4], [2.0, 0.0, 0.6]]))
    ds = hm.Dataset.from_numpy(
        path, columns=["cell", "t [s]", "u [m]"], group="cell", coordinate="t [s]"
    )
    assert ds.groups() == ["1", "2"] and ds["u [m]"].tolist() == [0.5, 0.4, 0.6]
    with pytest.raises(hm.DataError, match=r"grid\.npy.*3 column\(s\) but no names"):
        hm.Dataset.from_numpy(path)
    with pytest.raises(hm.DataError, match=r"3 column\(s\) but 2 name\(s\)"):
        hm.Dataset.from_numpy(path, columns=["a", "b"])
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 2, 2)))
    with pytest.raises(hm.DataError, match=r"cube\.npy.*shape \(2, 2, 2\)"):
        hm.Dataset.from_numpy(cube, columns=["a", "b"])


# ------------------------------------------------------------------ conversion, selection


def test_array_and_to_tensor() -> None:
    ds = _cells()
    arr = ds.array(["Cycle", "x"])
    assert arr.shape == (5, 2) and arr.dtype == np.float64
    assert ds.array("x").shape == (5, 1)
    t = ds.to_tensor(["Cycle", "x"])
    assert t.dtype == torch.get_default_dtype() and t.shape == (5, 2)
    assert ds.to_tensor("x", dtype=torch.float64).dtype == torch.float64
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the default is read at call time
    try:
        assert ds.to_tensor("x").dtype == torch.float64
    finally:
        torch.set_default_dtype(old)
    with pytest.raises(hm.DataError, match="'cell' is the group column"):
        ds.to_tensor(["cell"])
    with pytest.raises(KeyError, match="Did you mean 'Capacity"):
        ds.array(["Capacity"])


def test_select_mask_indices_slice() -> None:
    ds = _cells()
    by_mask = ds.select(ds.measured)
    assert by_mask.n_rows == 3 and by_mask.measured.all()
    assert by_mask.units == ds.units and by_mask.group == "cell"
    assert ds.select([4, 0])["x"].tolist() == [0.5, 0.1]
    assert ds.select(slice(1, 3))["x"].tolist() == [0.2, 0.3]
    assert ds.select(np.int64(2)).n_rows == 1
    with pytest.raises(hm.DataError, match="mask has shape"):
        ds.select(np.array([True, False]))
    with pytest.raises(hm.DataError, match="row index 7 is out of range"):
        ds.select([7])
    with pytest.raises(hm.DataError, match="selection is empty"):
        ds.select(np.zeros(5, dtype=bool))


def test_groups_and_where_group() -> None:
    ds = _cells()
    assert ds.groups() == ["A", "B"]
    assert ds.where_group("B")["x"].tolist() == [0.4, 0.5]
    assert ds.where_group(["B", "A"]).n_rows == 5  # original order is kept
    with pytest.raises(hm.DataError, match=r"group 'b' does not occur.*Did you mean 'B'"):
        ds.where_group("b")
    no_groups = hm.Dataset({"x": [1.0]})
    with pytest.raises(hm.DataError, match="no group column"):
        no_groups.groups()


def test_concat_combines_rows_and_masks() -> None:
    ds = _cells()
    sim = hm.Dataset(
        {"cell": ["C"], "Cycle": [0], "Capacity [A.h]": [2.2], "x": [0.6]},
        units={"x": "m"},
        group="cell",
        coordinate="Cycle",
        measured=[False],
        source="<sim>",
    )
    both = ds.concat(sim)
    assert both.n_rows == 6 and both.groups() == ["A", "B", "C"]
    assert both.measured.tolist() == [*ds.measured.tolist(), False]
    assert both.source == "<test cells> + <sim>"
    # the same rows twice repeat (group, coordinate) pairs
    with pytest.raises(hm.DataError, match=r"rows 0 and 5 .*second part starts at row 5"):
        ds.concat(ds)
    with pytest.raises(hm.DataError, match=r"only in the first: \['x'\]"):
        ds.concat(
            hm.Dataset(
                {"cell": ["C"], "Cycle": [0.0], "Capacity [A.h]": [1.0]},
                group="cell",
                coordinate="Cycle",
            )
        )
    with pytest.raises(hm.DataError, match="column 'x' has unit 'm' in the first and ''"):
        ds.concat(
            hm.Dataset(
                {"cell": ["C"], "Cycle": [0.0], "Capacity [A.h]": [1.0], "x": [1.0]},
                group="cell",
                coordinate="Cycle",
            )
        )


def test_with_columns_adds_and_replaces() -> None:
    ds = _cells()
    new = ds.with_columns({"Power [W]": np.ones(5)}, x=np.zeros(5))
    assert new.columns[-1] == "Power [W]" and new.units["Power [W]"] == "W"
    assert new.units["x"] == "m" and new["x"].tolist() == [0.0] * 5  # unit kept
    assert ds["x"][0] == 0.1  # the original is unchanged
    with pytest.raises(hm.DataError, match=r"column 'y' has 2 rows"):
        ds.with_columns(y=[1.0, 2.0])
    with pytest.raises(hm.DataError, match="cannot replace the group column"):
        ds.with_columns(cell=["Z"] * 5)
