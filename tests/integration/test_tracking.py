"""Experiment tracking: `hybridml run --mlflow URI` and `run_study(log_to=)` record a run's
parameters, metrics, figures and model file in MLflow (a local file store in tmp_path, no
server). MLflow is optional: these tests need it (`pip install hybridml[mlflow]`) and are
skipped without it, except the one that checks the error without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hybridml as hm
from hybridml.cli import main

_STUDY = """
[study]
name = "decay"
seed = 3
[data]
path = "d.csv"
inputs = ["t [s]"]
outputs = ["y [-]"]
[model]
hidden = [8]
[training]
adam_steps = 30
lbfgs_steps = 0
[predict]
grid = { "t [s]" = [0.0, 2.0, 5] }
[[checks]]
type = "bounds"
column = "y [-]"
lower = -1.0
"""


def _study(tmp_path: Path) -> Path:
    t = [0.125 * i for i in range(16)]
    rows = "\n".join(f"{a!r},{float(np.exp(-a))!r}" for a in t)
    (tmp_path / "d.csv").write_text(f"t [s],y [-]\n{rows}\n", encoding="utf-8")
    (tmp_path / "s.toml").write_text(_STUDY, encoding="utf-8")
    return tmp_path / "s.toml"


def _mlflow() -> object:
    return pytest.importorskip(
        "mlflow", reason="MLflow is optional (pip install hybridml[mlflow]); CI does not install it"
    )


def test_run_with_mlflow_records_params_metrics_figures_and_the_model_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = _mlflow()
    store = f"file:{tmp_path / 'mlruns'}"
    run = tmp_path / "run"
    assert main(["run", str(_study(tmp_path)), "--out", str(run), "--mlflow", store]) == 0
    assert f"recorded in MLflow: {store}" in capsys.readouterr().out
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # allowed for the logging only

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read the store back here
    client = mlflow.MlflowClient(tracking_uri=store)  # type: ignore[attr-defined]
    exp = client.get_experiment_by_name("decay")  # the study's name
    (found,) = client.search_runs([exp.experiment_id])
    assert found.info.status == "FINISHED"
    params, values, tags = found.data.params, found.data.metrics, found.data.tags
    assert params["training.adam_steps"] == "30" and params["model.hidden"] == "[8]"
    assert params["checks.0.type"] == "bounds"
    written = json.loads((run / "metrics.json").read_text())
    # the units' brackets are not allowed in MLflow names: they become underscores
    assert values["train.rmse y _-_"] == written["train"]["rmse y [-]"]
    assert values["consistency_passed"] == 1.0
    assert tags["hybridml.seed"] == "3"
    manifest = json.loads((run / "manifest.json").read_text())
    assert tags["hybridml.data.sha256"] == manifest["inputs"]["data"]["sha256"]
    names = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"checkpoint.pt", "config.toml", "metrics.json", "figures"} <= names
    figures = {a.path for a in client.list_artifacts(found.info.run_id, "figures")}
    assert "figures/training.png" in figures
    # the logged model file is the run's: it loads and predicts the same numbers
    local = client.download_artifacts(found.info.run_id, "checkpoint.pt", str(tmp_path))
    checks = [hm.Bounds("y [-]", lower=-1.0)]
    logged = hm.load_model(local, checks=checks)
    original = hm.load_model(run / "checkpoint.pt", checks=checks)
    grid = np.linspace(0.0, 2.0, 7)[:, None]
    np.testing.assert_array_equal(logged.predict_values(grid), original.predict_values(grid))
    assert logged.data_hash_ == original.data_hash_ and len(logged.data_hash_) == 64


def test_run_study_log_to_a_folder_path_and_a_second_run_in_the_same_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = _mlflow()
    config = _study(tmp_path)
    store = tmp_path / "store"  # a plain folder: a local file store
    hm.run_study(config, tmp_path / "a", log_to=str(store))
    hm.run_study(config, tmp_path / "b", log_to=str(store))
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read the store back here
    client = mlflow.MlflowClient(tracking_uri=store.resolve().as_uri())  # type: ignore[attr-defined]
    runs = client.search_runs([client.get_experiment_by_name("decay").experiment_id])
    assert len(runs) == 2
    folders = {r.data.tags["hybridml.run_folder"] for r in runs}
    assert folders == {str((tmp_path / "a").resolve()), str((tmp_path / "b").resolve())}
    # same config, same seed, same data: the same metrics
    assert runs[0].data.metrics["train.rmse y _-_"] == runs[1].data.metrics["train.rmse y _-_"]


def test_without_mlflow_the_option_is_refused_before_any_work(tmp_path: Path) -> None:
    # runs with or without MLflow installed: the child process cannot import it
    config = _study(tmp_path)
    code = (
        "import sys; sys.modules['mlflow'] = None\n"  # what `import mlflow` sees without it
        "from hybridml.cli import main\n"
        f"sys.exit(main(['run', {str(config)!r}, '--out', {str(tmp_path / 'run')!r}, "
        f"'--mlflow', 'file:{tmp_path / 'mlruns'}']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )
    assert out.returncode == 2, out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hybridml run: error: ")
    assert "pip install hybridml[mlflow]" in err[0]
    assert not (tmp_path / "run").exists()  # refused before any training
