"""Tests of the ODE template adapter: the contract suite plus adapter-specific behaviour."""

from __future__ import annotations

import math
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch
from hybridml_ode import ODEAdapter, damped_oscillator, exponential_decay
from torch import Tensor, nn

from hybridml import MLP, InvalidArgumentError, PhysicalParameter, SimulationError, run_checks
from hybridml.testing import AdapterContractTests


def oscillator(**kwargs: object) -> ODEAdapter:
    """x'' = -k x - c x' from x=1, v=0 over 5 s: |x| <= 1 and |v| <= 2 (omega = 2)."""
    options: dict = {
        "state_names": ("x [m]", "v [m/s]"),
        "params": {"k": 4.0, "c": 0.5},
        "t_eval": np.linspace(0.0, 5.0, 51),
        "bounds": {"x [m]": (-1.5, 1.5), "v [m/s]": (-2.5, 2.5)},
        **kwargs,
    }
    return ODEAdapter(damped_oscillator, [1.0, 0.0], (0.0, 5.0), **options)


def decay(**kwargs: object) -> ODEAdapter:
    """y' = -k y from y=2: y = 2 exp(-k t)."""
    options: dict = {"state_names": ("y [mol/L]",), "params": {"k": 1.5}, **kwargs}
    return ODEAdapter(exponential_decay, [2.0], (0.0, 2.0), **options)


class TestODEAdapter(AdapterContractTests):
    adapter_name = "ode"
    # autograd through dopri5 at rtol 1e-8 agrees with central differences to about 3e-6
    # (measured for steps 1e-3 .. 1e-6); 1e-5 still catches a 0.1% gradient error.
    fd_rtol = 1e-5

    def make_adapter(self) -> ODEAdapter:
        return oscillator()

    def example_params(self) -> dict[str, float]:
        return {"k": 4.0, "c": 0.5}

    def sweep_param_sets(self) -> list[dict[str, float]]:
        return [{"k": 3.0}, {"k": 4.0}, {"k": 5.0, "c": 0.2}]

    def failing_params(self) -> dict[str, float]:
        return {"c": -1e4}  # negative damping: x grows like exp(1e4 t) and overflows

    def example_model(self) -> nn.Module:
        gen = torch.Generator().manual_seed(0)
        return MLP(1, 2, hidden=(16, 16), input_lower=0.0, input_upper=5.0, generator=gen)

    def forward_params(self) -> Tensor:
        return torch.tensor([4.0, 0.5], dtype=torch.float64)


class ExactDecay(nn.Module):
    """The exact solution y0 exp(-k t) of exponential_decay, as a model t (n,1) -> y (n,1)."""

    def __init__(self, k: float, y0: float = 2.0) -> None:
        super().__init__()
        self.k, self.y0 = k, y0

    def forward(self, t: Tensor) -> Tensor:
        return self.y0 * torch.exp(-self.k * t)


def test_unknown_parameter_names_the_closest() -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown parameter 'kk'\. Did you mean 'k'\?"):
        oscillator().simulate({"kk": 1.0})


def test_state_name_without_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match="'x' has no unit"):
        oscillator(state_names=("x", "v [m/s]"))


def test_solver_failure_is_a_simulation_error_and_recorded() -> None:
    adapter = oscillator()
    with pytest.raises(SimulationError, match=r"failed for params .*'c': -10000\.0"):
        adapter.simulate({"c": -1e4})
    result = adapter.sweep([{"c": -1e4}, {"c": 0.5}], progress=False)
    assert result.n_failed == 1 and result.failures[0].error == "SimulationError"
    assert result.results[1] is not None


def test_simulate_matches_the_exact_solution() -> None:
    ds = decay().simulate({"k": 0.7})
    t = ds["t [s]"]
    assert ds.n_rows == 101 and not ds.measured.any()  # simulated rows are marked
    # solver rtol=1e-8, atol=1e-10; 1e-6 leaves room for error accumulated over the steps
    np.testing.assert_allclose(ds["y [mol/L]"], 2.0 * np.exp(-0.7 * t), rtol=1e-6)


def test_forward_matches_simulate() -> None:
    adapter = oscillator()
    data = adapter.simulate()
    out = adapter.forward(torch.tensor([4.0, 0.5], dtype=torch.float64))
    assert out.shape == (51, 2)
    # two solvers (scipy LSODA, torchdiffeq dopri5) at rtol 1e-8: they agree to ~1e-7
    np.testing.assert_allclose(out[:, 0].numpy(), data["x [m]"], atol=1e-6)
    np.testing.assert_allclose(out[:, 1].numpy(), data["v [m/s]"], atol=1e-6)


def test_residual_of_the_exact_solution_vanishes() -> None:
    terms = decay().loss_terms(n_points=64)
    exact = terms["ode_residual"](ExactDecay(k=1.5))
    wrong = terms["ode_residual"](ExactDecay(k=1.65))
    # float32 rounding of values of size ~3: squared residuals ~1e-12
    assert exact.item() < 1e-10
    # a 10% wrong rate leaves residual 0.15 y, mean square > 0.15² * min(y)² ≈ 2e-3
    assert wrong.item() > 1e-3
    assert terms["initial_condition"](ExactDecay(k=1.5)).item() < 1e-12


def test_fixed_points_are_used_and_kept() -> None:
    points = torch.linspace(0.0, 2.0, 11)[:, None]
    term = decay().loss_terms(points=points)["ode_residual"]
    term.resample(torch.Generator().manual_seed(1))
    torch.testing.assert_close(term.points, points)


def test_learnable_parameter_is_trained_through_the_residual() -> None:
    k = PhysicalParameter(1.0, name="k [1/s]")
    adapter = decay(params={"k": k})

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k = k  # the same object the adapter holds, so the optimiser sees it
            self.net = MLP(1, 1, hidden=(8,), generator=torch.Generator().manual_seed(0))

        def forward(self, t: Tensor) -> Tensor:
            return self.net(t)

    loss = adapter.loss_terms(n_points=32)["ode_residual"](Model())
    (grad,) = torch.autograd.grad(loss, k.raw)
    assert grad != 0
    y_end = float(adapter.simulate()["y [mol/L]"][-1])  # simulate uses the current value
    assert math.isclose(y_end, 2.0 * math.exp(-2.0), rel_tol=1e-6)


def test_pickles_and_runs_in_a_process_pool() -> None:
    adapter = oscillator()
    clone = pickle.loads(pickle.dumps(adapter))
    assert clone.cache_key() == adapter.cache_key()
    params = [{"k": 3.0}, {"k": 5.0}]
    serial = adapter.sweep(params, progress=False)
    with ProcessPoolExecutor(2) as pool:
        parallel = adapter.sweep(params, executor=pool, progress=False)
    assert parallel.n_failed == 0
    for a, b in zip(serial.results, parallel.results, strict=True):
        assert a == b


def test_cache_key_tracks_settings() -> None:
    base = oscillator().cache_key()
    assert oscillator().cache_key() == base
    assert oscillator(t_eval=np.linspace(0.0, 5.0, 52)).cache_key() != base
    assert oscillator(rtol=1e-6).cache_key() != base
    assert oscillator(params={"k": 4.0, "c": 0.6}).cache_key() != base


def test_residual_check_on_a_model() -> None:
    adapter = decay(bounds={"y [mol/L]": (0.0, 2.0)})
    assert [c.name for c in adapter.checks()] == ["y [mol/L] bounds"]
    checks = adapter.checks(residual_threshold=1e-4)
    data = adapter.simulate()
    # float32 rounding of y' ≈ -k y with |y| <= 2: |residual| ~ 1e-6, far below 1e-4
    assert run_checks(checks, data, model=ExactDecay(k=1.5)).passed
    report = run_checks(checks, data, model=ExactDecay(k=1.65))
    assert not report["ode_residual"].passed  # 0.15 * y reaches 0.3 mol/L/s at t = 0
    assert report["y [mol/L] bounds"].passed
