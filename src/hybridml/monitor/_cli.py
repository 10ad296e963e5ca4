"""``hybridml monitor MODEL new.csv --reference train.csv``: the monitor from the command
line (imported only when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["load_model", "run_monitor"]


def load_model(path: str | Path) -> Any:
    """The model a model file holds (:func:`hybridml.load_model`: a
    :class:`~hybridml.HybridRegressor`, :class:`~hybridml.DeepEnsemble` or
    :class:`~hybridml.BatchedEnsemble`)."""
    from ..estimators import load_model as _load

    return _load(path)


def run_monitor(args: argparse.Namespace) -> int:
    """Fit a monitor on the reference CSV, check the new rows in order, print the summary
    and write the JSON report; exit status 1 when a row is flagged and the policy is
    ``raise``."""
    from ..data._dataset import Dataset
    from ._monitor import Monitor

    model = load_model(args.model)
    reference = Dataset.from_csv(args.reference)
    errors = None if args.errors is None else (Dataset.from_csv(args.errors), None)
    monitor = Monitor(model, quantile=args.quantile).fit(reference, errors=errors)
    report = monitor.check(Dataset.from_csv(args.data))
    print(report.summary())
    data = Path(args.data)
    out = Path(args.json) if args.json else data.with_name(f"{data.stem}.monitor.json")
    report.to_json(out)
    print(f"report: {out}")
    return 1 if args.policy == "raise" and not report.passed else 0
