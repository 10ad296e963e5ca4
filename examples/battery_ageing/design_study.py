"""Design study for a battery hybrid that beats the ``fleet`` baseline.

Research script, not part of the plug-in's API. It compares, on the study's protocol, the
data-only ``fleet`` forecast with hybrid designs that keep what transfers between cells
(the fleet's trajectories, a fade law) and add a learned part:

* ``fleet``: :class:`hybridml_battery.FleetMethod` (the baseline).
* ``linear``: :class:`hybridml_battery.LinearMethod` (a baseline, and a stacking input).
* ``a-residual``: the fleet forecast as the prior plus a ridge regression that learns the
  fleet forecast's error (normalised by the cell's initial capacity) from features of the
  early window (level, slopes, curvature, noise, initial capacity, numeric conditions, the
  condition label) and the horizon (basis ``u, u^2, sqrt(u)``, ``u = (k - N) / N``,
  clipped at the largest horizon seen in training). Its training data are the fleet's
  out-of-fold forecasts of the training cells (inner folds), so the regression learns the
  error the fleet really makes on unseen cells. Ridge penalty and the share of the
  correction used (0 to 1; 0 is the fleet alone) chosen by inner CV.
* ``b-fadelaw``: a fade law linear in its parameters, ``r(k) = r0 - a1 sqrt(u) - a2 u -
  a3 u^p`` (SEI-like square root, linear loss, an accelerating knee term; ``u = k / L``,
  ``L`` the training cells' median life, ``a >= 0``), fitted to each training cell's whole
  life; a ridge regression maps the early-window features to ``a``; on the test cell the
  law is re-fitted to the window with a Gaussian shrinkage towards the predicted ``a``
  (``r0`` free: re-anchored). ``p``, the ridge penalty and the shrinkage are chosen by
  inner CV.
* ``c-stack``: a convex combination of ``fleet``, ``linear``, ``b-fadelaw`` and
  ``a-residual``, weights (grid of step 0.1) chosen on the inner out-of-fold predictions
  (its inner score is cross-fitted: weights chosen on the other inner folds).

Protocol (nested): the outer folds are the study's (:func:`hybridml_battery.cell_folds`:
5-fold by cell for XJTU and TJU, leave one cell out for NASA's four cells). Inside each
outer fold, the training cells are split again (5 inner folds, or leave one out when they
are 10 or fewer); every design's settings and the choice between designs use the inner
folds only. The outer test cells are scored once, with each design's inner-chosen
settings; ``chosen`` is the design the inner CV prefers, fold by fold (the lowest inner
mean RMSE, but ``fleet`` is kept unless that design beats it by more than one standard
error of the paired per-cell difference). The test cells'
futures are never used for a choice.

Metrics are the study's (``_metrics.py``): ``rmse_ah`` over every measured cycle after N,
averaged over cells; ``eol_rel_error = |pred - true| / true`` with the true EOL the first
measured cycle at or below the threshold, the prediction the first known cycle at or below
it (if the window reaches it), else the first cycle of ``N+1 .. 3 x last cycle`` where the
forecast is at or below it, else ``3 x last cycle``; averaged over cells that reach EOL.

Run::

    python examples/battery_ageing/design_study.py [--dataset xjtu tju nasa] [--quick]
        [--json benchmarks/results/battery_design_study.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from hybridml_battery import (
    DATASETS,
    Cell,
    FleetMethod,
    LinearMethod,
    Window,
    cell_folds,
    leave_out_short_cells,
    load_cells,
)
from scipy.optimize import nnls

DESIGNS = ("fleet", "linear", "a-residual", "b-fadelaw", "c-stack")
CANDIDATES = ("fleet", "a-residual", "b-fadelaw", "c-stack")  # what the inner CV chooses from
RIDGE_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0, 1e4)
ALPHA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of the residual correction used
POWER_GRID = (2.0, 3.0, 4.0)
SHRINK_GRID = (0.0, 0.3, 1.0, 3.0, 10.0, 1e6)  # prior weight on the predicted law (1e6: pure)
MAX_TRAIN_POINTS = 40  # future points per cell used to fit (evenly subsampled)
STACK_STEP = 0.1


# ----------------------------------------------------------------------------- helpers


def _sub(n: int, most: int) -> np.ndarray:
    if n <= most:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, most)).astype(int))


def _eol(cycles: np.ndarray, capacity: np.ndarray, threshold: float) -> float | None:
    """First cycle at or below ``threshold`` (the study's definition, ``_folds._eol``)."""
    hit = np.flatnonzero(capacity <= threshold)
    return float(cycles[hit[0]]) if hit.size else None


def _q0(cell: Cell, window: Window) -> float:
    m = window.mask(cell)
    return float(np.mean(cell.capacity[m][:5]))


def features(cell: Cell, window: Window) -> np.ndarray:
    """Numeric features of the early window (normalised capacity ``r = q / q0``)."""
    m = window.mask(cell)
    k, q = cell.cycle[m], cell.capacity[m]
    q0 = float(np.mean(q[:5]))
    r = q / q0
    n = window.known_cycles
    half = k > 0.5 * n
    if half.sum() < 3:
        half = np.zeros(k.shape, bool)
        half[-3:] = True
    s_half, l_half = np.polyfit(k[half] / n, r[half], 1)
    level = s_half + l_half  # value at k = N of the later-half line
    s_all = np.polyfit(k / n, r, 1)[0]
    curv = np.polyfit(k / n, r, 2)[0] if k.size >= 4 else 0.0
    res = r[half] - np.polyval([s_half, l_half], k[half] / n)
    noise = float(np.std(res))
    return np.array([level, s_half, s_all, curv, math.log(max(noise, 1e-5)), q0])


class _Context:
    """Per-cell feature rows (numeric conditions and condition labels one-hot, the set of
    keys and labels taken from the training cells)."""

    def __init__(self, train: Sequence[Cell], window: Window) -> None:
        self.window = window
        self._cache: dict[str, np.ndarray] = {}
        self.keys = sorted({k for c in train for k in c.conditions})
        self.labels = sorted({c.condition for c in train if c.condition is not None})
        base = np.array([self._raw(c) for c in train])
        self.mu = base.mean(axis=0)
        sd = base.std(axis=0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)

    def _raw(self, c: Cell) -> np.ndarray:
        cond = [c.conditions.get(k, np.nan) for k in self.keys]
        onehot = [float(c.condition == lab) for lab in self.labels]
        return np.concatenate([features(c, self.window), cond, onehot])

    def x(self, c: Cell) -> np.ndarray:
        if c.cell_id in self._cache:
            return self._cache[c.cell_id]
        raw = self._raw(c)
        raw = np.where(np.isnan(raw), self.mu, raw)
        self._cache[c.cell_id] = (raw - self.mu) / self.sd
        return self._cache[c.cell_id]


def _ridge(X: np.ndarray, Y: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    """Weighted ridge with an unpenalised first column (intercept)."""
    sw = np.sqrt(w)[:, None]
    A = X * sw
    pen = np.full(X.shape[1], lam)
    pen[0] = 0.0
    return np.linalg.solve(A.T @ A + np.diag(pen) + 1e-10 * np.eye(X.shape[1]), A.T @ (Y * sw))


# ----------------------------------------------------------------- per-cell forecasts


class CellCase:
    """One cell used as a test cell of some training set: its points and forecasts."""

    def __init__(self, cell: Cell, window: Window, threshold: float, grid: bool) -> None:
        self.cell = cell
        self.q0 = _q0(cell, window)
        unk = cell.cycle > window.known_cycles
        self.x, self.y = cell.cycle[unk], cell.capacity[unk]
        self.threshold = threshold
        self.known_eol = _eol(
            cell.cycle[window.mask(cell)], cell.capacity[window.mask(cell)], threshold
        )
        # the EOL grid, only for outer test cells (inner scores use the RMSE only)
        n = window.known_cycles
        self.g = (
            np.arange(math.floor(n) + 1, 3 * cell.last_cycle + 1, dtype=float)
            if grid
            else np.zeros(0)
        )
        self.pts = np.concatenate([self.x, self.g])
        self.pred: dict[str, np.ndarray] = {}  # design -> forecast at self.pts

    def rmse(self, name: str) -> float:
        p = self.pred[name][: self.x.size]
        return float(np.sqrt(np.mean((p - self.y) ** 2)))

    def eol_rel(self, name: str) -> float | None:
        true = _eol(self.cell.cycle, self.cell.capacity, self.threshold)
        if true is None:
            return None
        if self.known_eol is not None:
            pred: float | None = self.known_eol
        else:
            pred = _eol(self.g, self.pred[name][self.x.size :], self.threshold)
        if pred is None:
            pred = float(3 * self.cell.last_cycle)
        return abs(pred - true) / true


def base_forecasts(
    train: list[Cell], cases: list[CellCase], window: Window, memo: dict[Any, Any]
) -> None:
    """``fleet`` and ``linear`` forecasts of ``cases`` from ``train``."""
    for cs in cases:
        f = FleetMethod(memo=memo).fit(train, cs.cell, window)
        cs.pred["fleet"] = f.predict(cs.pts)[0]
        li = LinearMethod(memo=memo).fit(train, cs.cell, window)
        cs.pred["linear"] = li.predict(cs.pts)[0]


# ------------------------------------------------------------------ a: fleet + residual


def _psi(u: np.ndarray) -> np.ndarray:
    return np.column_stack([u, u**2, np.sqrt(u)])


class Residual:
    """Ridge model of the fleet's normalised error against window features x horizon."""

    def __init__(self, ctx: _Context, lam: float) -> None:
        self.ctx, self.lam = ctx, lam

    def _design(self, cs: CellCase, pts: np.ndarray) -> np.ndarray:
        n = self.ctx.window.known_cycles
        u = np.clip((pts - n) / n, 0.0, self.umax)
        xf = np.concatenate([[1.0], self.ctx.x(cs.cell)])
        return np.einsum("f,pj->pfj", xf, _psi(u)).reshape(pts.size, -1)

    def fit(self, cases: Sequence[CellCase]) -> Residual:
        n = self.ctx.window.known_cycles
        self.umax = max(float((cs.x[-1] - n) / n) for cs in cases)
        Xs, Ys, Ws = [], [], []
        for cs in cases:
            i = _sub(cs.x.size, MAX_TRAIN_POINTS)
            Xs.append(self._design(cs, cs.x[i]))
            Ys.append((cs.y[i] - cs.pred["fleet"][i]) / cs.q0)
            Ws.append(np.full(i.size, 1.0 / i.size))
        X = np.vstack(Xs)
        # the intercept column of the kron design is the first psi block: leave those
        # three unpenalised
        sw = np.sqrt(np.concatenate(Ws))[:, None]
        A = X * sw
        pen = np.full(X.shape[1], self.lam)
        pen[:3] = 0.0
        self.beta = np.linalg.solve(
            A.T @ A + np.diag(pen) + 1e-10 * np.eye(X.shape[1]),
            A.T @ (np.concatenate(Ys) * sw[:, 0]),
        )
        return self

    def predict(self, cs: CellCase) -> np.ndarray:
        return cs.pred["fleet"] + cs.q0 * (self._design(cs, cs.pts) @ self.beta)


# ------------------------------------------------------------------------- b: fade law


def _law_basis(k: np.ndarray, scale: float, p: float) -> np.ndarray:
    u = np.maximum(k, 0.0) / scale
    return np.column_stack([np.sqrt(u), u, u**p])


def law_params(cell: Cell, q0: float, scale: float, p: float) -> np.ndarray:
    """Non-negative ``a`` of ``r = r0 - B a`` fitted to the cell's whole life (r0 free:
    centred out)."""
    r = cell.capacity / q0
    B = _law_basis(cell.cycle, scale, p)
    Bc, rc = B - B.mean(axis=0), r - r.mean()
    return nnls(-Bc, rc)[0]


class FadeLaw:
    """Ridge from window features to the law's parameters, then a shrunken window fit."""

    def __init__(self, ctx: _Context, scale: float, p: float, lam: float) -> None:
        self.ctx, self.scale, self.p, self.lam = ctx, scale, p, lam

    def fit(self, train: Sequence[Cell], theta: dict[str, np.ndarray]) -> FadeLaw:
        X = np.array([np.concatenate([[1.0], self.ctx.x(c)]) for c in train])
        Y = np.array([theta[c.cell_id] for c in train])
        self.beta = _ridge(X, Y, np.ones(len(train)), self.lam)
        # prior scale of each parameter: the residual spread of the regression
        res = Y - X @ self.beta
        self.tau = np.maximum(res.std(axis=0), 1e-4)
        return self

    def predict(self, cs: CellCase, shrink: float) -> np.ndarray:
        w = self.ctx.window
        m = w.mask(cs.cell)
        k, r = cs.cell.cycle[m], cs.cell.capacity[m] / cs.q0
        a_hat = np.maximum(np.concatenate([[1.0], self.ctx.x(cs.cell)]) @ self.beta, 0.0)
        B = _law_basis(k, self.scale, self.p)
        # noise of the window around a smooth fit sets the data term's weight
        sig = max(float(np.std(r - np.polyval(np.polyfit(k, r, 2), k))), 1e-4)
        # unknowns (r0, a): window rows r = r0 - B a, prior rows sqrt(shrink)*(a - a_hat)/tau
        A1 = np.column_stack([np.ones(k.size), -B]) / sig
        b1 = r / sig
        lam = math.sqrt(shrink * k.size)  # shrink is relative to the window's weight
        A2 = np.column_stack([np.zeros(3), np.diag(lam / self.tau)])
        b2 = lam * a_hat / self.tau
        A = np.vstack([A1, A2])
        b = np.concatenate([b1, b2])
        # a >= 0, r0 free: substitute r0 = r0p - 10 (positive offset for nnls)
        sol = nnls(A, b + 10.0 * A[:, 0])[0]
        r0, a = sol[0] - 10.0, sol[1:]
        pred = r0 - _law_basis(cs.pts, self.scale, self.p) @ a
        return cs.q0 * np.maximum(pred, 0.0)


# ---------------------------------------------------------------------------- nested CV


def _mean_rmse(cases: Sequence[CellCase], name: str) -> float:
    return float(np.mean([cs.rmse(name) for cs in cases]))


def _inner_splits(ids: list[str]) -> list[tuple[list[str], list[str]]]:
    folds = cell_folds(ids, None if len(ids) <= 10 else 5)
    out: dict[int, list[str]] = {}
    for cid, f in folds.fold_of.items():
        out.setdefault(f, []).append(cid)
    return [(folds.train_of[t[0]], t) for t in out.values()]


def _stack_weights(n: int) -> list[np.ndarray]:
    steps = round(1 / STACK_STEP)
    return [
        np.array(c) / steps
        for c in itertools.product(range(steps + 1), repeat=n)
        if sum(c) == steps
    ]


def _best_stack(cases: Sequence[CellCase], members: Sequence[str]) -> np.ndarray:
    """Convex weights (grid) of ``members`` with the lowest mean per-cell RMSE."""
    best_w, best_s = np.eye(len(members))[0], math.inf
    for w in _stack_weights(len(members)):
        s = float(
            np.mean(
                [
                    np.sqrt(
                        np.mean(
                            (sum(wi * cs.pred[m] for wi, m in zip(w, members, strict=True)) - cs.y)
                            ** 2
                        )
                    )
                    for cs in cases
                ]
            )
        )
        if s < best_s:
            best_w, best_s = w, s
    return best_w


def outer_fold(
    cells: dict[str, Cell],
    train_ids: list[str],
    test_ids: list[str],
    window: Window,
    thr: dict[str, float],
) -> tuple[list[CellCase], dict[str, Any]]:
    """Fit every design on ``train_ids`` (settings chosen by inner CV) and forecast the
    test cells; returns the test cases and the inner choices/scores."""
    train = [cells[i] for i in train_ids]
    ctx = _Context(train, window)
    life = float(np.median([c.last_cycle for c in train]))
    # inner out-of-fold fleet/linear forecasts of every training cell
    inner = {i: CellCase(cells[i], window, thr[i], grid=False) for i in train_ids}
    splits = _inner_splits(train_ids)
    for tr, te in splits:
        base_forecasts([cells[i] for i in tr], [inner[i] for i in te], window, {})
    # a: ridge penalty by inner CV on the out-of-fold fleet errors
    a_scores = {}
    for lam in RIDGE_GRID:
        for tr, te in splits:
            model = Residual(ctx, lam).fit([inner[i] for i in tr])
            for i in te:
                inner[i].pred[f"a{lam}"] = model.predict(inner[i])
        a_scores[lam] = _mean_rmse(list(inner.values()), f"a{lam}")
    lam_a = min(a_scores, key=a_scores.__getitem__)
    for cs in inner.values():
        cs.pred["a-residual"] = cs.pred[f"a{lam_a}"]
    # b: power, ridge penalty, shrinkage by inner CV
    b_scores = {}
    for p in POWER_GRID:
        theta = {i: law_params(cells[i], inner[i].q0, life, p) for i in train_ids}
        for lam in RIDGE_GRID:
            for tr, te in splits:
                law = FadeLaw(ctx, life, p, lam).fit([cells[i] for i in tr], theta)
                for i in te:
                    for s in SHRINK_GRID:
                        inner[i].pred[f"b{p},{lam},{s}"] = law.predict(inner[i], s)
            for s in SHRINK_GRID:
                b_scores[(p, lam, s)] = _mean_rmse(list(inner.values()), f"b{p},{lam},{s}")
    p_b, lam_b, s_b = min(b_scores, key=b_scores.__getitem__)
    for cs in inner.values():
        cs.pred["b-fadelaw"] = cs.pred[f"b{p_b},{lam_b},{s_b}"]
    # a: share of the correction (0: the fleet alone) by inner CV
    for alpha in ALPHA_GRID:
        for cs in inner.values():
            cs.pred[f"alpha{alpha}"] = cs.pred["fleet"] + alpha * (
                cs.pred["a-residual"] - cs.pred["fleet"]
            )
    alpha_a = min(ALPHA_GRID, key=lambda al: _mean_rmse(list(inner.values()), f"alpha{al}"))
    for cs in inner.values():
        cs.pred["a-residual"] = cs.pred[f"alpha{alpha_a}"]
    # c: stacking weights on the inner out-of-fold predictions; its inner score is
    # cross-fitted (weights chosen on the other inner folds), the final weights on all
    members = ("fleet", "linear", "b-fadelaw", "a-residual")
    for tr, te in splits:
        w_tr = _best_stack([inner[i] for i in tr], members)
        for i in te:
            inner[i].pred["c-stack"] = sum(
                wi * inner[i].pred[m] for wi, m in zip(w_tr, members, strict=True)
            )
    best_w = _best_stack(list(inner.values()), members)
    inner_rmse = {d: _mean_rmse(list(inner.values()), d) for d in DESIGNS}
    # the choice: the design with the lowest inner RMSE, but fleet (the simplest) is kept
    # unless that design beats it by more than one standard error of the paired difference
    per = {d: np.array([cs.rmse(d) for cs in inner.values()]) for d in CANDIDATES}
    best = min(CANDIDATES, key=inner_rmse.__getitem__)
    diff = per[best] - per["fleet"]
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else math.inf
    chosen = best if float(diff.mean()) < -se else "fleet"

    # outer: refit on all training cells, forecast the test cells
    tests = [CellCase(cells[i], window, thr[i], grid=True) for i in test_ids]
    base_forecasts(train, tests, window, {})
    res = Residual(ctx, lam_a).fit(list(inner.values()))
    theta = {i: law_params(cells[i], inner[i].q0, life, p_b) for i in train_ids}
    law = FadeLaw(ctx, life, p_b, lam_b).fit(train, theta)
    for cs in tests:
        cs.pred["a-residual"] = cs.pred["fleet"] + alpha_a * (res.predict(cs) - cs.pred["fleet"])
        cs.pred["b-fadelaw"] = law.predict(cs, s_b)
        cs.pred["c-stack"] = sum(wi * cs.pred[m] for wi, m in zip(best_w, members, strict=True))
        cs.pred["chosen"] = cs.pred[chosen]
    info = {
        "test_cells": test_ids,
        "inner_rmse_ah": inner_rmse,
        "chosen": chosen,
        "a_ridge": lam_a,
        "a_share": alpha_a,
        "b_power": p_b,
        "b_ridge": lam_b,
        "b_shrink": s_b,
        "c_weights": dict(zip(members, best_w.tolist(), strict=True)),
    }
    return tests, info


def run(dataset: str, quick: bool) -> dict[str, Any]:
    info = DATASETS[dataset]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cd = load_cells(info.path, cells=list(info.cells) if info.cells else None)
        cd, left_out = leave_out_short_cells(cd, float(info.known_cycles))
    window = Window(float(info.known_cycles))
    cells = {cid: c for cid, c in cd.cells.items() if int(window.mask(c).sum()) >= 3}
    ids = list(cells)
    if quick and len(ids) > 10:
        ids = ids[:: max(len(ids) // 15, 1)][:15]
        cells = {i: cells[i] for i in ids}
    thr = {
        cid: info.eol_ah
        if info.eol_ah is not None
        else float(info.eol_fraction or 0.8) * c.initial_capacity
        for cid, c in cells.items()
    }
    folds = cell_folds(ids, None if len(ids) <= 10 else 5)
    tests: list[CellCase] = []
    fold_info = []
    for f in range(folds.n_folds):
        te = [i for i in ids if folds.fold_of[i] == f]
        cases, fi = outer_fold(cells, folds.train_of[te[0]], te, window, thr)
        tests += cases
        fold_info.append(fi)
    table: dict[str, Any] = {}
    for d in (*DESIGNS, "chosen"):
        eols = [e for e in (cs.eol_rel(d) for cs in tests) if e is not None]
        table[d] = {
            "rmse_ah": _mean_rmse(tests, d),
            "eol_rel_error": float(np.mean(eols)) if eols else None,
            "n_cells": len(tests),
            "n_cells_eol": len(eols),
        }
    return {
        "dataset": dataset,
        "known_cycles": info.known_cycles,
        "eol": f"{info.eol_ah} Ah" if info.eol_ah is not None else f"{info.eol_fraction} x initial",
        "split": folds.split,
        "n_cells": len(ids),
        "left_out_short_cells": len(left_out),
        "quick": quick,
        "outer_test": table,
        "folds": fold_info,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--dataset", nargs="+", default=["xjtu", "tju", "nasa"], choices=["xjtu", "tju", "nasa"]
    )
    ap.add_argument("--quick", action="store_true", help="a subset of cells (<= 15 per data set)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    results = {}
    for ds in args.dataset:
        r = run(ds, args.quick)
        results[ds] = r
        print(
            f"\n{ds}: N={r['known_cycles']}, EOL {r['eol']}, {r['split']}, {r['n_cells']} cells, "
            f"{r['seconds']} s; chosen per fold: {[f['chosen'] for f in r['folds']]}"
        )
        print(
            f"{'design':<12} {'rmse_ah':>9} {'vs fleet':>9} {'eol_rel_error':>14} {'vs fleet':>9}"
        )
        fl = r["outer_test"]["fleet"]
        for d, v in r["outer_test"].items():
            e = v["eol_rel_error"]
            de = (
                f"{e / fl['eol_rel_error'] - 1:+.1%}"
                if e is not None and fl["eol_rel_error"]
                else "-"
            )
            print(
                f"{d:<12} {v['rmse_ah']:>9.4f} {v['rmse_ah'] / fl['rmse_ah'] - 1:>+9.1%} "
                f"{e if e is None else round(e, 4)!s:>14} {de:>9}"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
