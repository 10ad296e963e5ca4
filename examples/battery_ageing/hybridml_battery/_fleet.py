"""The ``fleet`` baseline of the battery-ageing study: a data-only forecast from the
training cells' measured trajectories, numpy only.

:class:`FleetMethod` takes the training cells whose early cycles are nearest to the test
cell's known window (after normalising by the initial capacity, optionally stretched in
time, preferring cells tested under the same conditions), re-anchors their trajectories
at the test cell's level at the end of its window and averages them. Every setting is
chosen by leave-one-cell-out over the *training cells only* (one-standard-error rule);
the test cell's future is never used.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridml.exceptions import InvalidArgumentError

from ._baselines import _MIN_KNOWN, _SIGMA0, _eligible, _memo_key, _memoised
from ._data import Cell
from ._methods import Method, Window

__all__ = ["FLEET_CONFIGS", "FleetConfig", "FleetMethod"]


@dataclass(frozen=True)
class FleetConfig:
    """One setting of :class:`FleetMethod`.

    Attributes:
        k: number of neighbours (capped at the number of training cells available).
        anchor: ``"add"``: the neighbour's normalised trajectory is shifted to the test
            cell's level; ``"mult"``: scaled to it.
        anchor_frac: the anchoring level is matched over the last ``anchor_frac`` of the
            window's points (at least 3): the test cell's level at the end of its window,
            robust to noise.
        stretch: stretch each neighbour in time, ``r_j(s k)`` with ``s`` in [0.5, 2],
            ``s`` fitted so its shape best matches the test cell's window (a cell fading
            faster than its neighbour reaches the same state earlier).
        weighted: inverse-squared-distance weights (else the neighbours weigh the same).
        same_conditions: prefer neighbours tested under the test cell's conditions: the
            same condition label (:attr:`Cell.condition`, e.g. the XJTU batch or the TJU
            protocol, when both cells have one) and the same operating conditions
            (:attr:`Cell.conditions`, every key both cells have, e.g. temperature, rated
            capacity); others are used only when fewer than ``k`` such cells exist.
    """

    k: int
    anchor: str
    anchor_frac: float
    stretch: bool
    weighted: bool
    same_conditions: bool = False


# the candidates the leave-one-cell-out over the training cells chooses from, roughly from
# the simplest; the first is the default (used when there are too few training cells to
# choose, and kept unless another is better by more than the standard error)
FLEET_CONFIGS: tuple[FleetConfig, ...] = tuple(
    FleetConfig(k, anchor, frac, stretch, weighted, same)
    for same, stretch, anchor, frac, weighted, k in itertools.product(
        (False, True), (False, True), ("add", "mult"), (0.2, 0.5), (False, True), (3, 1, 2, 5, 8)
    )
)
_ANCHOR_FRACS = (0.2, 0.5)
_STRETCHES = np.geomspace(0.5, 2.0, 15)  # includes 1.0 (the middle one)
_MAX_MATCH_POINTS = 40  # known points used for matching (evenly subsampled beyond this)
_MAX_SCORE_POINTS = 200  # future points used to score a pseudo test cell
_MAX_GRID = 20000


class _Trajectories:
    """Training cells' normalised capacity ``r = capacity / initial capacity`` on one
    regular cycle grid, evaluable at any cycle for any set of cells, vectorised.

    Cells measured on different grids are linearly interpolated onto the common grid.
    Beyond its last measured cycle a cell continues along its last trend: a least-squares
    line through its last ``max(10, 10 %)`` points, its slope clipped at zero (no
    extrapolated recovery), starting from that line's level at the last cycle. This is
    what a neighbour predicts for cycles it never lived (and for a stretched time beyond
    its life); the alternative, dropping it there, makes the fleet's mean jump where a
    neighbour ends.
    """

    def __init__(self, cells: Sequence[Cell]) -> None:
        first = min(float(c.cycle[0]) for c in cells)
        last = max(float(c.cycle[-1]) for c in cells)
        steps = [float(np.median(np.diff(c.cycle))) for c in cells if c.cycle.size > 1]
        h = max(min(steps) if steps else 1.0, (last - first) / (_MAX_GRID - 1), 1e-9)
        n = max(math.ceil((last - first) / h) + 1, 2)
        self.g0, self.h = first, h
        self.grid = first + h * np.arange(n)
        self.q0 = np.array([c.initial_capacity for c in cells])
        self.life = np.array([c.last_cycle for c in cells])
        self.tail_a = np.empty(len(cells))
        self.tail_b = np.empty(len(cells))
        self.R = np.empty((len(cells), n))
        for j, c in enumerate(cells):
            r = c.capacity / self.q0[j]
            m = max(10, math.ceil(0.1 * r.size))
            xs, ys = c.cycle[-m:], r[-m:]
            if xs.size >= 2 and np.ptp(xs) > 0:
                coef = np.polyfit(xs, ys, 1)
                b, level = min(float(coef[0]), 0.0), float(np.polyval(coef, xs[-1]))
            else:
                b, level = 0.0, float(ys[-1])
            self.tail_b[j] = b
            self.tail_a[j] = level - b * float(xs[-1])
            inside = self.grid <= c.cycle[-1]
            self.R[j, inside] = np.interp(self.grid[inside], c.cycle, r)
            self.R[j, ~inside] = self.tail_a[j] + self.tail_b[j] * self.grid[~inside]

    def subset(self, rows: np.ndarray) -> _Trajectories:
        """The trajectories of cells ``rows`` only (row ``i`` of the subset is cell
        ``rows[i]``; the grid is shared)."""
        out = _Trajectories.__new__(_Trajectories)
        out.g0, out.h, out.grid = self.g0, self.h, self.grid
        out.q0, out.life = self.q0[rows], self.life[rows]
        out.tail_a, out.tail_b = self.tail_a[rows], self.tail_b[rows]
        out.R = self.R[rows]
        return out

    def __call__(self, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``r`` of cells ``rows`` at cycles ``x`` (broadcast together)."""
        t = np.clip((x - self.g0) / self.h, 0.0, self.grid.size - 1.0)
        i0 = np.minimum(np.floor(t).astype(int), self.grid.size - 2)
        f = t - i0
        v = self.R[rows, i0] * (1.0 - f) + self.R[rows, i0 + 1] * f
        beyond = x > self.grid[-1]
        if np.any(beyond):
            v = np.where(beyond, self.tail_a[rows] + self.tail_b[rows] * x, v)
        return v


def _window_points(cell: Cell, window: Window) -> tuple[np.ndarray, np.ndarray, float]:
    """Known cycles, normalised capacities (by the mean of the first 5 known points) and
    that initial capacity; evenly subsampled to at most ``_MAX_MATCH_POINTS``."""
    m = window.mask(cell)
    k, q = cell.cycle[m], cell.capacity[m]
    q0 = float(np.mean(q[:5]))
    if k.size > _MAX_MATCH_POINTS:
        idx = np.unique(np.round(np.linspace(0, k.size - 1, _MAX_MATCH_POINTS)).astype(int))
        k, q = k[idx], q[idx]
    return k, q / q0, q0


def _pad(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack 1-d arrays of unequal length: values (padded with the last value) and mask."""
    m = max(r.size for r in rows)
    out = np.empty((len(rows), m))
    mask = np.zeros((len(rows), m), bool)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
        out[i, r.size :] = r[-1]
        mask[i, : r.size] = True
    return out, mask


@dataclass
class _Match:
    """Best stretch and anchor of every (query, candidate) pair for one variant."""

    dist: np.ndarray  # (n_query, n_cand) RMS residual over the window (normalised)
    s: np.ndarray  # (n_query, n_cand) time stretch
    anc: np.ndarray  # (n_query, n_cand) offset ("add") or ratio ("mult")


def _match(
    traj: _Trajectories,
    cand: np.ndarray,
    kx: np.ndarray,
    ky: np.ndarray,
    mask: np.ndarray,
) -> dict[tuple[str, float, bool], _Match]:
    """Match each query window (rows of ``kx``/``ky``/``mask``) to each candidate cell,
    for every anchoring, anchoring fraction and stretch (on/off); vectorised over queries
    and candidates, looping over the stretch grid."""
    cnt = mask.sum(axis=1)
    # the last anchor_frac of each window's points (at least 3)
    pos = np.cumsum(mask, axis=1) - 1
    ends = {}
    for frac in _ANCHOR_FRACS:
        n_end = np.maximum(np.ceil(frac * cnt), np.minimum(cnt, _MIN_KNOWN))
        ends[frac] = mask & (pos >= (cnt - n_end)[:, None])
    kx3, ky3, mask3 = kx[:, None, :], ky[:, None, :], mask[:, None, :]
    rows = cand[None, :, None]
    best: dict[tuple[str, float, bool], _Match] = {}
    for si, s in enumerate(_STRETCHES):
        v = traj(rows, s * kx3)  # (nq, nc, m)
        for anchor, frac in itertools.product(("add", "mult"), _ANCHOR_FRACS):
            e = ends[frac][:, None, :]
            ne = e.sum(axis=2)
            if anchor == "add":
                anc = ((ky3 - v) * e).sum(axis=2) / ne
                res = ky3 - v - anc[..., None]
            else:
                vv = np.maximum(v, 1e-3)
                anc = (ky3 / vv * e).sum(axis=2) / ne
                res = ky3 - vv * anc[..., None]
            d = np.sqrt((res**2 * mask3).sum(axis=2) / cnt[:, None])
            for stretch in (False, True):
                if not stretch and si != len(_STRETCHES) // 2:
                    continue
                key = (anchor, frac, stretch)
                if key not in best:
                    best[key] = _Match(d, np.full(d.shape, s), anc)
                else:
                    b = best[key]
                    better = d < b.dist
                    b.dist = np.where(better, d, b.dist)
                    b.s = np.where(better, s, b.s)
                    b.anc = np.where(better, anc, b.anc)
    return best


def _forecast(
    traj: _Trajectories,
    rows: np.ndarray,
    s: np.ndarray,
    anc: np.ndarray,
    anchor: str,
    x: np.ndarray,
) -> np.ndarray:
    """Normalised forecasts of neighbours ``rows`` (stretch ``s``, anchor ``anc``, each
    shape ``(n,)``) at cycles ``x`` (shape ``(p,)``): shape ``(n, p)``."""
    v = traj(rows[:, None], s[:, None] * x[None, :])
    if anchor == "add":
        return v + anc[:, None]
    return np.maximum(v, 0.0) * anc[:, None]


def _weights(dist: np.ndarray, weighted: bool) -> np.ndarray:
    """Neighbour weights (rows sum to 1): uniform or inverse squared distance (the
    distance floored at 1e-3, about the normalised noise of a capacity measurement)."""
    w = 1.0 / np.maximum(dist, 1e-3) ** 2 if weighted else np.ones_like(dist)
    return w / w.sum(axis=-1, keepdims=True)


def _condition_penalty(queries: Sequence[Cell], cands: Sequence[Cell]) -> np.ndarray:
    """``(n_query, n_cand)``: 1e3 where two cells' conditions differ (their condition
    labels, when both have one, or any operating condition both have, relative difference
    > 1e-6), else 0; added to the distance, it ranks every same-condition neighbour first."""
    out = np.zeros((len(queries), len(cands)))
    for i, q in enumerate(queries):
        for j, c in enumerate(cands):
            if q.condition is not None and c.condition is not None and q.condition != c.condition:
                out[i, j] = 1e3
                continue
            for key in q.conditions.keys() & c.conditions.keys():
                a, b = q.conditions[key], c.conditions[key]
                if abs(a - b) > 1e-6 * max(abs(a), abs(b), 1.0):
                    out[i, j] = 1e3
                    break
    return out


class FleetMethod(Method):
    """Data-only forecast from the training cells' measured trajectories.

    Each training cell's capacity is normalised by its initial capacity (mean of its first
    5 cycles) and so is the test cell's known window. Each training cell (a neighbour) is
    matched to the window: optionally stretched in time (``r_j(s k)``, ``s`` in [0.5, 2]
    on a log grid, the ``s`` whose anchored shape fits the window best), then anchored to
    the test cell's level at the end of its window, additively (``r_j + offset``) or
    multiplicatively (``r_j × ratio``), the offset/ratio matched over the last 20 % or
    50 % of the window's points. The distance of a neighbour is the RMS residual of its
    anchored trajectory over the whole window; the forecast is the mean of the ``k``
    nearest (uniform or inverse-squared-distance weights), times the test cell's initial
    capacity.

    The setting (``k``, anchoring, anchoring range, stretch, weights; the grid
    :data:`FLEET_CONFIGS`) is chosen by leave-one-cell-out over the *training cells only*:
    each training cell with data after the window is forecast from the others with the
    same window, and the setting with the lowest mean RMSE after the window wins. The test
    cell's future is never used. With fewer than two such training cells the first
    setting is used (k = 3, additive, last 20 %, no stretch, uniform weights).

    Training cells with fewer than 3 points in the window or no data after it cannot be
    matched and are not neighbours (unless no cell is usable: then all are, along their
    trends). A neighbour that ends before a cycle to forecast (or, stretched, before
    ``s k``) continues along its last trend (see :class:`_Trajectories`). Cells measured
    on different cycle grids are interpolated onto one grid; the work is vectorised over
    cells (a fit with 130 training cells takes well under a second).

    Predictive scale: the weighted standard deviation of the forecasts of the
    ``max(k, 3)`` nearest neighbours (as many as there are, if fewer), combined with the
    floor ``sqrt(spread^2 + 0.01^2)`` A.h.

    Args:
        configs: the settings to choose from (one setting: no choice is made).
        memo: a dict shared by the test cells of one fold: the setting depends on the
            training cells and the window only, so it is chosen once per fold (the same
            results, faster).
    """

    name = "fleet"

    def __init__(
        self, configs: Sequence[FleetConfig] = FLEET_CONFIGS, memo: dict[Any, Any] | None = None
    ) -> None:
        if not configs:
            raise InvalidArgumentError("configs must hold at least one FleetConfig.")
        self.configs = tuple(configs)
        self.memo = memo

    def fit(self, train: Sequence[Cell], test: Cell, window: Window) -> FleetMethod:
        """Choose the setting by leave-one-cell-out over ``train``, then match the test
        cell's window to the training cells."""
        if not train:
            raise InvalidArgumentError("FleetMethod needs at least one training cell.")
        for cfg in self.configs:
            if cfg.anchor not in ("add", "mult") or cfg.anchor_frac not in _ANCHOR_FRACS:
                raise InvalidArgumentError(
                    f"{cfg}: anchor must be 'add' or 'mult' and anchor_frac one of {_ANCHOR_FRACS}."
                )
        usable = _eligible(train, window) or list(train)
        self.traj_ = _Trajectories(usable)
        self.cells_ = [c.cell_id for c in usable]
        key = _memo_key(self.name, usable, window, self.configs)
        self.config_, self.inner_rmse_ = _memoised(
            self.memo, key, lambda: self._choose(usable, window)
        )
        cfg = self.config_
        kx, ky, q0 = _window_points(test, window)
        mt = _match(
            self.traj_, np.arange(len(usable)), kx[None], ky[None], np.ones((1, kx.size), bool)
        )[(cfg.anchor, cfg.anchor_frac, cfg.stretch)]
        dist = mt.dist[0]
        pen = _condition_penalty([test], usable)[0] if cfg.same_conditions else 0.0 * dist
        order = np.argsort(dist + pen, kind="stable")
        n_sel = min(cfg.k, len(usable))
        n_spread = min(max(cfg.k, 3), len(usable))
        self.q0_ = q0
        self.rows_ = order[:n_spread]
        self.s_ = mt.s[0, self.rows_]
        self.anc_ = mt.anc[0, self.rows_]
        self.dist_ = dist[self.rows_]
        self.w_mean_ = np.zeros(n_spread)
        self.w_mean_[:n_sel] = _weights(self.dist_[:n_sel], cfg.weighted)
        self.w_spread_ = _weights(self.dist_, cfg.weighted)
        # only the neighbours are forecast from: a fit keeps their trajectories alone (the
        # hybrid holds one fitted fleet forecast per training cell and inner fold)
        self.traj_ = self.traj_.subset(self.rows_)
        return self

    def _choose(self, cells: list[Cell], window: Window) -> tuple[FleetConfig, float | None]:
        """The setting chosen by leave-one-cell-out over ``cells`` (one standard error
        rule: the first setting of :attr:`configs` whose mean RMSE is within one standard
        error (of its paired difference) of the best one's; with few cells the inner
        scores are noisy and this keeps the default unless the evidence is clear)."""
        n = len(cells)
        if len(self.configs) == 1 or n < 2:
            return self.configs[0], None
        pts = [_window_points(c, window) for c in cells]
        kx, mask = _pad([p[0] for p in pts])
        ky, _ = _pad([p[1] for p in pts])
        matches = _match(self.traj_, np.arange(n), kx, ky, mask)
        for mt in matches.values():
            np.fill_diagonal(mt.dist, np.inf)  # a cell is not its own neighbour
        pen = _condition_penalty(cells, cells)
        kmax = min(max(c.k for c in self.configs), n - 1)
        need = {(c.anchor, c.anchor_frac, c.stretch, c.same_conditions) for c in self.configs}
        # err[(key, weighted)][k - 1, i]: RMSE of cell i forecast by its k nearest
        err = {(key, wt): np.zeros((kmax, n)) for key in need for wt in (False, True)}
        ranks = np.arange(1, kmax + 1)[:, None]
        for i, c in enumerate(cells):
            fut = c.cycle > window.known_cycles
            x, y = c.cycle[fut], c.capacity[fut]
            if x.size > _MAX_SCORE_POINTS:
                idx = np.unique(np.round(np.linspace(0, x.size - 1, _MAX_SCORE_POINTS)).astype(int))
                x, y = x[idx], y[idx]
            for key in need:
                mt = matches[key[:3]]
                d = mt.dist[i]
                order = np.argsort(d + pen[i] if key[3] else d, kind="stable")[:kmax]
                f = _forecast(self.traj_, order, mt.s[i, order], mt.anc[i, order], key[0], x)
                f = np.maximum(f, 0.0) * pts[i][2]
                uni = np.cumsum(f, axis=0) / ranks
                w = 1.0 / np.maximum(d[order], 1e-3) ** 2
                wtd = np.cumsum(w[:, None] * f, axis=0) / np.cumsum(w)[:, None]
                err[key, False][:, i] = np.sqrt(np.mean((uni - y) ** 2, axis=1))
                err[key, True][:, i] = np.sqrt(np.mean((wtd - y) ** 2, axis=1))
        scores = np.array(
            [
                err[(c.anchor, c.anchor_frac, c.stretch, c.same_conditions), c.weighted][
                    min(c.k, kmax) - 1
                ]
                for c in self.configs
            ]
        )  # (n_configs, n_cells)
        mean = scores.mean(axis=1)
        best = int(np.argmin(mean))
        diff = scores - scores[best]
        se = diff.std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(len(mean))
        chosen = int(np.flatnonzero(mean - mean[best] <= se)[0])
        return self.configs[chosen], float(mean[chosen])

    def calibration_method(self) -> FleetMethod:
        """This fold's setting, fixed: the method the study's conformal calibration refits
        on each held-out training cell (the setting is not re-chosen there)."""
        return FleetMethod([self.config_])

    def _members(self, cycles: np.ndarray) -> np.ndarray:
        x = np.asarray(cycles, dtype=float).ravel()
        rows = np.arange(self.rows_.size)  # traj_ holds the neighbours, in this order
        f = _forecast(self.traj_, rows, self.s_, self.anc_, self.config_.anchor, x)
        return np.maximum(f, 0.0) * self.q0_

    def predict(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Weighted mean of the neighbours' forecasts and their spread (floored)."""
        f = self._members(cycles)
        mean = self.w_mean_ @ f
        mu_s = self.w_spread_ @ f
        spread2 = self.w_spread_ @ (f - mu_s) ** 2
        shape = np.shape(cycles)
        return mean.reshape(shape), np.sqrt(spread2 + _SIGMA0**2).reshape(shape)
