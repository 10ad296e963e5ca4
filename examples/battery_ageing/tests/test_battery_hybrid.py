"""The study's hybrid (:class:`hybridml_battery.FleetHybridMethod`) on small synthetic
fleets with a real fade library: its parts compose as documented, its network learns
what the physics misses, and its choices use the training cells only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hybridml_battery import (
    Cell,
    FadeLibrary,
    FleetHybridMethod,
    FleetMethod,
    NetSettings,
    PhysicsMethod,
    Window,
)

pytestmark = pytest.mark.filterwarnings("ignore")


def _library() -> FadeLibrary:
    u = np.arange(40.0)
    curves = np.stack([1 - 0.01 * u, 1 - 0.06 * np.sqrt(u), 1 - 0.004 * u - 0.0002 * u**2])
    return FadeLibrary(params=({"k": 1.0}, {"k": 2.0}, {"k": 3.0}), curves=curves)


def _fleet(lib: FadeLibrary, n: int, knee: float) -> list[Cell]:
    """``n`` cells of 160 cycles along the library's linear shape at time scales spread
    around 4, plus a late knee the library has no shape for (``knee`` A.h at the end)."""
    rng = np.random.default_rng(0)
    cycle = np.arange(1.0, 161.0)
    cells = []
    for i, s in enumerate(rng.uniform(3.5, 4.5, n)):
        q = 2.0 * lib.shape(0, (cycle - 1) / s) - knee * np.clip((cycle - 90) / 70, 0, None) ** 2
        cells.append(Cell(f"C{i:02d}", cycle, q, np.arange(2, 162)))
    return cells


def _rmse(method: Any, cell: Cell, window: Window) -> float:
    fut = cell.cycle > window.known_cycles
    mean, _ = method.predict(cell.cycle[fut])
    return float(np.sqrt(np.mean((mean - cell.capacity[fut]) ** 2)))


NETS = NetSettings(n_members=2, steps=300, hidden=(16, 16))


def test_without_the_networks_share_the_hybrid_is_the_physics_prior() -> None:
    lib = _library()
    cells = _fleet(lib, 4, knee=0.2)
    window = Window(60.0)
    hyb = FleetHybridMethod(lib, NETS, shrink=(0.0,)).fit(cells[:3], cells[3], window)
    phys = PhysicsMethod(lib, fleet=True).fit(cells[:3], cells[3], window)
    c = cells[3].cycle
    np.testing.assert_allclose(hyb.predict(c)[0], phys.predict(c)[0], rtol=1e-12)
    # without the physics, the base is the fleet forecast (the same setting, chosen on
    # the same training cells)
    nop = FleetHybridMethod(lib, NETS, physics=False, shrink=(0.0,)).fit(
        cells[:3], cells[3], window
    )
    fleet = FleetMethod().fit(cells[:3], cells[3], window)
    np.testing.assert_allclose(nop.predict(c)[0], fleet.predict(c)[0], rtol=1e-12)


def test_the_network_learns_the_knee_the_physics_lacks_from_a_large_fleet() -> None:
    lib = _library()
    cells = _fleet(lib, 14, knee=0.3)
    window = Window(60.0)
    train, tests = cells[:11], cells[11:]
    memo: dict[Any, Any] = {}
    errs = {"hybrid": [], "physics": []}
    fitted = []
    for test in tests:
        hyb = FleetHybridMethod(lib, NETS, seed=1, fleet=False, memo=memo).fit(train, test, window)
        fitted.append(hyb)
        errs["hybrid"].append(_rmse(hyb, test, window))
        phys = PhysicsMethod(lib, fleet=True).fit(train, test, window)
        errs["physics"].append(_rmse(phys, test, window))
    # one network per set of training cells, shared by the fold's test cells
    assert all(m.fold_ is fitted[0].fold_ for m in fitted)
    # 11 training cells: 5 inner folds by cell chose the share and calibrated the interval
    assert set(fitted[0].inner_rmse_) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert fitted[0].shrink_ > 0 and fitted[0].conformal_q() is not None
    # the knee (0.3 A.h at cycle 160, after the window) is invisible to a prior identified
    # on cycles <= 60 and the same in every cell: the correction learned from the other
    # cells must recover a good part of it. Noise-free cells; the physics misses by about
    # 0.07 A.h RMSE and this small ensemble (2 members, 300 steps) halves that here, so
    # "at least 30 % lower" leaves a margin for the seed and the machine's rounding, while
    # a network that learned nothing (or a share of 0) fails.
    assert np.mean(errs["hybrid"]) < 0.7 * np.mean(errs["physics"])


def test_share_choice_keeps_the_physics_unless_the_network_is_clearly_better() -> None:
    from hybridml_battery._hybrid import _one_se_choice

    rng = np.random.default_rng(0)
    base = rng.uniform(0.02, 0.06, 8)
    # noisy: the network is better on average but not by a standard error -> share 0
    swing = np.array([1, -1, 1, -1, 1, -1, 1, -1]) * 0.02  # cell-to-cell swings of 0.02
    noisy = {0.0: base, 1.0: base - 0.002 + swing}  # mean gain 0.002, standard error 0.008
    assert _one_se_choice(noisy) == 0.0
    # clear: better on every cell -> the full share
    clear = {0.0: base, 0.5: base - 0.005, 1.0: base - 0.01 + 0.001 * swing}
    assert _one_se_choice(clear) == 1.0
    # three cells, better on average by 1.1 standard errors: not evidence enough (the
    # one-sided 90 % t quantile with 2 degrees of freedom is 1.89)
    three = {0.0: np.array([0.056, 0.081, 0.037]), 0.75: np.array([0.057, 0.034, 0.032])}
    assert _one_se_choice(three) == 0.0
    # ... by 11 standard errors it is
    three[0.75] = np.array([0.046, 0.070, 0.029])
    assert _one_se_choice(three) == 0.75
