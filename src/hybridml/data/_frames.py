"""pandas: a :class:`~hybridml.Dataset` from and to a DataFrame, and predictions as
DataFrames, CSV files and Datasets. pandas is imported only when a DataFrame is made.

:meth:`Dataset.from_frame`/:meth:`Dataset.to_frame`, ``Prediction.to_dataset``/``to_csv``
and ``EnsemblePrediction.to_frame``/``to_dataset``/``to_csv`` delegate here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validate import _missing_column, parse_unit

if TYPE_CHECKING:
    from ._dataset import Dataset

__all__: list[str] = []


def from_frame(
    cls: type[Dataset],
    frame: Any,
    *,
    columns: Sequence[str] | None = None,
    group: str | None = None,
    coordinate: str | None = None,
    units: Mapping[str, str] | None = None,
    measured_column: str | None = None,
    source: str = "<DataFrame>",
) -> Dataset:
    """A Dataset of a DataFrame's columns (see :meth:`Dataset.from_frame`)."""
    labels = {str(c): c for c in frame.columns}
    wanted = list(labels) if columns is None else list(columns)
    for extra in (group, coordinate, measured_column):
        if extra is not None and extra not in wanted:
            wanted.append(extra)
    for name in wanted:
        if name not in labels:
            raise _missing_column(name, labels, source)
    cols = {n: frame[labels[n]].to_numpy() for n in wanted if n != measured_column}
    measured = None
    if measured_column is not None:
        measured = np.asarray(frame[labels[measured_column]].to_numpy(), dtype=bool)
    return cls(
        cols, units=units, group=group, coordinate=coordinate, measured=measured, source=source
    )


def _named(name: str, unit: str) -> str:
    """``name`` with ``unit`` in brackets, unless the name already carries it."""
    return name if not unit or parse_unit(name) == unit else f"{name} [{unit}]"


def to_frame(ds: Dataset, *, measured_column: str | None = None) -> Any:
    """The Dataset as a DataFrame (see :meth:`Dataset.to_frame`)."""
    import pandas as pd

    units = ds.units
    data = {_named(k, units.get(k, "")): ds[k] for k in ds.columns}
    if measured_column is not None:
        data[measured_column] = ds.measured
    return pd.DataFrame(data)


def prediction_dataset(
    data: Mapping[str, Any], units: Mapping[str, str], group: str | None, source: str
) -> Dataset:
    """Named prediction columns as a Dataset (units kept; ``group`` holds labels)."""
    from ._dataset import Dataset

    cols = {k: np.asarray(v) for k, v in data.items()}
    kept = {k: u for k, u in units.items() if k in cols and k != group and u}
    return Dataset(cols, units=kept, group=group, source=source)


def ensemble_columns(pred: Any) -> dict[str, np.ndarray]:
    """An EnsemblePrediction's columns: ``name`` (the mean), ``std name``, ``lower name``
    and ``upper name`` per output (the unit stays last, in brackets)."""
    names = list(pred.columns) or [f"y{j}" for j in range(pred.mean.shape[1])]
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        out[name] = pred.mean[:, j]
        for what in ("std", "lower", "upper"):
            out[f"{what} {name}"] = getattr(pred, what)[:, j]
    return out


def write_csv(ds: Dataset, path: str | os.PathLike[str]) -> None:
    """Write a prediction's Dataset as CSV (atomically, full precision)."""
    ds.to_csv(path)
