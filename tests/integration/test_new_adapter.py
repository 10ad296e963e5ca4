"""`hybridml new-adapter NAME`: the package it writes is installable (a real entry point)
and passes the adapter contract suite as generated; bad names are clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybridml.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _register(folder: Path, site: Path) -> dict[str, str]:
    """Install the generated package the way ``pip install -e`` does for importlib.metadata:
    a real ``.dist-info`` (read from the generated pyproject, not written by hand) whose
    entry points the registry reads, with the package folder on the path."""
    project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8",
    )
    text = ""
    for group, eps in project["entry-points"].items():
        text += f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
    (info / "entry_points.txt").write_text(text, encoding="utf-8")
    path = os.pathsep.join([str(site), str(folder), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def test_generated_adapter_passes_the_contract_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-adapter", "my_sim", "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "my_sim"
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert written == [
        "README.md",
        "hybridml_my_sim/__init__.py",
        "pyproject.toml",
        "tests/test_my_sim_adapter.py",
    ]
    assert f"pip install -e {folder}" in capsys.readouterr().out
    project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["hybridml.simulators"] == {
        "my_sim": "hybridml_my_sim:MySimAdapter"
    }
    env = _register(folder, tmp_path / "site")
    # the generated tests, run as a user runs them (warnings are errors, as in this suite)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "tests"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    tail = out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    # the data and checks tests ran (registry, sweep, cache, failure, own checks); the
    # constraints and forward tests are skipped: the template does not declare them
    assert " passed" in out.stdout and " failed" not in out.stdout, tail
    assert "test_registered_under_its_name" not in out.stdout  # it passed, not skipped
    listing = subprocess.run(
        [sys.executable, "-c", "from hybridml.cli import main; main(['simulators'])"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "my_sim" in listing.stdout and "data, checks" in listing.stdout


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("my-sim", "not a valid adapter name"),
        ("1sim", "not a valid adapter name"),
        ("class", "not a valid adapter name"),
        ("MySim", "lower case"),
    ],
)
def test_bad_names_are_clear_errors(
    name: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-adapter", name, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hybridml new-adapter: error: ")
    assert message in err[0]
    assert not any(tmp_path.iterdir())  # nothing written


def test_existing_folder_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mysim").mkdir()
    (tmp_path / "mysim" / "keep.txt").write_text("mine", encoding="utf-8")
    assert main(["new-adapter", "mysim", "--dir", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "mysim").iterdir()] == ["keep.txt"]
