"""The public surface: examples, docs, adapters and benchmarks use public names only, every
public name resolves, and every core module imports on its own (no import cycle)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hybridml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "hybridml"

# `hybridml._x`, `hybridml.nn._x`, `from hybridml.training._trainer import ...`: a private
# module of the core (a leading underscore in any part after `hybridml`)
PRIVATE = re.compile(r"\bhybridml(?:\.[A-Za-z]\w*)*\._\w+")


def _user_facing_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for folder, pattern in (
        ("examples", "*.py"),
        ("examples", "*.md"),
        ("docs", "*.md"),
        ("benchmarks", "*.py"),
        ("simulators", "*.py"),
        ("simulators", "*.md"),
    ):
        files += sorted((ROOT / folder).rglob(pattern))
    return [f for f in files if ".venv" not in f.parts and f.is_file()]


def test_examples_docs_adapters_and_benchmarks_use_public_names_only() -> None:
    offenders = []
    for f in _user_facing_files():
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if PRIVATE.search(line) and "__version__" not in line:
                offenders.append(f"{f.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "private hybridml modules used:\n" + "\n".join(offenders)


def test_tests_use_public_names_only() -> None:
    # the tests exercise the library as users do; the only exception is this file's own
    # pattern above
    offenders = []
    for f in sorted((ROOT / "tests").rglob("*.py")):
        if f.name == Path(__file__).name:
            continue
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"^\s*(from|import) hybridml(\.\w+)*\._", line):
                offenders.append(f"{f.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "tests import private modules:\n" + "\n".join(offenders)


def test_every_public_name_resolves_and_is_listed_once() -> None:
    names = [n for n in hybridml.__all__ if n != "__version__"]
    assert len(names) == len(set(names))
    for name in names:
        value = getattr(hybridml, name)
        module = getattr(value, "__module__", "") or ""
        # defined in the core, never re-exported from a simulator or a plug-in
        assert not module or module.startswith("hybridml"), (name, module)


def _core_modules() -> list[str]:
    mods = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods.append(".".join(parts))
    return mods


def test_core_modules_are_small() -> None:
    # one concept per module: none over 500 lines
    big = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert not big, big


FORK_PROBE = r"""
import importlib, os, sys, traceback
import numpy, scipy, torch  # the heavy dependencies, loaded once; hybridml is not imported
failed = []
for module in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:  # the child imports one module first, in a process that has no hybridml
        try:
            importlib.import_module(module)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(module)
print("FAILED", " ".join(failed))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_every_core_module_imports_on_its_own() -> None:
    # an import cycle shows only when a module is the first one imported, as in a
    # subprocess that imports one private module (the DeepXDE adapter's precompile child
    # does): import each module first, in a forked child of an interpreter that has
    # loaded numpy, scipy and torch but no hybridml
    out = subprocess.run(
        [sys.executable, "-c", FORK_PROBE, *_core_modules()], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "FAILED", out.stdout + out.stderr[-3000:]
