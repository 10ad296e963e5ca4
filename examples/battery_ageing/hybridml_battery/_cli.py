"""The ``hybridml battery-ageing`` command (standard library only at import time)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_battery_parser", "main"]


def _run(args: argparse.Namespace) -> int:
    from ._folds import _one_torch_thread
    from ._study import run_battery_ageing

    # This is the command's process: one torch thread for the study, restored after
    with _one_torch_thread():
        result = run_battery_ageing(
            args.data,
            dataset=args.dataset,
            cells=args.cells,
            known_cycles=args.known_cycles,
            every=args.every,
            eol_ah=args.eol_ah,
            eol_fraction=args.eol_fraction,
            capacity_unit=args.capacity_unit,
            out=args.out,
            quick=args.quick,
            seed=args.seed,
            cache_dir=args.cache_dir,
            workers=args.workers,
            folds=args.folds,
            jobs=args.jobs,
            known_curve=_curve(args.curve),
            save_model=args.save_model,
        )
    print(f"outputs in {result.out} ({result.seconds:.0f} s); methods (mean over cells):")
    print(result.summary())
    passed = result.consistency["passed"].get("hybrid")
    print(
        f"hybrid physics-consistency checks: {'passed' if passed else 'FAILED'}"
        " (details in consistency.json and report.md)"
    )
    return 0


def _curve(values: list[str] | None) -> list[int] | None:
    """``--curve``: None (the default grid), ``[]`` for ``none`` (N only), else the values."""
    if values is None:
        return None
    if [v.lower() for v in values] == ["none"]:
        return []
    from hybridml.exceptions import InvalidArgumentError

    try:
        out = [int(v) for v in values]
    except ValueError:
        raise InvalidArgumentError(
            f"--curve takes whole numbers of cycles or 'none', got {' '.join(values)!r}."
        ) from None
    if any(v < 1 for v in out):
        raise InvalidArgumentError(f"--curve values must be >= 1 cycle, got {out}.")
    return out


def add_battery_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``battery-ageing`` subcommand on an ``add_subparsers()`` object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "battery-ageing",
        help="predict capacity fade and end of life of battery cells from early cycles",
        description=(
            "Prediction of capacity fade and end of life (EOL) by cell, leaving out one "
            "cell at a time (or K folds of cells with --folds): a hybrid "
            "of PyBaMM fade physics and a network correction with a 90 % interval, "
            "against nn, physics, linear, fleet and empirical baselines. With no --data or "
            "--dataset it runs the bundled NASA PCoE cells B0005, B0006, B0007, B0018 "
            "(N=60, EOL 1.4 Ah)."
        ),
    )
    data = p.add_mutually_exclusive_group()
    data.add_argument(
        "--data",
        metavar="FILE.csv",
        help="CSV with columns cell_id, cycle, capacity_ah (default: bundled NASA cells)",
    )
    data.add_argument(
        "--dataset",
        metavar="NAME",
        help="a bundled data set: nasa (NASA PCoE, 4 cells; the default), xjtu (55 NCM "
        "cells, 6 batches) or tju (130 NCA/NCM cells, 25-45 °C)",
    )
    p.add_argument("--cells", nargs="+", metavar="ID", help="cell ids to use (default: all)")
    p.add_argument(
        "--known-cycles",
        type=int,
        metavar="N",
        help="the model sees a test cell's cycles <= N (default: 60 for nasa and --data, "
        "100 for xjtu and tju)",
    )
    p.add_argument(
        "--every", type=int, default=1, metavar="K", help="use every K-th known cycle (default 1)"
    )
    eol = p.add_mutually_exclusive_group()
    eol.add_argument(
        "--eol-ah",
        type=float,
        metavar="X",
        help="EOL capacity in A.h (default 1.4 for nasa)",
    )
    eol.add_argument(
        "--eol-fraction",
        type=float,
        metavar="F",
        help="EOL at F x each cell's initial capacity (default 0.9 for xjtu; 0.8 for tju and "
        "--data)",
    )
    p.add_argument(
        "--capacity-unit",
        choices=["Ah", "mAh"],
        help="unit of the file's capacity_ah column; mAh is converted to A.h (default: A.h, "
        "and a file whose median capacity is above 100 is refused as implausible for A.h)",
    )
    p.add_argument(
        "--out",
        default="runs/battery-ageing",
        metavar="DIR",
        help="output folder (default runs/battery-ageing)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sweep and ensembles, no error-vs-N curve (about a minute)",
    )
    p.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K folds over cells, grouped by cell (default: leave one cell out up to 10 "
        "cells, 5 folds above)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="J",
        help="run the folds on J processes (default 1; the results are the same)",
    )
    p.add_argument(
        "--curve",
        nargs="+",
        metavar="N",
        help="the values of N of the error-vs-N curve, or 'none' for N only (default: "
        "20 40 60 80 for nasa, else 0.1-0.4 x the cells' median life)",
    )
    p.add_argument(
        "--save-model",
        action="store_true",
        help="also fit the hybrid on every cell and write OUT/hybrid-model.pt, to forecast "
        "new cells (FleetHybridMethod.load)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="PyBaMM simulation cache (default ~/.cache/hybridml/pybamm-fade)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="W",
        help="processes for the PyBaMM sweep (default 2)",
    )
    p.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``battery-ageing`` as a stand-alone command (for tests and ``python -m``)."""
    import sys

    parser = argparse.ArgumentParser(prog="hybridml")
    sub = parser.add_subparsers(dest="command")
    add_battery_parser(sub)
    args = parser.parse_args(["battery-ageing", *(sys.argv[1:] if argv is None else argv)])
    from hybridml.exceptions import HybridMLError

    try:
        return int(args.func(args))
    except (HybridMLError, OSError) as exc:
        print(f"hybridml battery-ageing: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
