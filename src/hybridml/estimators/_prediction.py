"""What :meth:`HybridRegressor.predict` returns: the predicted values, named, with units
and the consistency report of the checks run on them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import ConsistencyReport

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction:
    """Predicted values with the physics-consistency report that was run on them.

    ``np.asarray(prediction)`` gives the values, shape ``(n, n_outputs)``.

    Attributes:
        values: predicted outputs, shape ``(n, n_outputs)``.
        columns: the output names.
        report: the consistency report of the model's checks on this prediction.
        data: the inputs and predicted outputs as named columns (what the checks saw).
        units: column name -> unit (``""`` when none) of the inputs and outputs, as the
            model was fitted (from a Dataset's units or the ``"Name [unit]"`` names).
    """

    values: np.ndarray
    columns: tuple[str, ...]
    report: ConsistencyReport
    data: dict[str, np.ndarray]
    units: Mapping[str, str] = field(default_factory=dict)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def to_frame(self) -> Any:
        """The inputs and predicted outputs as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame({name: np.asarray(col) for name, col in self.data.items()})

    def to_dataset(self, *, group: str | None = None) -> Any:
        """The inputs and predicted outputs as a :class:`~hybridml.Dataset`, with their
        units; ``group`` names a column of labels (e.g. one given to ``predict(extra=)``)."""
        from ..data._frames import prediction_dataset

        return prediction_dataset(self.data, self.units, group, "<prediction>")

    def to_csv(self, path: str | os.PathLike[str], *, group: str | None = None) -> None:
        """Write :meth:`to_dataset` as a CSV file (atomically; floats read back exactly)."""
        self.to_dataset(group=group).to_csv(path)
