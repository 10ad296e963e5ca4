"""Paths of the data sets bundled with hybridml (see ``hybridml/data/README.md``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BUNDLED = ("Burgers.npz",)


def data_path(name: str) -> Path:
    """Return the path of a bundled data set: ``"Burgers.npz"``.

    Its provenance is in ``hybridml/data/README.md``. (Plug-ins ship the data sets of their
    own studies.)
    """
    if name not in BUNDLED:
        raise FileNotFoundError(
            f"no bundled data set named {name!r}; bundled: {', '.join(BUNDLED)}"
        )
    return Path(str(files("hybridml") / "data" / name))
