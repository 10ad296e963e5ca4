"""The registry of simulator adapters: installed distributions register their adapter
class under the entry-point group :data:`ENTRY_POINT_GROUP` (``"hybridml.simulators"``),
and :func:`load_simulator` imports one by name only when it is asked for.

An adapter's ``pyproject.toml``::

    [project.entry-points."hybridml.simulators"]
    mysim = "hybridml_mysim:MySimAdapter"
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from ..exceptions import InvalidTypeError, UnknownSimulatorError, did_you_mean
from ._contract import SimulatorAdapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "UnknownSimulatorError",
    "available_simulators",
    "load_simulator",
]

#: the entry-point group under which distributions register their adapter classes
ENTRY_POINT_GROUP = "hybridml.simulators"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    eps = entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep for ep in eps}


def available_simulators() -> list[str]:
    """Names of the installed simulator adapters (from entry points; nothing is imported)."""
    return sorted(_entry_points())


def load_simulator(name: str) -> type[SimulatorAdapter]:
    """Import and return the adapter class registered as ``name``.

    Raises :class:`UnknownSimulatorError` listing the installed adapters (and the closest
    names) when ``name`` is not installed.
    """
    eps = _entry_points()
    if name not in eps:
        installed = sorted(eps)
        hint = did_you_mean(name, installed)
        raise UnknownSimulatorError(
            f"no simulator adapter named {name!r} is installed.{hint} "
            f"Installed: {', '.join(installed) or 'none'}. Adapters are plug-ins registered "
            f"under the entry-point group {ENTRY_POINT_GROUP!r}; install one with "
            f"`pip install -e simulators/<name>`."
        )
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, SimulatorAdapter)):
        raise InvalidTypeError(
            f"entry point {name!r} ({eps[name].value}) is not a SimulatorAdapter subclass"
        )
    return cls
