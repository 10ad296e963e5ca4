"""Experiment tracking: a finished run folder recorded in MLflow (optional).

MLflow is an optional dependency (``pip install hybridml[mlflow]``, which installs
``mlflow-skinny``). It is imported only here, and only when a run is logged, so that
``import hybridml`` and every other command never load it.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..exceptions import HybridMLError

__all__ = ["TrackingError", "log_to_mlflow"]

#: MLflow takes at most this many parameters in one call
_BATCH = 100
#: and parameter values of at most this many characters
_MAX_VALUE = 6000


class TrackingError(HybridMLError, RuntimeError):
    """A run could not be recorded in the experiment tracker: MLflow is not installed,
    the tracking URI is refused, or logging failed (the run folder itself is complete)."""


def require_mlflow(what: str) -> Any:
    """The ``mlflow`` module, or a :class:`TrackingError` saying how to install it."""
    try:
        import mlflow
    except ImportError as exc:
        raise TrackingError(
            f"{what} records the run in MLflow, which is not installed ({exc}); install it "
            "with `pip install hybridml[mlflow]` (or `pip install mlflow-skinny`)."
        ) from None
    return mlflow


def _uri(uri: str) -> str:
    """A tracking URI; a plain folder path becomes an absolute ``file:`` URI."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", uri):  # a scheme (file:, sqlite:, http:, ...)
        return uri
    return Path(uri).expanduser().resolve().as_uri()


@contextlib.contextmanager
def _file_store(uri: str) -> Iterator[None]:
    """MLflow 3 refuses its local file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set:
    a ``file:`` URI asked for by name is allowed for the time of the logging only (a value
    the user set is left as it is)."""
    key = "MLFLOW_ALLOW_FILE_STORE"
    if not uri.startswith("file:") or key in os.environ:
        yield
        return
    os.environ[key] = "true"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def _name(key: str) -> str:
    """A metric or parameter name MLflow accepts: other characters than letters, digits,
    ``_ . - : /`` and spaces (e.g. the brackets of units) become ``_``."""
    out = re.sub(r"[^\w.\- :/]", "_", key)
    if posixpath.normpath(out) != out or out.startswith("/"):
        out = out.replace("/", "_")
    return out[:250]


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        for i, v in enumerate(value):
            yield from _flat(v, f"{prefix}.{i}")
    else:
        yield prefix, value


def _params(config: Path) -> dict[str, str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    raw = tomllib.loads(config.read_text(encoding="utf-8"))
    return {_name(k): str(v)[:_MAX_VALUE] for k, v in _flat(raw)}


def _metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in _flat(metrics):
        if isinstance(v, bool):
            out[_name(k)] = float(v)
        elif isinstance(v, int | float):
            out[_name(k)] = float(v)
        elif isinstance(v, list) and v and all(isinstance(x, int | float) for x in v):
            out.update({_name(f"{k}.{i}"): float(x) for i, x in enumerate(v)})
    return out


def log_to_mlflow(
    run_dir: str | os.PathLike[str], uri: str | os.PathLike[str], *, experiment: str | None = None
) -> str:
    """Record a run folder written by :func:`~hybridml.run_study` in MLflow.

    The MLflow run gets the configuration's settings as parameters (``config.toml``
    flattened: ``training.adam_steps``, ``checks.0.type``, ...), the numbers of
    ``metrics.json`` as metrics (``train.rmse y _-_``: characters MLflow does not allow in
    names, such as the brackets of units, become ``_``), tags (study, seed, the input data's
    SHA-256, the hybridml and torch versions, the run folder) and the whole run folder as
    artifacts: the model file ``checkpoint.pt``, ``figures/*.png``, the config, manifest,
    metrics, predictions and consistency report. The artifacts keep the folder's layout,
    so a downloaded copy is a run folder ``hybridml predict`` reads.

    Args:
        run_dir: the run folder.
        uri: the MLflow tracking URI: ``file:/path/mlruns`` or a plain folder path (a
            local store, no server), ``sqlite:///mlflow.db``, ``http://host:5000``, ...
        experiment: the MLflow experiment (created if missing); default: the study name.

    Returns:
        The MLflow run id.

    Raises:
        TrackingError: MLflow is not installed, or refused the URI or the logging.
        FileNotFoundError: ``run_dir`` is not a run folder.
    """
    run = Path(run_dir)
    if not (run / "metrics.json").is_file():
        raise FileNotFoundError(f"log_to_mlflow: '{run}' is not a run folder (no metrics.json).")
    mlflow = require_mlflow("log_to_mlflow")
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    manifest_path = run / "manifest.json"
    manifest = (
        json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    )
    study = str(metrics.get("study", run.name))
    versions = manifest.get("versions", {})
    tags = {
        "mlflow.runName": study,
        "hybridml.study": study,
        "hybridml.run_folder": str(run.resolve()),
        "hybridml.seed": str(metrics.get("seed")),
        "hybridml.version": str(versions.get("hybridml")),
        "hybridml.torch": str(versions.get("torch")),
    }
    for key, entry in manifest.get("inputs", {}).items():
        tags[f"hybridml.{key}.sha256"] = str(entry.get("sha256"))
    params = _params(run / "config.toml") if (run / "config.toml").exists() else {}
    values = _metrics(metrics)
    uri = _uri(os.fspath(uri))
    try:
        with _file_store(uri), warnings.catch_warnings():
            # MLflow's own notices (e.g. that the file store is in maintenance mode) are
            # not the user's concern here
            warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
            client = mlflow.MlflowClient(tracking_uri=uri)
            name = experiment or study
            found = client.get_experiment_by_name(name)
            exp_id = found.experiment_id if found is not None else client.create_experiment(name)
            run_id = str(client.create_run(exp_id, run_name=study).info.run_id)
            try:
                _log(client, run_id, run, params, values, tags, (Metric, Param, RunTag))
            except BaseException:
                client.set_terminated(run_id, status="FAILED")
                raise
            client.set_terminated(run_id)
    except MlflowException as exc:
        raise TrackingError(
            f"MLflow ({uri}) refused the run of '{run}': {str(exc)[:500]} The run folder is "
            f"complete; log it again with hybridml.log_to_mlflow({str(run)!r}, URI)."
        ) from None
    return run_id


def _log(
    client: Any,
    run_id: str,
    run: Path,
    params: dict[str, str],
    values: dict[str, float],
    tags: dict[str, str],
    entities: tuple[Any, Any, Any],
) -> None:
    """Parameters, metrics and tags (in batches MLflow takes), then the run folder."""
    metric, param, tag = entities
    items = list(params.items())
    stamp = int(os.path.getmtime(run / "metrics.json") * 1000)
    for i in range(0, max(len(items), 1), _BATCH):
        client.log_batch(
            run_id,
            params=[param(k, v) for k, v in items[i : i + _BATCH]],
            metrics=[metric(k, v, stamp, 0) for k, v in values.items()] if i == 0 else [],
            tags=[tag(k, v) for k, v in tags.items()] if i == 0 else [],
        )
    client.log_artifacts(run_id, str(run))
