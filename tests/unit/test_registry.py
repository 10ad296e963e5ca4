"""The adapter registry: entry points, lazy loading, errors that list what is installed."""

from __future__ import annotations

import pytest

import hybridml as hm
from hybridml.adapters import (
    ProvidesChecks,
    ProvidesConstraints,
    ProvidesData,
    SimulatorAdapter,
    capabilities,
)


def test_builtin_adapters_are_registered_through_entry_points() -> None:
    names = hm.available_simulators()
    assert "ode" in names
    cls = hm.load_simulator("ode")
    assert issubclass(cls, SimulatorAdapter)
    assert cls.name == "ode"


def test_unknown_name_lists_installed_and_closest() -> None:
    with pytest.raises(hm.UnknownSimulatorError) as info:
        hm.load_simulator("oed")
    msg = str(info.value)
    assert "'oed'" in msg and "Installed:" in msg and "ode" in msg
    assert "Did you mean 'ode'" in msg


def test_capabilities_are_declared_by_bases_not_probed() -> None:
    class OnlyChecks(ProvidesChecks):
        name = "only-checks"

        def checks(self) -> list[hm.Check]:
            return []

        def simulate(self, params: object = None) -> None:  # not declared: does not count
            return None

    assert capabilities(OnlyChecks) == ("checks",)
    assert OnlyChecks().capabilities() == ("checks",)
    ode = hm.load_simulator("ode")
    assert {"data", "constraints", "checks"} <= set(capabilities(ode))


def test_a_capability_without_its_method_cannot_be_instantiated() -> None:
    class Broken(ProvidesData, ProvidesConstraints):
        name = "broken"

        def loss_terms(self, **options: object) -> dict[str, hm.LossTerm]:
            return {}

    with pytest.raises(TypeError, match="simulate"):
        Broken()  # type: ignore[abstract]
