"""Hybrid models: unit tests of each part, and properties of real training with the Trainer.

Property tests (real training, small nets, float64):

* a universal differential equation recovers the missing damping term of an oscillator;
* an inverse problem (PINN with a learnable :class:`PhysicalParameter`) recovers a decay
  rate within 1 %;
* a physics-informed fit on 10 noisy points beats a pure network fit by a wide factor.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

import hybridml as hm
from hybridml import TrajectoryLoss, partial

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _Zero(nn.Module):
    """A learned term that is identically zero (the UDE reduces to its known part)."""

    def forward(self, y: Tensor) -> Tensor:
        return torch.zeros_like(y)


# ------------------------------------------------------------------------------ MLP


def test_mlp_scales_inputs_from_the_box_to_unit_interval() -> None:
    lo, hi = [0.0, -5.0], [10.0, 5.0]
    scaled = hm.MLP(2, 3, (8,), input_lower=lo, input_upper=hi, generator=_gen(0))
    plain = hm.MLP(2, 3, (8,))
    plain.layers.load_state_dict(scaled.layers.state_dict())
    x = torch.rand(20, 2, generator=_gen(1)) * torch.tensor([10.0, 10.0]) + torch.tensor(lo)
    x_unit = 2 * (x - torch.tensor(lo)) / (torch.tensor(hi) - torch.tensor(lo)) - 1
    # the scaling is exact algebra; 1e-5 allows float32 rounding of x * scale + shift
    torch.testing.assert_close(scaled(x), plain(x_unit), atol=1e-5, rtol=1e-5)
    corners = torch.tensor([lo, hi])
    torch.testing.assert_close(scaled(corners), plain(torch.tensor([[-1.0, -1.0], [1.0, 1.0]])))


def test_mlp_init_is_reproducible_with_a_generator_and_biases_are_zero() -> None:
    a = hm.MLP(3, 2, (16, 16), generator=_gen(7))
    b = hm.MLP(3, 2, (16, 16), generator=_gen(7))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    first = a.layers[0]
    assert isinstance(first, nn.Linear)
    assert torch.count_nonzero(first.bias) == 0
    bound = math.sqrt(6 / (3 + 16))  # Xavier uniform bound for a 3 -> 16 layer
    assert float(first.weight.detach().abs().max()) <= bound
    # shapes: (n, in) -> (n, out); extra leading dims pass through
    assert a(torch.zeros(5, 3)).shape == (5, 2)
    assert a(torch.zeros(4, 5, 3)).shape == (4, 5, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_features": 0, "out_features": 1}, "in_features"),
        ({"in_features": 1, "out_features": 1, "hidden": (8, 0)}, "hidden"),
        ({"in_features": 1, "out_features": 1, "input_lower": 0.0}, "both input_lower"),
        (
            {"in_features": 2, "out_features": 1, "input_lower": [0, 1], "input_upper": [1, 1]},
            "feature 1",
        ),
        (
            {"in_features": 2, "out_features": 1, "input_lower": [0, 0, 0], "input_upper": 1},
            "input_lower has 3 entries",
        ),
    ],
)
def test_mlp_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        hm.MLP(**kwargs)  # type: ignore[arg-type]


def test_mlp_rejects_inputs_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match=r"expected inputs of shape \(n, 2\), got \(5, 3\)"):
        hm.MLP(2, 1)(torch.zeros(5, 3))


# ------------------------------------------------------------------- output transforms

_EXTREME = torch.tensor([-1e4, -200.0, -50.0, -1.0, 0.0, 1.0, 50.0, 200.0, 1e4])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_bounded_keeps_outputs_inside_bounds_for_any_raw_output(dtype: torch.dtype) -> None:
    t = hm.Bounded([0.0, -1.0], [1.0, 2.0]).to(dtype)
    raw = torch.stack([_EXTREME, -_EXTREME], dim=1).to(dtype)
    y = t(torch.zeros(len(raw), 1, dtype=dtype), raw)
    assert y.dtype == dtype
    # exact: the transform clamps, so saturated sigmoids land on the bounds, never beyond
    assert bool((y[:, 0] >= 0).all()) and bool((y[:, 0] <= 1).all())
    assert bool((y[:, 1] >= -1).all()) and bool((y[:, 1] <= 2).all())
    # monotone in the raw output, so it does not collapse the network's information
    assert bool((torch.diff(y[:, 0]) >= 0).all())
    # one-sided bounds
    raw1 = _EXTREME.to(dtype)[:, None]
    assert bool((hm.Bounded(0.5, None)(raw1, raw1) >= 0.5).all())
    assert bool((hm.Bounded(None, -2.0)(raw1, raw1) <= -2.0).all())


def test_bounded_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="lower < upper"):
        hm.Bounded(1.0, 1.0)
    with pytest.raises(ValueError, match="both are None"):
        hm.Bounded(None, None)
    with pytest.raises(ValueError, match="one bound per output column"):
        hm.Bounded([0.0, 0.0], [1.0, 1.0])(torch.zeros(3, 1), torch.zeros(3, 3))


def test_positive_outputs_are_positive_and_respect_the_minimum() -> None:
    raw = torch.linspace(-30, 30, 61)[:, None]
    assert bool((hm.Positive()(raw, raw) > 0).all())
    # below about -100 softplus underflows in float32; the output is then 0, never negative
    assert bool((hm.Positive()(_EXTREME[:, None], _EXTREME[:, None]) >= 0).all())
    assert bool((hm.Positive(minimum=0.5)(raw, raw) >= 0.5).all())


def test_hard_boundary_imposes_boundary_values_exactly_for_any_network() -> None:
    # u(0) = 1 on t >= 0, whatever the network outputs
    ic = hm.HardBoundary(lambda t: torch.ones_like(t), lambda t: t)
    # u(0) = u(1) = 0 on [0, 1] for a 2-output network; distance returns shape (n,)
    bc = hm.HardBoundary(lambda x: torch.zeros(len(x), 2), lambda x: (x * (1 - x))[:, 0])
    for seed in range(3):
        u = hm.Constrained(hm.MLP(1, 1, (8,), generator=_gen(seed)), ic)
        assert torch.equal(u(torch.zeros(1, 1)), torch.ones(1, 1))
        v = hm.Constrained(hm.MLP(1, 2, (8,), generator=_gen(seed)), bc)
        assert torch.equal(v(torch.tensor([[0.0], [1.0]])), torch.zeros(2, 2))
        assert float(v(torch.tensor([[0.5]])).detach().abs().sum()) > 0  # free inside the domain


def test_hard_boundary_and_constrained_report_bad_shapes_and_types() -> None:
    def two_columns(x: Tensor) -> Tensor:
        return torch.cat([x, x], dim=1)

    model = hm.Constrained(hm.MLP(1, 1, (4,)), hm.HardBoundary(torch.zeros_like, two_columns))
    with pytest.raises(ValueError, match=r"distance \(.*two_columns\) returned shape \(3, 2\)"):
        model(torch.zeros(3, 1))
    with pytest.raises(TypeError, match="OutputTransform"):
        hm.Constrained(hm.MLP(1, 1), torch.sigmoid)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        hm.HardBoundary(1.0, lambda x: x)  # type: ignore[arg-type]


def test_constrained_passes_gradients_to_the_network() -> None:
    model = hm.Constrained(hm.MLP(1, 1, (4,), generator=_gen(0)), hm.Bounded(0.0, 2.0))
    model(torch.rand(10, 1, generator=_gen(1))).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)


# ------------------------------------------------------------------ physical parameters


def _push(p: hm.PhysicalParameter, target: float, steps: int = 300) -> list[float]:
    """Optimise p towards ``target`` (maybe outside its range); return the values seen."""
    opt = torch.optim.Adam(p.parameters(), lr=0.1)
    seen = []
    for _ in range(steps):
        opt.zero_grad()
        ((p.value - target) ** 2).backward()
        opt.step()
        seen.append(float(p))
    return seen


def test_physical_parameter_stays_positive_and_bounded_under_optimisation() -> None:
    assert min(_push(hm.PhysicalParameter(1.0), target=-1.0)) > 0
    b = hm.PhysicalParameter(0.5, lower=0.1, upper=2.0)
    seen = _push(b, target=5.0) + _push(b, target=-5.0)
    assert min(seen) >= 0.1 and max(seen) <= 2.0
    # the parametrisation reaches an admissible target (measured: 0.15 % off after 600 Adam
    # steps; Adam still oscillates around it, hence 1 %)
    reached = _push(hm.PhysicalParameter(3.0), target=0.25, steps=600)[-1]
    assert reached == pytest.approx(0.25, rel=1e-2)
    # even an absurd raw value maps into the bounds (clamped)
    with torch.no_grad():
        b.raw.fill_(1e4)
    assert float(b) == 2.0
    # positive with only an upper bound means (0, upper); positive=False is unconstrained
    assert _push(hm.PhysicalParameter(1.0, upper=3.0), target=-1.0)[-1] > 0
    assert _push(hm.PhysicalParameter(1.0, positive=False), target=-1.0)[-1] == pytest.approx(
        -1.0, rel=1e-3
    )


def test_physical_parameter_value_dtype_and_repr() -> None:
    p = hm.PhysicalParameter(0.3, name="k [1/s]")
    assert float(p) == pytest.approx(0.3, rel=1e-6)  # float32 rounding of log(0.3)
    assert p.value.ndim == 0 and p().requires_grad
    p64 = p.to(F64)
    assert p64.raw.dtype == F64 and p64.value.dtype == F64
    assert float(p64) == pytest.approx(0.3, rel=1e-6)
    assert "k [1/s]" in repr(p) and "0.3" in repr(p)
    assert [n for n, _ in p.named_parameters()] == ["raw"]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0.0,), {}, r"init=0.0 must be > 0"),
        ((3.0,), {"lower": 0.1, "upper": 2.0}, r"strictly inside \(0.1, 2.0\)"),
        ((0.1,), {"lower": 0.1, "upper": 2.0}, "strictly inside"),
        ((0.5,), {"lower": -1.0, "upper": 2.0}, "positive=False"),
        ((0.5,), {"lower": 2.0, "upper": 1.0, "positive": False}, "smaller than upper"),
        ((math.inf,), {}, "finite"),
    ],
)
def test_physical_parameter_rejects_inadmissible_init(
    args: tuple[float], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        hm.PhysicalParameter(*args, name="k", **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------- residual models


def test_residual_model_adds_or_multiplies_the_correction() -> None:
    x = torch.rand(8, 1, generator=_gen(0))
    corr = hm.MLP(1, 1, (4,), generator=_gen(1))

    def sim(x: Tensor) -> Tensor:
        return (x**2)[:, 0]  # (n,) outputs are accepted for a (n, 1) correction

    with torch.no_grad():
        c = corr(x)
        torch.testing.assert_close(hm.ResidualModel(sim, corr)(x), x**2 + c)
        torch.testing.assert_close(
            hm.ResidualModel(sim, corr, combine="multiply")(x), x**2 * (1 + c)
        )
    # a zero correction gives the simulator back exactly, in both modes
    zero = hm.MLP(1, 1, (4,))
    last = zero.layers[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    for combine in ("add", "multiply"):
        model = hm.ResidualModel(sim, zero, combine=combine)
        assert torch.equal(model(x), x**2)


def test_residual_model_registers_simulator_parameters_and_validates() -> None:
    class Sim(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k = hm.PhysicalParameter(2.0)

        def forward(self, x: Tensor) -> Tensor:
            return torch.exp(-self.k.value * x)

    model = hm.ResidualModel(Sim(), hm.MLP(1, 1, (4,)))
    assert "simulator.k.raw" in dict(model.named_parameters())
    with pytest.raises(ValueError, match="'add' or 'multiply'"):
        hm.ResidualModel(Sim(), hm.MLP(1, 1), combine="mul")  # type: ignore[arg-type]
    bad = hm.ResidualModel(lambda x: torch.cat([x, x], 1), hm.MLP(1, 1))
    with pytest.raises(ValueError, match=r"returned shape \(3, 2\) but the correction"):
        bad(torch.zeros(3, 1))


# -------------------------------------------------------------------------------- UDE


def _oscillator(k: float) -> nn.Module:
    class Known(nn.Module):
        def forward(self, t: Tensor, y: Tensor) -> Tensor:
            return torch.stack([y[..., 1], -k * y[..., 0]], dim=-1)

    return Known()


def test_ude_with_zero_network_solves_the_known_ode() -> None:
    ude = hm.UDE(_oscillator(4.0), _Zero(), rtol=1e-9, atol=1e-11).to(F64)
    t = torch.linspace(0, 5, 26, dtype=F64)
    y = ude(t, torch.tensor([1.0, 0.0], dtype=F64))
    assert y.shape == (26, 2)
    exact = torch.stack([torch.cos(2 * t), -2 * torch.sin(2 * t)], dim=1)
    torch.testing.assert_close(y, exact, atol=1e-7, rtol=0)  # solver tolerance 1e-9


def test_ude_batched_initial_states_match_single_solves() -> None:
    net = hm.MLP(2, 2, (8,), generator=_gen(0))
    # fixed steps, so batched and single solves take the same steps (adaptive ones differ)
    ude = hm.UDE(_oscillator(1.0), net, method="rk4", step_size=0.1).to(F64)
    t = torch.linspace(0, 2, 5, dtype=F64)
    y0 = torch.tensor([[1.0, 0.0], [0.5, -0.2], [0.0, 1.0]], dtype=F64)
    with torch.no_grad():
        batched = ude(t, y0)
        assert batched.shape == (5, 3, 2)
        for b in range(3):
            torch.testing.assert_close(batched[:, b], ude(t, y0[b]), atol=1e-12, rtol=0)


def test_ude_learns_physical_parameters_of_the_known_part() -> None:
    class Known(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k = hm.PhysicalParameter(2.0)

        def forward(self, t: Tensor, y: Tensor) -> Tensor:
            return torch.stack([y[..., 1], -self.k.value * y[..., 0]], dim=-1)

    known = Known()
    ude = hm.UDE(known, hm.MLP(2, 2, (4,)), method="rk4", step_size=0.1)
    assert "known.k.raw" in dict(ude.named_parameters())
    t = torch.linspace(0, 1, 6)
    loss = TrajectoryLoss(t, torch.zeros(6, 1), torch.tensor([1.0, 0.0]), observe=[0])
    loss(ude).backward()
    grad = known.k.raw.grad
    assert grad is not None and float(grad.abs()) > 0


def test_ude_reports_bad_shapes_and_settings() -> None:
    t = torch.linspace(0, 1, 3)
    y0 = torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match=r"network must map states of shape \(1, 2\)"):
        hm.UDE(_oscillator(1.0), hm.MLP(2, 1))(t, y0)
    with pytest.raises(ValueError, match=r"known \(.*\) must return dy/dt of the state's shape"):
        hm.UDE(lambda t, y: y[..., :1], _Zero())(t, y0)
    with pytest.raises(ValueError, match=r"y0 must have shape \(d,\) or \(B, d\)"):
        hm.UDE(_oscillator(1.0), _Zero())(t, torch.zeros(1, 1, 2))
    with pytest.raises(TypeError, match=r"y0 has dtype torch\.float64"):
        hm.UDE(_oscillator(1.0), hm.MLP(2, 2))(t, y0.to(F64))
    with pytest.raises(ValueError, match="strictly increasing"):
        hm.UDE(_oscillator(1.0), _Zero())(torch.tensor([0.0, 1.0, 0.5]), y0)
    with pytest.raises(ValueError, match="unknown method 'rk5'"):
        hm.UDE(_oscillator(1.0), _Zero(), method="rk5")
    with pytest.raises(ValueError, match="fixed-step methods only"):
        hm.UDE(_oscillator(1.0), _Zero(), step_size=0.1)


def test_trajectory_loss_observes_selected_components_and_checks_shapes() -> None:
    ude = hm.UDE(_oscillator(1.0), _Zero(), rtol=1e-9, atol=1e-11).to(F64)
    t = torch.linspace(0, 3, 7, dtype=F64)
    loss = TrajectoryLoss(t, torch.cos(t), torch.tensor([1.0, 0.0]), observe=[0]).to(F64)
    assert float(loss(ude).detach()) < 1e-14  # x = cos t exactly, up to the solver tolerance
    with pytest.raises(ValueError, match=r"y_obs has shape \(7, 2\) but \(7, 1\) is needed"):
        TrajectoryLoss(t, torch.zeros(7, 2), torch.zeros(2), observe=[1])
    with pytest.raises(ValueError, match="observe"):
        TrajectoryLoss(t, torch.zeros(7, 1), torch.zeros(2), observe=[2])


# ---------------------------------------------------------- sampler, residuals, partial


def test_box_sampler_is_reproducible_with_the_same_generator() -> None:
    s = hm.BoxSampler([0.0, -1.0], [2.0, 1.0], names=["t [s]", "x [m]"])
    a, b = s.sample(100, _gen(3)), s.sample(100, _gen(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, s.sample(100, _gen(4)))
    assert a.shape == (100, 2) and a.dtype == torch.get_default_dtype()
    assert bool((a[:, 0] >= 0).all() and (a[:, 0] <= 2).all())
    assert bool((a[:, 1] >= -1).all() and (a[:, 1] <= 1).all())
    # drawn in float64, then converted: the same points in any dtype up to rounding
    torch.testing.assert_close(s.sample(100, _gen(3), dtype=F64), a.to(F64), atol=1e-6, rtol=0)
    assert s.names == ("t [s]", "x [m]") and s.dim == 2
    with pytest.raises(ValueError, match=r"feature 0 has lower=1\.0 >= upper=0\.0"):
        hm.BoxSampler(1.0, 0.0)
    with pytest.raises(TypeError, match=r"torch\.Generator"):
        s.sample(3, 0)  # type: ignore[arg-type]


def test_partial_computes_first_and_second_derivatives() -> None:
    x = torch.rand(10, 2, dtype=F64, generator=_gen(0)).requires_grad_(True)
    y = torch.sin(x[:, :1]) * x[:, 1:] ** 2
    x0, x1 = x[:, :1].detach(), x[:, 1:].detach()
    torch.testing.assert_close(partial(y, x, 0), torch.cos(x0) * x1**2)
    torch.testing.assert_close(partial(y, x, 1), 2 * torch.sin(x0) * x1)
    torch.testing.assert_close(partial(partial(y, x, 0), x, 0), -torch.sin(x0) * x1**2)
    # the second derivative of a linear function is zero (not an autograd error)
    assert torch.equal(partial(partial(3 * x[:, :1], x, 0), x, 0), torch.zeros(10, 1, dtype=F64))
    two = torch.cat([y, 5 * x[:, 1:]], dim=1)
    torch.testing.assert_close(partial(two, x, 1, out=1), torch.full((10, 1), 5.0, dtype=F64))
    with pytest.raises(ValueError, match="requires_grad_"):
        partial(y, x.detach(), 0)
    with pytest.raises(IndexError, match="wrt=2"):
        partial(y, x, 2)


def test_residual_loss_evaluates_derivatives_at_the_points() -> None:
    x = torch.linspace(0, 1, 11, dtype=F64)[:, None]

    class Square(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x**2

    def residual(model: nn.Module, x: Tensor) -> Tensor:
        assert x.requires_grad
        return partial(model(x), x, 0) - 1.0  # d(x^2)/dx - 1 = 2x - 1

    loss = hm.ResidualLoss(residual, x).to(F64)
    expected = ((2 * x - 1) ** 2).mean()
    torch.testing.assert_close(loss(Square()), expected)


def test_residual_loss_reports_a_residual_of_the_wrong_shape() -> None:
    def reduced_residual(model: nn.Module, x: Tensor) -> Tensor:
        return model(x).mean()

    loss = hm.ResidualLoss(reduced_residual, torch.zeros(5, 1))
    with pytest.raises(ValueError, match=r"reduced_residual returned shape \(\) for 5 points"):
        loss(hm.MLP(1, 1))


def test_residual_loss_resamples_reproducibly_through_the_generator_only() -> None:
    def residual(model: nn.Module, x: Tensor) -> Tensor:
        return model(x)

    box = hm.BoxSampler(0.0, 3.0)
    a = hm.ResidualLoss(residual, sampler=box, n_points=50)
    b = hm.ResidualLoss(residual, sampler=box, n_points=50)
    assert torch.equal(a.points, b.points)  # the initial draw is seeded (generator 0)
    initial = a.points.clone()
    a.to(F64)
    b.to(F64)
    a.resample(_gen(5))
    b.resample(_gen(5))
    assert torch.equal(a.points, b.points) and not torch.equal(a.points, initial.to(F64))
    assert a.points.dtype == F64 and a.points.shape == (50, 1)
    assert bool((a.points >= 0).all() and (a.points <= 3).all())
    fixed = hm.ResidualLoss(residual, torch.ones(4, 1))
    fixed.resample(_gen(5))  # no sampler: the points stay
    assert torch.equal(fixed.points, torch.ones(4, 1))
    with pytest.raises(ValueError, match="give n_points"):
        hm.ResidualLoss(residual, sampler=box)
    with pytest.raises(ValueError, match="collocation points, a sampler"):
        hm.ResidualLoss(residual)
    with pytest.raises(ValueError, match="points have 2 columns but the sampler's box is 1-d"):
        hm.ResidualLoss(residual, torch.zeros(3, 2), sampler=box)


def test_models_and_losses_work_after_conversion_to_float64() -> None:
    x = torch.rand(6, 1, dtype=F64, generator=_gen(0))
    nets = [
        hm.MLP(1, 1, (4,), input_lower=0, input_upper=1),
        hm.Constrained(hm.MLP(1, 2, (4,)), hm.Bounded([0.0, 1.0], [1.0, 3.0])),
        hm.Constrained(hm.MLP(1, 1, (4,)), hm.Positive(minimum=0.1)),
        hm.Constrained(hm.MLP(1, 1, (4,)), hm.HardBoundary(torch.ones_like, lambda t: t)),
        hm.ResidualModel(torch.sin, hm.MLP(1, 1, (4,)), combine="multiply"),
    ]
    for net in nets:
        net64 = net.to(F64)
        assert all(p.dtype == F64 for p in net64.parameters())
        assert net64(x).dtype == F64

        def residual(model: nn.Module, x: Tensor) -> Tensor:
            return partial(model(x), x, 0)

        term = hm.ResidualLoss(residual, sampler=hm.BoxSampler(0, 1), n_points=8).to(F64)
        term.resample(_gen(1))
        value = term(net64)
        assert value.dtype == F64 and value.requires_grad
    ude = hm.UDE(_oscillator(1.0), hm.MLP(2, 2, (4,)), method="rk4", step_size=0.5).to(F64)
    traj = TrajectoryLoss(torch.linspace(0, 1, 3), torch.zeros(3, 2), torch.ones(2)).to(F64)
    assert traj(ude).dtype == F64


# --------------------------------------------------------- properties of real training


def test_ude_recovers_the_missing_damping_term_of_an_oscillator() -> None:
    """x'' = -k x - c x' with k known; the network learns the damping force -c v."""
    k, c = 1.0, 0.3

    class Damping(nn.Module):
        """Learned force: the state (x, v) -> (0, f(x, v))."""

        def __init__(self) -> None:
            super().__init__()
            self.f = hm.MLP(2, 1, (16, 16), input_lower=-1, input_upper=1, generator=_gen(0))

        def forward(self, y: Tensor) -> Tensor:
            f = self.f(y)
            return torch.cat([torch.zeros_like(f), f], dim=-1)

    def damped(t: Tensor, y: Tensor) -> Tensor:
        return torch.stack([y[..., 1], -k * y[..., 0] - c * y[..., 1]], dim=-1)

    reference = hm.UDE(damped, _Zero(), rtol=1e-10, atol=1e-12).to(F64)
    y0 = torch.tensor([1.0, 0.0], dtype=F64)
    t = torch.linspace(0, 6, 31, dtype=F64)  # about one period; v spans [-0.8, 0.5]
    with torch.no_grad():
        y_obs = reference(t, y0)
    # rk4 with fixed steps keeps the test fast; its error at h = 0.2 (~1e-4) is far below
    # the tolerances asserted below
    model = hm.UDE(_oscillator(k), Damping(), method="rk4", step_size=0.2).to(F64)
    loss = TrajectoryLoss(t, y_obs, y0).to(F64)
    hm.Trainer((hm.Adam(30, lr=1e-2), hm.LBFGS(40)), seed=0, progress=False).fit(
        model, {"trajectory": loss}
    )

    with torch.no_grad():
        dense = reference(torch.linspace(0, 6, 201, dtype=F64), y0)
        learned = model.network(dense)
        target = -c * dense[:, 1]
        rel = float((learned[:, 1] - target).norm() / target.norm())
        fit = float(((model(t, y0) - y_obs) ** 2).mean().sqrt())
    # measured over init seeds 0-3: rel 0.3-2.3 %, fit RMSE 1.6e-4 to 8.7e-4 (amplitude 1).
    # The 10 % bound leaves a 4x margin for optimiser changes yet fails for a network that
    # has not learned the term (rel = 100 % for f = 0).
    assert torch.equal(learned[:, 0], torch.zeros(201, dtype=F64))
    assert rel < 0.10, f"learned damping term off by {rel:.1%}"
    assert fit < 1e-2, f"trajectory RMSE {fit:.2e}"


def test_inverse_problem_recovers_a_decay_rate_within_one_percent() -> None:
    """PINN for y' = -k y with k a learnable PhysicalParameter, from 15 exact samples."""
    k_true, t_end = 0.7, 4.0

    class Decay(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.u = hm.MLP(1, 1, (16, 16), input_lower=0, input_upper=t_end, generator=_gen(0))
            self.k = hm.PhysicalParameter(0.2, name="k [1/s]")  # start 3.5x too small

        def forward(self, t: Tensor) -> Tensor:
            return self.u(t)

    def decay_residual(model: nn.Module, t: Tensor) -> Tensor:
        u = model(t)
        assert isinstance(model, Decay)
        return partial(u, t, 0) + model.k.value * u

    t = torch.linspace(0, t_end, 15, dtype=F64)[:, None]
    model = Decay().to(F64)
    losses = {
        "data": hm.DataLoss(t, torch.exp(-k_true * t)).to(F64),
        "ode": hm.ResidualLoss(decay_residual, sampler=hm.BoxSampler(0.0, t_end), n_points=100).to(
            F64
        ),
    }
    trainer = hm.Trainer(
        (hm.Adam(300, lr=1e-2, resample_every=50), hm.LBFGS(200)), seed=0, progress=False
    )
    trainer.fit(model, losses)
    err = abs(float(model.k) - k_true) / k_true
    # measured over seeds 0-3: 6e-7 to 8e-5 (1e-4 to 4e-4 without resampling); 1 % is the
    # requirement, leaving a >100x margin. With 1 % multiplicative noise on the data the
    # error grows to ~1 % (noise-limited), hence exact data here.
    assert err < 0.01, f"k = {float(model.k):.5f}, relative error {err:.2%}"


def test_physics_informed_fit_on_10_noisy_points_beats_a_pure_network() -> None:
    """Damped oscillator u'' + c u' + k u = 0 over ~2 periods, 10 noisy samples.

    The same MLP is fitted to the same points by data loss alone and by data + ODE residual;
    the error is measured against the exact solution on a dense grid.
    """
    k, c, t_end, noise = 4.0, 0.4, 6.0, 0.02
    w, a = math.sqrt(k - c**2 / 4), c / 2

    def exact(t: Tensor) -> Tensor:
        return torch.exp(-a * t) * (torch.cos(w * t) + a / w * torch.sin(w * t))

    def oscillator_residual(model: nn.Module, t: Tensor) -> Tensor:
        u = model(t)
        du = partial(u, t, 0)
        # divided by k: the residual in units of u, on the scale of the data loss (unscaled,
        # the fit converged on only some seeds within the step budget: RMSE up to 0.07)
        return (partial(du, t, 0) + c * du + k * u) / k

    g = _gen(0)
    t = torch.rand(10, 1, generator=g, dtype=F64) * t_end
    y = exact(t) + noise * torch.randn(10, 1, generator=g, dtype=F64)
    grid = torch.linspace(0, t_end, 501, dtype=F64)[:, None]

    errors = {}
    for physics in (False, True):
        net = hm.MLP(1, 1, (32, 32), input_lower=0, input_upper=t_end, generator=_gen(0))
        net = net.to(F64)
        losses: dict[str, hm.LossTerm] = {"data": hm.DataLoss(t, y).to(F64)}
        if physics:
            ode = hm.ResidualLoss(
                oscillator_residual, sampler=hm.BoxSampler(0.0, t_end), n_points=100
            )
            losses["ode"] = ode.to(F64)
        trainer = hm.Trainer((hm.Adam(300, lr=1e-2), hm.LBFGS(300)), seed=0, progress=False)
        trainer.fit(net, losses)
        with torch.no_grad():
            errors[physics] = float(((net(grid) - exact(grid)) ** 2).mean().sqrt())

    ratio = errors[False] / errors[True]
    # measured over seeds 0-11 (data and init): network RMSE 0.11-55 (10 points cannot
    # resolve two periods; between and beyond the points it is unconstrained),
    # physics-informed 0.007-0.028, ratio 7.3-2500 (27 for seed 0). A factor of 3 holds
    # with a 2.4x margin on every seed seen. The physics-informed fit must also recover
    # the solution to 5 % of its amplitude 1 (largest RMSE seen 0.028).
    assert ratio > 3, f"errors {errors}, ratio {ratio:.1f}"
    assert errors[True] < 0.05, f"physics-informed RMSE {errors[True]:.4f}"
