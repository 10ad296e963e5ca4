"""``hybridml predict RUN_DIR new.csv``: predictions from a run folder's model file.

The run folder's ``config.toml`` rebuilds the objects the model file describes but does
not store (the ``[simulator]`` adapter, the ``[[checks]]``, the ``[[transforms]]``); its
data files need not exist any more. The new rows are read by column name through
:meth:`~hybridml.Dataset.from_csv` (units in the names, as in the training data).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import MissingColumnError

__all__ = ["RunPrediction", "predict_run"]

#: the model file of a run folder
MODEL_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class RunPrediction:
    """What :func:`predict_run` did: the model, the rows, the columns it wrote."""

    model: Any
    n_rows: int
    columns: dict[str, np.ndarray]
    report: Any
    out: Path

    def summary(self) -> str:
        """A few lines: the model, the rows, each output's range (and mean interval width
        for an ensemble), the consistency report and the file written."""
        m = self.model
        kind = type(m).__name__
        if hasattr(m, "members_"):
            kind += f", {len(m.members_)} members"
        digest = getattr(m, "data_hash_", None)
        lines = [
            f"model: {kind}" + (f" (training data sha256 {digest[:12]}...)" if digest else ""),
            f"rows: {self.n_rows}",
        ]
        for name in _output_names(m):
            v = self.columns[name]
            line = f"{name}: {np.nanmin(v):.4g} .. {np.nanmax(v):.4g}"
            if f"{name} lower" in self.columns:
                width = self.columns[f"{name} upper"] - self.columns[f"{name} lower"]
                line += f", mean interval width {np.nanmean(width):.4g}"
            lines.append(line)
        if self.report is not None and self.report.results:
            lines += ["consistency report:", self.report.summary()]
        lines.append(f"predictions: {self.out}")
        return "\n".join(lines)


def _output_names(model: Any) -> list[str]:
    if hasattr(model, "output_names_"):
        return list(model.output_names_)
    return list(model.members_[0].output_names_)


def _input_names(model: Any) -> list[str]:
    if hasattr(model, "input_names_"):
        return list(model.input_names_)
    return list(model.members_[0].input_names_)


def load_run_model(run_dir: str | os.PathLike[str]) -> Any:
    """The fitted model of a run folder, with the objects its ``config.toml`` describes.

    Raises:
        FileNotFoundError: no such folder (``NotADirectoryError``: a file).
        ModelFileError: a folder without a model file, or a model file ``load`` refuses.
    """
    from ..estimators import BatchedEnsemble, DeepEnsemble, load_model
    from ..estimators._persist import ModelFileError

    run = Path(run_dir)
    if not run.exists():
        raise FileNotFoundError(
            f"no run folder '{run}'; give a folder that `hybridml run` wrote (it holds "
            f"{MODEL_FILE}, config.toml, metrics.json)."
        )
    if not run.is_dir():
        raise NotADirectoryError(f"'{run}' is a file; give the run folder that holds it.")
    path = run / MODEL_FILE
    config = run / "config.toml"
    if not path.exists():
        raise ModelFileError(
            f"run folder '{run}' has no model file {MODEL_FILE}; nothing to predict with. "
            "Run the study again (`hybridml run`) to write it."
        )
    if not config.exists():  # a model file alone: objects from the registry only
        return load_model(path)
    from ._build import build_estimator
    from ._config import read_config
    from ._run import _build_adapters

    cfg = read_config(config, files=False)
    adapters = _build_adapters(cfg)
    template = build_estimator(cfg, adapters)
    if isinstance(template, BatchedEnsemble):  # data only: no adapters or transforms
        return load_model(path, checks=list(template.checks))
    reg = template.estimator if isinstance(template, DeepEnsemble) else template
    return load_model(path, adapters=adapters, checks=list(reg.checks), transform=reg.transform)


def predict_run(
    run_dir: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
) -> RunPrediction:
    """Predict the rows of the CSV ``data`` with the model of ``run_dir`` and write them.

    Args:
        run_dir: a folder ``hybridml run`` wrote.
        data: a CSV file with the model's input columns (by name, units in the names);
            other columns are not read.
        out: the predictions CSV (default: ``<data stem>.predictions.csv`` beside
            ``data``): the input columns, then per output its prediction and, for an
            ensemble, ``"<output> lower"``, ``"<output> upper"``, ``"<output> std"`` (as
            the run folder's ``predictions.csv``). Written atomically, floats exactly.

    Raises:
        MissingColumnError: ``data`` lacks an input column (naming the file, the column and
            the expected inputs).
        FileNotFoundError, ModelFileError: see :func:`load_run_model`.
    """
    from ..checks import Policy
    from ..data import Dataset

    model = load_run_model(run_dir)
    inputs = _input_names(model)
    data = Path(data)
    try:
        rows = Dataset.from_csv(data, columns=inputs)
    except MissingColumnError as exc:
        raise MissingColumnError(
            f"{exc} The model of '{run_dir}' expects the input columns "
            f"{', '.join(map(repr, inputs))}."
        ) from None
    pred = model.predict(rows, policy=Policy.RECORD)
    columns: dict[str, np.ndarray] = {n: np.asarray(rows[n], dtype=float) for n in inputs}
    mean = np.asarray(pred, dtype=float)
    for j, name in enumerate(_output_names(model)):
        columns[name] = mean[:, j]
        if hasattr(pred, "lower"):
            columns[f"{name} lower"] = np.asarray(pred.lower)[:, j]
            columns[f"{name} upper"] = np.asarray(pred.upper)[:, j]
            columns[f"{name} std"] = np.asarray(pred.std)[:, j]
    target = Path(out) if out is not None else data.with_name(f"{_stem(data)}.predictions.csv")
    _write_csv(target, columns)
    return RunPrediction(model, rows.n_rows, columns, pred.report, target)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Columns as CSV, atomically; floats as ``repr`` (read back exactly)."""
    import csv

    from .._atomic import atomic_write

    names = list(columns)
    n = len(next(iter(columns.values())))

    def write(f: Any) -> None:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names)
        for i in range(n):
            w.writerow([repr(float(columns[c][i])) for c in names])

    atomic_write(path, write)
