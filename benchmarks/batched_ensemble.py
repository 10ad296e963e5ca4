"""Training an ensemble in one batched pass against training its members one by one.

Both sides train the same members: ``BatchedEnsemble(n_members=M, seed=0)`` against ``M``
one-member ensembles seeded ``0 .. M-1`` (member ``m`` of the batched ensemble *is* the
one-member ensemble seeded ``m``; the script checks that their predictions agree). The
workload is the battery study's: small tanh MLPs (2x32), full-batch Adam, a few hundred
rows, weight decay. Where the rows are few, the per-step overhead of one small network
dominates and batching gains most; with many rows each step is compute-bound and the gain
shrinks. Repeats are interleaved (batched, one by one, ...) so that machine load affects
both alike; the median wall-clock and CPU time are reported.

Usage::

    python benchmarks/batched_ensemble.py --members 4 8 16 --rows 150 600 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import hybridml as hm
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import hybridml as hm


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (n, 3))
    y = 1.0 - 0.2 * x[:, :1] - 0.1 * x[:, :1] ** 2 * x[:, 1:2] + 0.01 * rng.normal(size=(n, 1))
    return x, y


def _settings(steps: int) -> dict[str, Any]:
    return dict(
        hidden=(32, 32),
        phases=(hm.Adam(steps, lr=1e-2),),
        weight_decay=1e-4,
        calibration=None,
        progress=False,
    )


def _timed(fn: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def run(members: list[int], steps: int, rows: list[int], repeats: int) -> list[dict[str, Any]]:
    rows_out = []
    # warm-up (first-call costs of torch and the trainer) outside the timings
    hm.BatchedEnsemble(n_members=2, **_settings(5)).fit(*_data(20))
    for n, m in ((n, m) for n in rows for m in members):
        x, y = _data(n)
        batched_t: list[tuple[float, float]] = []
        single_t: list[tuple[float, float]] = []
        diff = 0.0
        for _ in range(repeats):
            w, c, ens = _timed(
                lambda m=m, x=x, y=y: hm.BatchedEnsemble(n_members=m, **_settings(steps)).fit(x, y)
            )
            batched_t.append((w, c))
            w, c, alone = _timed(
                lambda m=m, x=x, y=y: [
                    hm.BatchedEnsemble(n_members=1, seed=i, **_settings(steps)).fit(x, y)
                    for i in range(m)
                ]
            )
            single_t.append((w, c))
            together = ens.member_predictions(x)
            diff = max(
                float(np.abs(together[i] - a.member_predictions(x)[0]).max())
                for i, a in enumerate(alone)
            )
        bw = statistics.median(t[0] for t in batched_t)
        sw = statistics.median(t[0] for t in single_t)
        rows_out.append(
            {
                "members": m,
                "steps": steps,
                "rows": n,
                "batched_wall_s": bw,
                "one_by_one_wall_s": sw,
                "batched_cpu_s": statistics.median(t[1] for t in batched_t),
                "one_by_one_cpu_s": statistics.median(t[1] for t in single_t),
                "speedup": sw / bw,
                "max_member_difference": diff,
            }
        )
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--steps", type=int, default=700, help="Adam steps (full batch)")
    parser.add_argument("--rows", type=int, nargs="+", default=[150, 600], help="training rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", type=Path, default=None, help="write results to this file")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = run(args.members, args.steps, args.rows, args.repeats)
    print(
        f"{'rows':>5} {'members':>7} {'batched [s]':>12} {'one by one [s]':>15} {'speedup':>8} "
        f"{'max |diff|':>11}"
    )
    for r in results:
        print(
            f"{r['rows']:>5} {r['members']:>7} {r['batched_wall_s']:>12.2f} "
            f"{r['one_by_one_wall_s']:>15.2f} "
            f"{r['speedup']:>7.1f}x {r['max_member_difference']:>11.1e}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {
            "benchmark": "batched_ensemble",
            "torch_threads": torch.get_num_threads(),
            "hybridml": hm.__version__,
            "results": results,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
