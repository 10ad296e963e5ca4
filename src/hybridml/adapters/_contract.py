"""The simulator-adapter contract.

An *adapter* wraps one simulator (PyBaMM, a PDE written the DeepXDE way, a user's ODE) so
that hybridml can use it. It subclasses :class:`SimulatorAdapter` and declares what it can
do by also subclassing capability bases; nothing is probed with ``hasattr``:

==========================  ==============================================================
capability base             what the adapter provides
==========================  ==============================================================
:class:`ProvidesData`       ``simulate(params)`` -> :class:`~hybridml.Dataset` of named
                            variables with units; ``sweep(param_sets, executor=...)`` runs
                            many simulations on any ``concurrent.futures.Executor`` and
                            records failures instead of dying.
:class:`ProvidesConstraints` ``loss_terms(**options)`` -> named, differentiable
                            :class:`~hybridml.LossTerm` objects (physics residuals) that
                            are evaluated on a model's outputs.
:class:`ProvidesChecks`     ``checks()`` -> the physics-consistency checks the
                            simulator's outputs must pass (and so must predictions).
:class:`ProvidesForward`    ``forward(params)``: the simulator as a torch operation with
                            gradients with respect to its physical parameters.
==========================  ==============================================================

Adapters are plug-ins: a distribution registers its adapter class under the entry-point
group ``hybridml.simulators`` (:data:`~hybridml.adapters.ENTRY_POINT_GROUP`);
:func:`~hybridml.load_simulator` finds it by name and imports it only then, so
``import hybridml`` never imports a simulator. The built-in adapters are found the
same way. Every adapter's tests subclass :class:`hybridml.testing.AdapterContractTests`.

Rules for adapter authors:

* ``__init__`` stores settings; it may import the simulator, the module that defines the
  adapter class must not do so at import time if that is slow.
* No simulator type crosses the contract: return :class:`~hybridml.Dataset`, tensors,
  :class:`~hybridml.LossTerm` and :class:`~hybridml.Check` objects.
* ``simulate`` raises :class:`SimulationError` (with a message saying what to change)
  when a simulation fails; ``sweep`` turns those into recorded failures.
* Adapters used with a process pool must be picklable.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..exceptions import SimulationError

if TYPE_CHECKING:
    from torch import Tensor

    from ..checks import Check
    from ..data._dataset import Dataset
    from ..losses._base import LossTerm
    from ._sweep import SweepResult

__all__ = [
    "ProvidesChecks",
    "ProvidesConstraints",
    "ProvidesData",
    "ProvidesForward",
    "SimulationError",
    "SimulatorAdapter",
    "capabilities",
]


class SimulatorAdapter(abc.ABC):
    """Base of every simulator adapter.

    Class attributes an adapter sets:
        name: registry name (the entry-point name), e.g. ``"pybamm"``.
        description: one line shown by ``hybridml simulators``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def capabilities(self) -> tuple[str, ...]:
        """The capabilities this adapter declares (see :func:`capabilities`)."""
        return capabilities(type(self))


class ProvidesData(SimulatorAdapter):
    """Capability: the adapter produces synthetic data."""

    @abc.abstractmethod
    def simulate(self, params: Mapping[str, float] | None = None) -> Dataset:
        """Run one simulation with physical parameters ``params`` (defaults where omitted).

        Returns a :class:`~hybridml.Dataset` whose column names carry units
        (``"Voltage [V]"``). Raises :class:`SimulationError` if the simulation fails.
        """

    def sweep(
        self,
        param_sets: Sequence[Mapping[str, float]],
        *,
        executor: Executor | None = None,
        cache_dir: str | Path | None = None,
        progress: bool | None = None,
    ) -> SweepResult:
        """Simulate every parameter set in ``param_sets``.

        Runs on ``executor`` (any ``concurrent.futures.Executor``: a process pool, or a
        Dask ``Client.get_executor()``); serially in this process when it is None. A
        failed simulation is recorded in the result with its parameters and message; the
        sweep finishes. With ``cache_dir``, each result is saved (atomically) under a hash
        of the adapter's settings (:meth:`cache_key`), the versions of the adapter's
        distribution and of the distributions it requires (the simulator's version) and
        the parameters, so an interrupted sweep resumes without recomputing saved runs.

        The cache heals: an entry that cannot be read (truncated, empty, garbage) is
        reported with a :class:`~hybridml.exceptions.CacheWarning` naming the file, moved
        aside as ``<name>.corrupt`` and recomputed. A failed simulation is recorded in the
        cache and tried once more on a later sweep; after that its failure is read from
        the cache (delete its ``.failed.json`` file to try again). Workers of a process
        pool end when the sweeping process dies, even by ``kill -9``.

        Raises:
            InvalidArgumentError: ``cache_dir`` is a file or cannot be created.
        """
        from ._sweep import run_sweep

        return run_sweep(
            self, param_sets, executor=executor, cache_dir=cache_dir, progress=progress
        )

    def cache_key(self) -> str:
        """A string identifying this adapter's settings, for sweep caching.

        The default is ``repr(self)``; adapters whose repr does not capture every setting
        that changes results must override it.
        """
        return f"{type(self).__module__}.{type(self).__qualname__}:{self!r}"


class ProvidesConstraints(SimulatorAdapter):
    """Capability: the adapter supplies physics residuals as loss terms."""

    @abc.abstractmethod
    def loss_terms(self, **options: Any) -> dict[str, LossTerm]:
        """Return named, differentiable loss terms (name -> :class:`~hybridml.LossTerm`)."""


class ProvidesChecks(SimulatorAdapter):
    """Capability: the adapter knows which consistency checks its outputs must pass."""

    @abc.abstractmethod
    def checks(self) -> list[Check]:
        """Return the physics-consistency checks for this simulator's quantities."""


class ProvidesForward(SimulatorAdapter):
    """Capability: the simulator as a differentiable torch operation."""

    #: names of the physical parameters ``forward`` differentiates with respect to
    parameter_names: tuple[str, ...] = ()

    @abc.abstractmethod
    def forward(self, params: Tensor) -> Tensor:
        """Simulate with parameter values ``params`` (shape ``(len(parameter_names),)``).

        Returns the simulated outputs as a tensor whose gradient with respect to
        ``params`` is exact up to solver tolerance (e.g. from sensitivities).
        """


_CAPABILITIES: dict[str, type[SimulatorAdapter]] = {
    "data": ProvidesData,
    "constraints": ProvidesConstraints,
    "checks": ProvidesChecks,
    "forward": ProvidesForward,
}


def capabilities(adapter: type[SimulatorAdapter] | SimulatorAdapter) -> tuple[str, ...]:
    """Return the capabilities an adapter class (or instance) declares.

    One or more of ``"data"``, ``"constraints"``, ``"checks"``, ``"forward"``.
    """
    cls = adapter if isinstance(adapter, type) else type(adapter)
    return tuple(name for name, base in _CAPABILITIES.items() if issubclass(cls, base))
