"""pandas: a Dataset from and to a DataFrame (units in the names), predictions as
DataFrames, CSV files and Datasets, for the regressor and the ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybridml as hm

pd = pytest.importorskip("pandas")

SMALL = {"hidden": (8,), "adam_steps": 30, "lr": 1e-2, "lbfgs_steps": 0, "progress": False}


def frame() -> object:
    return pd.DataFrame(
        {
            "cell": ["a", "a", "b", "b"],
            "t [s]": [0.0, 1.0, 0.0, 1.0],
            "V [V]": [4.1, 4.0, 4.2, 3.9],
            "T": [25.0, 26.0, 25.5, 27.0],
        }
    )


def test_dataset_from_and_to_a_frame() -> None:
    ds = hm.Dataset.from_frame(frame(), group="cell", coordinate="t [s]", units={"T": "degC"})
    assert ds.columns == ("cell", "t [s]", "V [V]", "T")
    assert ds.units["V [V]"] == "V" and ds.units["T"] == "degC"
    assert ds.groups() == ["a", "b"] and ds.source == "<DataFrame>"
    back = ds.to_frame()
    # the unit given by units= goes into the name; names that carry theirs stay as they are
    assert list(back.columns) == ["cell", "t [s]", "V [V]", "T [degC]"]
    np.testing.assert_array_equal(back["V [V]"].to_numpy(), frame()["V [V]"].to_numpy())
    sub = hm.Dataset.from_frame(frame(), columns=["V [V]"], group="cell")
    assert sub.columns == ("V [V]", "cell")
    with pytest.raises(hm.MissingColumnError, match="'V'"):
        hm.Dataset.from_frame(frame(), columns=["V"])
    bad = frame().assign(T=[25.0, np.nan, 1.0, 2.0])
    with pytest.raises(hm.DataError, match="T"):
        hm.Dataset.from_frame(bad, group="cell")


def test_a_prediction_as_frame_csv_and_dataset(tmp_path: Path) -> None:
    f = frame()
    est = hm.HybridRegressor(inputs=["t [s]", "T"], outputs=["V [V]"], **SMALL).fit(f)
    pred = est.predict(f)
    ds = pred.to_dataset()
    assert ds.columns == ("t [s]", "T", "V [V]") and ds.units["V [V]"] == "V"
    np.testing.assert_array_equal(ds["V [V]"], np.asarray(pred)[:, 0])
    pred.to_csv(tmp_path / "p.csv")
    assert hm.Dataset.from_csv(tmp_path / "p.csv") == hm.Dataset(ds, source=str(tmp_path / "p.csv"))
    assert list(pred.to_frame().columns) == ["t [s]", "T", "V [V]"]


def test_an_ensemble_prediction_as_frame_csv_and_dataset(tmp_path: Path) -> None:
    f = frame()
    ens = hm.DeepEnsemble(
        hm.HybridRegressor(inputs=["t [s]", "T"], outputs=["V [V]"], **SMALL),
        n_members=2,
        calibration=None,
    ).fit(f)
    pred = ens.predict(f)
    table = pred.to_frame()
    assert list(table.columns) == ["V [V]", "std V [V]", "lower V [V]", "upper V [V]"]
    np.testing.assert_array_equal(table["lower V [V]"].to_numpy(), pred.lower[:, 0])
    ds = pred.to_dataset()
    assert ds.units["upper V [V]"] == "V"
    pred.to_csv(tmp_path / "e.csv")
    np.testing.assert_array_equal(hm.Dataset.from_csv(tmp_path / "e.csv")["V [V]"], pred.mean[:, 0])
