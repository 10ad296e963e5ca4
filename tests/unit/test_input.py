"""One input path: as_inputs reads arrays, lists, tensors, a Dataset and a DataFrame the same
way, keeps names, units, groups and the measured mask, and names the argument, row and
column in its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hybridml as hm


def dataset() -> hm.Dataset:
    return hm.Dataset(
        {
            "cell": ["a", "a", "b", "b"],
            "Time [s]": [0.0, 1.0, 0.0, 1.0],
            "Current [A]": [1.0, 1.0, 2.0, 2.0],
            "Voltage [V]": [4.0, 3.9, 4.1, 3.8],
        },
        group="cell",
        units={"Current [A]": "A"},
        measured=[True, False, True, True],
    )


def test_arrays_lists_and_tensors_give_the_same_arrays() -> None:
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    y = np.array([1.0, np.nan, 3.0])  # NaN: not measured, allowed in y
    ref = hm.as_inputs(x, y)
    assert ref.X.shape == (3, 2) and ref.y is not None and ref.y.shape == (3, 1)
    assert ref.input_names == ("x0", "x1") and ref.output_names == ("y0",)
    assert ref.measured.all() and ref.groups is None and not ref.named
    for xx, yy in [(x.tolist(), y.tolist()), (torch.tensor(x), torch.tensor(y))]:
        got = hm.as_inputs(xx, yy)
        np.testing.assert_array_equal(got.X, ref.X)
        np.testing.assert_array_equal(got.y, ref.y)
        assert got.X.dtype == np.float64
    named = hm.as_inputs(x, inputs=["Time [s]", "Current [A]"])
    assert named.units == {"Time [s]": "s", "Current [A]": "A"} and named.named
    assert hm.as_inputs(np.arange(3.0)).X.shape == (3, 1)  # 1-d: one input


def test_a_dataset_is_read_by_name_with_units_groups_and_measured() -> None:
    ds = dataset()
    got = hm.as_inputs(ds, inputs=["Time [s]", "Current [A]"], outputs=["Voltage [V]", "T [K]"])
    np.testing.assert_array_equal(got.X, ds.array(["Time [s]", "Current [A]"]))
    assert got.y is not None
    np.testing.assert_array_equal(got.y[:, 0], ds["Voltage [V]"])
    assert np.isnan(got.y[:, 1]).all()  # an output the data lacks is learned from physics
    assert got.units["Voltage [V]"] == "V" and got.units["Time [s]"] == "s"
    assert got.groups is not None and got.groups.tolist() == ["a", "a", "b", "b"]
    assert got.measured.tolist() == [True, False, True, True]
    # explicit groups win over the dataset's group column
    other = hm.as_inputs(ds, outputs=["Voltage [V]"], groups=[1, 2, 1, 2])
    assert other.groups is not None and other.groups.tolist() == [1, 2, 1, 2]
    # default inputs: every column that is not an output or the group
    auto = hm.as_inputs(ds, outputs=["Voltage [V]"])
    assert auto.input_names == ("Time [s]", "Current [A]")
    with pytest.raises(
        hm.MissingColumnError, match=r"'Voltage \[v\]'.*Did you mean 'Voltage \[V\]'"
    ):
        hm.as_inputs(ds, inputs=["Voltage [v]"])
    with pytest.raises(hm.MissingColumnError, match="none of the outputs"):
        hm.as_inputs(ds, outputs=["Capacity [A.h]"], require_y=True)


def test_a_dataframe_is_read_by_name() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"cell": ["a", "a", "b"], "Time [s]": [0.0, 1.0, 2.0], "Voltage [V]": [4.0, 3.9, 3.8]}
    )
    got = hm.as_inputs(frame, outputs=["Voltage [V]"], groups="cell")
    assert got.input_names == ("Time [s]",) and got.units["Voltage [V]"] == "V"
    np.testing.assert_array_equal(got.X[:, 0], [0.0, 1.0, 2.0])
    assert got.groups is not None and got.groups.tolist() == ["a", "a", "b"]
    # y as a DataFrame gives its names
    xy = hm.as_inputs(frame[["Time [s]"]], frame[["Voltage [V]"]])
    assert xy.output_names == ("Voltage [V]",) and xy.input_names == ("Time [s]",)
    with pytest.raises(hm.DataError, match=r"'a', at row 0, column 0 \('cell'\)"):
        hm.as_inputs(frame, inputs=["cell", "Time [s]"])
    with pytest.raises(hm.MissingColumnError, match="Did you mean 'Time \\[s\\]'"):
        hm.as_inputs(frame, inputs=["time [s]x"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"X": [[1.0, np.nan]]}, r"fit: X has the value nan at row 0, column 1 \('x1'\)"),
        ({"X": [[1.0], [np.inf]]}, r"X has the value inf at row 1, column 0"),
        ({"X": [[1.0, "b"]]}, r"not a number, 'b', at row 0, column 1"),
        ({"X": np.empty((0, 2))}, r"X is empty"),
        ({"X": np.ones((2, 2)), "y": [1.0]}, r"X has 2 rows but y has 1"),
        ({"X": np.ones((2, 1)), "y": [1.0, np.inf]}, r"y has the value inf at row 1"),
        ({"X": np.ones((2, 3)), "inputs": ["a", "b"]}, r"X has 3 column\(s\) but inputs= names 2"),
        ({"X": np.ones((2, 1)), "groups": ["a"]}, r"groups has 1 labels but X has 2 rows"),
        ({"X": np.ones((2, 1)), "require_y": True}, r"pass targets `y`"),
    ],
)
def test_bad_input_is_a_data_error_naming_argument_row_and_column(
    kwargs: dict, message: str
) -> None:
    with pytest.raises(hm.DataError, match=message) as info:
        hm.as_inputs(**kwargs, what="fit")
    # one base for every library error, and still the built-in ValueError
    assert isinstance(info.value, hm.HybridMLError) and isinstance(info.value, ValueError)
    assert str(info.value).startswith("fit: ")
