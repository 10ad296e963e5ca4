"""The DeepXDE adapter: backend and global state, derivatives, bad input, checks, training."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hybridml_deepxde import (
    RAD,
    RAR,
    DeepXDEAdapter,
    UniformResampling,
    import_deepxde,
    taylor_supported,
)
from hybridml_deepxde.examples import NU, burgers, burgers_hard_transform

import hybridml


def small_burgers(**options):
    # few points: these tests evaluate and briefly train, they do not need accuracy
    return burgers(**{"num_domain": 200, "num_boundary": 20, "num_initial": 40, **options})


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DDE_BACKEND", "DDEBACKEND")}
    env["HOME"] = str(tmp_path)  # DeepXDE would write ~/.deepxde/config.json here
    return env


# ----------------------------------------------------------------------- backend, globals


def test_import_keeps_global_settings_and_writes_no_config(tmp_path: Path) -> None:
    code = """
        import json, sys, numpy as np, random, torch
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)
        torch.manual_seed(123); np.random.seed(7); random.seed(5)
        import hybridml, hybridml_deepxde
        from hybridml_deepxde import import_deepxde, torch_global_state
        cls = hybridml.load_simulator("deepxde")
        lazy = "deepxde" not in sys.modules
        before = torch_global_state()
        dde = import_deepxde()
        after = torch_global_state()
        same = {k: bool(torch.equal(before[k], after[k])) if k == "torch_rng" else
                (before[k][0] == after[k][0] and bool(np.array_equal(before[k][1], after[k][1])))
                if k == "numpy_rng" else before[k] == after[k] for k in before}
        print(json.dumps({"same": same, "backend": dde.backend.backend_name, "lazy": lazy,
                          "cls": cls.__name__, "dtype": str(torch.get_default_dtype())}))
    """
    proc = _run(code, _clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["lazy"], "importing hybridml_deepxde (or loading the adapter) imported deepxde"
    assert out["cls"] == "DeepXDEAdapter"
    assert out["backend"] == "pytorch"
    assert out["dtype"] == "torch.float64"
    assert all(out["same"].values()), out["same"]
    assert not (tmp_path / ".deepxde").exists(), "DeepXDE wrote its config file"
    assert "Using backend" not in proc.stderr, "DeepXDE's banner reached stderr"


def test_wrong_backend_is_an_error(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    env["DDE_BACKEND"] = "jax"
    # Only the PyTorch backend is installed here, so a DeepXDE imported "with another
    # backend" is emulated by renaming its backend after a real import.
    code = """
        import os
        from hybridml_deepxde import DeepXDEBackendError, import_deepxde
        try:
            import_deepxde()
        except DeepXDEBackendError as exc:
            print("ERROR1", exc)
        os.environ["DDE_BACKEND"] = "pytorch"
        import deepxde
        deepxde.backend.backend_name = "tensorflow"
        try:
            import_deepxde()
        except DeepXDEBackendError as exc:
            print("ERROR2", exc)
    """
    proc = _run(code, env)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()
    assert first.startswith("ERROR1") and "'jax'" in first and "pytorch" in first
    assert second.startswith("ERROR2") and "'tensorflow'" in second


# ----------------------------------------------------------------------- derivatives


def _residuals(adapter_taylor, adapter_autograd, model, dtype):
    model = model.to(dtype)
    t1 = adapter_taylor.loss_terms()["pde"].to(dtype)
    t2 = adapter_autograd.loss_terms()["pde"].to(dtype)
    x = t1.points.detach().clone().requires_grad_(True)
    t1.residual(model, x)  # the first call learns which derivatives the pde needs
    r1 = t1.residual(model, x)
    r2 = t2.residual(model, x)
    return r1, r2


@pytest.mark.parametrize("hard", [False, True])
def test_taylor_residual_matches_autograd(hard: bool) -> None:
    a, b = small_burgers(derivatives="taylor"), small_burgers(derivatives="autograd")
    model = a.default_model((16, 16), transform=burgers_hard_transform() if hard else None)
    assert taylor_supported(model)
    r1, r2 = _residuals(a, b, model, torch.float64)
    # the same derivatives by two exact methods: they agree to float64 rounding
    torch.testing.assert_close(r1, r2, rtol=1e-10, atol=1e-12)
    # and the parameter gradients too
    p = list(model.parameters())
    g1 = torch.autograd.grad((r1**2).mean(), p)
    g2 = torch.autograd.grad((r2**2).mean(), p)
    for u, v in zip(g1, g2, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-12)


def test_taylor_mixed_second_derivatives_and_several_outputs() -> None:
    dde = import_deepxde()
    geom = dde.geometry.Rectangle([0, 0], [1, 2])

    def pde(x, y):  # exercises row access, mixed and per-component Hessians, fallbacks
        u_xy = dde.grad.hessian(y, x, component=1, i=0, j=1)
        v_yx = dde.grad.hessian(y, x, component=0, i=1, j=0)
        grad_v = dde.grad.jacobian(y, x, i=1)  # a whole row (n, 2)
        u = y[:, 0:1]
        u_x_of_slice = dde.grad.jacobian(u, x, i=0, j=0)  # not y itself: autograd fallback
        return [u_xy + v_yx * grad_v[:, 0:1], u_x_of_slice * grad_v[:, 1:2]]

    a = DeepXDEAdapter(geom, pde, num_domain=64, num_outputs=2, derivatives="taylor")
    b = DeepXDEAdapter(geom, pde, num_domain=64, num_outputs=2, derivatives="autograd")
    model = a.default_model((12, 12))
    r1, r2 = _residuals(a, b, model, torch.float64)
    assert r1.shape == (64, 2)
    torch.testing.assert_close(r1, r2, rtol=1e-10, atol=1e-12)  # float64 rounding
    # the slice needs autograd through y: the term switched to autograd, so the
    # parameter gradients (which differentiate that derivative once more) are right
    p = list(model.parameters())
    opts = {"allow_unused": True, "materialize_grads": True}  # (derivatives only: no last bias)
    g1 = torch.autograd.grad((r1**2).mean(), p, **opts)
    g2 = torch.autograd.grad((r2**2).mean(), p, **opts)
    for u, v in zip(g1, g2, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-12)


def _autograd_jet(model, x, pairs):
    x = x.detach().clone().requires_grad_(True)
    y = model(x)
    grads, hess = [], {p: [] for p in pairs}
    for c in range(y.shape[1]):
        (g,) = torch.autograd.grad(y[:, c].sum(), x, create_graph=True)
        grads.append(g)
        for i, j in pairs:
            h = torch.zeros_like(x)
            if g.requires_grad:  # (not for a linear model)
                (h,) = torch.autograd.grad(
                    g[:, i].sum(), x, create_graph=True, allow_unused=True, materialize_grads=True
                )
            hess[(i, j)].append(h[:, j])
    grad = torch.stack(grads, dim=-1).permute(1, 0, 2)
    return y, grad, {p: torch.stack(h, dim=-1) for p, h in hess.items()}


@pytest.mark.parametrize("kind", ["tanh", "sigmoid", "hard", "linear"])
def test_taylor_jet_values_and_gradients_match_autograd(kind: str) -> None:
    from hybridml_deepxde._taylor import taylor_jet

    torch.manual_seed(0)
    act = torch.nn.Sigmoid if kind == "sigmoid" else torch.nn.Tanh
    hidden = () if kind == "linear" else (7, 5, 6)
    net = hybridml.MLP(2, 3, hidden, act, input_lower=[-1, 0], input_upper=[1, 2]).double()
    model = net
    if kind == "hard":
        model = hybridml.Constrained(net.double(), burgers_hard_transform())
    assert taylor_supported(model)
    x = torch.rand(9, 2, dtype=torch.float64) * torch.tensor([2.0, 2.0]) - torch.tensor([1, 0])
    extra = torch.rand(4, 2, dtype=torch.float64)
    pairs = [(0, 0), (0, 1), (1, 1)]
    jet = taylor_jet(model, x, pairs, extra=extra)
    y, grad, hess = _autograd_jet(model, x, pairs)
    torch.testing.assert_close(jet.value, y, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(jet.grad, grad, rtol=1e-12, atol=1e-13)
    for p in pairs:
        torch.testing.assert_close(jet.hess[p], hess[p], rtol=1e-11, atol=1e-12)
    assert jet.extra is not None
    torch.testing.assert_close(jet.extra, model(extra), rtol=1e-12, atol=1e-13)
    # parameter gradients of a loss of every output (the hand-written backward)
    w = [torch.randn_like(t) for t in (y, grad, *hess.values(), jet.extra)]

    def loss(v, g, h, e):
        parts = (v, g, *(h[p] for p in pairs), e)
        return sum((wi * t * t).sum() for wi, t in zip(w, parts, strict=True))

    params = list(model.parameters())
    g1 = torch.autograd.grad(loss(jet.value, jet.grad, jet.hess, jet.extra), params)
    g2 = torch.autograd.grad(loss(y, grad, hess, model(extra)), params)
    for u, v in zip(g1, g2, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)


def test_auto_derivatives_agree_with_the_default_autograd() -> None:
    a = small_burgers(derivatives="auto")
    b = small_burgers()
    assert b.derivatives == "autograd"
    model = a.default_model((8, 8))
    r1, r2 = _residuals(a, b, model, torch.float32)
    torch.testing.assert_close(r1, r2, rtol=1e-4, atol=1e-5)  # float32 rounding


def test_unsupported_model_falls_back_to_autograd() -> None:
    a = small_burgers(derivatives="taylor")
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.SiLU(), torch.nn.Linear(8, 1))
    assert not taylor_supported(model)
    b = small_burgers(derivatives="autograd")
    r1, r2 = _residuals(a, b, model, torch.float64)
    torch.testing.assert_close(r1, r2, rtol=0, atol=0)  # the very same computation


# ----------------------------------------------------------------------- bad input


def test_pde_with_wrong_shape_names_function_and_shapes() -> None:
    dde = import_deepxde()
    geom = dde.geometry.Interval(0, 1)

    def summed_pde(x, y):
        return dde.grad.jacobian(y, x).sum()

    adapter = DeepXDEAdapter(geom, summed_pde, num_domain=30)
    with pytest.raises(ValueError, match=r"summed_pde.*shape \(\).*\(30, 1\)"):
        adapter.loss_terms()["pde"](adapter.default_model((4,)))


def test_nan_observations_name_the_rows() -> None:
    x = np.array([[0.0, 0.1], [0.5, 0.2], [0.1, 0.3], [0.2, 0.4]])
    y = np.array([0.0, np.nan, 1.0, np.nan])
    with pytest.raises(ValueError, match=r"y has NaN or inf values in rows 1, 3"):
        small_burgers(observations=(x, y))


def test_observations_outside_the_geometry_are_an_error() -> None:
    x = np.array([[0.0, 0.1], [1.5, 0.2], [0.1, 2.0]])
    with pytest.raises(ValueError, match=r"rows 1, 2 of x lie outside the geometry"):
        small_burgers(observations=(x, np.zeros(3)))


def test_condition_without_points_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"'dirichlet'.*num_boundary"):
        small_burgers(num_boundary=0)


# ----------------------------------------------------------------------- checks, hard BCs


def test_checks_report_condition_violation_and_hard_constraints_remove_it() -> None:
    adapter = small_burgers()
    soft = adapter.default_model((8, 8))
    report = hybridml.run_checks(adapter.checks(), {}, soft)
    # an untrained soft model misses u(x, 0) = -sin(pi x) by up to about 1
    assert not report["ic condition"].passed
    assert report["ic condition"].worst_violation > 0.3
    hard = adapter.default_model((8, 8), transform=burgers_hard_transform())
    report = hybridml.run_checks(adapter.checks(), {}, hard)
    # the transform holds the conditions exactly: only rounding remains (float32)
    assert report["ic condition"].worst_violation < 1e-6
    assert report["dirichlet condition"].worst_violation < 1e-6
    with pytest.raises(ValueError, match="model"):
        adapter.checks()[0]({})


# ----------------------------------------------------------------------- resampling


def test_residual_at_new_points_is_never_served_stale_boundary_jets() -> None:
    # candidate points of successive resamples reuse each other's storage; the hard
    # constraint's g/distance jets must not be taken from a cache keyed by that storage
    a = burgers(hard=True, num_domain=300, train_distribution="pseudo", resampling=RAD())
    model = a.default_model((8, 8), transform=burgers_hard_transform())
    term = a.loss_terms()["pde"]
    term(model)
    term(model)
    reference = burgers(hard=True, num_domain=10, derivatives="autograd").loss_terms()["pde"]
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        cand = term.sample(3000, gen)
        got = term.residual_at(cand)
        x = torch.as_tensor(cand, dtype=torch.float32).requires_grad_(True)
        torch.testing.assert_close(got, reference.residual(model, x).detach(), rtol=1e-4, atol=1e-5)


def test_rad_concentrates_points_where_the_residual_is_large() -> None:
    adapter = small_burgers(resampling=RAD(k=2.0, c=0.0))
    term = adapter.loss_terms()["pde"]
    model = adapter.default_model((8, 8), transform=burgers_hard_transform())
    term(model)  # the term remembers the model for the next resample
    before = term.points.clone()
    term.resample(torch.Generator().manual_seed(1))
    assert term.points.shape == before.shape and not torch.equal(term.points, before)
    uniform = adapter.sample(term.n_points, torch.Generator().manual_seed(2))
    r_rad = adapter.residual(model, term.points.numpy()).abs().mean()
    r_uniform = adapter.residual(model, uniform).abs().mean()
    # drawn with probability ~ r^2, RAD points have a larger mean residual: about 1.45x for
    # this untrained model (whose residual varies smoothly); 1.2x leaves room for the
    # sampling noise of 260 points
    assert r_rad > 1.2 * r_uniform
    assert adapter.inside(term.points.numpy().astype(np.float64)).all()
    # reproducible: the same generator seed gives the same points
    again = small_burgers(resampling=RAD(k=2.0, c=0.0)).loss_terms()["pde"]
    again(model)
    again.resample(torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.points, term.points, rtol=0, atol=0)


def test_rar_adds_points_and_uniform_redraws() -> None:
    adapter = small_burgers(resampling=RAR(n_add=10, candidates=100, max_points=270))
    term = adapter.loss_terms()["pde"]
    model = adapter.default_model((8, 8))  # kept alive: the term holds only a weak reference
    term(model)
    n0 = term.points.shape[0]
    term.resample(torch.Generator().manual_seed(0))
    assert term.points.shape[0] == n0 + 10
    term.resample(torch.Generator().manual_seed(0))
    assert term.points.shape[0] == 270  # capped by max_points
    uni = small_burgers(resampling=UniformResampling()).loss_terms()["pde"]
    before = uni.points.clone()
    uni.resample(torch.Generator().manual_seed(0))
    assert uni.points.shape == before.shape and not torch.equal(uni.points, before)


# ----------------------------------------------------------------------- training


def _poisson_inverse(balancer):
    """-u'' = C pi^2 sin(pi x) on [0, 1], u(0) = u(1) = 0; u = sin(pi x) observed, C = 1."""
    dde = import_deepxde()
    geom = dde.geometry.Interval(0, 1)
    c = hybridml.PhysicalParameter(2.0, name="C")

    def pde(x, y):
        return -dde.grad.hessian(y, x) - c.value * math.pi**2 * torch.sin(math.pi * x)

    bc = dde.icbc.DirichletBC(geom, lambda x: 0, lambda _, on_boundary: on_boundary)
    x_obs = np.linspace(0.05, 0.95, 10)[:, None]
    y_obs = np.sin(np.pi * x_obs)
    adapter = DeepXDEAdapter(
        geom,
        pde,
        [bc],
        num_domain=40,
        num_boundary=2,
        parameters={"C": c},
        observations=(x_obs, y_obs),
    )
    model = adapter.default_model((16, 16))
    trainer = hybridml.Trainer(
        (hybridml.Adam(300, lr=5e-3), hybridml.LBFGS(200)), balancer=balancer, progress=False
    )
    history = trainer.fit(model, adapter.loss_terms())
    return c, history


@pytest.mark.parametrize(
    "balancer",
    [hybridml.FixedWeights({"pde": 1.0, "dirichlet": 10.0, "data": 10.0}), hybridml.LRAnnealing()],
    ids=["fixed", "lr-annealing"],
)
def test_inverse_problem_recovers_the_coefficient(balancer) -> None:
    c, history = _poisson_inverse(balancer)
    # exact data, a smooth solution and float64 L-BFGS: C = 1 to well within 1 %
    assert abs(float(c) - 1.0) < 1e-2
    assert set(history.terms) == {"pde", "dirichlet", "data"}


def test_burgers_trains_and_inverse_nu_is_a_parameter() -> None:
    nu = hybridml.PhysicalParameter(0.05, name="nu")
    adapter = small_burgers(nu=nu, resampling=RAD())
    terms = adapter.loss_terms()
    assert dict(terms["pde"].named_parameters()).keys() == {"coefficients.nu.raw"}
    model = adapter.default_model((8, 8))
    trainer = hybridml.Trainer((hybridml.Adam(30, resample_every=10),), progress=False)
    history = trainer.fit(model, terms)
    assert history.loss[-1] < history.loss[0]
    assert float(nu) != pytest.approx(0.05)  # nu was trained with the network
    assert NU < 0.05


# ----------------------------------------------------------------------- names, replace


def test_condition_names_include_the_component_with_several_outputs() -> None:
    dde = import_deepxde()
    geom = dde.geometry.Rectangle([0, 0], [1, 1])

    def pde(x, y):
        return [y[:, 0:1], y[:, 1:2]]

    def on_b(_, on_boundary):
        return on_boundary

    conditions = [
        dde.icbc.DirichletBC(geom, lambda x: 0, on_b, component=0),
        dde.icbc.DirichletBC(geom, lambda x: 0, on_b, component=1),
        dde.icbc.DirichletBC(geom, lambda x: 1, on_b, component=1),
        dde.icbc.NeumannBC(geom, lambda x: 0, on_b, component=0),
    ]
    options = {"num_domain": 32, "num_boundary": 16, "num_outputs": 2}
    a = DeepXDEAdapter(geom, pde, conditions, **options)
    assert list(a.conditions) == ["dirichlet_y0", "dirichlet_y1", "dirichlet_y1_2", "neumann_y0"]
    b = DeepXDEAdapter(geom, pde, conditions, output_names=("u", "v"), **options)
    assert list(b.loss_terms()) == [
        "pde",
        "dirichlet_u",
        "dirichlet_v",
        "dirichlet_v_2",
        "neumann_u",
    ]
    x_obs = np.array([[0.5, 0.5]])
    points = dde.icbc.PointSetBC(x_obs, np.zeros((1, 2)), component=[0, 1])
    c = DeepXDEAdapter(geom, pde, [points], output_names=("u", "v"), anchors=x_obs, **options)
    assert list(c.conditions) == ["points_u_v"]
    # one output: the names stay those of the kind alone, unless it is named
    assert list(small_burgers().conditions) == ["dirichlet", "ic"]
    assert list(small_burgers(output_names=["u"]).conditions) == ["dirichlet_u", "ic_u"]
    with pytest.raises(ValueError, match="output_names must be 2 distinct"):
        DeepXDEAdapter(geom, pde, conditions, output_names=("u", "u"), **options)


def test_replace_keeps_the_problem_and_draws_new_points() -> None:
    nu = hybridml.PhysicalParameter(0.05, name="nu")
    a = small_burgers(nu=nu, observations=(np.array([[0.0, 0.5]]), np.array([0.1])))
    b = a.replace(num_domain=50, derivatives="taylor", resampling=RAD(), seed=3)
    assert b.num_domain == 50 and b.derivatives == "taylor" and b.seed == 3
    assert b.pde is a.pde and b.geometry is a.geometry and b.parameters["nu"] is nu
    assert list(b.conditions) == list(a.conditions)
    assert b.conditions["ic"] is a.conditions["ic"]
    assert b.train_x_all.shape[0] == 50 + 20 + 40 and a.train_x_all.shape[0] == 200 + 20 + 40
    assert b.observations is not None and a.observations is not None
    np.testing.assert_array_equal(b.observations[1], a.observations[1])
    with pytest.raises(TypeError, match="no argument 'num_points'"):
        a.replace(num_points=5)


def test_lr_annealing_with_compiled_derivatives_fails_at_fit_with_the_fix() -> None:
    adapter = small_burgers(derivatives="compiled")
    model = adapter.default_model((8, 8))
    trainer = hybridml.Trainer(
        (hybridml.Adam(60),), balancer=hybridml.LRAnnealing(), progress=False
    )
    with pytest.raises(hybridml.HybridMLError, match="'pde' uses compiled derivatives") as info:
        trainer.fit(model, adapter.loss_terms())
    assert "derivatives='taylor'" in str(info.value)
    assert not hasattr(trainer, "history_")  # refused before any training


def test_periodic_condition_is_the_mean_square_over_its_pairs() -> None:
    dde = import_deepxde()
    geom = dde.geometry.Interval(-1, 1)

    def pde(x, y):
        return -dde.grad.hessian(y, x) - np.pi**2 * torch.sin(np.pi * x)

    per = dde.icbc.PeriodicBC(geom, 0, lambda _, on_boundary: on_boundary)
    slope = dde.icbc.PeriodicBC(geom, 0, lambda _, on_boundary: on_boundary, derivative_order=1)
    a = DeepXDEAdapter(geom, pde, [per, slope], num_domain=16, num_boundary=8)
    model = a.default_model((8, 8))
    terms = a.loss_terms()
    x = torch.as_tensor(a.condition_points["periodic"], dtype=torch.float32)
    m = x.shape[0] // 2  # DeepXDE's pairs: x and its periodic image, images second
    assert m >= 1 and torch.equal(x[m:], -x[:m])
    xg = x.clone().requires_grad_(True)
    y = model(xg)
    (dy,) = torch.autograd.grad(y.sum(), xg)
    expected = ((y[:m] - y[m:]) ** 2).mean()  # DeepXDE's loss: one row per pair
    torch.testing.assert_close(terms["periodic"](model), expected.detach())
    torch.testing.assert_close(terms["periodic_2"](model), ((dy[:m] - dy[m:]) ** 2).mean())
    result = hybridml.run_checks(a.checks(), {}, model)
    assert [r.name for r in result] == [
        "pde residual",
        "periodic condition",
        "periodic_2 condition",
    ]


def test_causal_weighting_is_passed_to_the_residual_term() -> None:
    from hybridml_deepxde import examples

    import hybridml as hm

    causal = hm.CausalWeighting(time_column=-1, n_chunks=4, eps=1.0)
    adapter = examples.burgers(num_domain=64, num_boundary=8, num_initial=8, causal=causal)
    assert adapter.loss_terms()["pde"].causal is causal
    with pytest.raises(hm.InvalidTypeError, match="CausalWeighting"):
        examples.burgers(num_domain=64, num_boundary=8, num_initial=8, causal=1.0)
