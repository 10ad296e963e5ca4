"""The study's ``hybrid``: a physics prior and the fleet's forecast, corrected by an
ensemble of networks learned across the training cells.

For a cell whose first N cycles are known, three forecasts of its normalised capacity
``r(k) = capacity(k) / q0`` (``q0`` its initial capacity, the mean of its first 5 cycles)
are built from what transfers between cells:

* the **physics prior** ``p(k)``: the PyBaMM fade library identified from the cell's
  window, with the time-scale prior and the regeneration recovery time of the training
  cells (:func:`.fleet_prior`, :func:`.identify`; the ``physics-fleet`` ablation). The
  time-scale prior is pooled over the training cells, taken from those of the cell's own
  operating condition, or learned from the cell's window by a regression across the
  training cells (:mod:`._learned`), whichever the training cells show predicts them
  best (:mod:`._matched`);
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

The forecast blends the network-corrected prior with the fleet forecast,

    ``q0 (w (p(k) + lam * mean correction) + (1 - w) f(k))``,

with the network's share ``lam`` (of :data:`SHRINK_GRID`) and the weight ``w`` of the
corrected prior (of :data:`WEIGHT_GRID`). The candidates (:class:`Candidate`) also include
the **window's own prior** ``p0(k)``: the fade library identified from the cell's window
with a flat time-scale prior (the ``physics`` baseline), alone or blended with the fleet
forecast as ``w p0(k) + (1 - w) f(k)``: where the training cells' time scales are a poor
prior for a new cell (cells of varied conditions, few of them), calibrated PyBaMM on the
window alone can be the better forecast.

The candidate is chosen by an inner cross-validation over the training cells (leave one
cell out up to 10 cells, 5 folds by cell above): each inner fold trains the network on
the other folds' cells and forecasts its own. Each candidate is scored per held-out cell
by its RMSE after N plus, where the cell reaches its end of life in its data and the
thresholds are given, its relative EOL error, each relative to the physics prior's mean
over the held-out cells (so both goals weigh the same). The best candidate is used only if
it beats the physics prior alone (``p``, the default) in a one-sided paired t-test over
the held-out cells at 90 %; then the simplest candidate within one standard error of the
best (least network, then closest to the physics, then the own prior; see
:func:`_guarded_choice`). Where the training cells carry ``condition`` labels and fall in
two conditions or more, a condition with at least :data:`MIN_CONDITION_CELLS` held-out
cells then gets its own candidate by the same rule over its own cells, with the fleet-wide
choice as its default (cells of different conditions can be forecast best by different
parts: the fleet forecast where the condition's cells are many and alike, the physics
where they are few or varied). With few training cells the inner folds rarely show that
anything beats the physics prior and the forecast stays with it; with a large fleet the
fleet forecast and the network take over, as far as they earn it on the training cells.
The same inner forecasts calibrate the 90 % interval (grouped by cell, with
:func:`hybridml.conformal_calibration`; pooled points when there are fewer than 10 cells).
The predictive scale combines the members' spread of the correction with the spread of
the fleet's neighbours (or of the physics prior, without the fleet) and a 0.01 A.h floor.

The ablations switch parts off: ``hybrid-no-network`` blends the priors and the fleet
forecast without a network (``lam = 0``); ``hybrid-no-physics`` learns the error of the
fleet forecast without the physics prior; ``hybrid-no-fleet`` learns the physics prior's
error without the fleet forecast; ``physics-fleet`` is the prior alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._baselines import _SIGMA0, _eligible, _memo_key, _memoised
from ._calibration import _conformal_q
from ._choice import _choice_by_group, _guarded_choice
from ._data import Cell
from ._fleet import FleetConfig, FleetMethod
from ._identify import REGEN_TAU_DEFAULT, FleetPrior, PhysicsPrior, fleet_prior, identify
from ._matched import choose_prior, prior_for
from ._methods import SHRINK_GRID, Method, NetSettings, Window, window_summary
from ._physics import FadeLibrary

__all__ = ["MIN_CONDITION_CELLS", "WEIGHT_GRID", "Candidate", "FleetHybridMethod"]

# the fold's choices made once on its training cells: the fleet prior (its recovery time),
# the fleet forecast's setting and the time-scale prior (pooled, matched or learned)
_Setting = tuple[FleetPrior | None, FleetConfig | None, str]

#: weights of the network-corrected prior against the fleet forecast the hybrid chooses from
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)

_ROWS_PER_CELL = 30  # future points of a training cell the network trains on (evenly spaced)
_INNER_LOO_MAX = 10  # inner folds: leave one training cell out up to this many cells ...
_INNER_FOLDS = 5  # ... else this many folds by cell
_MIN_GROUPS = 10  # grouped conformal calibration from this many cells; pooled points below
#: a condition's own candidate needs at least this many held-out training cells of it
MIN_CONDITION_CELLS = 5


class Candidate(NamedTuple):
    """One forecast the hybrid's inner cross-validation chooses from:
    ``w (base + share * correction) + (1 - w) fleet``.

    ``prior`` names the physics prior in ``base``: ``"fleet"``, the prior whose time scale
    comes from the training cells (the network corrects this one), or ``"own"``, the prior
    identified from the cell's window alone (a flat time-scale prior, as the ``physics``
    baseline; never corrected, so its ``share`` is 0).
    """

    prior: str
    weight: float
    share: float


@dataclass(frozen=True)
class _View:
    """What the hybrid knows of one cell at prediction time: its window, its physics prior
    and its fleet forecast (both built without the cell's future)."""

    q0: float
    level: float
    slope: float
    prior: PhysicsPrior | None
    fleet: FleetMethod | None
    own: PhysicsPrior | None = None

    def physics(self, k: np.ndarray, own: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The prior's normalised forecast (with the window's regeneration transients) and
        its standard deviation (``own``: of the prior identified from the window alone)."""
        prior = self.own if own else self.prior
        assert prior is not None
        mean, sd = prior.members(k)
        return (mean + prior.transient(k)) / self.q0, sd / self.q0

    def fleet_forecast(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fleet's normalised forecast and its neighbours' spread."""
        assert self.fleet is not None
        mean, sd = self.fleet.predict(k)
        assert sd is not None
        return mean / self.q0, sd / self.q0


@dataclass(frozen=True)
class _Parts:
    physics: bool
    fleet: bool
    network: bool = True
    own: bool = False  # also the physics prior identified from the window alone
    by_condition: bool = False  # may match the prior to the cell's condition


@dataclass(frozen=True)
class _Forecast:
    """The hybrid's pieces at some cycles, normalised by ``q0``: the base the network
    corrects (the prior, or the fleet forecast without the physics), the other base (the
    fleet forecast when the base is the prior; None otherwise), each member's correction
    ``(n_members, n)``, the bases' own spread and the prior identified from the window
    alone (None: not used)."""

    base: np.ndarray
    other: np.ndarray | None
    corr: np.ndarray
    spread: np.ndarray
    own: np.ndarray | None = None

    def mean(self, c: Candidate) -> np.ndarray:
        """``w (base + share * mean correction) + (1 - w) other`` (``base``: the window's
        own prior for ``c.prior == "own"``)."""
        if c.prior == "own":
            assert self.own is not None
            m = self.own
        else:
            m = self.base + c.share * self.corr.mean(axis=0)
        if c.weight == 1.0 or self.other is None:
            return m
        return c.weight * m + (1.0 - c.weight) * self.other

    def sd(self, c: Candidate, q0: float) -> np.ndarray:
        """Predictive scale (normalised): the members' spread of the correction used, the
        bases' spread and the measurement floor."""
        wl = (c.weight if self.other is not None else 1.0) * c.share
        return np.sqrt(wl**2 * self.corr.var(axis=0) + self.spread**2 + (_SIGMA0 / q0) ** 2)


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
        fleet_setting: _Setting | None = None,
    ) -> None:
        self.window, self.parts, self.library, self.memo = window, parts, library, memo
        self.life = float(np.median([c.last_cycle for c in train]))
        if fleet_setting is None:
            fleet_setting = _fleet_setting(train, window, parts, library, memo)
        self.setting = fleet_setting
        self.train_ids = tuple(c.cell_id for c in train)
        self.ensemble = None
        if not parts.network:
            return
        xs, ys, ws, gs = [], [], [], []
        # a training cell is seen with the *other* training cells as its fleet: none when
        # there is only one, so a single training cell trains no network
        for cell in _eligible(train, window) if len(train) >= 2 else []:
            others = [c for c in train if c.cell_id != cell.cell_id]
            view = self.view(others, cell)
            fut = np.flatnonzero(cell.cycle > window.known_cycles)
            fut = fut[np.unique(np.linspace(0, fut.size - 1, _ROWS_PER_CELL).round().astype(int))]
            k = cell.cycle[fut]
            x, fc = self.features(view, k)
            xs.append(x)
            ys.append(cell.capacity[fut] / view.q0 - fc.base)
            ws.append(np.full(k.size, 1.0 / k.size))
            gs += [cell.cell_id] * k.size
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

    @classmethod
    def restored(
        cls,
        train: Sequence[Cell],
        window: Window,
        parts: _Parts,
        library: FadeLibrary,
        setting: _Setting,
        life: float,
        ensemble: Any,
    ) -> _FoldModel:
        """A fold model from its saved state (no training; see :mod:`._model_file`)."""
        self = cls.__new__(cls)
        self.window, self.parts, self.library, self.memo = window, parts, library, {}
        self.life, self.setting, self.ensemble = life, setting, ensemble
        self.train_ids = tuple(c.cell_id for c in train)
        return self

    def view(self, others: Sequence[Cell], cell: Cell) -> _View:
        """The cell's view with ``others`` as its fleet (memoised: the variants with the
        same parts share it)."""
        fp, cfg, scale_prior = self.setting
        key = (
            "hybrid-view",
            cell.cell_id,
            self.window,
            tuple(sorted(c.cell_id for c in others)),
            fp is not None,
            cfg is not None,
            scale_prior,
            self.parts.by_condition,
            self.parts.own,
        )
        return _memoised(self.memo, key, lambda: self._view(others, cell))

    def _view(self, others: Sequence[Cell], cell: Cell) -> _View:
        fp, cfg, scale_prior = self.setting
        m = self.window.mask(cell)
        q0, level, slope = window_summary(cell, self.window)
        prior = None
        if fp is not None:
            scales = prior_for(
                self.library,
                others,
                cell,
                fp.regen_tau,
                scale_prior,
                self.window,
                self.parts.by_condition,
            )
            prior = identify(self.library, cell.cycle[m], cell.capacity[m], scales)
        fleet = None
        if cfg is not None:
            fleet = FleetMethod([cfg]).fit(others, cell, self.window)
        flat = None
        if self.parts.own:
            flat = identify(
                self.library, cell.cycle[m], cell.capacity[m], regen_tau=REGEN_TAU_DEFAULT
            )
        return _View(q0, level, slope, prior, fleet, flat)

    def features(self, view: _View, k: np.ndarray) -> tuple[np.ndarray, _Forecast]:
        """Network inputs at cycles ``k`` and the forecast's pieces there (the correction
        still zero)."""
        h = (np.asarray(k, dtype=float) - self.window.known_cycles) / self.life
        cols = [h, np.full(h.shape, view.level), np.full(h.shape, view.slope)]
        base = other = spread = None
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
            else:
                other = f
        if base is None or spread is None:  # no part: the window's level, flat
            base, spread = np.full(h.shape, view.level), np.zeros(h.shape)
        own = view.physics(k, own=True)[0] if view.own is not None else None
        return np.column_stack(cols), _Forecast(base, other, np.zeros((1, h.size)), spread, own)

    def forecast(self, view: _View, k: np.ndarray) -> _Forecast:
        """The forecast's pieces at cycles ``k``, with each member's correction."""
        x, fc = self.features(view, k)
        if self.ensemble is None:
            return fc
        corr = self.ensemble.member_predictions(x)[..., 0]
        return _Forecast(fc.base, fc.other, corr, fc.spread, fc.own)


def _fleet_setting(
    train: Sequence[Cell],
    window: Window,
    parts: _Parts,
    library: FadeLibrary,
    memo: dict[Any, Any],
) -> _Setting:
    """The choices made once on the training cells: the fleet prior's recovery time (by
    leave-one-cell-out, :func:`.fleet_prior`), its time-scale prior (pooled, matched
    to the cell's condition or learned from its window: :func:`.choose_prior`) and the
    fleet forecast's setting."""
    fp = cfg = None
    scale_prior = "pooled"
    if parts.physics:
        fp = fleet_prior(library, [(c.cycle, c.capacity) for c in train], True, window.known_cycles)
        scale_prior = choose_prior(library, train, window, fp.regen_tau, parts.by_condition, memo)
    if parts.fleet:
        cfg = FleetMethod(memo=memo).fit(train, train[0], window).config_
    return fp, cfg, scale_prior


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


@dataclass(frozen=True)
class _Held:
    """One held-out training cell of the inner folds: its future (normalised), the
    forecast's pieces there and on the EOL grid, and its end of life."""

    cell: str
    condition: str | None
    q0: float
    y: np.ndarray
    fc: _Forecast
    grid: np.ndarray
    fc_grid: _Forecast
    threshold: float | None  # normalised EOL capacity (None: no thresholds given)
    eol_known: float | None  # the window already reaches EOL at this cycle
    eol_true: float | None  # first measured cycle at or below the threshold


def _first_crossing(grid: np.ndarray, mean: np.ndarray, threshold: float) -> float | None:
    """First cycle of ``grid`` where ``mean`` is at or below ``threshold``, linearly
    interpolated between grid points (None if never)."""
    hit = np.flatnonzero(mean <= threshold)
    if not hit.size:
        return None
    i = int(hit[0])
    if i == 0 or mean[i - 1] == mean[i]:
        return float(grid[i])
    t = (mean[i - 1] - threshold) / (mean[i - 1] - mean[i])
    return float(grid[i - 1] + t * (grid[i] - grid[i - 1]))


def _held_scores(h: _Held, c: Candidate) -> tuple[float, float | None]:
    """RMSE after N [A.h] and relative EOL error (None: the cell does not reach EOL, or
    no thresholds) of candidate ``c`` on a held-out cell, as the study scores a test cell
    (EOL searched up to 3x the cell's last cycle, else that bound)."""
    rmse = h.q0 * float(np.sqrt(np.mean((h.fc.mean(c) - h.y) ** 2)))
    if h.threshold is None or h.eol_true is None:
        return rmse, None
    pred = h.eol_known
    if pred is None:
        pred = _first_crossing(h.grid, h.fc_grid.mean(c), h.threshold)
    if pred is None:
        pred = float(h.grid[-1])
    return rmse, abs(pred - h.eol_true) / h.eol_true


class FleetHybridMethod(Method):
    """The study's ``hybrid`` (see the module docstring for the method).

    Args:
        library: the PyBaMM fade library.
        settings: the network ensemble's settings.
        seed: seeds the ensemble (members ``seed + m``; inner folds other seeds).
        physics: use the physics prior (the base the network corrects).
        fleet: give the network the fleet forecast (the base when ``physics`` is off) and
            blend it in.
        shrink: the shares of the correction the inner cross-validation chooses from;
            ``(0.0,)`` trains no network.
        weights: the weights of the corrected prior against the fleet forecast it chooses
            from (only with both ``physics`` and ``fleet``; ``(1.0,)``: no blending).
        by_condition: use the cells' operating condition (their ``condition`` label)
            where the training cells show that it helps: match the physics prior's fleet
            to the cell's condition (the training cells of its ``condition`` only) or let
            the learned time-scale prior see it (:mod:`hybridml_battery._matched`; only
            with ``physics``), and let a condition
            with at least :data:`MIN_CONDITION_CELLS` held-out training cells have its
            own candidate (see the module docstring). Both chosen once per set of
            training cells.
        own_physics: also choose from the physics prior identified from the cell's window
            alone (a flat time-scale prior, as the ``physics`` baseline), alone or blended
            with the fleet forecast (not corrected by the network); like every candidate
            other than the physics prior alone, it is used only if the inner folds show
            that it helps. Only with ``physics``.
        eol_thresholds: the end-of-life capacity [A.h] of the training cells, by cell id:
            the inner cross-validation then scores the candidates on the EOL error too
            (None: on the RMSE only). A cell missing from it is scored on its RMSE only.
        memo: a dict shared by the test cells of one fold (the network depends on the
            training cells and the window only; it is trained once per fold).
        name: the method's name in the study's tables.

    ``fit(train, test, window)`` is :meth:`fit_fleet` then :meth:`apply`; a fitted hybrid
    can be saved (:meth:`save`) and loaded to forecast new cells (:meth:`load`).

    After ``fit``: ``choice_`` (the chosen :class:`Candidate`), ``condition_choices_``
    (condition -> its own :class:`Candidate`, for the conditions whose held-out training
    cells chose another one; :meth:`choice_for` a cell), ``q_`` (the interval
    multiplier), ``inner_rmse_`` and ``inner_eol_`` (each candidate's mean inner RMSE
    [A.h] and relative EOL error over all held-out cells, keyed by :class:`Candidate`).
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
        weights: Sequence[float] = WEIGHT_GRID,
        own_physics: bool = True,
        by_condition: bool = True,
        eol_thresholds: Mapping[str, float] | None = None,
        memo: dict[Any, Any] | None = None,
        name: str = "hybrid",
    ) -> None:
        self.library = library
        self.settings = settings
        self.seed = seed
        self.shrink = tuple(float(s) for s in shrink)
        self.weights = tuple(float(w) for w in weights) if physics and fleet else (1.0,)
        self.parts = _Parts(
            physics,
            fleet,
            network=any(s > 0 for s in self.shrink),
            own=physics and own_physics,
            by_condition=physics and by_condition,
        )
        self.by_condition = by_condition
        self.eol_thresholds = dict(eol_thresholds) if eol_thresholds is not None else None
        self.memo = memo
        self.name = name

    def candidates(self) -> list[Candidate]:
        """The forecasts the inner cross-validation chooses from: every weight ``w`` and
        share ``lam`` of the corrected prior (with ``w = 0`` the correction is not used, so
        only ``lam = 0``) and, with ``own_physics``, the window's own prior blended with
        the fleet at each ``w > 0``."""
        out = [
            Candidate("fleet", w, lam)
            for w in self.weights
            for lam in self.shrink
            if w > 0 or lam == 0
        ]
        if self.parts.own:
            out += [Candidate("own", w, 0.0) for w in self.weights if w > 0]
        return out

    def default(self) -> Candidate:
        """The candidate kept unless the inner folds show that another one helps: the
        physics prior alone (the fleet forecast alone without the physics)."""
        return Candidate("fleet", 1.0, 0.0)

    def fit(self, train: Sequence[Cell], test: Cell, window: Window) -> FleetHybridMethod:
        """Train the fold's network and choose its weights (once per fold,
        :meth:`fit_fleet`), then build the test cell's view from its window
        (:meth:`apply`)."""
        return self.fit_fleet(train, window).apply(test)

    def fit_fleet(self, train: Sequence[Cell], window: Window) -> FleetHybridMethod:
        """Train the network on the training cells and choose its share and weight by the
        inner cross-validation (memoised in ``memo``: once per set of training cells and
        window). Then :meth:`apply` forecasts any cell from its window."""
        memo = self.memo if self.memo is not None else {}
        thr = None
        if self.eol_thresholds is not None:
            thr = tuple(sorted((c.cell_id, self.eol_thresholds.get(c.cell_id)) for c in train))
        key = _memo_key(
            self.name,
            train,
            window,
            self.parts,
            self.settings,
            self.seed,
            self.shrink,
            self.weights,
            self.by_condition,
            thr,
        )
        (
            self.fold_,
            self.choice_,
            self.condition_choices_,
            self.q_,
            self.inner_rmse_,
            self.inner_eol_,
        ) = _memoised(memo, key, lambda: self._fit_fold(list(train), window, memo))
        self.train_ = tuple(train)
        self.cell_choice_ = self.choice_  # until a cell is applied
        return self

    def apply(self, cell: Cell) -> FleetHybridMethod:
        """Build ``cell``'s forecast from its window (its cycles up to the fitted window's
        N) and the training cells; :meth:`predict` then forecasts it. The cell's data
        after N are not used.

        Raises:
            hybridml.NotFittedError: before :meth:`fit_fleet` (or :meth:`load`).
            hybridml.DataError: the cell has fewer than 3 points in the window.
        """
        from hybridml import DataError, NotFittedError

        if not hasattr(self, "fold_"):
            raise NotFittedError(
                f"{self.name}: not fitted; call fit_fleet(train, window) or load(path) first."
            )
        window = self.fold_.window
        n_known = int(window.mask(cell).sum())
        if n_known < 3:
            raise DataError(
                f"{self.name}: cell {cell.cell_id!r} has {n_known} point(s) at cycles <= "
                f"{window.known_cycles:g} (the window the model was fitted for); at least 3 "
                "are needed."
            )
        self.view_ = self.fold_.view(self.train_, cell)
        self.cell_choice_ = self.choice_for(cell)
        return self

    def choice_for(self, cell: Cell) -> Candidate:
        """The candidate used for ``cell``: its condition's own (``condition_choices_``)
        where the inner folds chose one, else ``choice_``."""
        if cell.condition is None:
            return self.choice_
        return self.condition_choices_.get(cell.condition, self.choice_)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted hybrid to a model file (one file, data only: tensors and JSON
        metadata, written atomically; see :mod:`hybridml_battery._model_file`): the
        network, the choices made on the training cells and the training cells
        themselves, which new cells' forecasts are built from."""
        from ._model_file import save_hybrid

        save_hybrid(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FleetHybridMethod:
        """Read a model file written by :meth:`save`; :meth:`apply` a new cell, then
        :meth:`predict`.

        Raises:
            hybridml.ModelFileError: not such a model file, another format version, or
                damaged.
            FileNotFoundError: no such file.

        Warns:
            hybridml.ModelFileWarning: saved with other versions of hybridml or the
                plug-in.
        """
        from ._model_file import load_hybrid

        return load_hybrid(path)

    def _held(self, sub: _FoldModel, rest: list[Cell], cell: Cell) -> _Held:
        window = sub.window
        view = sub.view(rest, cell)
        fut = cell.cycle > window.known_cycles
        # the EOL grid: up to 3x the cell's last cycle, as the study searches it
        grid = np.linspace(np.floor(window.known_cycles) + 1, 3 * cell.last_cycle, 400)
        thr = eol_known = eol_true = None
        a = self.eol_thresholds.get(cell.cell_id) if self.eol_thresholds is not None else None
        if a is not None:
            from ._folds import _eol

            m = window.mask(cell)
            thr = a / view.q0
            eol_known = _eol(cell.cycle[m], cell.capacity[m], a)
            eol_true = _eol(cell.cycle, cell.capacity, a)
        return _Held(
            cell.cell_id,
            cell.condition,
            view.q0,
            cell.capacity[fut] / view.q0,
            sub.forecast(view, cell.cycle[fut]),
            grid,
            sub.forecast(view, grid),
            thr,
            eol_known,
            eol_true,
        )

    def _fit_fold(
        self, train: list[Cell], window: Window, memo: dict[Any, Any]
    ) -> tuple[
        _FoldModel,
        Candidate,
        dict[str, Candidate],
        float | None,
        dict[Candidate, float],
        dict[Candidate, float],
    ]:
        model = _FoldModel(train, window, self.parts, self.library, self.settings, self.seed, memo)
        default = self.default()
        cands = self.candidates()
        if len(cands) == 1 and not self.parts.network:
            return model, cands[0], {}, None, {}, {}
        if self.parts.network and model.ensemble is None:  # too few cells for a network
            cands = [c for c in cands if c.share == 0.0]
        held: list[_Held] = []
        for i, (cells, rest) in enumerate(_inner_splits(train, window)):
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
            held += [self._held(sub, rest, cell) for cell in cells]
        if not held:
            return model, default, {}, None, {}, {}
        scores = {c: [_held_scores(h, c) for h in held] for c in cands}
        rmse = {c: np.array([r for r, _ in v]) for c, v in scores.items()}
        eol = {
            c: np.array([e if e is not None else np.nan for _, e in v]) for c, v in scores.items()
        }
        # per held-out cell: RMSE plus EOL error, each relative to the default's mean
        r0 = max(float(rmse[default].mean()), 1e-12)
        has_eol = ~np.isnan(eol[default])
        e0 = max(float(eol[default][has_eol].mean()), 1e-3) if has_eol.any() else None
        per_cell = {
            c: rmse[c] / r0 + (np.where(has_eol, eol[c], 0.0) / e0 if e0 is not None else 0.0)
            for c in cands
        }

        # simplest first: least network, then closest to the physics, then the own prior
        def key(c: Candidate) -> tuple[float, float, bool]:
            return (c.weight * c.share, 1.0 - c.weight, c.prior != "own")

        choice = _guarded_choice(per_cell, default, key=key)
        by_cond: dict[str, Candidate] = {}
        if self.by_condition:
            by_cond = _choice_by_group(
                per_cell, [h.condition for h in held], choice, key, MIN_CONDITION_CELLS
            )
        sc, groups = [], []
        for h in held:
            c = by_cond.get(h.condition, choice) if h.condition is not None else choice
            sc.append(np.abs(h.y - h.fc.mean(c)) / h.fc.sd(c, h.q0))
            groups += [h.cell] * h.y.size
        # grouped by cell from _MIN_GROUPS cells; pooled points below (too few cells to
        # certify 90 % by cell)
        g = np.asarray(groups)
        q = _conformal_q(np.concatenate(sc), 0.9, g, grouped=np.unique(g).size >= _MIN_GROUPS)
        mean_rmse = {c: float(v.mean()) for c, v in rmse.items()}
        mean_eol = {c: float(v[has_eol].mean()) for c, v in eol.items() if has_eol.any()}
        return model, choice, by_cond, q, mean_rmse, mean_eol

    def conformal_q(self) -> float | None:
        """The interval multiplier calibrated on the inner folds (None: too few)."""
        return self.q_

    def choices(self) -> dict[str, float | str | bool]:
        """The prior (``"fleet"`` or ``"own"``, see :class:`Candidate`), the weight ``w``
        of the (corrected) prior and the network's share ``lam`` chosen by the inner
        cross-validation for the cell last applied (the fleet-wide choice before any),
        whether that is its condition's own choice (``by_condition``, see
        ``condition_choices_``) and whether the physics prior's time scale is matched to
        the cell's condition (``matched``), learned from its window (``learned``) or
        left to the window alone (``flat``), see :mod:`hybridml_battery._matched`."""
        c = self.cell_choice_
        return {
            "prior": c.prior,
            "weight": c.weight,
            "share": c.share,
            "matched": self.fold_.setting[2] == "matched",
            "learned": self.fold_.setting[2] == "learned",
            "flat": self.fold_.setting[2] == "flat",
            "by_condition": c != self.choice_,
        }

    def predict(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``q0 (w (base + lam * mean correction) + (1 - w) other)`` and the predictive
        scale [A.h]."""
        c = np.asarray(cycles, dtype=float)
        view = self.view_
        fc = self.fold_.forecast(view, c)
        ch = self.cell_choice_
        return view.q0 * fc.mean(ch), view.q0 * fc.sd(ch, view.q0)
