"""Run a configured study and write a run folder a colleague can reproduce from.

The run folder holds: ``config.toml`` (the configuration as given), ``manifest.json``
(hashes of the input data, the seed, package versions, the command), ``metrics.json``,
``predictions.csv`` (with an ensemble's interval columns), ``checkpoint.pt`` (the fitted
model's model file), ``consistency.json``, ``cv.json`` (with ``[cross_validation]``) and
``figures/*.png``. It is written as a whole (:class:`RunFolder`): a run that fails or
is killed leaves the previous run folder as it was. Its training progress is saved in
``<out>.progress/`` meanwhile, so that a rerun after a kill resumes it (``_progress.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import (
    CheckpointMismatchError,
    ConfigError,
    HybridMLError,
    UnknownSimulatorError,
    did_you_mean,
)
from ._config import StudyConfig, config_error, load_config
from ._folder import RunFolder
from ._progress import TrainingProgress, progress_key

__all__ = ["load_data", "run_manifest", "run_study", "sha256_file"]


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "hybridml",
        "torch",
        "numpy",
        "scipy",
        "matplotlib",
        "torchdiffeq",
        "pybamm",
        "deepxde",
        "hybridml-ode",
        "hybridml-pybamm",
        "hybridml-deepxde",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_manifest(*, seed: int, inputs: dict[str, str | Path], **extra: Any) -> dict[str, Any]:
    """What a colleague needs to reproduce a run: data hashes, seed, versions, command."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "seed": seed,
        "inputs": {k: {"path": str(p), "sha256": sha256_file(p)} for k, p in inputs.items()},
        "versions": _versions(),
        "platform": platform.platform(),
        **extra,
    }


def load_data(path: Path, cfg: StudyConfig) -> Any:
    """Load a CSV or NumPy data file with the study's group/coordinate settings."""
    from ..data._dataset import Dataset

    kwargs: dict[str, Any] = {"group": cfg.data.group, "coordinate": cfg.data.coordinate}
    if path.suffix.lower() in (".npz", ".npy"):
        return Dataset.from_numpy(path, **kwargs)
    return Dataset.from_csv(path, **kwargs)


def _resolve(cfg: StudyConfig, key: str, spec: str) -> Any:
    """The object a ``[simulator.callables]`` entry ``"module:attribute"`` names; a module
    that cannot be found or a missing attribute is a ConfigError naming the key."""

    def error(msg: str) -> ConfigError:
        return config_error(cfg.path, cfg.text, "simulator.callables", key, f"{spec!r}: {msg}")

    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise error('expected "module:attribute", e.g. "hybridml_ode:damped_oscillator".')
    try:
        obj: Any = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name != module and not module.startswith(f"{exc.name}."):
            raise error(
                f"importing {module!r} failed: it needs {exc.name!r}, which is not installed."
            ) from exc
        raise error(
            f"no module named {module!r}; check the spelling, install it, or put the folder "
            "that holds it on PYTHONPATH."
        ) from None
    for depth, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            where = ".".join([module, *attr.split(".")[:depth]])
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise error(f"{where!r} has no attribute {part!r}.{did_you_mean(part, names)}")
        obj = getattr(obj, part)
    return obj


def _build_adapters(cfg: StudyConfig) -> list[Any]:
    """The adapter the ``[simulator]`` table describes (an empty list without one).

    Everything wrong with the table is a :class:`~hybridml.exceptions.ConfigError` naming
    the file, the key and what to do, raised before any data is read or any training: an
    adapter that is not installed, an option the adapter does not take, a callable that
    cannot be imported, a setting the adapter needs and did not get, or one it refuses.
    """
    if cfg.simulator is None:
        return []
    from ..adapters import load_simulator

    sim = cfg.simulator
    try:
        cls = load_simulator(sim.name)
    except UnknownSimulatorError as exc:
        raise config_error(cfg.path, cfg.text, "simulator", "name", str(exc)) from None
    params = inspect.signature(cls).parameters
    settable = [n for n, q in params.items() if q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)]
    any_key = any(q.kind is q.VAR_KEYWORD for q in params.values())
    for table, keys in (("options", sim.options), ("callables", sim.callables)):
        for key in keys:
            if key in sim.options and table == "callables":
                raise config_error(
                    cfg.path,
                    cfg.text,
                    "simulator.callables",
                    key,
                    "is also in [simulator.options]; give each setting once.",
                )
            if not any_key and key not in settable:
                raise config_error(
                    cfg.path,
                    cfg.text,
                    f"simulator.{table}",
                    key,
                    f"the {sim.name!r} adapter ({cls.__name__}) has no setting {key!r}."
                    f"{did_you_mean(key, settable)} Its settings: {', '.join(settable)}.",
                )
    kwargs = dict(sim.options)
    kwargs.update({k: _resolve(cfg, k, v) for k, v in sim.callables.items()})
    missing = [
        n for n, q in params.items() if n in settable and q.default is q.empty and n not in kwargs
    ]
    if missing:
        raise config_error(
            cfg.path,
            cfg.text,
            "simulator",
            "options",
            f"the {sim.name!r} adapter ({cls.__name__}) needs the setting(s) "
            f"{', '.join(missing)}: add them to [simulator.options] (numbers, strings, lists, "
            'tables) or [simulator.callables] (functions, as "module:attribute").',
        )
    try:
        return [cls(**kwargs)]
    except (TypeError, ValueError, HybridMLError) as exc:
        raise config_error(
            cfg.path,
            cfg.text,
            "simulator",
            "options",
            f"the {sim.name!r} adapter ({cls.__name__}) refused these settings: {exc}",
        ) from exc


def _grid(cfg: StudyConfig, x_data: np.ndarray) -> np.ndarray:
    axes = []
    for i, name in enumerate(cfg.data.inputs):
        if name in cfg.predict.grid:
            a, b, n = cfg.predict.grid[name]
            axes.append(np.linspace(a, b, int(n)))
        else:
            axes.append(np.unique(x_data[:, i]))
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    names = list(columns)
    n = len(next(iter(columns.values())))
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(names) + "\n")
        for i in range(n):
            f.write(",".join(_cell(columns[c][i]) for c in names) + "\n")


def _cell(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return str(v)


def run_study(
    config_path: str | Path,
    out: str | Path | None = None,
    *,
    device: str | None = None,
    fresh: bool = False,
    log_to: str | os.PathLike[str] | None = None,
) -> Path:
    """Run the study in ``config_path`` and return its run folder.

    The folder is ``out`` if given, else ``runs/<study name>`` beside the config file.
    ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``) overrides the config's
    ``study.device``.
    What the config asks for is built with the Python API (``docs/config.md``): the
    estimator (a :class:`~hybridml.HybridRegressor`, or a
    :class:`~hybridml.DeepEnsemble`/:class:`~hybridml.BatchedEnsemble` of them), its
    phases, output transforms, early stopping, simulated rows (mixed in, or for
    pre-training and fine-tuning) and cross-validation; their results go into the run
    folder (``metrics.json``, ``cv.json``, interval columns in ``predictions.csv``).

    Training progress is saved in ``<out>.progress/`` (trainer checkpoints, written
    atomically), so that the same call after a kill resumes where the run stopped and
    gives the same results as an uninterrupted run; the folder is removed once the run
    folder is in place. A progress folder of another config, other input data or another
    version is discarded, as is a checkpoint that cannot be read (named on standard
    error); ``fresh=True`` (``--fresh``) discards it in any case. A
    :class:`~hybridml.BatchedEnsemble` and the fine-tuning stage of ``[finetune]`` save
    no progress (they start over).

    ``log_to`` (``--mlflow URI``), an MLflow tracking URI (e.g. ``file:/path/mlruns``, a
    local store), records the finished run there with :func:`~hybridml.log_to_mlflow`:
    parameters, metrics, figures, the model file. MLflow is optional
    (``pip install hybridml[mlflow]``); without it ``log_to`` is refused before any work.
    """
    from ._build import check_calibration, estimator

    if log_to is not None:
        from ._tracking import require_mlflow

        require_mlflow("run_study(log_to=...)")

    cfg = load_config(config_path)
    if device is not None:
        from .._device import resolve_device

        resolve_device(device)  # a device that is not there is refused before any work
        cfg = dataclasses.replace(cfg, device=device)
    adapters = _build_adapters(cfg)  # a mistake in [simulator] is reported before any work
    est = estimator(cfg, adapters)  # so is one in [[phases]] or [[checks]]
    destination = Path(out) if out is not None else cfg.path.parent / "runs" / cfg.name
    folder = RunFolder(destination)  # refuses a file or an unwritable place before any work
    train = load_data(cfg.data.path, cfg)
    test = load_data(cfg.data.test_path, cfg) if cfg.data.test_path is not None else None
    check_calibration(cfg, train)
    progress = TrainingProgress(destination, progress_key(cfg.text, _inputs(cfg), cfg.device))
    progress.open(fresh=fresh)
    try:
        with folder:
            est = estimator(cfg, adapters, str(progress.checkpoint))
            _fit_and_write(est, cfg, train, test, folder, adapters)
    except CheckpointMismatchError as exc:  # saved by another hybridml of the same version
        progress.discard(f"{exc}; starting over")
        progress.open()
        with folder:
            est = estimator(cfg, adapters, str(progress.checkpoint))
            _fit_and_write(est, cfg, train, test, folder, adapters)
    progress.remove()  # the run folder is in place: nothing is left to resume
    if log_to is not None:
        from ._tracking import log_to_mlflow

        log_to_mlflow(destination, log_to)
    return destination


def _inputs(cfg: StudyConfig) -> list[Path]:
    """The files a run reads: its data, test data, simulated rows, validation rows."""
    paths = [cfg.data.path, cfg.data.test_path]
    if cfg.synthetic is not None:
        paths.append(cfg.synthetic.path)
    if cfg.early_stopping is not None:
        paths.append(cfg.early_stopping.path)
    return [Path(p) for p in paths if p is not None]


def _fit(est: Any, cfg: StudyConfig, train: Any, adapters: list[Any]) -> dict[str, Any]:
    """Fit ``est`` as the config says; what the fit adds to ``metrics.json``."""
    from . import _build

    def load(path: Path) -> Any:
        return load_data(path, cfg)

    info: dict[str, Any] = {}
    if cfg.finetune is not None:
        synthetic = _build.synthetic_data(cfg, adapters, load)
        result = _build.finetune(est, cfg, train, synthetic)
        info["finetune"] = {
            "n_simulated_rows": int(sum(len(s["__measured"]) for s in synthetic)),
            "frozen": result.frozen,
            "final_loss": [
                {k: v[-1] for k, v in h.to_dict()["terms"].items()}
                for h in result.finetune_histories
            ],
        }
    elif cfg.synthetic is not None:
        synthetic = _build.synthetic_data(cfg, adapters, load)
        data = _build.combined(cfg, train, synthetic)
        info["synthetic"] = {"n_simulated_rows": int((~data.measured).sum())}
        est.fit(data)
    elif cfg.early_stopping is not None:
        fit_rows, val_rows = _build.validation_split(cfg, train, load)
        est.fit(fit_rows, validation=(val_rows, None))
        info["early_stopping"] = {
            "n_fit": fit_rows.n_rows,
            "n_validation": val_rows.n_rows,
            "events": [str(e) for e in est.history_.events],
        }
    else:
        est.fit(train)
    return info


def _fit_and_write(
    est: Any, cfg: StudyConfig, train: Any, test: Any, run: RunFolder, adapters: list[Any]
) -> None:
    from ..checks import ConsistencyReport
    from ._build import cross_validation

    run_dir = run / "."
    (run_dir / "figures").mkdir()
    shutil.copyfile(cfg.path, run_dir / "config.toml")
    metrics: dict[str, Any] = {"study": cfg.name, "seed": cfg.seed}
    if cfg.cross_validation is not None:
        cv = cross_validation(est, cfg, train)
        run.write_json("cv.json", cv.to_dict())
        metrics["cross_validation"] = cv.summary()
    t0 = time.perf_counter()
    metrics.update(_fit(est, cfg, train, adapters))
    metrics["fit_seconds"] = time.perf_counter() - t0
    metrics["train"] = _errors(est, train, cfg)
    if test is not None:
        metrics["test"] = _errors(est, test, cfg)
    metrics["final_loss"] = {k: v[-1] for k, v in _history(est).to_dict()["terms"].items()}
    if cfg.ensemble is not None:
        metrics["ensemble"] = _ensemble_metrics(est, cfg, test)

    x_train = train.array(cfg.data.inputs)
    grid = _grid(cfg, x_train)
    pred = est.predict(grid)
    columns = _prediction_columns(cfg, grid, pred)
    _write_csv(run_dir / "predictions.csv", columns)
    report = pred.report if pred.report is not None else ConsistencyReport(())
    report.to_json(run_dir / "consistency.json")
    metrics["consistency_passed"] = report.passed
    run.write_json("metrics.json", metrics)
    est.save(run_dir / "checkpoint.pt")  # a model file: hybridml.load_model reads it
    inputs: dict[str, str | Path] = {"data": cfg.data.path}
    if cfg.data.test_path is not None:
        inputs["test_data"] = cfg.data.test_path
    run.write_json(
        "manifest.json", run_manifest(seed=cfg.seed, inputs=inputs, config=str(cfg.path))
    )
    _figures(run_dir / "figures", _history(est), cfg, train, test, columns, report.passed)


def _history(est: Any) -> Any:
    """The training history (of a DeepEnsemble: its first member's)."""
    return est.history_ if hasattr(est, "history_") else est.members_[0].history_


def _prediction_columns(cfg: StudyConfig, grid: np.ndarray, pred: Any) -> dict[str, np.ndarray]:
    """The inputs and predictions; for an ensemble the mean, ``lower``, ``upper``, ``std``."""
    if hasattr(pred, "data"):
        return dict(pred.data)
    cols = {name: grid[:, i] for i, name in enumerate(cfg.data.inputs)}
    for j, name in enumerate(cfg.data.outputs):
        cols[name] = pred.mean[:, j]
        cols[f"{name} lower"] = pred.lower[:, j]
        cols[f"{name} upper"] = pred.upper[:, j]
        cols[f"{name} std"] = pred.std[:, j]
    return cols


def _ensemble_metrics(est: Any, cfg: StudyConfig, test: Any) -> dict[str, Any]:
    """The ensemble's calibration (multiplier, achieved coverage per output), failed
    members and, with test data, the coverage its intervals achieve there."""
    cal = est.calibration_
    out: dict[str, Any] = {
        "kind": cfg.ensemble.kind if cfg.ensemble is not None else None,
        "members": len(getattr(est, "members_", getattr(est, "member_seeds_", []))),
        "calibration": None
        if cal is None
        else {
            "coverage": cal.coverage,
            "n": cal.n,
            "multiplier": dict(zip(cfg.data.outputs, cal.quantile.tolist(), strict=True)),
            "achieved": dict(zip(cfg.data.outputs, cal.achieved.tolist(), strict=True)),
        },
        "failures": [f"{f.index}: {f.error}: {f.message}" for f in getattr(est, "failures_", [])],
    }
    measured = [n for n in cfg.data.outputs if test is not None and n in test]
    if test is not None and measured:
        out["test_coverage"] = est.coverage_score(test)
    return out


def _errors(est: Any, data: Any, cfg: StudyConfig) -> dict[str, float]:
    from ..checks import Policy
    from ..estimators import BatchedEnsemble

    x = data.array(cfg.data.inputs)
    raw = (
        est.predict(x) if isinstance(est, BatchedEnsemble) else est.predict(x, policy=Policy.RECORD)
    )
    pred = np.asarray(raw)
    out: dict[str, float] = {}
    for j, name in enumerate(cfg.data.outputs):
        if name in data:
            err = pred[:, j] - np.asarray(data[name], dtype=float)
            out[f"rmse {name}"] = float(np.sqrt(np.mean(err**2)))
    return out


def _figures(
    folder: Path,
    history: Any,
    cfg: StudyConfig,
    train: Any,
    test: Any,
    pred: dict[str, np.ndarray],
    passed: bool,
) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    history.plot(ax=ax)
    fig.tight_layout()
    fig.savefig(folder / "training.png", dpi=120)
    plt.close(fig)
    if len(cfg.data.inputs) != 1:
        return
    xname = cfg.data.inputs[0]
    order = np.argsort(pred[xname])
    for name in cfg.data.outputs:
        fig, ax = plt.subplots(figsize=(6, 4))
        x = pred[xname][order]
        ax.plot(x, pred[name][order], label="hybrid prediction")
        if f"{name} lower" in pred:
            lo, hi = pred[f"{name} lower"][order], pred[f"{name} upper"][order]
            ax.fill_between(x, lo, hi, alpha=0.25, label="ensemble interval")
        if name in train:
            ax.plot(train[xname], train[name], "o", label="measurements (fit)")
        if test is not None and name in test:
            ax.plot(test[xname], test[name], "x", color="0.4", label="held-out")
        ax.set_xlabel(xname)
        ax.set_ylabel(name)
        ax.legend()
        ax.set_title(f"{cfg.name}: consistency {'passed' if passed else 'FAILED'}")
        fig.tight_layout()
        safe = "".join(c if c.isalnum() else "_" for c in name).strip("_")
        fig.savefig(folder / f"fit_{safe}.png", dpi=120)
        plt.close(fig)
