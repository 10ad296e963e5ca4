"""Runtime, memory and figures of the battery-ageing study on its three bundled data sets.

Runs ``hybridml_battery.run_battery_ageing`` (the ``hybridml battery-ageing`` command) in a
fresh process per data set and prints a table: wall time, peak memory (the largest resident
set of the run's process and of any of its fold workers, ``resource.getrusage`` maxrss) and
each method's ``rmse_ah``, ``eol_rel_error`` and ``coverage90``.

    python benchmarks/battery_ageing.py                      # NASA full; XJTU, TJU 5-fold
    python benchmarks/battery_ageing.py --datasets nasa      # NASA full run only
    python benchmarks/battery_ageing.py --quick              # NASA --quick (CI, ~1 min)
    python benchmarks/battery_ageing.py --jobs 2 --json out.json

The runs: NASA, leave one cell out, N = 60 plus the error-vs-N grid 20/40/60/80 (target:
<= 3 min on 2 cores); XJTU and TJU, 5 folds by cell, N = 100, without the
error-vs-N grid (targets: <= 15 and <= 20 min); peak memory <= 2 GB. ``--quick`` runs NASA
with ``--quick`` only (target <= 1 min). The PyBaMM sweep is cached
(``~/.cache/hybridml/pybamm-fade``): a first run on a machine also pays for the sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: the runs: dataset -> settings of run_battery_ageing
RUNS: dict[str, dict[str, Any]] = {
    "nasa": {},
    "xjtu": {"folds": 5, "known_cycles": 100, "known_curve": [100]},
    "tju": {"folds": 5, "known_cycles": 100, "known_curve": [100]},
}


def _child(dataset: str, out: str, quick: bool, jobs: int, settings: dict[str, Any]) -> None:
    """Run one study in this process and print its figures and peak memory as JSON."""
    import torch
    from hybridml_battery import run_battery_ageing

    torch.set_num_threads(1)  # as the command does
    t0 = time.perf_counter()
    result = run_battery_ageing(
        dataset=dataset, out=out, quick=quick, jobs=jobs, progress=True, **settings
    )
    seconds = time.perf_counter() - t0
    kib = 1024 if sys.platform != "darwin" else 1  # maxrss: KiB on Linux, bytes on macOS
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib
    m = result.metrics
    print(
        "BENCHMARK-RESULT "
        + json.dumps(
            {
                "dataset": dataset,
                "seconds": round(seconds, 1),
                "peak_rss_mb": round(own / 2**20, 1),
                "peak_rss_worker_mb": round(workers / 2**20, 1),
                "split": m["settings"]["split"],
                "known_cycles": m["settings"]["known_cycles"],
                "known_curve": m["settings"]["known_curve"],
                "n_cells": m["eol"]["n_cells"],
                "n_reach_eol": m["eol"]["n_reach_eol"],
                "left_out_cells": len(m["settings"]["left_out_cells"]),
                "methods": m["methods"],
                "ablations": m.get("ablations", {}),
                "error_vs_known": m["error_vs_known"],
            }
        ),
        flush=True,
    )


def _run(dataset: str, quick: bool, jobs: int, keep: Path | None) -> dict[str, Any]:
    settings = {} if quick else RUNS[dataset]
    with tempfile.TemporaryDirectory() as tmp:
        out = str((keep or Path(tmp)) / dataset)
        cmd = [sys.executable, __file__, "--_child", dataset, out, json.dumps(settings)]
        cmd += ["--jobs", str(jobs)] + (["--quick"] if quick else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
        wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHMARK-RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the {dataset} run failed (exit {proc.returncode}); see its log above")
    res: dict[str, Any] = json.loads(lines[-1].split(" ", 1)[1])
    res["process_seconds"] = round(wall, 1)  # with the imports and the process start
    return res


def _f(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'dataset':<7} {'protocol':<24} {'cells':>6} {'wall s':>7} {'peak MB':>8} "
        f"{'worker MB':>9}"
    ]
    for r in results:
        lines.append(
            f"{r['dataset']:<7} {r['split'] + ', N=' + str(r['known_cycles']):<24} "
            f"{r['n_cells']:>6} {r['seconds']:>7.1f} {r['peak_rss_mb']:>8.0f} "
            f"{r['peak_rss_worker_mb']:>9.0f}"
        )
    for r in results:
        lines += [
            "",
            f"{r['dataset']}: {r['n_cells']} cells tested ({r['n_reach_eol']} reach EOL; "
            f"{r['left_out_cells']} left out: data end at or before N)",
            f"{'method':<14} {'rmse_ah':>9} {'eol_rel_error':>14} {'coverage90':>11}",
        ]
        for name, m in {**r["methods"], **r["ablations"]}.items():
            label = name if name in r["methods"] else f"{name} (abl.)"
            lines.append(
                f"{label:<14} {_f(m['rmse_ah']):>9} {_f(m['eol_rel_error']):>14} "
                f"{_f(m['coverage90'], 3):>11}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_child":
        dataset, out, settings = argv[1], argv[2], json.loads(argv[3])
        rest = argparse.ArgumentParser()
        rest.add_argument("--jobs", type=int, default=1)
        rest.add_argument("--quick", action="store_true")
        a = rest.parse_args(argv[4:])
        _child(dataset, out, a.quick, a.jobs, settings)
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", choices=list(RUNS), default=list(RUNS))
    p.add_argument("--quick", action="store_true", help="NASA --quick only (CI)")
    p.add_argument("--jobs", type=int, default=1, help="processes for the folds (default 1)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--keep", metavar="DIR", help="keep the runs' outputs under DIR")
    args = p.parse_args(argv)
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MPLBACKEND", "Agg")
    datasets = ["nasa"] if args.quick else args.datasets
    keep = Path(args.keep) if args.keep else None
    results = []
    for ds in datasets:
        print(f"--- {ds}{' (quick)' if args.quick else ''}, --jobs {args.jobs}", flush=True)
        results.append(_run(ds, args.quick, args.jobs, keep))
    print(_table(results))
    if args.json:
        payload = {
            "quick": args.quick,
            "jobs": args.jobs,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "runs": results,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
