"""`import hybridml` has no side effects: no simulator imported, no global torch setting
changed, no file written; the command line starts fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = r"""
import json, os, sys
before = set(os.listdir("."))
import torch
dtype0, threads0, seed0 = torch.get_default_dtype(), torch.get_num_threads(), torch.initial_seed()
import hybridml
names = list(hybridml.__all__)
for name in names:            # resolve every public name: imports every core module
    getattr(hybridml, name)
import hybridml.testing, hybridml.cli
print(json.dumps({
    "simulators": [m for m in ("pybamm", "deepxde") if m in sys.modules],
    "dtype_same": torch.get_default_dtype() == dtype0,
    "threads_same": torch.get_num_threads() == threads0,
    "seed_same": torch.initial_seed() == seed0,
    "new_files": sorted(set(os.listdir(".")) - before),
    "n_names": len(names),
}))
"""


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["simulators"] == [], "import hybridml must not import a simulator"
    assert info["dtype_same"] and info["threads_same"] and info["seed_same"]
    assert info["new_files"] == []
    assert info["n_names"] > 30


def test_plain_import_does_not_load_torch() -> None:
    # the package namespace is lazy: the CLI and `import hybridml` stay cheap
    code = "import sys, hybridml; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_help_imports_no_heavy_module() -> None:
    # `hybridml --help` must start fast on any machine. Timing it would test the machine's
    # load, so the property asserted is the cause of a slow start: the command builds its
    # parser (plug-in commands included) without importing torch, numpy, PyBaMM or DeepXDE
    code = (
        "import sys\n"
        "from hybridml.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('torch', 'numpy', 'scipy', 'pybamm', 'deepxde', 'matplotlib')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "simulators" in out.stdout and "run" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []", out.stdout[-400:]


def test_unknown_attribute_is_an_attribute_error() -> None:
    import hybridml

    try:
        hybridml.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
