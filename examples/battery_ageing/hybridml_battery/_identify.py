"""The physics prior of a cell: the PyBaMM fade library of :mod:`._physics` identified from
the cell's measured points.

A cell's prior is ``A * g((cycle - 1) / s)``
with an amplitude ``A`` (the cell's initial capacity) and a time scale ``s`` (cycles of the
real cell per simulated cycle: the NASA cells are not the Mohtat cell), identified with the
shapes by Bayesian model averaging over a grid. The time scale's prior comes from the other
cells ("the fleet"), which is what lets a prior identified from a few early, flat points
still extrapolate.

Capacity regeneration (a jump up of 20-150 mAh after a rest that fades back over a few
cycles) is not degradation: each rise of more than 20 mAh in a cell's points starts a
transient ``a_j exp(-(cycle - c_j) / tau)`` fitted jointly with the trajectory, so the
trajectory describes the irreversible fade. Without this the bumps pulled the prior's level
up and its end of life late. The recovery time ``tau`` is chosen by the fleet itself: the
one that best predicts each training cell after N from its first N cycles, the other
training cells serving as fleet.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybridml.exceptions import InvalidArgumentError

from ._physics import ONSET, REFERENCE_AH, FadeLibrary, capacity_scale

__all__ = [
    "REGEN_MIN_AH",
    "REGEN_TAUS",
    "FleetPrior",
    "PhysicsPrior",
    "fleet_prior",
    "identify",
    "regen_basis",
    "regen_events",
    "regen_transient",
    "time_scale_rows",
]

# grid of time scales (real cycles per simulated cycle) used in identification
_LOG_S = np.linspace(math.log(0.3), math.log(60.0), 90)
# Residuals of early cycles are strongly correlated (capacity regeneration after rests lasts
# tens of cycles) and the early shape says little about the late one, so the likelihood of
# the early points is tempered by this factor and the fleet's time-scale prior dominates the
# rate; the early points still fix the amplitude and choose among shapes. (On the NASA
# cells, N=60: mean RMSE of the physics prior 0.100 Ah with 5, 0.068 Ah with 50.)
_TEMPER = 50.0
# A.h at the reference scale: below the repeatability of a capacity measurement
_SIGMA_FLOOR = 0.01
_TAU_FLOOR = 0.2  # spread of log time scale across cells, at least ~20 %
# capacity regeneration: a rise above this between consecutive measured cycles (the NASA
# README: regeneration steps of 20-150 mAh; cycle-to-cycle noise 5-10 mAh), at REFERENCE_AH
REGEN_MIN_AH = 0.02
# candidate recovery times [cycles] of a regeneration transient; the fleet chooses one by
# leave-one-cell-out prediction of its own cells (see fleet_prior)
REGEN_TAUS = (2.0, 3.0, 5.0, 8.0, 12.0, 20.0)
# used when the fleet cannot choose (no known_cycles given, or a single fleet cell)
REGEN_TAU_DEFAULT = 5.0
_REGEN_RIDGE = 1e-3


@dataclass(frozen=True)
class FleetPrior:
    """Prior of each trajectory's log time scale, from fully measured cells.

    Attributes:
        mean: per trajectory, the mean best-fit log time scale over the cells.
        std: per trajectory, its spread (floored).
        regen_tau: recovery time [cycles] of capacity regeneration transients that fits
            the cells best (None: regeneration not modelled).
    """

    mean: np.ndarray
    std: np.ndarray
    regen_tau: float | None = None


def regen_events(cycle: np.ndarray, capacity: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Cycles at which the capacity regenerates: a rise of more than ``0.02`` A.h over the
    previous measured cycle, for a cell of 2 A.h (the threshold is :data:`REGEN_MIN_AH`
    x ``scale`` / :data:`REFERENCE_AH`; ``scale`` defaults to the cell's
    :func:`capacity_scale`, so a rise of 20 mA.h of a 2 A.h cell is 1 mA.h of a 0.1 A.h one).

    Capacity regeneration (after a rest the concentration gradients relax and some
    capacity comes back) shows as a jump up of 20-150 mAh that fades back to the
    underlying trend over the next cycles; a rise above 20 mAh is more than a cycle's
    measurement noise on the NASA cells (median cycle-to-cycle change 5-10 mAh).
    """
    cycle = np.asarray(cycle, dtype=float)
    capacity = np.asarray(capacity, dtype=float)
    if scale is None:
        scale = capacity_scale(capacity)
    rise = np.diff(capacity) > REGEN_MIN_AH * (scale / REFERENCE_AH)
    return cycle[1:][rise]


def regen_basis(cycle: np.ndarray, events: np.ndarray, tau: float) -> np.ndarray:
    """Transient of each regeneration event at ``cycle``: ``exp(-(cycle - c_j) / tau)`` from
    the event's cycle ``c_j`` on, 0 before; shape ``(len(cycle), len(events))``."""
    c = np.asarray(cycle, dtype=float)[:, None]
    e = np.asarray(events, dtype=float)[None, :]
    lag = c - e
    return np.where(lag >= 0, np.exp(-np.maximum(lag, 0.0) / tau), 0.0)


def _grid(library: FadeLibrary, cycle: np.ndarray) -> np.ndarray:
    """Every trajectory at every time scale of the grid: ``(n_curves, n_s, n)``."""
    u = (np.asarray(cycle, dtype=float)[None, :] - 1.0) / np.exp(_LOG_S)[:, None]
    return library.shapes(u)


def _fits(
    library: FadeLibrary,
    cycle: np.ndarray,
    capacity: np.ndarray,
    basis: np.ndarray | None = None,
    g: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares amplitude and SSE for every (trajectory, time scale) of the grid.

    With ``basis`` (regeneration transients, ``(n, J)``) their amplitudes are fitted
    jointly with each trajectory's (by projecting them out), so the trajectory describes
    the irreversible fade only.
    """
    if g is None:
        g = _grid(library, cycle)  # (n_curves, n_s, n)
    y = capacity
    if basis is not None and basis.shape[1]:
        # ridge: nearly coincident events (rises on consecutive cycles) stay well posed
        gram = basis.T @ basis + _REGEN_RIDGE * np.eye(basis.shape[1])
        proj = np.linalg.solve(gram, basis.T)  # (J, n)
        y = y - basis @ (proj @ y)
        g = g - (g @ proj.T) @ basis.T
    amp = (g * y).sum(-1) / (g * g).sum(-1)
    sse = ((y - amp[..., None] * g) ** 2).sum(-1)
    return amp, sse


def _regen_amplitudes(basis: np.ndarray, cycle_residual: np.ndarray) -> np.ndarray:
    """Amplitudes of the transients fitted to what the trend leaves (ridge as in _fits)."""
    gram = basis.T @ basis + _REGEN_RIDGE * np.eye(basis.shape[1])
    return np.asarray(np.linalg.solve(gram, basis.T @ cycle_residual), dtype=float)


# fleet priors computed in this process, newest last: every test cell of a fold (and the
# physics-fleet ablation beside the hybrid) has the same training cells, so the same prior
_FLEET_MEMO: OrderedDict[tuple[Any, ...], tuple[FadeLibrary, FleetPrior]] = OrderedDict()
_FLEET_MEMO_SIZE = 16


def fleet_prior(
    library: FadeLibrary,
    cells: Sequence[tuple[np.ndarray, np.ndarray]],
    regen: bool = True,
    known_cycles: float | None = None,
    regen_tau: float | None = None,
) -> FleetPrior:
    """Best-fit log time scale of each trajectory on each fully measured cell.

    A pure function of its arguments; the last few results are kept (keyed by the
    library and a hash of the cells' values), so a fold's test cells share one.

    Args:
        library: the fade library.
        cells: ``(cycle, capacity)`` of each fully measured cell.
        regen: model capacity regeneration: each rise of more than 20 mAh
            (:func:`regen_events`) starts a transient ``a_j exp(-(cycle - c_j) / tau)``
            fitted with the trajectory, so that the trajectory follows the irreversible
            fade.
        known_cycles: N of the study. With it (and at least two cells) the recovery
            time ``tau`` is the one of :data:`REGEN_TAUS` that best predicts the fleet's
            own cells: leave one fleet cell out, identify its prior from its cycles <= N
            with the other cells as fleet, and score the squared error of the prediction
            after N; without it ``tau`` is :data:`REGEN_TAU_DEFAULT`.
        regen_tau: use this recovery time (with ``regen``) instead of choosing one.

    Returns:
        The :class:`FleetPrior` (mean and spread over the cells, per trajectory).
    """
    cells = [(np.asarray(c, dtype=float), np.asarray(q, dtype=float)) for c, q in cells]
    h = hashlib.sha256()
    for c, q in cells:
        h.update(np.ascontiguousarray(c).tobytes() + b"|" + np.ascontiguousarray(q).tobytes())
        h.update(b"#")
    key = (id(library), bool(regen), known_cycles, regen_tau, len(cells), h.hexdigest())
    hit = _FLEET_MEMO.get(key)
    if hit is not None and hit[0] is library:
        _FLEET_MEMO.move_to_end(key)
        return hit[1]
    prior = _fleet_prior(library, cells, regen, known_cycles, regen_tau)
    _FLEET_MEMO[key] = (library, prior)  # the library is kept: its id is not reused
    while len(_FLEET_MEMO) > _FLEET_MEMO_SIZE:
        _FLEET_MEMO.popitem(last=False)
    return prior


#: a fully measured cell is fitted on at most this many of its points (evenly spaced, first
#: and last kept): the trajectories are smooth, and the grid of every (trajectory, time
#: scale) at every point would otherwise take gigabytes for fleets of long-lived cells
_MAX_FIT_POINTS = 200
# best log time scale of each trajectory per (library, recovery time, cell): a cell's row
# does not depend on the other cells, so folds and subsets of one fleet share it
_ROW_MEMO: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_ROW_MEMO_SIZE = 4096
#: the recovery time is chosen on at most this many of the fleet's cells (evenly spread)
_MAX_TAU_CELLS = 20


def _thinned(cycle: np.ndarray, cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if cycle.size <= _MAX_FIT_POINTS:
        return cycle, cap
    rows = np.unique(np.linspace(0, cycle.size - 1, _MAX_FIT_POINTS).round().astype(int))
    return cycle[rows], cap[rows]


def _best_row(
    library: FadeLibrary, cycle: np.ndarray, cap: np.ndarray, tau: float | None
) -> np.ndarray:
    """The best-fit log time scale of each trajectory on one fully measured cell."""
    key = (
        id(library),
        tau,
        hashlib.sha256(cycle.tobytes() + b"|" + cap.tobytes()).hexdigest(),
    )
    hit = _ROW_MEMO.get(key)
    if hit is not None:
        _ROW_MEMO.move_to_end(key)
        return hit
    basis = None if tau is None else regen_basis(cycle, regen_events(cycle, cap), tau)
    _, sse = _fits(library, cycle, cap, basis)
    row = np.asarray(_LOG_S[np.argmin(sse, axis=1)])
    _ROW_MEMO[key] = row
    while len(_ROW_MEMO) > _ROW_MEMO_SIZE:
        _ROW_MEMO.popitem(last=False)
    return row


def time_scale_rows(
    library: FadeLibrary,
    cells: Sequence[tuple[np.ndarray, np.ndarray]],
    regen_tau: float | None,
) -> np.ndarray:
    """The best-fit log time scale of each trajectory on each fully measured cell,
    ``(n_cells, n_curves)`` (the rows :func:`fleet_prior` averages; regeneration
    transients with recovery time ``regen_tau``, None: not modelled)."""
    rows = []
    for c, q in cells:
        c, q = _thinned(np.ascontiguousarray(c, dtype=float), np.ascontiguousarray(q, dtype=float))
        rows.append(_best_row(library, c, q, regen_tau))
    return np.asarray(rows)


def _fleet_prior(
    library: FadeLibrary,
    cells: list[tuple[np.ndarray, np.ndarray]],
    regen: bool,
    known_cycles: float | None,
    regen_tau: float | None,
) -> FleetPrior:
    cells = [_thinned(np.ascontiguousarray(c), np.ascontiguousarray(q)) for c, q in cells]
    taus: tuple[float | None, ...] = (None,)
    if regen:
        usable = known_cycles is not None and len(cells) > 1
        taus = REGEN_TAUS if usable else (REGEN_TAU_DEFAULT,)
        if regen_tau is not None:
            taus = (float(regen_tau),)
    best = {tau: np.asarray([_best_row(library, c, q, tau) for c, q in cells]) for tau in taus}
    tau = taus[0]
    if len(taus) > 1:
        assert known_cycles is not None
        err: dict[float | None, list[float]] = {t: [] for t in taus}
        scored = np.unique(np.linspace(0, len(cells) - 1, _MAX_TAU_CELLS).round().astype(int))
        for j in scored.tolist():
            cycle, cap = cells[j]
            unk = cycle > known_cycles
            known = ~unk
            if known.sum() < 3 or not unk.any():
                continue
            g = _grid(library, cycle)  # one cell's grid at a time: memory stays small
            for t in taus:
                fleet = _fleet(np.delete(best[t], j, axis=0), t)
                prior = _identify(library, cycle[known], cap[known], fleet, g[..., known])
                pred = prior.mean_from_grid(g[..., unk]) + prior.transient(cycle[unk])
                err[t].append(float(np.mean((pred - cap[unk]) ** 2)))
        scores = [float(np.mean(err[t])) if err[t] else math.inf for t in taus]
        if np.isfinite(scores).any():
            tau = taus[int(np.argmin(scores))]
        else:
            tau = REGEN_TAU_DEFAULT
            if tau not in best:
                return fleet_prior(library, cells, regen)
    return _fleet(best[tau], tau)


def _fleet(arr: np.ndarray, tau: float | None) -> FleetPrior:
    std = arr.std(axis=0) if arr.shape[0] > 1 else np.full(arr.shape[1], 1.5 * _TAU_FLOOR)
    return FleetPrior(mean=arr.mean(axis=0), std=np.maximum(std, _TAU_FLOOR), regen_tau=tau)


def regen_transient(
    library: FadeLibrary, cycle: np.ndarray, capacity: np.ndarray, tau: float
) -> np.ndarray:
    """The regeneration transients of a fully measured cell at its cycles [A.h].

    The cell is fitted with the best (trajectory, time scale) of the library plus one
    transient per regeneration event (:func:`regen_events`); ``capacity - transient`` is
    its irreversible fade.
    """
    cycle = np.asarray(cycle, dtype=float)
    capacity = np.asarray(capacity, dtype=float)
    basis = regen_basis(cycle, regen_events(cycle, capacity), tau)
    if not basis.shape[1]:
        return np.zeros_like(capacity)
    amp, sse = _fits(library, cycle, capacity, basis)
    j, si = np.unravel_index(int(np.argmin(sse)), sse.shape)
    trend = amp[j, si] * library.shape(int(j), (cycle - 1.0) / math.exp(_LOG_S[si]))
    return basis @ _regen_amplitudes(basis, capacity - trend)


@dataclass(frozen=True)
class PhysicsPrior:
    """A cell's physics prior: a weighted mixture of scaled library trajectories.

    Attributes:
        library: the fade library.
        weights: posterior weight of each (trajectory, time scale), ``(n_curves, n_s)``.
        amplitude: the amplitude of each, same shape [A.h].
        sigma: the noise level used in identification [A.h].
        regen_cycles: cycles of the regeneration events in the identified points.
        regen_amplitude: the amplitude of each event's transient [A.h].
        regen_tau: the transients' recovery time [cycles] (None: not modelled).
    """

    library: FadeLibrary
    weights: np.ndarray
    amplitude: np.ndarray
    sigma: float
    regen_cycles: np.ndarray = field(default_factory=lambda: np.zeros(0))
    regen_amplitude: np.ndarray = field(default_factory=lambda: np.zeros(0))
    regen_tau: float | None = None

    def __call__(self, cycle: np.ndarray) -> np.ndarray:
        """Prior capacity [A.h] at ``cycle`` (posterior mean): the irreversible fade,
        without regeneration transients (see :meth:`transient`)."""
        return self.members(cycle)[0]

    def mean_from_grid(self, g: np.ndarray) -> np.ndarray:
        """Posterior mean from the library on the grid at some cycles, ``g`` of shape
        ``(n_curves, n_s, n)`` (as :meth:`__call__` at those cycles, without the
        interpolation)."""
        return np.asarray(np.einsum("cs,csn->n", self.weights * self.amplitude, g), dtype=float)

    def transient(self, cycle: np.ndarray) -> np.ndarray:
        """What remains at ``cycle`` of the regeneration transients of the identified
        points [A.h] (zeros when regeneration is not modelled)."""
        c = np.asarray(cycle, dtype=float)
        if self.regen_tau is None or not self.regen_cycles.size:
            return np.zeros(c.shape)
        return regen_basis(c, self.regen_cycles, self.regen_tau) @ self.regen_amplitude

    def members(self, cycle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the capacity at ``cycle``."""
        c = np.asarray(cycle, dtype=float)
        keep = self.weights > 1e-6 * self.weights.max()
        ci, si = np.nonzero(keep)
        w = self.weights[keep] / self.weights[keep].sum()
        u = (c[None, :] - 1.0) / np.exp(_LOG_S[si])[:, None]
        vals = np.empty(u.shape)
        for j in np.unique(ci):  # one interpolation per trajectory, all its time scales
            rows = np.flatnonzero(ci == j)
            vals[rows] = self.library.shape(int(j), u[rows].ravel()).reshape(rows.size, -1)
        vals = vals * self.amplitude[keep][:, None]
        mean = w @ vals
        var = w @ (vals - mean) ** 2
        return mean, np.sqrt(var)

    @property
    def initial(self) -> float:
        """Posterior-mean amplitude (capacity at cycle 1) [A.h]."""
        return float((self.weights * self.amplitude).sum() / self.weights.sum())

    @property
    def time_scale(self) -> float:
        """Posterior-mean time scale (real cycles per simulated cycle)."""
        w = self.weights.sum(axis=0)
        return float(np.exp((w * _LOG_S).sum() / w.sum()))

    def parameters(self) -> dict[str, float]:
        """Posterior-mean degradation parameters (geometric means; the fade onset an
        arithmetic mean), and the time scale."""
        w = self.weights.sum(axis=1)
        w = w / w.sum()
        out: dict[str, float] = {}
        for name in self.library.params[0]:
            vals = np.array([p[name] for p in self.library.params], dtype=float)
            out[name] = float(w @ vals) if name == ONSET else float(np.exp(w @ np.log(vals)))
        out["time scale [cycle/simulated cycle]"] = self.time_scale
        return out


def identify(
    library: FadeLibrary,
    cycle: np.ndarray,
    capacity: np.ndarray,
    fleet: FleetPrior | None = None,
    *,
    regen_tau: float | None = None,
) -> PhysicsPrior:
    """Identify a cell's physics prior from its measured points.

    Every (trajectory, time scale) of the grid gets its least-squares amplitude; its
    posterior weight is the tempered Gaussian likelihood of the points times the fleet's
    prior on the log time scale.

    Args:
        library: the fade library.
        cycle: measured cycles of the cell.
        capacity: measured capacity [A.h].
        fleet: prior of the time scale from other cells (None: flat).
        regen_tau: recovery time [cycles] of regeneration transients when there is no
            ``fleet`` (with a fleet its ``regen_tau`` is used; None: not modelled).

    Returns:
        The cell's :class:`PhysicsPrior`.
    """
    cycle = np.asarray(cycle, dtype=float)
    capacity = np.asarray(capacity, dtype=float)
    if fleet is None and regen_tau is not None:
        if not regen_tau > 0:
            raise InvalidArgumentError(f"identify: regen_tau must be positive, got {regen_tau}.")
        # a flat prior on the time scale, transients with the given recovery time
        n = len(library)
        fleet = FleetPrior(mean=np.zeros(n), std=np.full(n, np.inf), regen_tau=float(regen_tau))
    return _identify(library, cycle, capacity, fleet, None)


def _identify(
    library: FadeLibrary,
    cycle: np.ndarray,
    capacity: np.ndarray,
    fleet: FleetPrior | None,
    g: np.ndarray | None,
) -> PhysicsPrior:
    tau = fleet.regen_tau if fleet is not None else None
    events = regen_events(cycle, capacity) if tau is not None else np.zeros(0)
    basis = regen_basis(cycle, events, tau) if tau is not None and events.size else None
    if g is None:
        g = _grid(library, cycle)
    amp, sse = _fits(library, cycle, capacity, basis, g)
    n = cycle.shape[0]
    n_par = 2 + (0 if basis is None else basis.shape[1])
    floor = _SIGMA_FLOOR * (capacity_scale(capacity) / REFERENCE_AH)
    sigma = max(math.sqrt(float(sse.min()) / max(n - n_par, 1)), floor)
    logw = -sse / (2.0 * sigma**2 * _TEMPER)
    if fleet is not None:
        z = (_LOG_S[None, :] - fleet.mean[:, None]) / fleet.std[:, None]
        logw = logw - 0.5 * z**2
    w = np.exp(logw - logw.max())
    prior = PhysicsPrior(library=library, weights=w / w.sum(), amplitude=amp, sigma=sigma)
    if basis is None:
        return prior
    a = _regen_amplitudes(basis, capacity - prior.mean_from_grid(g))
    return PhysicsPrior(
        library=library,
        weights=prior.weights,
        amplitude=amp,
        sigma=sigma,
        regen_cycles=events,
        regen_amplitude=a,
        regen_tau=tau,
    )
