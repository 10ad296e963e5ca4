"""The single-cell baselines of the battery-ageing study: ``linear`` and
``empirical``, numpy/scipy only (the data-only ``fleet`` forecast is in :mod:`._fleet`).

Each is a :class:`~hybridml_battery.Method` of the study's protocol: ``fit(train, test,
window)`` on the training cells (measured in full) and the test cell's known points, then
``predict(cycles) -> (mean, scale)`` in A.h.

* ``linear`` (:class:`LinearMethod`): a robust straight line through the test cell's known
  points, extrapolated.
* ``empirical`` (:class:`EmpiricalMethod`): a fade law fitted to the test cell's known
  points, bounded so that it cannot diverge: a power law ``q0 - a ((k - k0) / (N -
  k0))^b`` or a monotone double exponential, the law chosen on the training cells.

Every choice a method makes from data (the line's fit range, the fade law) is made on the
*training cells only*: each training cell is treated as a test cell with the same window,
its future scored, the test cell's future never seen. A choice depends on the training
cells and the window only, so it is made once per fold (``memo``) and reused for every
test cell of the fold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridml.exceptions import InvalidArgumentError

from ._data import Cell
from ._methods import Method, Window

__all__ = ["EMPIRICAL_LAWS", "EmpiricalMethod", "LinearMethod"]

_SIGMA0 = 0.01  # A.h: floor of the predictive scale (the study's measurement repeatability)
_MIN_KNOWN = 3  # least number of known points a cell needs (as the study's protocol)


def _eligible(cells: Sequence[Cell], window: Window) -> list[Cell]:
    """The cells usable as pseudo test cells with ``window``: >= 3 known points and at
    least one measured cycle after it."""
    return [
        c
        for c in cells
        if int(window.mask(c).sum()) >= _MIN_KNOWN and bool((c.cycle > window.known_cycles).any())
    ]


def _memo_key(name: str, train: Sequence[Cell], window: Window, *extra: Any) -> tuple[Any, ...]:
    """The key of a choice made on ``train`` with ``window`` (a fold's choices are shared by
    its test cells): the method, its settings, the window and the training cells."""
    cells = tuple((c.cell_id, int(c.cycle.size), float(c.cycle[-1])) for c in train)
    return (name, *extra, window.known_cycles, window.every, cells)


def _memoised(memo: dict[Any, Any] | None, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``, or its value stored under ``key`` in ``memo`` (None: no memo)."""
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _subsample(n: int, most: int) -> np.ndarray:
    """At most ``most`` indices of ``range(n)``, evenly spread (all of them if ``n <= most``)."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, most)).astype(int))


def _rmse(a: np.ndarray, b: np.ndarray | float) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# --------------------------------------------------------------------------- linear


def _huber_line(x: np.ndarray, y: np.ndarray, iters: int = 30) -> tuple[float, float, float]:
    """Huber (c = 1.345) straight-line fit by iteratively reweighted least squares.

    Returns ``(intercept at mean x, slope, robust residual scale)``; the scale is the
    normalised median absolute deviation of the residuals (floored at 1e-6)."""
    xm = float(np.mean(x))
    X = np.column_stack([np.ones_like(x), x - xm])
    w = np.ones_like(y)
    beta = np.zeros(2)
    s = 1e-6
    for _ in range(iters):
        sw = np.sqrt(w)
        beta_new = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
        r = y - X @ beta_new
        s = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 1e-6)
        u = np.abs(r) / (1.345 * s)
        w = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-12))
        if np.allclose(beta_new, beta, rtol=1e-10, atol=1e-12):
            beta = beta_new
            break
        beta = beta_new
    return float(beta[0]), float(beta[1]), s


@dataclass(frozen=True)
class _Line:
    """A fitted line and what its statistical scale needs."""

    x_mean: float
    level: float  # value at x_mean
    slope: float
    sigma: float  # residual scale, inflated for autocorrelation
    n: int
    sxx: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.level + self.slope * (x - self.x_mean)

    def stat_scale(self, x: np.ndarray) -> np.ndarray:
        """Prediction standard error of a new point: noise, level and slope terms."""
        d = x - self.x_mean
        return self.sigma * np.sqrt(1.0 + 1.0 / self.n + d * d / self.sxx)


def _fit_line(cycle: np.ndarray, capacity: np.ndarray, later_half: bool) -> _Line:
    """Huber line through the known points (all of them, or those after half the window);
    the residual scale is inflated by ``sqrt((1 + rho) / (1 - rho))`` for the residuals'
    lag-1 autocorrelation ``rho`` (regeneration bumps last several cycles)."""
    sel = cycle > 0.5 * float(cycle.max()) if later_half else np.ones(cycle.shape, bool)
    if sel.sum() < _MIN_KNOWN:
        sel = np.zeros(cycle.shape, bool)
        sel[-_MIN_KNOWN:] = True
    x, y = cycle[sel], capacity[sel]
    level, slope, s = _huber_line(x, y)
    xm = float(np.mean(x))
    res = y - (level + slope * (x - xm))
    rho = 0.0
    if res.size > 3 and res[:-1].std() > 0 and res[1:].std() > 0:
        rho = float(np.clip(np.corrcoef(res[:-1], res[1:])[0, 1], 0.0, 0.9))
    sigma = s * math.sqrt((1.0 + rho) / (1.0 - rho))
    sxx = max(float(np.sum((x - xm) ** 2)), 1e-12)
    return _Line(xm, level, slope, sigma, int(x.size), sxx)


class LinearMethod(Method):
    """Straight-line extrapolation of the test cell's known points.

    The line is a Huber fit (robust to the regeneration bumps and outliers of real data)
    through either all the known points or only those after half the window (the early
    cycles can be dominated by a formation/onset phase whose slope does not last). Which
    of the two is chosen by scoring both on the *training cells*, each treated as a test
    cell with the same window (RMSE of its capacity after the window; no neighbour
    information is used, so this is an honest cross-validation of a single-cell
    method): the later half is used only if it is better by more than the standard error
    of the paired difference (with few training cells the scores are noisy, and all the
    known points is the plain straight line); with no usable training cell the later
    half is used.

    Predictive scale at cycle ``k`` (A.h)::

        sqrt(sigma0^2 + se(k)^2 + (c (k - N))^2)

    ``se(k)`` is the line's prediction standard error (residual scale, inflated for the
    residuals' lag-1 autocorrelation, with its level and slope terms: it grows with the
    extrapolation distance); ``c (k - N)`` is the drift of a real cell away from a straight
    line (fade curvature), ``c`` the root-mean-square of ``error / (k - N)`` over the
    training cells' extrapolations (0 without training cells); ``sigma0 = 0.01`` A.h is the
    floor. The mean uses the test cell's known points only.

    Args:
        fit_range: ``"auto"`` (chosen on the training cells as above), ``"all"`` or
            ``"later_half"``.
        drift: the drift rate ``c`` [A.h per cycle]; None: measured on the training cells
            as above.
        memo: a dict shared by the test cells of one fold: the choices made on the
            training cells are made once per fold (the same results, faster).
    """

    name = "linear"

    def __init__(
        self,
        fit_range: str = "auto",
        drift: float | None = None,
        memo: dict[Any, Any] | None = None,
    ) -> None:
        if fit_range not in ("auto", "all", "later_half"):
            raise InvalidArgumentError(
                f"fit_range must be 'auto', 'all' or 'later_half', got {fit_range!r}."
            )
        if drift is not None and not drift >= 0:
            raise InvalidArgumentError(f"drift must be >= 0 (A.h per cycle), got {drift!r}.")
        self.fit_range = fit_range
        self.drift = drift
        self.memo = memo

    def fit(self, train: Sequence[Cell], test: Cell, window: Window) -> LinearMethod:
        """Choose the fit range and the drift rate on ``train``, fit the test cell's line."""
        if self.fit_range == "auto" or self.drift is None:
            key = _memo_key(self.name, train, window, self.fit_range)
            later, drift = _memoised(self.memo, key, lambda: self._choose(train, window))
        else:
            later = self.fit_range == "later_half"
        self.later_half_ = bool(later)
        self.drift_ = float(self.drift) if self.drift is not None else float(drift)
        self.known_cycles_ = float(window.known_cycles)
        m = window.mask(test)
        self.line_ = _fit_line(test.cycle[m], test.capacity[m], self.later_half_)
        return self

    def _choose(self, train: Sequence[Cell], window: Window) -> tuple[bool, float]:
        """The fit range (later half?) and the drift rate, from the training cells."""
        pseudo = _eligible(train, window)
        errs: dict[bool, list[float]] = {False: [], True: []}
        ratios: dict[bool, list[float]] = {False: [], True: []}
        for c in pseudo:
            m = window.mask(c)
            fut = c.cycle > window.known_cycles
            for later in (False, True):
                line = _fit_line(c.cycle[m], c.capacity[m], later)
                e = c.capacity[fut] - line(c.cycle[fut])
                errs[later].append(_rmse(e, 0.0))
                ratios[later].append(
                    float(np.mean((e / (c.cycle[fut] - window.known_cycles)) ** 2))
                )
        if self.fit_range == "auto":
            # one-standard-error rule: the later half only if clearly better on the
            # training cells (with few cells their scores are noisy)
            later = not pseudo
            if len(pseudo) >= 2:
                diff = np.array(errs[True]) - np.array(errs[False])
                later = float(diff.mean()) < -float(diff.std(ddof=1)) / math.sqrt(diff.size)
        else:
            later = self.fit_range == "later_half"
        drift = math.sqrt(float(np.mean(ratios[later]))) if pseudo else 0.0
        return bool(later), drift

    def calibration_method(self) -> LinearMethod:
        """This fold's choices, fixed: the method the study's conformal calibration refits
        on each held-out training cell (the fit range and drift are not re-chosen there)."""
        return LinearMethod("later_half" if self.later_half_ else "all", drift=self.drift_)

    def predict(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The line (floored at zero) and its predictive scale."""
        k = np.asarray(cycles, dtype=float)
        mean = np.maximum(self.line_(k), 0.0)
        dist = np.maximum(k - self.known_cycles_, 0.0)
        scale = np.sqrt(_SIGMA0**2 + self.line_.stat_scale(k) ** 2 + (self.drift_ * dist) ** 2)
        return mean, scale


# --------------------------------------------------------------------------- empirical

#: the fade laws :class:`EmpiricalMethod` chooses from (the first is the default)
EMPIRICAL_LAWS = ("power", "double_exp")
_MAX_LAW_CELLS = 30  # training cells (evenly spread) on which the law is chosen


def _power(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    q0, a, b = p
    return q0 - a * np.power(np.maximum(u, 0.0), b)


def _double_exp(p: np.ndarray, k: np.ndarray) -> np.ndarray:
    a, b, c, d = p
    with np.errstate(over="ignore", invalid="ignore"):
        return a * np.exp(b * k) + c * np.exp(d * k)


def _delta_scale(grad: np.ndarray, cov: np.ndarray, noise: float) -> np.ndarray:
    """Delta-method standard error of a fitted curve plus the residual noise and the
    floor ``sigma0``."""
    var = np.einsum("...i,ij,...j->...", grad, cov, grad)
    var = np.where(np.isfinite(var), np.maximum(var, 0.0), np.inf)
    return np.sqrt(var + noise**2 + _SIGMA0**2)


def _covariance(res: Any, n_params: int) -> tuple[np.ndarray, float]:
    """Parameter covariance ``s^2 (J^T J)^+`` and residual scale ``s`` of a fit."""
    r = res.fun
    s2 = max(float(np.sum(r**2)) / max(r.size - n_params, 1), 0.0)
    try:
        cov = s2 * np.linalg.pinv(res.jac.T @ res.jac)
    except np.linalg.LinAlgError:
        cov = np.zeros((n_params, n_params))
    return cov, math.sqrt(s2)


class _PowerFit:
    """The bounded power law ``q0 - a ((k - k0) / (N - k0))^b`` fitted to known points."""

    def __init__(self, k: np.ndarray, y: np.ndarray, known_cycles: float) -> None:
        from scipy.optimize import least_squares

        # fade starts after the early formation rise (capacity grows over the first tens
        # of cycles in many cells): fit from the peak of the 5-point running mean, if at
        # least a quarter of the known points (and 3) remain after it
        peak = 0
        if y.size >= 5:
            j = int(np.argmax(np.convolve(y, np.ones(5) / 5, mode="valid")))
            peak = j + 2 if j > 0 else 0  # the centre of the best 5 points; 0 at the start
        if y.size - peak >= max(_MIN_KNOWN, y.size // 4):
            k, y = k[peak:], y[peak:]
        self.k0 = float(k[0])
        self.scale_k = max(float(known_cycles) - self.k0, 1e-9)
        u = (k - self.k0) / self.scale_k
        d = np.diff(y)
        noise = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2)
        q_hi = float(np.max(y))
        lo = np.array([0.5 * q_hi, 0.0, 0.5])
        hi = np.array([1.5 * q_hi, 2.0 * q_hi, 3.0])
        q_start = float(np.mean(y[:5]))
        fade = max(q_start - float(np.mean(y[-5:])), 1e-4)
        best = None
        for b0 in (0.7, 1.0, 2.0):
            x0 = np.clip(np.array([q_start, fade, b0]), lo + 1e-9, hi - 1e-9)
            res = least_squares(
                lambda p: _power(p, u) - y,
                x0=x0,
                bounds=(lo, hi),
                loss="soft_l1",
                f_scale=max(noise, 1e-3),
            )
            if best is None or res.cost < best.cost:
                best = res
        assert best is not None
        self.params = best.x
        self.cov, self.noise = _covariance(best, 3)

    def __call__(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = (np.asarray(cycles, dtype=float) - self.k0) / self.scale_k
        _, a, b = self.params
        ub = np.power(np.maximum(u, 0.0), b)
        lnu = np.log(np.maximum(u, 1e-12))
        grad = np.stack([np.ones_like(u), -ub, -a * ub * lnu], axis=-1)
        scale = _delta_scale(grad, self.cov, self.noise)
        return np.maximum(_power(self.params, u), 0.0), scale


class _DoubleExpFit:
    """The double exponential ``a e^{bk} + c e^{dk}`` (He et al. 2011), rates bounded,
    made monotone and bounded: the prediction is the running minimum of the curve from
    the first known cycle, floored at zero (it can neither rise nor diverge upwards)."""

    def __init__(self, k: np.ndarray, y: np.ndarray) -> None:
        from scipy.optimize import least_squares

        q0 = float(np.mean(y[:5]))
        best = None
        for b0, c0, d0 in ((-1e-3, 0.01, -0.05), (-5e-3, -0.01, 0.005), (-1e-4, 0.001, -0.01)):
            res = least_squares(
                lambda p: _double_exp(p, k) - y,
                x0=np.array([q0, b0, c0, d0]),
                bounds=([0.0, -0.05, -0.5 * q0, -0.05], [2 * q0, 0.005, 0.5 * q0, 0.02]),
                loss="soft_l1",
                f_scale=0.02,
            )
            if best is None or res.cost < best.cost:
                best = res
        assert best is not None
        self.params = best.x
        self.k_first = float(k[0])
        self.q_hi = float(np.max(y))
        self.cov, self.noise = _covariance(best, 4)

    def __call__(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(cycles, dtype=float)
        grid = np.arange(self.k_first, max(float(c.max(initial=self.k_first)), self.k_first) + 2.0)
        g = np.minimum.accumulate(np.clip(np.nan_to_num(_double_exp(self.params, grid)), 0.0, None))
        mean = np.interp(c, grid, g)
        a, b, cc, d = self.params
        with np.errstate(over="ignore", invalid="ignore"):
            eb, ed = np.exp(b * c), np.exp(d * c)
            grad = np.stack([eb, a * c * eb, ed, cc * c * ed], axis=-1)
        # a scale beyond the cell's capacity says nothing more: capped there
        return mean, np.minimum(_delta_scale(grad, self.cov, self.noise), self.q_hi)


def _fit_law(law: str, cell: Cell, window: Window) -> _PowerFit | _DoubleExpFit:
    m = window.mask(cell)
    k, y = cell.cycle[m], cell.capacity[m]
    return _PowerFit(k, y, window.known_cycles) if law == "power" else _DoubleExpFit(k, y)


class EmpiricalMethod(Method):
    """An empirical fade law fitted to the test cell's known points, bounded so that it
    cannot diverge; the law is chosen on the training cells.

    The double exponential ``a e^{bk} + c e^{dk}`` (He et al. 2011) alone, as this baseline
    used to be, extrapolated to 0.49 A.h RMSE on NASA at N = 60 and diverged on TJU (tens
    of A.h): with four free rates it can bend anywhere beyond the data. Two laws that
    cannot, :data:`EMPIRICAL_LAWS`:

    * ``"power"``: ``q0 - a ((k - k0) / (N - k0))^b`` with ``a >= 0`` and ``b`` in [0.5, 3]
      (from square-root SEI growth to an accelerating fade): monotone non-increasing for
      every allowed parameter. ``k0`` is where fade starts: the peak of the known points'
      5-point running mean (many cells gain capacity over their first tens of cycles,
      which no fade law should fit) when at least a quarter of the window lies after it,
      else the first known cycle; before ``k0`` the curve is flat. Fitted with a soft-L1
      loss whose scale is the known points' point-to-point noise, from three starts of
      ``b``.
    * ``"double_exp"``: the double exponential with its rates bounded as before, made
      monotone and bounded: the prediction is the running minimum of the fitted curve
      from the first known cycle, floored at zero.

    Neither law is best everywhere (measured before this choice was made: on NASA at
    N = 60 the power law extrapolates better, on the XJTU fleet at N = 100 the double
    exponential does), so with ``law="auto"`` the law is chosen per fold on the *training
    cells*, each treated as a test cell with the same window (at most 30 of them, evenly
    spread): the double exponential only if its mean RMSE after N is lower than the power
    law's by more than the standard error of the paired difference (the simpler, always
    monotone power law is kept unless the evidence is clear); the power law with fewer
    than two usable training cells. The test cells' scores play no part.

    The scale is the delta-method standard error of the fitted curve plus the residual
    noise, floored at 0.01 A.h (capped at the cell's largest known capacity for the double
    exponential); it only reflects the fit's uncertainty, not the law's.

    Args:
        law: ``"auto"`` (chosen on the training cells), ``"power"`` or ``"double_exp"``.
        memo: a dict shared by the test cells of one fold: the law is chosen once per fold.
    """

    name = "empirical"

    def __init__(self, law: str = "auto", memo: dict[Any, Any] | None = None) -> None:
        if law != "auto" and law not in EMPIRICAL_LAWS:
            raise InvalidArgumentError(
                f"law must be 'auto' or one of {', '.join(EMPIRICAL_LAWS)}, got {law!r}."
            )
        self.law = law
        self.memo = memo

    def fit(self, train: Sequence[Cell], test: Cell, window: Window) -> EmpiricalMethod:
        """Choose the law on ``train`` (``law="auto"``), fit it to the test cell's known
        points."""
        if self.law == "auto":
            key = _memo_key(self.name, train, window)
            self.law_, self.inner_rmse_ = _memoised(
                self.memo, key, lambda: self._choose(train, window)
            )
        else:
            self.law_, self.inner_rmse_ = self.law, None
        self.fitted_ = _fit_law(self.law_, test, window)
        return self

    @staticmethod
    def _choose(train: Sequence[Cell], window: Window) -> tuple[str, dict[str, float] | None]:
        pseudo = _eligible(train, window)
        pseudo = [pseudo[i] for i in _subsample(len(pseudo), _MAX_LAW_CELLS)]
        if len(pseudo) < 2:
            return EMPIRICAL_LAWS[0], None
        errs = np.zeros((len(EMPIRICAL_LAWS), len(pseudo)))
        for j, c in enumerate(pseudo):
            fut = np.flatnonzero(c.cycle > window.known_cycles)
            fut = fut[_subsample(fut.size, 200)]
            for i, law in enumerate(EMPIRICAL_LAWS):
                mean, _ = _fit_law(law, c, window)(c.cycle[fut])
                errs[i, j] = _rmse(mean, c.capacity[fut])
        diff = errs[1] - errs[0]
        clear = float(diff.mean()) < -float(diff.std(ddof=1)) / math.sqrt(diff.size)
        scores = {law: float(e.mean()) for law, e in zip(EMPIRICAL_LAWS, errs, strict=True)}
        return EMPIRICAL_LAWS[1] if clear else EMPIRICAL_LAWS[0], scores

    def calibration_method(self) -> EmpiricalMethod:
        """This fold's law, fixed: the method the study's conformal calibration refits on
        each held-out training cell."""
        return EmpiricalMethod(self.law_)

    def predict(self, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The fitted law (monotone, floored at zero) and its delta-method scale."""
        return self.fitted_(np.asarray(cycles, dtype=float))
