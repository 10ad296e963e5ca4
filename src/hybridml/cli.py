"""The ``hybridml`` command line.

Kept light: only the standard library is imported at start, so ``hybridml --help`` is fast;
torch and the rest load when a command needs them.

Plug-in commands: a distribution adds a command to ``hybridml`` with an entry point in the
group ``hybridml.commands`` whose value is a function ``add(subparsers)`` that registers its
subparser on the ``add_subparsers()`` object (and sets ``func`` with ``set_defaults``, a
function of the parsed arguments that returns the exit status). The function must import
only the standard library: it runs each time the parser is built, ``--help`` included. A
plug-in that fails to load is reported in one line on stderr and the other commands work.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS_GROUP", "build_parser", "main"]

#: the entry-point group of plug-in commands
COMMANDS_GROUP = "hybridml.commands"


def _cmd_simulators(args: argparse.Namespace) -> int:
    from .adapters import available_simulators, capabilities, load_simulator

    names = available_simulators()
    if not names:
        print("no simulator adapters installed (pip install -e simulators/<name>)")
        return 0
    print(f"{'name':<12} {'capabilities':<34} description")
    for name in names:
        try:
            cls = load_simulator(name)
        except Exception as exc:  # a broken plug-in must not hide the others
            print(f"{name:<12} {'(failed to load)':<34} {type(exc).__name__}: {exc}")
            continue
        print(f"{name:<12} {', '.join(capabilities(cls)):<34} {cls.description}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .study._run import run_study

    run_dir = run_study(
        args.config, out=args.out, device=args.device, fresh=args.fresh, log_to=args.mlflow
    )
    _print_run(run_dir)
    if args.mlflow:
        print(f"recorded in MLflow: {args.mlflow}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .study._predict import predict_run

    result = predict_run(args.run_dir, args.data, out=args.out)
    print(result.summary())
    return 0


def _cmd_config_reference(args: argparse.Namespace) -> int:
    from .study import config_reference

    sys.stdout.write(config_reference())
    return 0


def _print_run(run_dir: Path) -> None:
    import json

    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    from .checks import CheckResult, ConsistencyReport

    raw = json.loads((run_dir / "consistency.json").read_text(encoding="utf-8"))
    report = ConsistencyReport(tuple(CheckResult(**c) for c in raw["checks"]))
    print(f"run folder: {run_dir}")
    for split in ("train", "test"):
        for k, v in metrics.get(split, {}).items():
            print(f"{split:<5} {k}: {v:.4g}")
    print("consistency report:")
    print(report.summary())


def _cmd_example(args: argparse.Namespace) -> int:
    from .study._example import write_example
    from .study._run import run_study

    out = Path(args.out)
    config = write_example(out / "inputs", quick=args.quick)
    run_dir = run_study(config, out=out)
    _print_run(run_dir)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import sys as _sys

    from .checks import Policy, run_checks
    from .data._dataset import Dataset
    from .study._config import ConfigError, parse_checks

    if _sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        raw = tomllib.loads(Path(args.checks).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{args.checks}: no such checks file.") from None
    entries = raw.get("checks", [])
    if not entries:
        raise ConfigError(f"{args.checks}: no [[checks]] tables found.")
    checks = parse_checks(entries, source=args.checks)
    data = Dataset.from_csv(args.predictions, group=args.group, coordinate=args.coordinate)
    report = run_checks(checks, data)
    print(report.summary())
    if args.json:
        report.to_json(args.json)
    if not report.passed and Policy(args.policy) is Policy.RAISE:
        return 1
    return 0


def _cmd_monitor(args: argparse.Namespace) -> int:
    from .monitor._cli import run_monitor

    return run_monitor(args)


def _cmd_new_adapter(args: argparse.Namespace) -> int:
    from .study._new_adapter import write_adapter_package

    folder = write_adapter_package(args.name, args.dir)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        print(f"wrote {path}")
    print(f"next: pip install -e {folder} && pytest {folder / 'tests'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hybridml`` command."""
    parser = argparse.ArgumentParser(
        prog="hybridml",
        description="Physics-informed, hybrid (physics + neural network) modelling.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"hybridml {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("simulators", help="list installed simulator adapters")
    p.set_defaults(func=_cmd_simulators)

    p = sub.add_parser("run", help="run a study from a TOML configuration")
    p.add_argument("config", help="study configuration (TOML)")
    p.add_argument("--out", help="run folder (default: runs/<study name> beside the config)")
    p.add_argument(
        "--device",
        help="where training runs: auto, cpu, cuda or cuda:N (default: the config's study.device)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="discard the saved training progress (<out>.progress/) and train from the start",
    )
    p.add_argument(
        "--mlflow",
        metavar="URI",
        help="also record the run in MLflow at this tracking URI, e.g. file:./mlruns "
        "(needs pip install hybridml[mlflow])",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("predict", help="predict new rows with a run folder's model")
    p.add_argument("run_dir", help="run folder written by `hybridml run` (holds checkpoint.pt)")
    p.add_argument("data", help="CSV with the model's input columns (by name, units in names)")
    p.add_argument(
        "--out", help="predictions CSV (default: <data stem>.predictions.csv beside the data)"
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "config-reference", help="print the study configuration reference (Markdown)"
    )
    p.set_defaults(func=_cmd_config_reference)

    p = sub.add_parser(
        "example",
        help="train a small hybrid model (damped oscillator) and print its consistency report",
    )
    p.add_argument("--out", default="runs/example", help="run folder (default: runs/example)")
    p.add_argument("--quick", action="store_true", help="fewer training steps")
    p.set_defaults(func=_cmd_example)

    p = sub.add_parser("check", help="run consistency checks on a predictions CSV")
    p.add_argument("predictions", help="CSV file with one column per quantity")
    p.add_argument("--checks", required=True, help="TOML file with [[checks]] tables")
    p.add_argument("--group", help="group column (e.g. cell_id)")
    p.add_argument("--coordinate", help="coordinate column (e.g. cycle)")
    p.add_argument("--json", help="also write the report as JSON here")
    p.add_argument(
        "--policy",
        choices=["raise", "record"],
        default="raise",
        help="raise: exit with status 1 if a check fails (default); record: always exit 0",
    )
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser(
        "monitor", help="flag new inputs and measurements a saved model should not be trusted on"
    )
    p.add_argument("model", help="model file (HybridRegressor.save or DeepEnsemble.save)")
    p.add_argument(
        "data",
        help="CSV of new rows in the order they arrived (inputs; outputs: measurements, optional)",
    )
    p.add_argument(
        "--reference",
        required=True,
        help="CSV of the training rows (inputs; outputs give the error scale)",
    )
    p.add_argument("--errors", help="CSV of held-out measurements for the error scale")
    p.add_argument("--quantile", type=float, default=0.99, help="threshold level (0.99)")
    p.add_argument("--json", help="report file (default: <data>.monitor.json beside the data)")
    p.add_argument(
        "--policy",
        choices=["raise", "record"],
        default="raise",
        help="raise: exit with status 1 if a row is flagged (default); record: always exit 0",
    )
    p.set_defaults(func=_cmd_monitor)

    p = sub.add_parser("new-adapter", help="write an installable simulator-adapter package")
    p.add_argument("name", help="adapter name: a lower-case Python identifier, e.g. mysim")
    p.add_argument("--dir", default=".", help="folder to write <name>/ in (default: .)")
    p.set_defaults(func=_cmd_new_adapter)

    _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(sub: Any) -> None:
    """Register the commands of the installed plug-ins (entry-point group
    :data:`COMMANDS_GROUP`); one that fails is reported in one line and left out."""
    from importlib.metadata import entry_points

    seen: set[str] = set()
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        if ep.name in seen:  # the same distribution found twice on the path
            continue
        seen.add(ep.name)
        try:
            add = ep.load()
            add(sub)
        except Exception as exc:  # a broken plug-in must not break the other commands
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(
                f"hybridml: plug-in command {ep.name!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}{': ' + msg if msg else ''}",
                file=sys.stderr,
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hybridml`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from .exceptions import HybridMLError

    try:
        return int(args.func(args))
    except (HybridMLError, OSError) as exc:  # every library error; a missing/unreadable file
        print(f"hybridml {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
