"""The command line: simulators, example/run (a reproducible run folder), check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybridml.cli import main


def test_simulators_lists_adapters_with_capabilities(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulators"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("ode "))
    assert "data" in line and "constraints" in line and "checks" in line


def test_example_writes_a_reproducible_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["example", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    assert "consistency report" in printed
    for name in (
        "config.toml",
        "manifest.json",
        "metrics.json",
        "predictions.csv",
        "checkpoint.pt",
        "consistency.json",
        "figures/training.png",
    ):
        assert (out / name).exists(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0
    assert len(manifest["inputs"]["data"]["sha256"]) == 64
    assert "torch" in manifest["versions"] and "hybridml" in manifest["versions"]
    metrics = json.loads((out / "metrics.json").read_text())
    # 12 noisy points (sd 0.02) of a damped oscillator plus its equation of motion: the
    # held-out error over the whole 10 s must be small against the amplitude 1 m. 0.1 m is
    # loose on purpose (quick mode trains with 4x fewer Adam steps).
    assert metrics["test"]["rmse x [m]"] < 0.1
    consistency = json.loads((out / "consistency.json").read_text())
    assert consistency["passed"], consistency
    names = {c["name"] for c in consistency["checks"]}
    # the adapter's checks (state bounds, ODE residual at fresh times) plus the config's
    assert {"x [m] bounds", "ode_residual", "v [m/s] bounds"} <= names


def test_run_reports_config_error_with_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d.csv").write_text("t [s],x [m]\n0,1\n1,2\n", encoding="utf-8")
    cfg = tmp_path / "s.toml"
    cfg.write_text('[data]\npath = "d.csv"\ninputs = ["t [s]"]\noutputs = "x"\n', encoding="utf-8")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "data.outputs" in err and "line 4" in err


def test_check_command_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = tmp_path / "p.csv"
    preds.write_text(
        "cell,cycle,capacity [A.h]\nA,1,2.0\nA,2,1.9\nA,3,2.3\nA,4,1.8\n", encoding="utf-8"
    )
    checks = tmp_path / "c.toml"
    checks.write_text(
        '[[checks]]\ntype = "monotone"\ncolumn = "capacity [A.h]"\nalong = "cycle"\n'
        'group = "cell"\ntolerance = 0.05\n\n[[checks]]\ntype = "bounds"\n'
        'column = "capacity [A.h]"\nlower = 0.0\n',
        encoding="utf-8",
    )
    code = main(
        [
            "check",
            str(preds),
            "--checks",
            str(checks),
            "--group",
            "cell",
            "--coordinate",
            "cycle",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out
    report = json.loads((tmp_path / "r.json").read_text())
    mono = next(c for c in report["checks"] if not c["passed"])
    assert mono["where"]["cycle"] == 3  # the jump up by 0.4 Ah at cycle 3
    assert abs(mono["worst_violation"] - 0.4) < 1e-9


def _fake_plugins(root: Path) -> dict[str, str]:
    """A distribution on ``root`` (a real ``.dist-info`` that ``importlib.metadata`` reads,
    no mock) with two ``hybridml.commands`` entry points: ``demo``, whose command raises a
    library error of its own, and ``broken``, whose module does not exist."""
    (root / "hybridml_demo_cmd.py").write_text(
        "from hybridml.exceptions import HybridMLError\n\n"
        "class DemoError(HybridMLError, ValueError):\n"
        "    pass\n\n"
        "def _run(args):\n"
        "    raise DemoError(f'cell {args.cell!r} has no data')\n\n"
        "def add(sub):\n"
        "    p = sub.add_parser('demo', help='a demo plug-in command')\n"
        "    p.add_argument('--cell', default='B0005')\n"
        "    p.set_defaults(func=_run)\n",
        encoding="utf-8",
    )
    info = root / "hybridml_demo_cmd-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: hybridml-demo-cmd\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[hybridml.commands]\ndemo = hybridml_demo_cmd:add\nbroken = no_such_module_xyz:add\n",
        encoding="utf-8",
    )
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _hybridml(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "import sys; from hybridml.cli import main; sys.exit(main())"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, check=False)


def test_plugin_commands_are_listed_and_a_broken_one_is_one_line(tmp_path: Path) -> None:
    env = _fake_plugins(tmp_path)
    out = _hybridml(["--help"], env)
    assert out.returncode == 0
    assert "demo" in out.stdout and "a demo plug-in command" in out.stdout
    # the broken plug-in: one line on stderr that names it, no traceback
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert "'broken'" in lines[0] and "no_such_module_xyz" in lines[0]
    assert "Traceback" not in out.stderr


def test_library_errors_are_one_clean_line_with_status_2(tmp_path: Path) -> None:
    # a HybridMLError subclass the CLI has never heard of, raised by a plug-in command
    env = _fake_plugins(tmp_path)
    out = _hybridml(["demo", "--cell", "C7"], env)
    assert out.returncode == 2
    err = [ln for ln in out.stderr.splitlines() if ln.strip() and "'broken'" not in ln]
    assert err == ["hybridml demo: error: cell 'C7' has no data"]


def test_core_command_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preds = tmp_path / "p.csv"
    preds.write_text("cycle,cap\n1,2.0\n2,1.9\n", encoding="utf-8")
    checks = tmp_path / "c.toml"
    checks.write_text(
        '[[checks]]\ntype = "bounds"\ncolumn = "cap"\nlower = 1.0\nupper = 0.5\n', encoding="utf-8"
    )
    assert main(["check", str(preds), "--checks", str(checks)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hybridml check: error: ")
    assert "upper" in err[0]
    # a missing file is reported the same way
    assert main(["check", str(tmp_path / "nope.csv"), "--checks", str(checks)]) == 2
    assert capsys.readouterr().err.startswith("hybridml check: error: ")


# a tiny study: y = exp(-t) measured at 16 times, the ODE adapter's physics (built from
# [simulator] with a callable), a check and an output transform: objects the model file
# describes but does not store, which `hybridml predict` rebuilds from the run's config
_STUDY = """
[study]
name = "decay"
[data]
path = "d.csv"
inputs = ["t [s]"]
outputs = ["y [-]"]
[simulator]
name = "ode"
[simulator.options]
y0 = [1.0]
t_span = [0.0, 2.0]
state_names = ["y [-]"]
params = { k = 1.0 }
[simulator.callables]
rhs = "hybridml_ode:exponential_decay"
[model]
hidden = [8]
[training]
adam_steps = 40
lbfgs_steps = 0
[predict]
grid = { "t [s]" = [0.0, 2.0, 5] }
[[transforms]]
output = "y [-]"
type = "positive"
[[checks]]
type = "bounds"
column = "y [-]"
lower = 0.0
"""


def _tiny_run(tmp_path: Path, extra: str = "") -> Path:
    t = [0.125 * i for i in range(16)]
    rows = "\n".join(f"{a!r},{2.718281828459045**-a!r}" for a in t)
    (tmp_path / "d.csv").write_text(f"t [s],y [-]\n{rows}\n", encoding="utf-8")
    (tmp_path / "s.toml").write_text(_STUDY + extra, encoding="utf-8")
    run = tmp_path / "run"
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(run)]) == 0
    return run


def _read_csv(path: Path) -> tuple[list[str], list[list[float]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].split(","), [[float(v) for v in ln.split(",")] for ln in lines[1:]]


def test_predict_from_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hybridml as hm

    run = _tiny_run(tmp_path)
    capsys.readouterr()
    # the same model loaded with the Python API, given the objects the config describes
    est = hm.build_estimator(hm.load_config(tmp_path / "s.toml"))
    model = hm.load_model(
        run / "checkpoint.pt", adapters=est.adapters, checks=est.checks, transform=est.transform
    )
    # the run's data may be gone: predict needs the run folder and the new rows only
    (tmp_path / "d.csv").unlink()
    new = tmp_path / "new.csv"
    # extra columns (a label, a measurement) are not read; the order of columns is free
    new.write_text("cell,y [-],t [s]\nA,0.5,0.0\nA,0.4,0.5\nB,0.3,1.5\n", encoding="utf-8")
    assert main(["predict", str(run), str(new)]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "new.predictions.csv"
    assert "rows: 3" in out and f"predictions: {written}" in out
    assert "y [-] bounds" in out  # the config's check ran on the new predictions
    header, values = _read_csv(written)
    assert header == ["t [s]", "y [-]"]
    assert [r[0] for r in values] == [0.0, 0.5, 1.5]
    # bitwise the Python API's predictions (floats are written with repr)
    expected = model.predict_values([[0.0], [0.5], [1.5]])[:, 0]
    assert [r[1] for r in values] == expected.tolist()

    assert main(["predict", str(run), str(new), "--out", str(tmp_path / "p" / "o.csv")]) == 0
    assert _read_csv(tmp_path / "p" / "o.csv") == (header, values)


def test_predict_errors_name_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _tiny_run(tmp_path)
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text("time [s],y [-]\n0.0,1.0\n", encoding="utf-8")

    def error(*args: str) -> str:
        assert main(["predict", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("hybridml predict: error: "), err
        return err[0]

    msg = error(str(run), str(bad))
    assert str(bad) in msg and "'t [s]' does not exist" in msg
    assert "expects the input columns 't [s]'" in msg
    assert not (tmp_path / "bad.predictions.csv").exists()
    msg = error(str(tmp_path / "no_run"), str(bad))
    assert "no run folder" in msg and "no_run" in msg
    (run / "checkpoint.pt").unlink()
    msg = error(str(run), str(bad))
    assert "has no model file checkpoint.pt" in msg


def test_predict_an_ensemble_run_writes_its_intervals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _tiny_run(tmp_path, "[ensemble]\nmembers = 3\ncalibration = 0.5\ncoverage = 0.8\n")
    new = tmp_path / "new.csv"
    new.write_text("t [s]\n0.25\n1.75\n", encoding="utf-8")
    assert main(["predict", str(run), str(new)]) == 0
    assert "DeepEnsemble, 3 members" in capsys.readouterr().out
    header, values = _read_csv(tmp_path / "new.predictions.csv")
    assert header == ["t [s]", "y [-]", "y [-] lower", "y [-] upper", "y [-] std"]
    for _, mean, lower, upper, std in values:
        assert lower <= mean <= upper and std >= 0.0


def test_predict_a_batched_ensemble_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hybridml as hm

    t = [0.0625 * i for i in range(32)]
    rows = "\n".join(f"{a!r},{2.718281828459045**-a!r}" for a in t)
    (tmp_path / "d.csv").write_text(f"t [s],y [-]\n{rows}\n", encoding="utf-8")
    (tmp_path / "s.toml").write_text(
        '[study]\nname = "b"\n[data]\npath = "d.csv"\ninputs = ["t [s]"]\n'
        'outputs = ["y [-]"]\n[model]\nhidden = [8]\n[training]\nadam_steps = 40\n'
        '[ensemble]\nkind = "batched"\nmembers = 3\ncalibration = 0.5\ncoverage = 0.8\n',
        encoding="utf-8",
    )
    run = tmp_path / "run"
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(run)]) == 0
    model = hm.load_model(run / "checkpoint.pt")  # the run folder's model file
    assert type(model) is hm.BatchedEnsemble
    new = tmp_path / "new.csv"
    new.write_text("t [s]\n0.25\n1.75\n", encoding="utf-8")
    assert main(["predict", str(run), str(new)]) == 0
    assert "BatchedEnsemble" in capsys.readouterr().out
    header, values = _read_csv(tmp_path / "new.predictions.csv")
    assert header == ["t [s]", "y [-]", "y [-] lower", "y [-] upper", "y [-] std"]
    pred = model.predict([[0.25], [1.75]])
    assert [r[1] for r in values] == pred.mean[:, 0].tolist()
    assert [r[3] for r in values] == pred.upper[:, 0].tolist()
