"""LinearForcingUDE: a known linear model driven by a learned forcing, checked against
direct integration of the forced ODE (scipy's solve_ivp and hybridml.UDE)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from torch import Tensor, nn

import hybridml as hm

# the damped oscillator dx/dt = v, dv/dt = -k x - c v + f(t) (k = 4, c = 0.3)
A = np.array([[0.0, 1.0], [-4.0, -0.3]])
B = np.array([0.0, 1.0])
Y0 = np.array([1.0, 0.0])


def smooth(t: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """A smooth forcing: a drift to 2 and an oscillation; |f''| <= 2/25 + 0.5 * 1.3^2."""
    lib = torch if isinstance(t, Tensor) else np
    return 2.0 * (1.0 - lib.exp(-t / 5.0)) + 0.5 * lib.sin(1.3 * t)


class Smooth(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        out = smooth(x)
        assert isinstance(out, Tensor)
        return out


def reference(t: np.ndarray, f: object, max_step: float = np.inf) -> np.ndarray:
    """x(t) of the forced oscillator by an accurate adaptive solver."""

    def rhs(s: float, y: np.ndarray) -> np.ndarray:
        return A @ y + B * float(f(np.asarray(s)))  # type: ignore[operator]

    sol = solve_ivp(rhs, (t[0], t[-1]), Y0, t_eval=t, rtol=1e-11, atol=1e-12, max_step=max_step)
    assert sol.success
    return np.asarray(sol.y[0])


def test_smooth_forcing_matches_direct_integration_to_second_order() -> None:
    errors = []
    for n_t in (401, 801):
        t = np.linspace(0.0, 20.0, n_t)
        model = hm.LinearForcingUDE(A, B, Y0, t, Smooth(), observe=[0]).to(torch.float64)
        with torch.no_grad():
            x = model.trajectory().numpy()[:, 0]
        assert x.shape == (n_t,)
        errors.append(np.abs(x - reference(t, smooth)).max())
        # the first-order hold's error bound: T * max|impulse response| * h^2 / 8 * max|f''|
        # (the impulse response of x to f is e^{-0.15 t} sin(w t) / w, w = sqrt(4 - 0.0225))
        h = t[1] - t[0]
        bound = 20.0 * (1 / np.sqrt(4 - 0.0225)) * h**2 / 8 * (2 / 25 + 0.5 * 1.3**2)
        assert errors[-1] <= bound
    # halving the step divides the error by about four (second order)
    assert 3.0 < errors[0] / errors[1] < 5.0
    assert errors[1] < 1e-4


def test_piecewise_linear_forcing_is_exact() -> None:
    t = np.linspace(0.0, 10.0, 201)
    values = np.random.default_rng(0).normal(size=t.size)

    class Table(nn.Module):  # the forcing interpolated linearly between the grid points
        def forward(self, x: Tensor) -> Tensor:
            return torch.as_tensor(np.interp(x.detach().numpy()[:, 0], t, values))[:, None]

    model = hm.LinearForcingUDE(A, B, Y0, t, Table(), observe=[0]).to(torch.float64)
    with torch.no_grad():
        x = model.trajectory().numpy()[:, 0]
    # exact up to the solver's tolerance (and the float32 rounding of the stored matrix)
    expected = reference(t, lambda s: np.interp(s, t, values), max_step=t[1] - t[0])
    assert np.abs(x - expected).max() < 1e-6


def test_several_states_forcings_and_outputs_match_hybridml_ude() -> None:
    # a 3-state system with two forcing components, two of its states observed
    a = np.array([[-0.5, 1.0, 0.0], [-2.0, -0.2, 0.5], [0.0, 0.3, -1.0]])
    b = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
    y0 = np.array([0.3, -0.2, 1.0])
    t = np.linspace(0.0, 6.0, 601)

    class Two(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return torch.cat([torch.sin(2 * x), torch.exp(-x) + 0.1 * x], dim=1)

    model = hm.LinearForcingUDE(a, b, y0, t, Two(), observe=[2, 0]).to(torch.float64)
    with torch.no_grad():
        got = model.trajectory().numpy()
    assert got.shape == (601, 2)

    at = torch.as_tensor(a)
    bt = torch.as_tensor(b)

    def known(s: Tensor, y: Tensor) -> Tensor:
        return at @ y + bt @ Two()(s.reshape(1, 1))[0]

    class Zero(nn.Module):
        def forward(self, y: Tensor) -> Tensor:
            return torch.zeros_like(y)

    ude = hm.UDE(known, Zero(), method="rk4", step_size=0.0025)
    with torch.no_grad():
        direct = ude(torch.as_tensor(t), torch.as_tensor(y0)).numpy()[:, [2, 0]]
    # the first-order hold's O(h^2) error with h = 0.01 and |f''| <= 4 (rk4 is far finer)
    assert np.abs(got - direct).max() < 1e-4
    # between grid points: linear interpolation of the trajectory
    x = torch.tensor([[0.0], [0.005], [6.0]], dtype=torch.float64)
    with torch.no_grad():
        out = model(x).numpy()
    np.testing.assert_allclose(out[0], y0[[2, 0]], atol=1e-7)
    np.testing.assert_allclose(out[1], 0.5 * (got[0] + got[1]), atol=1e-12)
    np.testing.assert_allclose(out[2], got[-1], atol=1e-12)


def test_a_constant_forcing_is_learned_from_measurements() -> None:
    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Parameter(torch.zeros(1))

        def forward(self, x: Tensor) -> Tensor:
            return self.c.expand(x.shape[0], 1)

    t = np.linspace(0.0, 20.0, 401)
    x_obs = np.linspace(0.5, 19.5, 30)
    y_obs = np.interp(x_obs, t, reference(t, lambda s: 1.5))
    model = hm.LinearForcingUDE(A, B, Y0, t, Constant(), observe=[0])
    trainer = hm.Trainer((hm.Adam(300, lr=0.05), hm.LBFGS(50)), progress=False)
    trainer.fit(model, {"data": hm.DataLoss(x_obs[:, None], y_obs[:, None])})
    c = model.forcing.c
    assert isinstance(c, Tensor)
    assert float(c.detach()) == pytest.approx(1.5, abs=1e-3)


def test_input_checks() -> None:
    t = np.linspace(0.0, 1.0, 11)
    with pytest.raises(ValueError, match="square"):
        hm.LinearForcingUDE(np.ones((2, 3)), B, Y0, t, Smooth())
    with pytest.raises(ValueError, match="B must have shape"):
        hm.LinearForcingUDE(A, np.ones(3), Y0, t, Smooth())
    with pytest.raises(ValueError, match="y0"):
        hm.LinearForcingUDE(A, B, [1.0], t, Smooth())
    with pytest.raises(ValueError, match="uniform"):
        hm.LinearForcingUDE(A, B, Y0, t**2, Smooth())
    with pytest.raises(ValueError, match="observe"):
        hm.LinearForcingUDE(A, B, Y0, t, Smooth(), observe=[2])
    with pytest.raises(TypeError, match=r"nn\.Module"):
        hm.LinearForcingUDE(A, B, Y0, t, smooth)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        hm.LinearForcingUDE(A * np.nan, B, Y0, t, Smooth())

    class Wide(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return torch.cat([x, x], dim=1)

    with pytest.raises(ValueError, match=r"forcing must map"):
        hm.LinearForcingUDE(A, B, Y0, t, Wide()).trajectory()
    model = hm.LinearForcingUDE(A, B, Y0, t, Smooth(), observe=[0])
    with pytest.raises(ValueError, match="range"):
        model(torch.tensor([[1.5]]))
    with pytest.raises(ValueError, match=r"\(n, 1\)"):
        model(torch.tensor([0.5]))
