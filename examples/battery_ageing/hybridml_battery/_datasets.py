"""The battery data sets bundled with the plug-in (provenance in ``data/README.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from hybridml.exceptions import InvalidArgumentError, did_you_mean

__all__ = ["DATASETS", "BundledDataset", "bundled_dataset", "dataset_path"]


@dataclass(frozen=True)
class BundledDataset:
    """A battery data set shipped with the plug-in and the study's defaults for it.

    Attributes:
        name: the name ``--dataset`` takes.
        file: the file under ``hybridml_battery/data``.
        description: one line for ``--help`` and the report.
        cells: the cells used by default (None: every cell of the file).
        eol_ah: the default end-of-life capacity [A.h] (or None).
        eol_fraction: the default end of life as a fraction of each cell's initial
            capacity (used when ``eol_ah`` is None).
        known_cycles: the default N (the last known cycle of a test cell).
    """

    name: str
    file: str
    description: str
    cells: tuple[str, ...] | None = None
    eol_ah: float | None = None
    eol_fraction: float | None = None
    known_cycles: int = 60

    @property
    def path(self) -> Path:
        """The path of the bundled file."""
        return Path(str(files("hybridml_battery") / "data" / self.file))


#: the bundled data sets by name (``--dataset NAME``)
DATASETS: dict[str, BundledDataset] = {
    "nasa": BundledDataset(
        name="nasa",
        file="nasa_pcoe.csv",
        description="NASA Ames PCoE cells B0005, B0006, B0007, B0018 (24 °C, 2 A; EOL 1.4 Ah)",
        cells=("B0005", "B0006", "B0007", "B0018"),
        eol_ah=1.4,
        known_cycles=60,
    ),
    "xjtu": BundledDataset(
        name="xjtu",
        file="xjtu.csv.gz",
        description="XJTU, 55 NCM cells (2 Ah) in 6 cycling batches (condition); EOL 0.9 x initial",
        eol_fraction=0.9,
        known_cycles=100,
    ),
    "tju": BundledDataset(
        name="tju",
        file="tju.csv.gz",
        description="TJU, 130 NCA/NCM cells (3.5/2.5 Ah) at 25-45 °C (condition, temperature_c); "
        "EOL 0.8 x initial",
        eol_fraction=0.8,
        known_cycles=100,
    ),
}


def bundled_dataset(name: str) -> BundledDataset:
    """The bundled data set called ``name``.

    Raises:
        hybridml.InvalidArgumentError: no data set has that name; the message lists the
            available ones.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise InvalidArgumentError(
            f"no bundled battery data set named {name!r}.{did_you_mean(name, DATASETS)} "
            f"Available: {', '.join(DATASETS)} (or give your own file with --data)."
        ) from None


def dataset_path(name: str) -> Path:
    """The path of the bundled data set ``name`` (see :data:`DATASETS`)."""
    return bundled_dataset(name).path
