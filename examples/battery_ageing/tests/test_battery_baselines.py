"""Tests of the battery study's strong baselines (linear, fleet, bounded empirical).

Synthetic cells with a known fade, so the right answer is known.
"""

from __future__ import annotations

import numpy as np
import pytest
from hybridml_battery import Cell, Window
from hybridml_battery import _baselines as bl
from hybridml_battery import _fleet as fl


def cell(cid: str, cycles: np.ndarray, capacity: np.ndarray, **cond: float) -> Cell:
    cycles = np.asarray(cycles, dtype=float)
    return Cell(cid, cycles, np.asarray(capacity, float), np.arange(2, cycles.size + 2), cond)


def quad_cell(cid: str, q0: float, rate: float, n: int = 200, step: float = 1.0, **cond: float):
    """Fade ``q0 (1 - rate k - rate^2 k^2 / 2)``-like accelerating curve (no noise)."""
    k = np.arange(1, n + 1, dtype=float) * step
    return cell(cid, k, q0 * (1.0 - 1e-4 * rate * k - 2e-6 * rate * k**2), **cond)


def rmse_after(method, test, n):
    fut = test.cycle > n
    mean, _ = method.predict(test.cycle[fut])
    return float(np.sqrt(np.mean((mean - test.capacity[fut]) ** 2)))


# --------------------------------------------------------------------------- linear


def test_linear_recovers_an_exact_line_and_its_scale_grows_with_distance():
    rng = np.random.default_rng(0)
    k = np.arange(1, 201, dtype=float)
    train = [cell(f"t{i}", k, 2.0 - 0.002 * k + rng.normal(0, 0.003, k.size)) for i in range(3)]
    test = cell("x", k, 1.9 - 0.0015 * k)
    m = bl.LinearMethod().fit(train, test, Window(60))
    mean, scale = m.predict(np.array([100.0, 150.0, 200.0]))
    # an exact line is fitted exactly (Huber IRLS converges to the OLS line: no outlier)
    np.testing.assert_allclose(mean, 1.9 - 0.0015 * np.array([100, 150, 200]), atol=1e-8)
    assert scale is not None
    assert np.all(np.diff(scale) > 0)  # farther from the window: wider
    assert np.all(scale >= 0.01 - 1e-12)  # floored at the study's sigma0


def test_linear_is_robust_to_an_outlier_in_the_window():
    k = np.arange(1, 101, dtype=float)
    y = 2.0 - 0.003 * k
    y_bad = y.copy()
    y_bad[50] += 0.3  # one regeneration-like spike of 0.3 Ah
    test = cell("x", k, y_bad)
    m = bl.LinearMethod("all").fit([], test, Window(80))
    # a least-squares line would be pulled by ~0.3/80 at every point; Huber much less
    assert abs(float(m.predict(np.array([100.0]))[0][0]) - (2.0 - 0.3)) < 0.01


def test_linear_rejects_an_unknown_fit_range():
    with pytest.raises(ValueError, match="fit_range"):
        bl.LinearMethod("middle")


# --------------------------------------------------------------------------- fleet


def test_fleet_two_identical_shape_cells_reproduce_the_reanchored_trajectory():
    """Two training cells with the same normalised trajectory r(k): the forecast of a test
    cell with that shape at another initial capacity is q0_test * r(k), whatever the
    setting chosen (every anchoring/stretch/k reproduces it exactly)."""
    k = np.arange(1, 301, dtype=float)
    r = 1.0 - 3e-4 * k - 1.5e-6 * k**2
    train = [cell("a", k, 2.0 * r), cell("b", k, 1.8 * r)]
    test = cell("x", k, 1.9 * r)
    m = fl.FleetMethod().fit(train, test, Window(80))
    x = np.arange(81, 301, dtype=float)
    mean, scale = m.predict(x)
    q0 = float(np.mean(test.capacity[:5]))
    # the test cell's own initial capacity (mean of its first 5 points) times r
    np.testing.assert_allclose(mean, q0 * r[80:] / np.mean(r[:5]), atol=1e-6)
    assert scale is not None
    np.testing.assert_allclose(scale, 0.01, atol=1e-6)  # neighbours agree: the floor


def test_fleet_additive_anchor_shifts_a_neighbour_to_the_test_level():
    """One neighbour, additive anchoring, no stretch: the forecast is the neighbour's
    normalised trajectory shifted to the test cell's level over the window's end."""
    k = np.arange(1, 201, dtype=float)
    r = 1.0 - 5e-4 * k
    train = [cell("a", k, 2.0 * r)]
    offset = -0.01  # the test cell sits 1 % lower (normalised) after its first cycles
    y = 2.0 * (r + np.where(k > 5, offset, 0.0))
    test = cell("x", k, y)
    cfg = fl.FleetConfig(1, "add", 0.2, False, False)
    m = fl.FleetMethod([cfg]).fit(train, test, Window(60))
    x = np.array([100.0, 150.0])
    # both normalised by their first 5 cycles (where the test cell has no offset yet), so
    # the forecast is the test cell's own law 2 (r + offset)
    expected = 2.0 * (1.0 - 5e-4 * x + offset)
    np.testing.assert_allclose(m.predict(x)[0], expected, atol=1e-9)


def test_fleet_stretch_finds_a_cell_that_fades_twice_as_fast():
    k = np.arange(1, 401, dtype=float)

    def r(kk):
        return 1.0 - 2e-4 * kk - 1e-6 * kk**2

    train = [cell("slow", k, 2.0 * r(k))]
    test = cell("fast", k, 2.0 * r(1.5 * k))  # the same fade, 1.5 times faster
    cfg = fl.FleetConfig(1, "add", 0.2, True, False)
    m = fl.FleetMethod([cfg]).fit(train, test, Window(100))
    # the stretch grid holds 1.5 to within its spacing (2^(1/7) ~ 10 %)
    assert 1.3 < float(m.s_[0]) < 1.7
    no_stretch = fl.FleetMethod([fl.FleetConfig(1, "add", 0.2, False, False)]).fit(
        train, test, Window(100)
    )
    assert rmse_after(m, test, 100) < 0.3 * rmse_after(no_stretch, test, 100)


def test_fleet_works_with_shorter_training_cells_and_unequal_grids():
    """Training cells measured every 2 or 3 cycles (grid differs from the test cell's)
    and ending before the test cell: the forecast is finite everywhere (neighbours
    continue along their last trend), monotone where the neighbours are, and close to
    the truth where the neighbours were measured."""
    f = lambda kk: 1.0 - 4e-4 * kk  # noqa: E731  (a straight fade: the last trend is exact)
    ka = np.arange(1, 151, 2, dtype=float)
    kb = np.arange(1, 181, 3, dtype=float)
    train = [cell("a", ka, 2.0 * f(ka)), cell("b", kb, 1.9 * f(kb))]
    kt = np.arange(1, 301, dtype=float)
    test = cell("x", kt, 2.1 * f(kt))
    m = fl.FleetMethod().fit(train, test, Window(60))
    x = np.arange(61, 901, dtype=float)  # up to 3x the test cell's life, as the study asks
    mean, scale = m.predict(x)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))
    assert np.all(np.diff(mean) <= 1e-9)  # neighbours fade monotonically, so does the mean
    # a linear fade extrapolated along its trend is exact up to interpolation (~1e-12)
    q0 = float(np.mean(test.capacity[:5]))
    np.testing.assert_allclose(mean[:240], q0 * f(x[:240]) / np.mean(f(kt[:5])), atol=1e-3)


def test_fleet_ignores_training_cells_that_end_inside_the_window():
    k = np.arange(1, 201, dtype=float)
    r = 1.0 - 5e-4 * k
    good = cell("good", k, 2.0 * r)
    short = cell("short", k[:30], 0.5 * np.ones(30))  # ends at cycle 30 < N = 60
    test = cell("x", k, 1.8 * r)
    m = fl.FleetMethod().fit([good, short], test, Window(60))
    assert m.cells_ == ["good"]
    np.testing.assert_allclose(m.predict(k[60:])[0], test.capacity[60:], atol=1e-6)


def test_fleet_prefers_same_conditions_when_asked():
    k = np.arange(1, 201, dtype=float)
    r = 1.0 - 5e-4 * k
    hot = cell("hot", k, 2.0 * (1.0 - 1e-3 * k), temperature_c=45.0)
    cool = cell("cool", k, 2.0 * r, temperature_c=25.0)
    # the test cell's window looks like neither more than the other (flat until 60)
    test = cell("x", k, 2.0 * np.where(k <= 60, 1.0, r), temperature_c=25.0)
    cfg = fl.FleetConfig(1, "add", 0.2, False, False, same_conditions=True)
    m = fl.FleetMethod([cfg]).fit([hot, cool], test, Window(60))
    assert m.cells_[m.rows_[0]] == "cool"


def test_fleet_scales_to_many_cells_and_chooses_a_setting():
    """130 training cells (the size of TJU): the setting is chosen by leave-one-cell-out
    and the forecast of a cell from the same family is accurate."""
    rng = np.random.default_rng(1)
    cells = [
        quad_cell(f"c{i}", 2.0 + 0.1 * rng.standard_normal(), rate, n=int(rng.integers(300, 600)))
        for i, rate in enumerate(rng.uniform(0.5, 2.0, 130))
    ]
    test = quad_cell("x", 2.0, 1.2, n=500)
    m = fl.FleetMethod().fit(cells, test, Window(100))
    assert m.config_ in fl.FLEET_CONFIGS
    assert m.inner_rmse_ is not None
    # the fleet spans the test cell's rate, so its forecast is far better than the spread
    # of the fleet's trajectories (tenths of an A.h at cycle 500)
    assert rmse_after(m, test, 100) < 0.03
    # a fitted forecast keeps only its neighbours' trajectories (the hybrid holds one per
    # training cell and inner fold), and forecasts as the whole fleet would
    assert m.traj_.R.shape[0] == m.rows_.size < len(cells)
    x = np.arange(101.0, 900.0)
    rows = np.arange(m.rows_.size)
    np.testing.assert_array_equal(
        fl._forecast(m.traj_, rows, m.s_, m.anc_, m.config_.anchor, x),
        fl._forecast(fl._Trajectories(cells), m.rows_, m.s_, m.anc_, m.config_.anchor, x),
    )


def test_fleet_needs_a_training_cell():
    k = np.arange(1, 101, dtype=float)
    with pytest.raises(ValueError, match="training cell"):
        fl.FleetMethod().fit([], cell("x", k, 2 - 1e-3 * k), Window(50))


# --------------------------------------------------------------------------- empirical


def test_empirical_recovers_a_power_law_and_is_monotone():
    k = np.arange(1, 301, dtype=float)
    y = 2.0 - 0.1 * ((k - 1.0) / 99.0) ** 1.5
    test = cell("x", k, y)
    m = bl.EmpiricalMethod("power").fit([], test, Window(100))
    x = np.arange(101, 1000, dtype=float)
    mean, scale = m.predict(x)
    # the law is in the family: it is recovered (to the optimiser's tolerance)
    np.testing.assert_allclose(mean[:200], 2.0 - 0.1 * ((x[:200] - 1) / 99) ** 1.5, atol=2e-3)
    assert np.all(np.diff(mean) <= 1e-12) and np.all(mean >= 0.0)
    assert scale is not None and np.all(scale >= 0.01 - 1e-12)


def test_empirical_cannot_diverge_on_noisy_data():
    """Noise and a regeneration jump at the window's end: the prediction stays below the
    known maximum and non-negative far beyond the data (the double exponential it
    replaces could grow without bound)."""
    rng = np.random.default_rng(3)
    k = np.arange(1, 201, dtype=float)
    y = 1.85 - 0.002 * k + rng.normal(0, 0.01, k.size)
    y[55:60] += 0.1
    test = cell("x", k, y)
    m = bl.EmpiricalMethod("power").fit([], test, Window(60))
    mean, _ = m.predict(np.arange(61, 2000, dtype=float))
    assert np.all(mean <= 1.5 * y[:60].max()) and np.all(mean >= 0.0)
    assert np.all(np.diff(mean) <= 1e-12)


def test_empirical_skips_the_formation_rise():
    """A cell whose capacity rises for 30 cycles then fades linearly: the fit starts at
    the peak, so it extrapolates the fade, not a flattened average."""
    k = np.arange(1, 201, dtype=float)
    y = np.where(k < 30, 1.9 + 0.1 * k / 30, 2.0 - 0.002 * (k - 30))
    test = cell("x", k, y)
    m = bl.EmpiricalMethod("power").fit([], test, Window(100))
    assert 20 <= m.fitted_.k0 <= 40
    assert rmse_after(m, test, 100) < 0.02


def _exp_cells(rates: list[float], n: int = 400) -> list[Cell]:
    """Cells whose fade slows down towards a plateau, ``0.9 + 1.1 e^{-r k}`` A.h: a double
    exponential fits them exactly, a power law (``b >= 0.5``) extrapolates them too low."""
    k = np.arange(1, n + 1, dtype=float)
    return [cell(f"e{i}", k, 0.9 + 1.1 * np.exp(-r * k)) for i, r in enumerate(rates)]


def test_empirical_double_exponential_is_monotone_and_bounded():
    """Noise and a rise at the window's end (which an unbounded double exponential
    extrapolates upwards): the prediction never rises, stays within [0, the largest known
    capacity] and is finite far beyond the data."""
    rng = np.random.default_rng(4)
    k = np.arange(1, 201, dtype=float)
    y = 1.85 - 0.002 * k + rng.normal(0, 0.01, k.size)
    y[50:60] += np.linspace(0.0, 0.15, 10)
    m = bl.EmpiricalMethod("double_exp").fit([], cell("x", k, y), Window(60))
    mean, scale = m.predict(np.arange(61, 5000, dtype=float))
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))
    assert np.all(np.diff(mean) <= 1e-12)
    assert np.all(mean >= 0.0) and np.all(mean <= y[:60].max() + 1e-9)


def test_empirical_chooses_its_law_on_the_training_cells_once_per_fold():
    train = _exp_cells([0.008, 0.009, 0.011, 0.012])
    test = _exp_cells([0.010])[0]
    memo: dict = {}
    m = bl.EmpiricalMethod(memo=memo).fit(train, test, Window(100))
    # the training cells follow a double exponential: it wins by far more than its noise
    assert m.law_ == "double_exp"
    assert m.inner_rmse_ is not None
    assert m.inner_rmse_["double_exp"] < 0.5 * m.inner_rmse_["power"]
    # and forecasts the test cell (same family) far better than the power law would
    power = bl.EmpiricalMethod("power").fit(train, test, Window(100))
    assert rmse_after(m, test, 100) < 0.5 * rmse_after(power, test, 100)
    # the choice depends on the training cells and the window only: made once per fold
    assert len(memo) == 1
    again = bl.EmpiricalMethod(memo=memo).fit(train, _exp_cells([0.0095])[0], Window(100))
    assert again.law_ == "double_exp" and len(memo) == 1
    # the calibration refits this fold's law without choosing again
    assert m.calibration_method().law == "double_exp"
    # with fewer than two usable training cells the power law is the default
    assert bl.EmpiricalMethod().fit(train[:1], test, Window(100)).law_ == "power"


def test_empirical_keeps_the_power_law_when_the_training_cells_follow_it():
    k = np.arange(1, 401, dtype=float)
    train = [
        cell(f"p{i}", k, 2.0 - a * ((k - 1) / 99) ** 1.5) for i, a in enumerate((0.05, 0.08, 0.1))
    ]
    m = bl.EmpiricalMethod().fit(train, train[0], Window(100))
    assert m.law_ == "power"


def test_empirical_rejects_an_unknown_law():
    with pytest.raises(ValueError, match="law"):
        bl.EmpiricalMethod("cubic")


def test_fleet_and_linear_choose_once_per_fold_with_a_memo():
    rng = np.random.default_rng(5)
    cells = [quad_cell(f"c{i}", 2.0, r, n=300) for i, r in enumerate(rng.uniform(0.5, 2, 6))]
    memo: dict = {}
    a = fl.FleetMethod(memo=memo).fit(cells[:5], cells[5], Window(60))
    b = fl.FleetMethod(memo=memo).fit(cells[:5], cells[4], Window(60))
    assert len(memo) == 1 and a.config_ == b.config_
    # the memo changes nothing but the time: the same choice as without it
    assert fl.FleetMethod().fit(cells[:5], cells[5], Window(60)).config_ == a.config_
    assert a.calibration_method().configs == (a.config_,)
    lin = bl.LinearMethod(memo=memo).fit(cells[:5], cells[5], Window(60))
    assert len(memo) == 2
    fixed = lin.calibration_method().fit(cells[:5], cells[5], Window(60))
    np.testing.assert_array_equal(fixed.predict(cells[5].cycle)[0], lin.predict(cells[5].cycle)[0])
    np.testing.assert_array_equal(fixed.predict(cells[5].cycle)[1], lin.predict(cells[5].cycle)[1])


def test_fleet_prefers_the_same_condition_label():
    k = np.arange(1, 201, dtype=float)
    r = 1.0 - 5e-4 * k
    other = Cell("b1", k, 2.0 * (1.0 - 1e-3 * k), np.arange(2, 202), {}, "batch1")
    same = Cell("b2", k, 2.0 * r, np.arange(2, 202), {}, "batch2")
    test = Cell("x", k, 2.0 * np.where(k <= 60, 1.0, r), np.arange(2, 202), {}, "batch2")
    cfg = fl.FleetConfig(1, "add", 0.2, False, False, same_conditions=True)
    m = fl.FleetMethod([cfg]).fit([other, same], test, Window(60))
    assert m.cells_[m.rows_[0]] == "b2"
