"""Every installed simulator adapter must be tested by the adapter contract suite.

For each adapter registered under the entry-point group ``hybridml.simulators``, some
subclass of :class:`hybridml.testing.AdapterContractTests` must set ``adapter_name`` to
its name. The test imports every ``simulators/*/tests/test_*.py`` itself, so the result
does not depend on which test files pytest collected in this run.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from pathlib import Path

import pytest

from hybridml import available_simulators
from hybridml.testing import AdapterContractTests, covered_adapters

SIMULATORS = Path(__file__).resolve().parents[2] / "simulators"


def _import_adapter_tests() -> dict[str, str]:
    """Import every adapter test module; return path -> error for those that fail to import."""
    errors: dict[str, str] = {}
    for path in sorted(SIMULATORS.glob("*/tests/test_*.py")):
        rel = path.relative_to(SIMULATORS).with_suffix("")
        name = "_hybridml_coverage_" + re.sub(r"\W", "_", rel.as_posix())
        if name in sys.modules:
            continue  # imported by an earlier run of this test in the same process
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, pytest.skip.Exception) as exc:  # e.g. its simulator is missing
            del sys.modules[name]
            errors[str(path)] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return errors


def test_contract_suite_finds_its_subclasses() -> None:
    class _Probe(AdapterContractTests):
        adapter_name = "__coverage_probe__"

    assert f"{__name__}.{_Probe.__qualname__}" in covered_adapters()["__coverage_probe__"]


def test_every_installed_adapter_is_covered_by_the_contract_suite() -> None:
    import_errors = _import_adapter_tests()
    covered = covered_adapters()
    missing = [name for name in available_simulators() if name not in covered]
    if missing:
        errors = "".join(f"\n  {path}: {err}" for path, err in import_errors.items())
        pytest.fail(
            f"installed simulator adapter(s) without contract tests: {missing}. For each, add "
            "simulators/<name>/tests/test_<name>_adapter.py with a class "
            "`Test<Name>Adapter(hybridml.testing.AdapterContractTests)` that sets "
            "`adapter_name = '<name>'` and implements make_adapter() "
            "(see docs/adding-an-adapter.md)."
            + (f"\nThese adapter test modules failed to import:{errors}" if errors else ""),
            pytrace=False,
        )


# an import of a private module of hybridml: `from hybridml.adapters._contract import ...`
_PRIVATE_IMPORT = re.compile(r"^\s*(?:from|import)\s+hybridml(?:\.\w+)*\._\w+", re.MULTILINE)


def test_adapters_and_the_adapter_guide_use_only_public_names() -> None:
    # Adapters are plug-ins built on the public API (hybridml, hybridml.adapters, ...), so
    # the core's private modules can move without breaking them; the guide shows the same.
    files = sorted(SIMULATORS.glob("*/hybridml_*/**/*.py"))
    files.append(SIMULATORS.parent / "docs" / "adding-an-adapter.md")
    assert len(files) > 3  # the globs found the adapters (a wrong path must not pass)
    offenders = {
        str(path.relative_to(SIMULATORS.parent)): _PRIVATE_IMPORT.findall(path.read_text("utf-8"))
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    # the pattern does catch a private import
    assert _PRIVATE_IMPORT.findall("from hybridml.adapters._contract import ProvidesData")
    assert not _PRIVATE_IMPORT.findall("from hybridml.adapters import ProvidesData")


def test_registry_reads_the_public_entry_point_group() -> None:
    from importlib.metadata import entry_points

    from hybridml.adapters import ENTRY_POINT_GROUP

    assert ENTRY_POINT_GROUP == "hybridml.simulators"  # the group adapters register under
    names = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    assert "ode" in names and names == available_simulators()
