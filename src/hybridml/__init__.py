"""hybridml: physics-informed, hybrid (physics + neural network) modelling for small data.

The library is a set of subpackages, one per concept (``hybridml.adapters``, ``.data``,
``.nn``, ``.losses``, ``.training``, ``.checks``, ``.estimators``, ``.study``,
``.exceptions``); every public name of every subpackage is also a name of ``hybridml``
itself. Each public name is listed once, in its subpackage's ``__all__``.

Names are imported lazily (PEP 562) so that ``import hybridml`` and the ``hybridml``
command start fast: the subpackages' ``__all__`` lists are read from their source without
importing them, and a subpackage is imported when one of its names is first used.
Importing hybridml never imports a simulator (PyBaMM, DeepXDE) and never changes torch's
global settings.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: the subpackages whose public names are re-exported here, in the order of the docs
SUBPACKAGES = (
    "exceptions",
    "adapters",
    "data",
    "nn",
    "losses",
    "training",
    "checks",
    "estimators",
    "study",
    "monitor",
)


def _read_all(subpackage: str) -> list[str]:
    """The ``__all__`` list of a subpackage, read from its source (nothing is imported)."""
    here = Path(__file__).parent
    path = here / subpackage / "__init__.py"
    if not path.exists():
        path = here / f"{subpackage}.py"
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise ImportError(f"hybridml.{subpackage} defines no literal __all__")  # pragma: no cover


# public name -> subpackage that defines it
_EXPORTS: dict[str, str] = {name: sub for sub in SUBPACKAGES for name in _read_all(sub)}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hybridml' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .adapters import *
    from .checks import *
    from .data import *
    from .estimators import *
    from .exceptions import *
    from .losses import *
    from .monitor import *
    from .nn import *
    from .study import *
    from .training import *
