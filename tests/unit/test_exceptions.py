"""One error hierarchy: every error the library raises is a HybridMLError and still the
built-in it stands for; one did-you-mean helper."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hybridml as hm
import hybridml.exceptions as exc

ROOT = Path(__file__).resolve().parents[2]

BUILTIN = {
    "InvalidArgumentError": ValueError,
    "InvalidTypeError": TypeError,
    "InvalidIndexError": IndexError,
    "UnknownNameError": KeyError,
    "DataError": ValueError,
    "MissingColumnError": KeyError,
    "ConfigError": ValueError,
    "SimulationError": RuntimeError,
    "UnknownSimulatorError": KeyError,
    "NonFiniteLossError": FloatingPointError,
    "ConsistencyError": RuntimeError,
    "NotFittedError": RuntimeError,
    "TrainingError": RuntimeError,
    "CheckpointMismatchError": ValueError,
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_each_error_is_a_hybridml_error_and_its_builtin(name: str) -> None:
    cls = getattr(hm, name)
    assert cls is getattr(exc, name)
    assert issubclass(cls, hm.HybridMLError) and issubclass(cls, BUILTIN[name])


def test_every_public_exception_is_in_the_hierarchy() -> None:
    for name in exc.__all__:
        obj = getattr(exc, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, hm.HybridMLError | hm.HybridMLWarning), name
            if issubclass(obj, Exception) and not issubclass(obj, Warning):
                assert name in BUILTIN or obj is hm.HybridMLError or name.endswith("Error")


def test_key_errors_print_their_message_plainly() -> None:
    assert str(hm.UnknownNameError("no check named 'x'")) == "no check named 'x'"
    assert str(hm.MissingColumnError("column 'x' does not exist")) == "column 'x' does not exist"


def test_the_library_raises_no_bare_builtin_errors() -> None:
    # a new `raise ValueError(...)` would escape `except hybridml.HybridMLError`
    bare = re.compile(r"\braise (ValueError|TypeError|RuntimeError|KeyError|IndexError)\(")
    offenders = []
    packages = [ROOT / "src/hybridml", *ROOT.glob("simulators/*/hybridml_*")]
    packages += ROOT.glob("examples/*/hybridml_*")  # plug-ins; their scripts may differ
    for folder in packages:
        for f in sorted(folder.rglob("*.py")):
            if "tests" in f.parts or f.name.startswith("test_"):
                continue
            for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if bare.search(line):
                    offenders.append(f"{f.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("tmep", ["temp", "voltage", "x"], " Did you mean 'temp'?"),
        ("TEMP", ["temp"], " Did you mean 'temp'?"),  # case is ignored, the option kept
        ("zzz", ["temp", "time"], ""),
        ("x", [], ""),
    ],
)
def test_did_you_mean(name: str, options: list[str], expected: str) -> None:
    assert hm.did_you_mean(name, options) == expected


def test_did_you_mean_lists_at_most_n_close_names() -> None:
    hint = hm.did_you_mean("cell", ["cell1", "cell2", "cell3", "cell4"], n=2)
    assert hint.count("'cell") == 2
