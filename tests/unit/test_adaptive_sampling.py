"""Adaptive collocation points for any residual term: RAD and RAR on ResidualLoss (and the
ODE adapter's residual), the model they follow, the default redraw unchanged."""

from __future__ import annotations

import copy
import pickle
import statistics

import pytest
import torch
from torch import Tensor, nn

import hybridml as hm
from hybridml.exceptions import InvalidArgumentError, InvalidTypeError

# ---------------------------------------------------------------- a steep internal layer

SLOPE = 30.0  # u = tanh(30 x): the solution turns over within |x| < ~0.05 of 0


def layer_exact(x: Tensor) -> Tensor:
    return torch.tanh(SLOPE * x)


def layer_residual(model: nn.Module, x: Tensor) -> Tensor:
    # u'' = f on (-1, 1), f the second derivative of tanh(30 x): large only in the layer
    u = model(x)
    th = torch.tanh(SLOPE * x)
    f = -2 * SLOPE**2 * th * (1 - th**2)
    return hm.partial(hm.partial(u, x, 0), x, 0) - f


class LayerModel(nn.Module):
    """u(x) = tanh(30) x + (1 - x^2) net(x): the boundary values u(+-1) hold exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.net = hm.MLP(1, 1, hidden=(8, 8))

    def forward(self, x: Tensor) -> Tensor:
        edge = torch.tanh(torch.tensor(SLOPE, dtype=x.dtype))
        return edge * x + (1 - x * x) * self.net(x)


def layer_error(seed: int, resampling: hm.Resampling | None) -> float:
    """Relative L2 error after Adam on 64 points redrawn every 25 steps (the default: fresh
    uniform points; or ``resampling``), then BFGS on the last 64 points."""
    torch.manual_seed(seed)
    model = LayerModel()
    term = hm.ResidualLoss(
        layer_residual,
        sampler=hm.BoxSampler(-1.0, 1.0),
        n_points=64,
        generator=torch.Generator().manual_seed(seed),
        resampling=resampling,
    )
    phases = [hm.Adam(200, lr=2e-2, resample_every=25, lr_decay=0.1), hm.BFGS(60)]
    hm.Trainer(phases=phases, seed=seed, progress=False).fit(model, {"pde": term})
    x = torch.linspace(-1.0, 1.0, 2001)[:, None]
    with torch.no_grad():
        return float(
            torch.linalg.norm(model(x) - layer_exact(x)) / torch.linalg.norm(layer_exact(x))
        )


def test_rad_lowers_the_error_against_uniform_resampling_on_a_steep_layer() -> None:
    # 64 points for a layer about 0.1 wide on a domain of 2: a uniform draw puts about three
    # points in it, RAD (following the trained model's residual, through the trainer) half
    # of them; the final BFGS phase trains on the last draw, so its placement decides the
    # error. A single PINN run is chaotic (which minimum BFGS ends in; another one with
    # other rounding or another trainer schedule), so one seed proves little, and a median
    # ignores the odd run on either side. Measured on eight seeds, with two trainer
    # versions: RAD's error 0.002-0.22 (median ~0.02), the uniform redraw's 0.004-0.37
    # (median ~0.12), lower with RAD in 12 of 16 runs; the ratio of the medians over seeds
    # 0-4 was 0.15-0.22, over any five of the eight seeds at most 0.82.
    seeds = range(5)
    uniform = statistics.median(layer_error(s, None) for s in seeds)
    rad = statistics.median(layer_error(s, hm.RAD()) for s in seeds)
    assert rad < 0.9 * uniform, (rad, uniform)


# ---------------------------------------------------------------- properties of the strategies


def bump_residual(model: nn.Module, x: Tensor) -> Tensor:
    # large near x = 0.5 only, times the model's output (so it depends on the model)
    return torch.exp(-(((x - 0.5) / 0.05) ** 2)) * model(x)


class One(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)


def test_rad_draws_where_the_residual_of_the_last_model_is_large() -> None:
    term = hm.ResidualLoss(
        bump_residual, sampler=hm.BoxSampler(0.0, 1.0), n_points=200, resampling=hm.RAD(c=0.0)
    )
    assert term.residual_at(torch.rand(5, 1)) is None  # no model seen yet
    # before any evaluation RAD keeps the first n candidates: a uniform draw
    before = copy.deepcopy(term)
    before.resample(torch.Generator().manual_seed(1))
    first = hm.BoxSampler(0.0, 1.0).sample(2000, torch.Generator().manual_seed(1))[:200]
    assert torch.equal(before.points, first.to(before.points.dtype))
    model = One()  # the term keeps only a weak reference: the caller keeps the model
    term(model)  # the trainer evaluates the term, then calls resample(generator)
    term.resample(torch.Generator().manual_seed(1))
    near = ((term.points - 0.5).abs() < 0.1).double().mean()
    # the residual is below 2e-2 of its peak outside |x - 0.5| < 0.1 (exp(-4)), where a
    # uniform draw puts 20 % of the points; RAD with c = 0 nearly all
    assert near > 0.9
    assert term.points.shape == (200, 1)


def test_resample_can_be_given_the_model() -> None:
    term = hm.ResidualLoss(
        bump_residual, sampler=hm.BoxSampler(0.0, 1.0), n_points=100, resampling=hm.RAD(c=0.0)
    )
    model = One()
    term.resample(torch.Generator().manual_seed(0), model=model)
    assert term.last_model() is model
    assert ((term.points - 0.5).abs() < 0.1).double().mean() > 0.9


def test_rar_adds_the_worst_candidates_up_to_its_limit() -> None:
    term = hm.ResidualLoss(
        bump_residual,
        sampler=hm.BoxSampler(0.0, 1.0),
        n_points=20,
        resampling=hm.RAR(n_add=10, candidates=500, max_points=35),
    )
    start = term.points.clone()
    model = One()
    term(model)
    term.resample(torch.Generator().manual_seed(0))
    assert term.points.shape == (30, 1) and term.n_points == 30
    assert torch.equal(term.points[:20], start)  # the old points stay
    assert ((term.points[20:] - 0.5).abs() < 0.05).all()  # the 10 largest residuals
    term.resample(torch.Generator().manual_seed(1))
    term.resample(torch.Generator().manual_seed(2))
    assert term.points.shape == (35, 1) and term.n_initial == 20


def test_default_redraw_and_uniform_resampling_give_the_samplers_points() -> None:
    # the default of a term with a sampler is unchanged: n fresh points from the sampler
    box = hm.BoxSampler([0.0, -1.0], [2.0, 1.0])
    for resampling in (None, hm.UniformResampling()):
        term = hm.ResidualLoss(bump_residual, sampler=box, n_points=50, resampling=resampling)
        term.resample(torch.Generator().manual_seed(7))
        expected = box.sample(50, torch.Generator().manual_seed(7))
        assert torch.equal(term.points, expected)
    fixed = hm.ResidualLoss(bump_residual, torch.zeros(4, 1))
    fixed.resample(torch.Generator().manual_seed(0))
    assert torch.equal(fixed.points, torch.zeros(4, 1))  # no sampler: the points stay


def test_the_same_seed_draws_the_same_rad_points() -> None:
    def draw() -> Tensor:
        term = hm.ResidualLoss(
            bump_residual, sampler=hm.BoxSampler(0.0, 1.0), n_points=64, resampling=hm.RAD()
        )
        model = One()
        term(model)
        term.resample(torch.Generator().manual_seed(3))
        return term.points

    assert torch.equal(draw(), draw())


def test_a_term_pickles_and_copies_without_its_model() -> None:
    term = hm.ResidualLoss(
        bump_residual, sampler=hm.BoxSampler(0.0, 1.0), n_points=8, resampling=hm.RAD()
    )
    model = One()
    term(model)
    assert term.last_model() is model
    again = pickle.loads(pickle.dumps(term))
    assert again.last_model() is None and torch.equal(again.points, term.points)
    assert isinstance(again.resampling, hm.RAD)
    assert copy.deepcopy(term).points.shape == (8, 1)


def test_bad_resampling_options_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="sampler"):
        hm.ResidualLoss(bump_residual, torch.zeros(4, 1), resampling=hm.RAD())
    with pytest.raises(InvalidTypeError, match="resampling must be"):
        hm.ResidualLoss(
            bump_residual,
            sampler=hm.BoxSampler(0.0, 1.0),
            n_points=4,
            resampling="rad",  # type: ignore[arg-type]
        )
    with pytest.raises(InvalidArgumentError, match="candidates"):
        hm.RAD(candidates=0)
    with pytest.raises(InvalidArgumentError, match="n_add"):
        hm.RAR(n_add=10, candidates=5)


def test_the_deepxde_adapter_exports_the_core_strategies() -> None:
    hd = pytest.importorskip("hybridml_deepxde")  # importing it does not import DeepXDE
    assert hd.RAD is hm.RAD and hd.RAR is hm.RAR
    assert hd.Resampling is hm.Resampling and hd.UniformResampling is hm.UniformResampling
    assert issubclass(hd.PDEResidual, hm.CollocationTerm)


def test_the_ode_adapter_residual_takes_resampling_and_causal_weighting() -> None:
    ode = pytest.importorskip("hybridml_ode")
    adapter = ode.ODEAdapter(
        ode.exponential_decay, [1.0], (0.0, 2.0), state_names=["y [-]"], params={"k": 1.0}
    )
    causal = hm.CausalWeighting(time_column=0, n_chunks=4, eps=1.0)
    terms = adapter.loss_terms(n_points=64, resampling=hm.RAD(), causal=causal)
    term = terms["ode_residual"]
    assert isinstance(term, hm.ResidualLoss)
    assert isinstance(term.resampling, hm.RAD) and term.causal is causal
    model = hm.MLP(1, 1, hidden=(8,))
    hm.Trainer(phases=[hm.Adam(20, resample_every=10)], progress=False).fit(model, terms)
    assert term.last_model() is model  # the trainer's resample followed this model
    assert term.causal_weights is not None and term.causal_weights.shape == (4,)
    with pytest.raises(InvalidTypeError, match="resampling and causal"):
        adapter.loss_terms(bogus=1)
