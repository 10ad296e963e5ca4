"""The data-efficiency study's forcing hybrid (benchmarks/data_efficiency.py, ODE case):
its linear model is the simulator, and the right forcing gives the truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import hybridml as hm

# runs a benchmark or an example end to end: leave out with -m 'not slow'
pytestmark = pytest.mark.slow

_SCRIPT = Path(__file__).parents[2] / "benchmarks" / "data_efficiency.py"


@pytest.fixture(scope="module")
def de(load_script: Callable[[Path, str], ModuleType]) -> ModuleType:
    return load_script(_SCRIPT, "data_efficiency")


@pytest.fixture(scope="module")
def case(de: ModuleType) -> object:
    pytest.importorskip("hybridml_ode")
    return de.ode_case()


def _model(case: object, forcing: nn.Module) -> hm.LinearForcingUDE:
    lin = case.linear  # type: ignore[attr-defined]
    t = case.t  # type: ignore[attr-defined]
    return hm.LinearForcingUDE(lin.A, lin.B, lin.y0, t, forcing, observe=[lin.observe])


def test_the_linear_model_without_forcing_is_the_simulator(case: object) -> None:
    class Zero(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return torch.zeros_like(x)

    with torch.no_grad():
        x = _model(case, Zero()).trajectory().double().numpy()[:, 0]
    # the simulator is solved by LSODA (rtol 1e-8); the model stores float32 numbers
    np.testing.assert_allclose(x, case.simulated, atol=1e-5)  # type: ignore[attr-defined]


def test_the_missing_physics_is_a_forcing(case: object) -> None:
    # the truth's drift z(t) = z_inf (1 - exp(-t / tau)) acts on the oscillator as k z(t)
    class Drift(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return 4.0 * 0.5 * (1.0 - torch.exp(-x / 5.0))

    with torch.no_grad():
        x = _model(case, Drift()).trajectory().double().numpy()[:, 0]
    # first-order hold with h = 0.025 and |f''| <= 0.08: far below the noise (0.02)
    assert np.abs(x - case.truth).max() < 1e-4  # type: ignore[attr-defined]


def test_forcing_regressor_fits_and_predicts(de: ModuleType, case: object) -> None:
    rng = np.random.default_rng(0)
    t = case.t  # type: ignore[attr-defined]
    x = np.sort(rng.uniform(0.0, 20.0, 30))[:, None]
    y = np.interp(x[:, 0], t, case.truth)[:, None]  # type: ignore[attr-defined]
    est = de.ForcingRegressor(
        case.linear,  # type: ignore[attr-defined]
        t,
        hidden=(16,),
        adam_steps=200,
        lbfgs_steps=20,
        lr=3e-3,
        seed=0,
    ).fit(x, y, validation=(x[:5], y[:5]))
    pred = est.predict(t[:, None])
    assert pred.shape == (t.size, 1)
    assert est.history_.val_step  # validation recorded (for the cross-validation)
    rmse = float(np.sqrt(np.mean((pred[:, 0] - case.truth) ** 2)))  # type: ignore[attr-defined]
    assert rmse < 0.02
