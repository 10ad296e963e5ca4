"""The methods compared by the battery-ageing study, all under one protocol.

Each method is fitted on the *training cells* (measured in full) and the *known points* of
the test cell (its early cycles), then predicts the test cell's capacity at any cycle:

* ``hybrid``: a physics prior from PyBaMM (the fade library identified from the cell's
  early points with the training cells' time-scale prior) and the fleet's forecast, corrected
  by an ensemble of networks trained across the training cells on the errors the prior
  makes on cells it has not seen; the share of the correction used is chosen by an inner
  cross-validation over the training cells (:mod:`._hybrid`).
* ``nn``: an ensemble of networks on the measurements alone (normalised capacity against
  cycle), trained on the training cells and the test cell's known points.
* ``physics``: the identified PyBaMM prior alone.
* ``linear``, ``fleet`` and ``empirical``: the baselines of :mod:`._baselines` and
  :mod:`._fleet` (a robust straight line through the known points; a forecast from the
  training cells' measured trajectories, data only; a bounded fade law).

The ``nn`` ensemble is in :mod:`._ensembles`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._data import Cell
from ._identify import REGEN_TAU_DEFAULT, fleet_prior, identify
from ._physics import FadeLibrary

__all__ = [
    "ABLATIONS",
    "METHODS",
    "SHRINK_GRID",
    "Method",
    "NetSettings",
    "PhysicsMethod",
    "Window",
]

#: the methods the study compares, in the order of its tables
METHODS = ("hybrid", "nn", "physics", "linear", "fleet", "empirical")
# run beside the methods to show where the hybrid's accuracy comes from; not compared
# in the methods table: "physics-fleet" is the hybrid's physics prior alone,
# "hybrid-no-network" the hybrid without its network, "hybrid-no-physics" without its
# physics prior, "hybrid-no-fleet" without the fleet forecast
ABLATIONS = ("physics-fleet", "hybrid-no-network", "hybrid-no-physics", "hybrid-no-fleet")
#: what each ablation leaves out of the hybrid, in words (report and ``metrics.json``)
ABLATION_NOTES = {
    "physics-fleet": "the hybrid's physics prior alone: the PyBaMM library identified from "
    "the test cell's known points with the training cells' prior on the time scale and "
    "their regeneration recovery time (not a baseline: it uses the other cells' data)",
    "hybrid-no-network": "the hybrid without its network: the physics prior and the fleet "
    "forecast blended with the weight chosen by the same inner cross-validation",
    "hybrid-no-physics": "the hybrid without its physics prior: the network corrects the "
    "fleet forecast, from the window and the fleet forecast only",
    "hybrid-no-fleet": "the hybrid without the fleet forecast: the network corrects the "
    "physics prior, from the window and the prior only (it still learns from the "
    "training cells)",
}
# shares of the network correction the hybrid may use, chosen per test cell by
# leave-one-cell-out over its training cells
SHRINK_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Window:
    """What the model sees of a test cell: its cycles <= ``known_cycles``, every ``every``-th."""

    known_cycles: float
    every: int = 1

    def mask(self, cell: Cell) -> np.ndarray:
        """Boolean mask of the rows of ``cell`` inside the window."""
        early = np.flatnonzero(cell.cycle <= self.known_cycles)
        m = np.zeros(cell.cycle.shape, bool)
        m[early[:: self.every]] = True
        return m


def window_summary(cell: Cell, window: Window) -> tuple[float, float, float]:
    """``q0``, the normalised level at the end of the window (mean of its last 20 % of
    points, at least 3) and the normalised drop per N cycles over its second half."""
    m = window.mask(cell)
    k, q = cell.cycle[m], cell.capacity[m]
    q0 = float(np.mean(q[:5]))
    r = q / q0
    level = float(np.mean(r[-max(3, r.size // 5) :]))
    return q0, level, _drop_per_n(k, r, k >= 0.5 * float(k.max()), window)


def window_first_half_slope(cell: Cell, window: Window) -> float:
    """The normalised drop per N cycles over the first half of ``cell``'s window (the
    second half's is :func:`window_summary`'s third value)."""
    m = window.mask(cell)
    k, q = cell.cycle[m], cell.capacity[m]
    r = q / float(np.mean(q[:5]))
    return _drop_per_n(k, r, k < 0.5 * float(k.max()), window)


def _drop_per_n(k: np.ndarray, r: np.ndarray, part: np.ndarray, window: Window) -> float:
    """The least-squares slope of ``r`` over the cycles ``k[part]``, per N cycles (0 with
    fewer than 3 points or a single cycle)."""
    if part.sum() >= 3 and np.ptp(k[part]) > 0:
        return float(np.polyfit(k[part], r[part], 1)[0]) * float(window.known_cycles)
    return 0.0


def _window_problem(cell: Cell, window: Window) -> str | None:
    n_known = int(window.mask(cell).sum())
    if n_known < 3:
        return (
            f"only {n_known} known point(s) at cycles <= {window.known_cycles:g}"
            f"{f' (every {window.every}th)' if window.every > 1 else ''}; at least 3 are needed"
        )
    if not (cell.cycle > window.known_cycles).any():
        return (
            f"no measured cycle after N={window.known_cycles:g} (its last cycle is "
            f"{cell.last_cycle:g}), so there is nothing to predict"
        )
    return None


@dataclass(frozen=True)
class NetSettings:
    """Settings of the networks and their ensemble.

    Attributes:
        n_members: ensemble size.
        steps: Adam steps per member (full batch).
        hidden: hidden layer widths.
        lr: initial learning rate (exponential decay to 5 % of it).
        weight_decay: L2 penalty on the weights (keeps the correction small and smooth).
        max_train_rows: a budget of training-cell rows per ensemble: when the training
            cells hold more rows than this, each is thinned to ``max_train_rows //
            n_cells`` evenly spaced rows (each cell weighs the same in the loss whatever
            its number of rows, so thinning keeps the objective's shape; the test cell's
            known points are all kept). None: no budget. The default, 1500, leaves the
            NASA study (3 training cells of at most 197 rows) untouched; it cuts the rows
            of an XJTU fold (44 cells, about 390 rows each) by about 11x, and of TJU by
            about 25x (34 and 15 rows a cell: the fade curves are smooth).
    """

    n_members: int = 8
    steps: int = 700
    hidden: tuple[int, ...] = (32, 32)
    lr: float = 1e-2
    weight_decay: float = 1e-4
    max_train_rows: int | None = 1500

    @classmethod
    def default(cls, quick: bool = False) -> NetSettings:
        """Fewer members and steps for ``quick``."""
        return cls(n_members=4, steps=400) if quick else cls()


class Method:
    """A method of the study: ``fit(train, test, window)`` then ``predict(cycles)``.

    ``predict`` returns the mean capacity [A.h] and a predictive scale [A.h] (None for
    methods without uncertainty); intervals are ``mean ± q * scale`` with ``q`` calibrated
    by the study.
    """

    name: str = ""

    def fit(self, train: Sequence[Cell], test: Cell, window: Window) -> Method:
        """Fit on the training cells and the test cell's known points."""
        raise NotImplementedError

    def predict(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean capacity and predictive scale at ``cycles``."""
        raise NotImplementedError

    def conformal_q(self) -> float | None:
        """The 90 % interval multiplier the method calibrated itself on inner folds of its
        training cells, or None (the default): the study calibrates it
        (:mod:`._calibration`)."""
        return None

    def choices(self) -> dict[str, float | str | bool] | None:
        """What the method chose on its training cells, for the report (None: nothing)."""
        return None

    def calibration_method(self) -> Method | None:
        """The method the study's conformal calibration refits on each held-out training
        cell, once this one is fitted; None (the default): a fresh method with the same
        settings. A method that chooses settings on its training cells returns itself with
        those settings fixed, so that the calibration does not repeat the choice for every
        held-out cell."""
        return None


class PhysicsMethod(Method):
    """The PyBaMM fade library identified from the test cell's known points.

    Args:
        library: the PyBaMM fade library.
        regen: model capacity regeneration transients in the known points.
        fleet: also use the other (training) cells: a prior on the time scale from their
            full lives, and the regeneration recovery time chosen by leave-one-cell-out on
            them (:func:`fleet_prior`). This is the hybrid's prior without its network
            correction and rate factor, the study's ablation ``physics-fleet``. Without it
            (the ``physics`` baseline, "calibrated PyBaMM alone") the time scale has a flat
            prior and the recovery time is :data:`REGEN_TAU_DEFAULT`: nothing but the test
            cell's own known points is used.
        by_condition: with ``fleet`` (and ``regen``), the time-scale prior may come from
            the training cells of the test cell's condition, and the learned prior sees
            the conditions (:mod:`hybridml_battery._matched`). With ``fleet`` and
            ``regen`` the prior is pooled, matched or learned from the window as the
            training cells show, as the hybrid's.
        memo: a dict shared by the test cells of one fold (the prior is chosen once).
    """

    def __init__(
        self,
        library: FadeLibrary,
        regen: bool = True,
        fleet: bool = False,
        by_condition: bool = True,
        memo: dict[Any, Any] | None = None,
    ) -> None:
        self.library = library
        self.regen = regen
        self.fleet = fleet
        self.by_condition = by_condition
        self.memo = memo
        self.name = "physics-fleet" if fleet else "physics"

    def fit(self, train: Sequence[Cell], test: Cell, window: Window) -> PhysicsMethod:
        """Identify the test cell's prior (with the fleet prior of ``train`` if ``fleet``)."""
        m = window.mask(test)
        if self.fleet:
            cells = [(c.cycle, c.capacity) for c in train]
            fleet = fleet_prior(self.library, cells, self.regen, window.known_cycles)
            if self.regen:
                from ._matched import choose_prior, prior_for

                tau, by = fleet.regen_tau, self.by_condition
                mode = choose_prior(self.library, train, window, tau, by, self.memo)
                if mode != "pooled":
                    fleet = prior_for(self.library, train, test, tau, mode, window, by)
            self.prior_ = identify(self.library, test.cycle[m], test.capacity[m], fleet)
        else:
            tau = REGEN_TAU_DEFAULT if self.regen else None
            self.prior_ = identify(self.library, test.cycle[m], test.capacity[m], regen_tau=tau)
        return self

    def predict(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The prior's posterior mean, plus what remains of the known points' regeneration
        transients (no interval)."""
        c = np.asarray(cycles, dtype=float)
        return self.prior_(c) + self.prior_.transient(c), None
