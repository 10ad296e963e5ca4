"""Which further cycles of a test cell to measure to pin down its end of life (EOL) soonest.

Leave one cell out: the other benchmark cells of the bundled NASA PCoE data are known in
full, the test cell only over its first ``--known`` cycles. Its remaining cycles form the
candidate pool (the cell has been cycled, but a capacity check of a cycle costs a
measurement). In rounds, ``--batch`` cycles are picked from the pool and their measured
capacity is revealed from the data, then the battery hybrid (PyBaMM prior + ensemble of
network corrections) is refitted and the EOL re-predicted. Two ways to pick:

* ``active``: :class:`hybridml.ActiveLearner`'s batch rule (ensemble disagreement with its
  diversity penalty), the disagreement being the spread of the capacity predicted by the
  hybrid's own ensemble (members differing by seed and by training-cell subset; one batched
  fit per round);
* ``active_eol``: the same rule, the disagreement being the members' disagreement on the
  quantity of interest, "is the cell past EOL at this cycle" (the std of that indicator);
* ``random``: uniformly from the pool, for several seeds.

It reports the EOL relative error after each round and the number of measurements after
which the error stays within 5 % (and 2 %), and saves a figure.

The EOL estimate after a round is the first cycle at or below the threshold on the curve
that takes the measured capacity where a cycle was measured and the hybrid's mean
elsewhere (the true EOL is the same rule on all measurements).

Run:  python examples/battery_ageing/active_learning.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hybridml_battery import (
    Cell,
    FadeLibrary,
    HybridMethod,
    NetSettings,
    SweepDesign,
    Window,
    dataset_path,
    default_cache_dir,
    fade_library,
    load_cells,
)

from hybridml import ActiveLearner, EnsemblePrediction

BENCHMARK = ("B0005", "B0006", "B0007", "B0018")
STRATEGIES = ("active", "active_eol", "random")
_REPEATABILITY = 0.01  # A.h, as the battery study's floor of the predictive scale


@dataclass(frozen=True)
class _MeasuredWindow(Window):
    """The training cells' early window, and the measured cycles of the test cell."""

    test_id: str = ""
    measured: tuple[float, ...] = ()

    def mask(self, cell: Cell) -> np.ndarray:
        if cell.cell_id == self.test_id:
            return np.isin(cell.cycle, np.asarray(self.measured, dtype=float))
        return super().mask(cell)


class _HybridFit:
    """The hybrid fitted on the measured cycles; ``predict`` gives the members' spread.

    With ``threshold`` the spread is the members' disagreement on the EOL indicator
    "capacity <= threshold" at each cycle (the std ``sqrt(p (1 - p))`` of the indicator,
    ``p`` the members' mean probability, each member's capacity blurred by the 0.01 Ah
    measurement repeatability); without it, the spread of the capacity itself.
    """

    def __init__(self, method: HybridMethod, threshold: float | None = None) -> None:
        self.method, self.threshold = method, threshold

    def predict(self, X: Any) -> EnsemblePrediction:
        from scipy.stats import norm

        cycles = np.asarray(X, dtype=float).reshape(-1)
        m = self.method
        outs = m.members(cycles)  # prior + rest of known regeneration + correction
        mean, std = outs.mean(axis=0)[:, None], outs.std(axis=0)[:, None]
        if self.threshold is not None:
            prob = norm.cdf((self.threshold - outs) / _REPEATABILITY).mean(axis=0)
            std = np.sqrt(prob * (1.0 - prob))[:, None]
        return EnsemblePrediction(mean, std, mean - 2 * std, mean + 2 * std, None, outs[..., None])


class _Problem:
    """One test cell: the training cells, the fade library and the network settings."""

    def __init__(
        self,
        library: FadeLibrary,
        train: list[Cell],
        test: Cell,
        known: int,
        nets: NetSettings,
        threshold: float,
    ) -> None:
        self.library, self.train, self.test = library, train, test
        self.known, self.nets, self.threshold = known, nets, threshold
        self.grid = np.arange(1.0, 3 * test.last_cycle + 1.0)

    def fit(self, cycles: np.ndarray, seed: int, target_eol: bool = False) -> _HybridFit:
        window = _MeasuredWindow(float(self.known), 1, self.test.cell_id, tuple(map(float, cycles)))
        method = HybridMethod(self.library, self.nets, seed).fit(self.train, self.test, window)
        return _HybridFit(method, self.threshold if target_eol else None)

    def eol(self, fit: _HybridFit, cycles: np.ndarray, capacity: np.ndarray) -> float:
        """First cycle at or below the threshold, measurements overriding the model."""
        grid = np.union1d(self.grid, cycles)
        cap = np.asarray(fit.predict(grid).mean[:, 0])
        cap[np.searchsorted(grid, cycles)] = capacity
        hit = np.flatnonzero(cap <= self.threshold)
        return float(grid[hit[0]]) if hit.size else float(grid[-1])


class _Unused:
    """The estimator slot of ActiveLearner; never fitted (``fit()`` is overridden)."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def fit(self, X: Any, y: Any) -> _Unused:
        raise NotImplementedError

    def predict(self, X: Any) -> Any:
        raise NotImplementedError


class HybridActiveLearner(ActiveLearner):
    """:class:`~hybridml.ActiveLearner` whose ensemble is the battery hybrid's own.

    The batch rule (disagreement, diversity penalty, pool bookkeeping) is the core
    learner's; only ``fit`` differs: one batched fit of the hybrid's ensemble per round
    instead of a :class:`~hybridml.DeepEnsemble` of separately trained copies.
    """

    def __init__(
        self, problem: _Problem, pool: Any, X: Any, y: Any, *, target_eol: bool, **kw: Any
    ) -> None:
        super().__init__(_Unused(), pool, X, y, **kw)
        self.problem, self.target_eol = problem, target_eol

    def fit(self) -> Any:
        if self._stale or self.ensemble_ is None:
            self.ensemble_ = self.problem.fit(self.X_[:, 0], self.seed, self.target_eol)  # type: ignore[assignment]
            self._stale = False
        return self.ensemble_


def _reveal(test: Cell, cycles: np.ndarray) -> np.ndarray:
    return test.capacity[np.searchsorted(test.cycle, cycles)]


def _run_active(
    problem: _Problem, rounds: int, batch: int, diversity: float, seed: int, target_eol: bool
) -> dict[str, Any]:
    test = problem.test
    start = test.cycle[test.cycle <= problem.known]
    pool = test.cycle[test.cycle > problem.known]
    learner = HybridActiveLearner(
        problem, pool[:, None], start[:, None], _reveal(test, start)[:, None],
        target_eol=target_eol, diversity=diversity, seed=seed,
    )  # fmt: skip
    eols, picks = [], []
    for r in range(rounds + 1):
        fit = learner.fit()
        eols.append(problem.eol(fit, learner.X_[:, 0], learner.y_[:, 0]))  # type: ignore[index]
        if r == rounds:
            break
        pool_before = learner.pool_[:, 0].copy()
        rec = learner.recommend(batch)
        chosen = rec.X[:, 0]
        assert np.isin(chosen, pool_before).all() and np.unique(chosen).size == batch
        picks.append([float(c) for c in chosen])
        learner.update(rec, _reveal(test, chosen)[:, None])
    return {"eol_pred": eols, "picks": picks}


def _run_random(
    problem: _Problem, rounds: int, batch: int, seed: int, net_seed: int
) -> dict[str, Any]:
    test = problem.test
    rng = np.random.default_rng(seed)
    measured = list(test.cycle[test.cycle <= problem.known])
    pool = list(test.cycle[test.cycle > problem.known])
    eols, picks = [], []
    for r in range(rounds + 1):
        cyc = np.sort(np.asarray(measured))
        fit = problem.fit(cyc, net_seed)
        eols.append(problem.eol(fit, cyc, _reveal(test, cyc)))
        if r == rounds:
            break
        idx = rng.choice(len(pool), size=batch, replace=False)
        chosen = [pool[i] for i in idx]
        pool = [c for i, c in enumerate(pool) if i not in set(idx.tolist())]
        measured += chosen
        picks.append([float(c) for c in chosen])
    return {"eol_pred": eols, "picks": picks}


def _rel(eols: list[float], true: float) -> list[float]:
    return [abs(v - true) / true for v in eols]


def _needed(errors: list[float], batch: int, tol: float) -> int | None:
    """Measurements added after which the EOL error stays within ``tol`` (None: never)."""
    for r in range(len(errors)):
        if all(e <= tol for e in errors[r:]):
            return r * batch
    return None


def run(
    cells: tuple[str, ...] = ("B0005", "B0006", "B0018"),
    *,
    known: int = 30,
    rounds: int = 6,
    batch: int = 4,
    random_seeds: int = 4,
    diversity: float = 0.1,
    eol_ah: float = 1.4,
    tol: tuple[float, ...] = (0.05, 0.02),
    quick: bool = False,
    cache_dir: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the comparison; returns a JSON-ready dict (per cell and overall)."""
    t0 = time.perf_counter()
    cd = load_cells(dataset_path("nasa"), cells=BENCHMARK)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    library = fade_library(SweepDesign.default(quick), cache_dir=cache, workers=1)
    nets = NetSettings.default(quick)
    out: dict[str, Any] = {
        "settings": {
            "cells": list(cells), "known": known, "rounds": rounds, "batch": batch,
            "random_seeds": random_seeds, "diversity": diversity, "eol_ah": eol_ah,
            "tol": list(tol), "quick": quick, "seed": seed,
        },
        "cells": {},
    }  # fmt: skip
    for cid in cells:
        if cid not in cd.cells:
            raise ValueError(f"--cells: unknown cell {cid!r}; the benchmark cells are {BENCHMARK}.")
        test = cd.cells[cid]
        hit = np.flatnonzero(test.capacity <= eol_ah)
        if not hit.size:
            raise ValueError(
                f"cell {cid} never reaches {eol_ah} Ah; pick another --cells/--eol-ah."
            )
        n_pool = int((test.cycle > known).sum())
        if rounds * batch > n_pool:
            raise ValueError(
                f"cell {cid}: {rounds} rounds of {batch} need {rounds * batch} candidates but "
                f"only {n_pool} cycles lie after cycle {known}; lower --rounds or --batch."
            )
        true = float(test.cycle[hit[0]])
        train = [cd.cells[k] for k in BENCHMARK if k != cid]
        problem = _Problem(library, train, test, known, nets, eol_ah)
        runs = {
            "active": [_run_active(problem, rounds, batch, diversity, seed, False)],
            "active_eol": [_run_active(problem, rounds, batch, diversity, seed, True)],
            "random": [
                _run_random(problem, rounds, batch, 1000 + s, seed) for s in range(random_seeds)
            ],
        }
        entry: dict[str, Any] = {"eol_true": true, "pool_size": n_pool}
        for name, rs in runs.items():
            for r in rs:
                r["eol_rel_error"] = _rel(r["eol_pred"], true)
                r["needed"] = {f"{t:g}": _needed(r["eol_rel_error"], batch, t) for t in tol}
            entry[name] = {
                "runs": rs,
                "mean_error": np.mean([r["eol_rel_error"] for r in rs], axis=0).tolist(),
            }
        out["cells"][cid] = entry
    out["measurements"] = [r * batch for r in range(rounds + 1)]
    # overall: mean over cells (and random seeds) of the EOL error after each round
    out["mean_error"] = {
        name: np.mean([c[name]["mean_error"] for c in out["cells"].values()], axis=0).tolist()
        for name in STRATEGIES
    }
    out["seconds"] = time.perf_counter() - t0
    return out


def _fmt_needed(v: int | None) -> str:
    return "never" if v is None else str(v)


def table(res: dict[str, Any]) -> str:
    """The EOL relative error after each round per strategy (random: mean over seeds)."""
    s = res["settings"]
    head = f"  {'added':>5}" + "".join(f" {n:>10}" for n in STRATEGIES)
    lines = []
    for cid, c in res["cells"].items():
        lines.append(
            f"cell {cid}: true EOL cycle {c['eol_true']:.0f}, known cycles <= {s['known']}, "
            f"pool {c['pool_size']} cycles; EOL relative error after each round"
        )
        lines.append(head)
        for r, n in enumerate(res["measurements"]):
            lines.append(
                f"  {n:>5}" + "".join(f" {c[k]['mean_error'][r]:>10.3f}" for k in STRATEGIES)
            )
        for t in s["tol"]:
            needed = {
                k: ", ".join(_fmt_needed(r["needed"][f"{t:g}"]) for r in c[k]["runs"])
                for k in STRATEGIES
            }
            lines.append(
                f"  measurements after which the error stays within {t:.0%}: "
                + "; ".join(f"{k} {v}" for k, v in needed.items())
            )
    lines.append("mean over cells:")
    lines.append(head)
    for r, n in enumerate(res["measurements"]):
        lines.append(
            f"  {n:>5}" + "".join(f" {res['mean_error'][k][r]:>10.3f}" for k in STRATEGIES)
        )
    lines.append(f"({res['seconds']:.0f} s)")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    """EOL error vs measurements added, one panel per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(res["cells"])
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.4), squeeze=False)
    n = res["measurements"]
    for ax, cid in zip(axes[0], cells, strict=True):
        c = res["cells"][cid]
        for i, r in enumerate(c["random"]["runs"]):
            ax.plot(
                n,
                r["eol_rel_error"],
                color="0.75",
                lw=0.8,
                label="random, per seed" if i == 0 else None,
            )
        ax.plot(n, c["random"]["mean_error"], color="k", ls="--", label="random (mean)")
        ax.plot(n, c["active"]["mean_error"], color="C0", marker="o", label="active (capacity)")
        ax.plot(n, c["active_eol"]["mean_error"], color="C1", marker="s", label="active (EOL)")
        for t in res["settings"]["tol"]:
            ax.axhline(t, color="C3", lw=0.8, ls=":")
        ax.set(title=f"{cid} (known <= {res['settings']['known']})", xlabel="cycles measured")
        ax.set_ylabel("EOL relative error")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: run, print the table, save the figure (and JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cells", nargs="+", default=None, help="test cells (default B0005 B0006 B0018)"
    )
    ap.add_argument("--known", type=int, default=30, help="known early cycles of the test cell")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 6; quick 3)")
    ap.add_argument("--batch", type=int, default=4, help="cycles measured per round")
    ap.add_argument("--random-seeds", type=int, default=None, help="random runs (4; quick 2)")
    ap.add_argument("--diversity", type=float, default=0.1, help="ActiveLearner diversity")
    ap.add_argument("--eol-ah", type=float, default=1.4, help="EOL capacity threshold [A.h]")
    ap.add_argument(
        "--tol", type=float, nargs="+", default=[0.05, 0.02], help="EOL error criteria (relative)"
    )
    ap.add_argument("--quick", action="store_true", help="one cell, fewer rounds, small nets")
    ap.add_argument("--out", default="runs/battery-active-learning", help="figure folder")
    ap.add_argument("--cache-dir", default=None, help="PyBaMM fade cache")
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args(argv)
    cells = tuple(a.cells) if a.cells else (("B0006",) if a.quick else ("B0005", "B0006", "B0018"))
    res = run(
        cells,
        known=a.known,
        rounds=a.rounds if a.rounds is not None else (3 if a.quick else 6),
        batch=a.batch,
        random_seeds=a.random_seeds if a.random_seeds is not None else (2 if a.quick else 4),
        diversity=a.diversity,
        eol_ah=a.eol_ah,
        tol=tuple(a.tol),
        quick=a.quick,
        cache_dir=a.cache_dir,
    )
    print(table(res))
    fig = Path(a.out) / "eol_error_vs_measurements.png"
    plot(res, fig)
    res["figure"] = str(fig)
    print("figure:", fig)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    import torch

    # many tiny networks train faster on one thread (our script, so we may set it)
    torch.set_num_threads(1)
    main()
