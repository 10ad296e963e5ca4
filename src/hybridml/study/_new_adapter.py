"""``hybridml new-adapter NAME``: write an installable adapter package to start from.

The package is a minimal working adapter (the *data* and *checks* capabilities of an
exponential decay ``y = y0 exp(-k t)`` in closed form), its ``hybridml.simulators`` entry
point and its contract-test class; it passes the contract suite as written. The user then
replaces the decay by the simulator (``docs/adding-an-adapter.md``).
"""

from __future__ import annotations

import keyword
from pathlib import Path

from ..exceptions import InvalidArgumentError

__all__ = ["write_adapter_package"]

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "hybridml-{dist}"
version = "0.1.0"
description = "hybridml adapter {name!r} (edit me)"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["hybridml", "numpy>=1.24"]

[project.optional-dependencies]
test = ["pytest>=8"]

# `hybridml.load_simulator("{name}")` finds the adapter by this entry point
[project.entry-points."hybridml.simulators"]
{name} = "{package}:{cls}"

[tool.setuptools]
packages = ["{package}"]
"""

_README = """\
# hybridml-{dist}

The hybridml adapter `{name}`, written by `hybridml new-adapter {name}`. It is a small
working adapter (an exponential decay in closed form) to edit into yours: see the
"Adding a simulator adapter" guide of hybridml (`docs/adding-an-adapter.md`).

```bash
pip install -e .            # registers the entry point
hybridml simulators         # lists `{name}`
pytest tests                # the contract suite (hybridml.testing.AdapterContractTests)
```
"""

_MODULE = '''\
"""hybridml-{dist}: the simulator adapter {name!r}.

Written by ``hybridml new-adapter {name}`` as a working example to edit: it simulates an
exponential decay ``y = y0 exp(-k t)`` in closed form. Replace ``simulate`` by a call to
your simulator, ``checks`` by the limits its outputs obey, and add capability bases
(``ProvidesConstraints``: loss terms; ``ProvidesForward``: a differentiable solve) when
your simulator offers them; the contract tests in ``tests/`` check what you declare.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hybridml import Bounds, Check, Dataset
from hybridml.adapters import ProvidesChecks, ProvidesData, SimulationError
from hybridml.exceptions import InvalidArgumentError, did_you_mean

__all__ = ["{cls}"]


class {cls}(ProvidesData, ProvidesChecks):
    """The {name!r} simulator as a hybridml adapter.

    Args:
        y0: the initial value of ``y``.
        t_end: the end of the simulated time, in s.
        n_points: the number of output times.
        params: default physical parameters (name -> value); ``k`` is the decay rate (1/s).
    """

    name = "{name}"  # the entry-point name in pyproject.toml
    description = "{name}: an exponential decay (edit me)"

    def __init__(
        self,
        y0: float = 1.0,
        t_end: float = 5.0,
        n_points: int = 51,
        params: Mapping[str, float] | None = None,
    ) -> None:
        # __init__ only stores settings (import a slow simulator where it is used)
        self.y0, self.t_end, self.n_points = float(y0), float(t_end), int(n_points)
        self.params = {{"k": 1.0, **dict(params or {{}})}}

    def __repr__(self) -> str:  # also the sweep cache key: name every setting
        return (
            f"{cls}(y0={{self.y0}}, t_end={{self.t_end}}, n_points={{self.n_points}}, "
            f"params={{self.params}})"
        )

    def simulate(self, params: Mapping[str, float] | None = None) -> Dataset:
        """Simulate with ``params`` (the defaults where omitted); a Dataset with units."""
        unknown = sorted(set(params or {{}}) - set(self.params))
        if unknown:
            raise InvalidArgumentError(
                f"unknown parameter {{unknown[0]!r}}.{{did_you_mean(unknown[0], self.params)}} "
                f"The parameters are {{sorted(self.params)}}."
            )
        p = {{**self.params, **dict(params or {{}})}}
        k = float(p["k"])
        if not k > 0.0:  # say what failed and what to change
            raise SimulationError(f"{name}: k = {{k}} 1/s; the decay rate must be positive.")
        t = np.linspace(0.0, self.t_end, self.n_points)
        return Dataset(
            {{"t [s]": t, "y [-]": self.y0 * np.exp(-k * t)}},
            coordinate="t [s]",
            measured=np.zeros(t.size, dtype=bool),  # simulated rows, not measurements
            source=f"<{name}: {{p}}>",
        )

    def checks(self) -> list[Check]:
        """The limits the outputs obey: y stays between 0 and y0."""
        return [Bounds("y [-]", min(0.0, self.y0), max(0.0, self.y0))]
'''

_TEST = '''\
"""The contract suite of the {name!r} adapter, plus tests of its own."""

from __future__ import annotations

import numpy as np
from {package} import {cls}

from hybridml.testing import AdapterContractTests


class Test{cls}(AdapterContractTests):
    adapter_name = "{name}"

    def make_adapter(self) -> {cls}:
        return {cls}()  # small and fast: the suite simulates often

    def example_params(self) -> dict[str, float]:
        return {{"k": 1.0}}

    def sweep_param_sets(self) -> list[dict[str, float]]:
        return [{{"k": 0.5}}, {{"k": 1.0}}, {{"k": 2.0}}]

    def failing_params(self) -> dict[str, float]:
        return {{"k": -1.0}}


def test_simulate_matches_the_closed_form() -> None:
    data = {cls}(y0=2.0).simulate({{"k": 0.5}})
    t = data["t [s]"]
    np.testing.assert_allclose(data["y [-]"], 2.0 * np.exp(-0.5 * t), rtol=1e-12)
'''


def write_adapter_package(name: str, directory: str | Path = ".") -> Path:
    """Write the package of a new adapter ``name`` under ``directory`` and return its folder.

    The folder ``<directory>/<name>`` (like ``simulators/ode``) holds ``pyproject.toml`` (with the
    ``hybridml.simulators`` entry point ``name``), ``README.md``, the package
    ``hybridml_<name>`` with the adapter class and ``tests/test_<name>_adapter.py`` with its
    contract-test class. ``pip install -e`` it and ``pytest`` its tests: they pass as
    written.

    Raises:
        InvalidArgumentError: ``name`` is not a lower-case Python identifier (it names the
            entry point and the module), or the folder exists already.
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidArgumentError(
            f"new-adapter: {name!r} is not a valid adapter name; use a Python identifier such "
            "as 'mysim' (letters, digits and underscores, not starting with a digit)."
        )
    if name != name.lower() or name.startswith("_"):
        raise InvalidArgumentError(
            f"new-adapter: {name!r}: an adapter name is lower case and does not start with "
            f"'_' (it names the entry point and the module hybridml_<name>); try "
            f"{name.lower().strip('_')!r}."
        )
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise InvalidArgumentError(f"new-adapter: --dir {str(root)!r} is a file, not a folder.")
    dist = name.replace("_", "-")
    folder = root / name
    if folder.exists():
        raise InvalidArgumentError(
            f"new-adapter: {str(folder)!r} exists already; choose another name or --dir, or "
            "remove it."
        )
    package = f"hybridml_{name}"
    cls = "".join(part.capitalize() for part in name.split("_") if part) + "Adapter"
    fields = {"name": name, "dist": dist, "package": package, "cls": cls}
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"{package}/__init__.py": _MODULE,
        f"tests/test_{name}_adapter.py": _TEST,
    }
    for rel, template in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields), encoding="utf-8")
    return folder
