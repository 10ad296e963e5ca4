"""Datasets: named columns with units, groups and a measured mask; loading, validation and
the bundled data sets."""

from ..exceptions import DataError, MissingColumnError
from ._bundled import data_path
from ._dataset import Dataset
from ._input import InputData, as_inputs
from ._validate import parse_unit

__all__ = [
    "DataError",
    "Dataset",
    "InputData",
    "MissingColumnError",
    "as_inputs",
    "data_path",
    "parse_unit",
]
