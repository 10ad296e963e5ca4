"""Datasets: named columns with units, groups and a measured mask; loading, validation and
the bundled data sets."""

from ._bundled import data_path
from ._dataset import DataError, Dataset, MissingColumnError, parse_unit

__all__ = ["DataError", "Dataset", "MissingColumnError", "data_path", "parse_unit"]
