"""The study's ``hybrid``: a physics prior and the fleet's forecast, corrected by an
ensemble of networks learned across the training cells.

For a cell whose first N cycles are known, three forecasts of its normalised capacity
``r(k) = capacity(k) / q0`` (``q0`` its initial capacity, the mean of its first 5 cycles)
are built from what transfers between cells:

* the **physics prior** ``p(k)``: the PyBaMM fade library identified from the cell's
  window, with the time-scale prior and the regeneration recovery time of the training
  cells (:func:`.fleet_prior`, :func:`.identify`; the ``physics-fleet`` ablation);
* the **fleet forecast** ``f(k)``: the training cells' measured trajectories matched to the
  window (:class:`.FleetMethod`, its setting chosen on the training cells);
* the cell's **window**: its level at the end of the window and its slope over the window's
  second half.

A :class:`hybridml.BatchedEnsemble` learns the error of the physics prior, ``r(k) - p(k)``,
from the horizon ``(k - N) / L`` (``L`` the training cells' median life), the window and the
two forecasts (as offsets from the window's level, and the prior's log time scale). Its
training rows are the training cells' futures, each training cell seen as the test cell
will be: its prior and fleet forecast built from its own window and the *other* training
cells (so the network learns the errors the forecasts make on cells they have not seen).
Every training cell weighs the same; the members are bootstrap resamples of the cells.

The forecast is ``q0 (p(k) + lam * mean correction)``. The share ``lam`` (of
:data:`SHRINK_GRID`) is chosen by an inner cross-validation over the training cells (leave
one cell out up to 10 cells, 5 folds by cell above): each inner fold trains the network on
the other folds' cells and forecasts its own; the share with the lowest mean RMSE after N
is used if it beats the physics alone in a one-sided paired t-test over the held-out
cells at 90 % (then the smallest share within one standard error of the best; see
:func:`_one_se_choice`). With few training cells the inner folds rarely show that the
network helps and the forecast stays with the physics; with a large fleet the network takes
over.
The same inner forecasts calibrate the 90 % interval (grouped by cell, with
:func:`hybridml.conformal_calibration`; pooled points when there are fewer than 10 cells).
The predictive scale combines the members' spread of the correction with the spread of
the fleet's neighbours (or of the physics prior, without the fleet) and a 0.01 A.h floor.

The ablations switch parts off: ``hybrid-no-physics`` learns the error of the fleet
forecast without the physics prior; ``hybrid-no-fleet`` learns the physics prior's error
without the fleet forecast; ``physics-fleet`` is the prior alone (no network).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._baselines import _SIGMA0, _eligible, _memo_key, _memoised
from ._calibration import _conformal_q
from ._data import Cell
from ._fleet import FleetConfig, FleetMethod
from ._identify import FleetPrior, PhysicsPrior, fleet_prior, identify
from ._methods import SHRINK_GRID, Method, NetSettings, Window
from ._physics import FadeLibrary

__all__ = ["FleetHybridMethod"]

_ROWS_PER_CELL = 30  # future points of a training cell the network trains on (evenly spaced)
_INNER_LOO_MAX = 10  # inner folds: leave one training cell out up to this many cells ...
_INNER_FOLDS = 5  # ... else this many folds by cell
_MIN_GROUPS = 10  # grouped conformal calibration from this many cells; pooled points below


@dataclass(frozen=True)
class _View:
    """What the hybrid knows of one cell at prediction time: its window, its physics prior
    and its fleet forecast (both built without the cell's future)."""

    q0: float
    level: float
    slope: float
    prior: PhysicsPrior | None
    fleet: FleetMethod | None

    def physics(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The prior's normalised forecast (with the window's regeneration transients) and
        its standard deviation."""
        assert self.prior is not None
        mean, sd = self.prior.members(k)
        return (mean + self.prior.transient(k)) / self.q0, sd / self.q0

    def fleet_forecast(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fleet's normalised forecast and its neighbours' spread."""
        assert self.fleet is not None
        mean, sd = self.fleet.predict(k)
        assert sd is not None
        return mean / self.q0, sd / self.q0


def _window_summary(cell: Cell, window: Window) -> tuple[float, float, float]:
    """``q0``, the normalised level at the end of the window (mean of its last 20 % of
    points, at least 3) and the normalised drop per N cycles over its second half."""
    m = window.mask(cell)
    k, q = cell.cycle[m], cell.capacity[m]
    q0 = float(np.mean(q[:5]))
    r = q / q0
    level = float(np.mean(r[-max(3, r.size // 5) :]))
    half = k >= 0.5 * float(k.max())
    if half.sum() >= 3 and np.ptp(k[half]) > 0:
        slope = float(np.polyfit(k[half], r[half], 1)[0]) * float(window.known_cycles)
    else:
        slope = 0.0
    return q0, level, slope


@dataclass(frozen=True)
class _Parts:
    physics: bool
    fleet: bool


class _FoldModel:
    """The network of one set of training cells (shared by the test cells of a fold)."""

    def __init__(
        self,
        train: Sequence[Cell],
        window: Window,
        parts: _Parts,
        library: FadeLibrary,
        settings: NetSettings,
        seed: int,
        memo: dict[Any, Any],
        fleet_setting: tuple[FleetPrior | None, FleetConfig | None] | None = None,
    ) -> None:
        self.window, self.parts, self.library, self.memo = window, parts, library, memo
        self.life = float(np.median([c.last_cycle for c in train]))
        if fleet_setting is None:
            fleet_setting = _fleet_setting(train, window, parts, library, memo)
        self.setting = fleet_setting
        self.train_ids = tuple(c.cell_id for c in train)
        xs, ys, ws, gs = [], [], [], []
        # a training cell is seen with the *other* training cells as its fleet: none when
        # there is only one, so a single training cell trains no network
        for cell in _eligible(train, window) if len(train) >= 2 else []:
            others = [c for c in train if c.cell_id != cell.cell_id]
            view = self.view(others, cell)
            fut = np.flatnonzero(cell.cycle > window.known_cycles)
            fut = fut[np.unique(np.linspace(0, fut.size - 1, _ROWS_PER_CELL).round().astype(int))]
            k = cell.cycle[fut]
            x, base, _ = self.features(view, k)
            xs.append(x)
            ys.append(cell.capacity[fut] / view.q0 - base)
            ws.append(np.full(k.size, 1.0 / k.size))
            gs += [cell.cell_id] * k.size
        self.ensemble = None
        if len(xs) >= 2:
            from hybridml import Adam, BatchedEnsemble

            s = settings
            self.ensemble = BatchedEnsemble(
                hidden=s.hidden,
                n_members=s.n_members,
                bootstrap=True,
                phases=(Adam(s.steps, lr=s.lr, lr_decay=0.05),),
                weight_decay=s.weight_decay,
                calibration=None,
                seed=seed,
                progress=False,
            ).fit(
                np.concatenate(xs),
                np.concatenate(ys)[:, None],
                groups=np.asarray(gs),
                member_weights=np.concatenate(ws),
            )

    def view(self, others: Sequence[Cell], cell: Cell) -> _View:
        """The cell's view with ``others`` as its fleet (memoised: the variants share it)."""
        key = ("hybrid-view", cell.cell_id, self.window, tuple(sorted(c.cell_id for c in others)))
        return _memoised(self.memo, key, lambda: self._view(others, cell))

    def _view(self, others: Sequence[Cell], cell: Cell) -> _View:
        fp, cfg = self.setting
        m = self.window.mask(cell)
        q0, level, slope = _window_summary(cell, self.window)
        prior = None
        if fp is not None:
            own = fleet_prior(
                self.library,
                [(c.cycle, c.capacity) for c in others],
                True,
                regen_tau=fp.regen_tau,
            )
            prior = identify(self.library, cell.cycle[m], cell.capacity[m], own)
        fleet = None
        if cfg is not None:
            fleet = FleetMethod([cfg]).fit(others, cell, self.window)
        return _View(q0, level, slope, prior, fleet)

    def features(self, view: _View, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network inputs at cycles ``k``, the base forecast (normalised) and the base's
        own spread (normalised)."""
        h = (np.asarray(k, dtype=float) - self.window.known_cycles) / self.life
        cols = [h, np.full(h.shape, view.level), np.full(h.shape, view.slope)]
        base = spread = None
        if self.parts.physics:
            p, p_sd = view.physics(k)
            assert view.prior is not None
            cols += [p - view.level, np.full(h.shape, np.log(view.prior.time_scale))]
            base, spread = p, p_sd
        if self.parts.fleet:
            f, f_sd = view.fleet_forecast(k)
            cols.append(f - view.level)
            spread = f_sd  # the neighbours' spread: the fleet's own uncertainty
            if base is None:
                base = f
        if base is None or spread is None:  # no part: the window's level, flat
            base, spread = np.full(h.shape, view.level), np.zeros(h.shape)
        return np.column_stack(cols), base, spread

    def parts_at(self, view: _View, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Base forecast, each member's correction ``(n_members, n)`` and the base's spread,
        all normalised."""
        x, base, spread = self.features(view, k)
        if self.ensemble is None:
            return base, np.zeros((1, base.size)), spread
        corr = self.ensemble.member_predictions(x)[..., 0]
        return base, corr, spread


def _fleet_setting(
    train: Sequence[Cell],
    window: Window,
    parts: _Parts,
    library: FadeLibrary,
    memo: dict[Any, Any],
) -> tuple[FleetPrior | None, FleetConfig | None]:
    """The choices made once on the training cells: the fleet prior's recovery time (by
    leave-one-cell-out, :func:`.fleet_prior`) and the fleet forecast's setting."""
    fp = cfg = None
    if parts.physics:
        fp = fleet_prior(library, [(c.cycle, c.capacity) for c in train], True, window.known_cycles)
    if parts.fleet:
        cfg = FleetMethod(memo=memo).fit(train, train[0], window).config_
    return fp, cfg


def _inner_splits(train: Sequence[Cell], window: Window) -> list[tuple[list[Cell], list[Cell]]]:
    """``(held, rest)`` pairs over the training cells: leave one out up to
    :data:`_INNER_LOO_MAX` cells, :data:`_INNER_FOLDS` folds by cell above; only cells
    with a usable window and a future are held out."""
    from ._protocol import cell_folds

    usable = {c.cell_id for c in _eligible(train, window)}
    if len(train) < 2:
        return []
    folds = cell_folds(
        [c.cell_id for c in train], None if len(train) <= _INNER_LOO_MAX else _INNER_FOLDS
    )
    out = []
    for f in range(folds.n_folds):
        held = [c for c in train if folds.fold_of[c.cell_id] == f and c.cell_id in usable]
        rest = [c for c in train if folds.fold_of[c.cell_id] != f]
        if held and len(rest) >= 2:  # a network needs two cells (see _FoldModel)
            out.append((held, rest))
    return out


class FleetHybridMethod(Method):
    """The study's ``hybrid`` (see the module docstring for the method).

    Args:
        library: the PyBaMM fade library.
        settings: the network ensemble's settings.
        seed: seeds the ensemble (members ``seed + m``; inner folds other seeds).
        physics: use the physics prior (the base the network corrects).
        fleet: give the network the fleet forecast (the base when ``physics`` is off).
        shrink: the shares of the correction the inner cross-validation chooses from.
        memo: a dict shared by the test cells of one fold (the network depends on the
            training cells and the window only; it is trained once per fold).
        name: the method's name in the study's tables.
    """

    def __init__(
        self,
        library: FadeLibrary,
        settings: NetSettings,
        seed: int = 0,
        *,
        physics: bool = True,
        fleet: bool = True,
        shrink: Sequence[float] = SHRINK_GRID,
        memo: dict[Any, Any] | None = None,
        name: str = "hybrid",
    ) -> None:
        self.library = library
        self.settings = settings
        self.seed = seed
        self.parts = _Parts(physics, fleet)
        self.shrink = tuple(float(s) for s in shrink)
        self.memo = memo
        self.name = name

    def fit(self, train: Sequence[Cell], test: Cell, window: Window) -> FleetHybridMethod:
        """Train the fold's network and choose its share (once per fold), then build the
        test cell's view from its window."""
        memo = self.memo if self.memo is not None else {}
        key = _memo_key(self.name, train, window, self.parts, self.settings, self.seed, self.shrink)
        self.fold_, self.shrink_, self.q_, self.inner_rmse_ = _memoised(
            memo, key, lambda: self._fit_fold(list(train), window, memo)
        )
        self.view_ = self.fold_.view(train, test)
        return self

    def _fit_fold(
        self, train: list[Cell], window: Window, memo: dict[Any, Any]
    ) -> tuple[_FoldModel, float, float | None, dict[float, float]]:
        model = _FoldModel(train, window, self.parts, self.library, self.settings, self.seed, memo)
        if model.ensemble is None:
            return model, 0.0, None, {}
        inner: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]] = []
        for i, (held, rest) in enumerate(_inner_splits(train, window)):
            sub = _FoldModel(
                rest,
                window,
                self.parts,
                self.library,
                self.settings,
                self.seed + 1000 * (i + 1),
                memo,
                fleet_setting=model.setting,
            )
            for cell in held:
                view = sub.view(rest, cell)
                fut = cell.cycle > window.known_cycles
                base, corr, spread = sub.parts_at(view, cell.cycle[fut])
                y = cell.capacity[fut] / view.q0
                inner.append((cell.cell_id, y, base, corr, spread, view.q0))
        if not inner:
            return model, 1.0, None, {}
        # per held-out cell RMSE after N [A.h] at each share
        per_cell = {
            lam: np.array(
                [
                    q0 * np.sqrt(np.mean((b + lam * c.mean(axis=0) - y) ** 2))
                    for _, y, b, c, _, q0 in inner
                ]
            )
            for lam in self.shrink
        }
        err = {lam: float(v.mean()) for lam, v in per_cell.items()}
        lam = _one_se_choice(per_cell)
        scores, groups = [], []
        for cid, y, b, c, sp, q0 in inner:
            mu = b + lam * c.mean(axis=0)
            sd = np.sqrt(lam**2 * c.var(axis=0) + sp**2 + (_SIGMA0 / q0) ** 2)
            scores.append(np.abs(y - mu) / sd)
            groups += [cid] * y.size
        # grouped by cell from _MIN_GROUPS cells; pooled points below (too few cells to
        # certify 90 % by cell)
        g = np.asarray(groups)
        q = _conformal_q(np.concatenate(scores), 0.9, g, grouped=np.unique(g).size >= _MIN_GROUPS)
        return model, lam, q, err

    def conformal_q(self) -> float | None:
        """The interval multiplier calibrated on the inner folds (None: too few)."""
        return self.q_

    def predict(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``q0 (base + lam * mean correction)`` and the predictive scale [A.h]."""
        c = np.asarray(cycles, dtype=float)
        view = self.view_
        base, corr, spread = self.fold_.parts_at(view, c)
        lam = self.shrink_
        mean = base + lam * corr.mean(axis=0)
        var = lam**2 * corr.var(axis=0) + spread**2
        return view.q0 * mean, view.q0 * np.sqrt(var + (_SIGMA0 / view.q0) ** 2)


def _one_se_choice(per_cell: dict[float, np.ndarray], confidence: float = 0.9) -> float:
    """The share of the correction, from each share's per-cell inner RMSE.

    The network is used only where the inner folds show that it helps: the best share
    (lowest mean) must beat the smallest share (the physics alone, share 0) in a
    one-sided paired t-test over the held-out cells at ``confidence``; else the smallest
    share is kept. When it does, the smallest share whose mean is within one standard error
    (of its paired difference) of the best one's is used. With few cells the inner scores
    are noisy and the test rarely passes (three cells need an improvement of 1.9 standard
    errors); with a fleet of tens of cells a consistent improvement passes easily.
    """
    from scipy.stats import t as student_t

    shares = sorted(per_cell)
    best = min(shares, key=lambda s: (float(per_cell[s].mean()), s))
    n = per_cell[best].size

    def se(diff: np.ndarray) -> float:
        return float(diff.std(ddof=1)) / np.sqrt(n) if n > 1 else 0.0

    gain = per_cell[shares[0]] - per_cell[best]
    if best == shares[0] or n < 2:
        return shares[0]
    if not float(gain.mean()) > float(student_t.ppf(confidence, n - 1)) * se(gain):
        return shares[0]
    for s in shares:
        diff = per_cell[s] - per_cell[best]
        if float(diff.mean()) <= se(diff):
            return s
    return best
