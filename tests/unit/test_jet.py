"""MLP.jet / Constrained.jet: values and input derivatives in one pass, against autograd.

The reference is torch.autograd on the same network in float64 (value, every first
derivative, the requested second derivatives, and the parameter gradients of a loss of all
of them). Both compute the same mathematical quantities by different sequences of float64
operations, so they agree to a few hundred ulps of the values involved (|y| and the
derivatives are O(1) here): rtol 1e-12 for values and first derivatives, 1e-11 for second
derivatives and parameter gradients, which go through more operations.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import Tensor, nn

import hybridml as hm

F64 = torch.float64
PAIRS = [(0, 0), (0, 1), (1, 1)]


def _points(n: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    # inside the input box [-1, 1] x [0, 2] of the networks below
    return torch.rand(n, 2, generator=gen, dtype=F64) * 2 - torch.tensor([1.0, 0.0], dtype=F64)


def _mlp(act: type[nn.Module] = nn.Tanh, hidden: tuple[int, ...] = (7, 5, 6)) -> hm.MLP:
    net = hm.MLP(
        2,
        3,
        hidden,
        act,
        input_lower=[-1, 0],
        input_upper=[1, 2],
        generator=torch.Generator().manual_seed(0),
    )
    return net.to(F64)


def _boundary() -> hm.HardBoundary:
    # u(x, 0) = -sin(pi x), u(+-1, t) = 0 (Burgers' hard constraint)
    return hm.HardBoundary(
        lambda x: -torch.sin(math.pi * x[:, 0:1]),
        lambda x: (1 - x[:, 0:1] ** 2) * x[:, 1:2],
    )


def _autograd_jet(
    model: nn.Module, x: Tensor, pairs: list[tuple[int, int]]
) -> tuple[Tensor, Tensor, dict[tuple[int, int], Tensor]]:
    x = x.detach().requires_grad_(True)
    y = model(x)
    grads, hess = [], {p: [] for p in pairs}
    for c in range(y.shape[1]):
        (g,) = torch.autograd.grad(y[:, c].sum(), x, create_graph=True)
        grads.append(g)
        for i, j in pairs:
            # (a linear network's first derivative does not depend on x: zeros)
            (h,) = torch.autograd.grad(
                g[:, i].sum(), x, create_graph=True, allow_unused=True, materialize_grads=True
            )
            hess[(i, j)].append(h[:, j])
    grad = torch.stack(grads, dim=-1).permute(1, 0, 2)  # (d, n, k)
    return y, grad, {p: torch.stack(h, dim=-1) for p, h in hess.items()}


def _check_against_autograd(model: nn.Module, pairs: list[tuple[int, int]]) -> hm.Jet:
    x = _points(11, 1)
    extra = _points(4, 2)
    jet = model.jet(x, pairs, extra=extra)
    y, grad, hess = _autograd_jet(model, x, pairs)
    assert jet.value.shape == (11, 3) and jet.grad.shape == (2, 11, 3)
    assert sorted(jet.hess) == sorted(pairs) and not jet.compiled
    torch.testing.assert_close(jet.value, y, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(jet.grad, grad, rtol=1e-12, atol=1e-13)
    for p in pairs:
        torch.testing.assert_close(jet.hess[p], hess[p], rtol=1e-11, atol=1e-12)
    assert jet.extra is not None
    torch.testing.assert_close(jet.extra, model(extra), rtol=1e-12, atol=1e-13)
    # parameter gradients of a weighted loss of every piece (Taylor mode: the hand-written
    # backward pass)
    gen = torch.Generator().manual_seed(3)
    w = [torch.randn(t.shape, generator=gen, dtype=F64) for t in (y, grad, *hess.values())]

    def loss(v: Tensor, g: Tensor, h: dict[tuple[int, int], Tensor]) -> Tensor:
        parts = (v, g, *(h[p] for p in pairs))
        return sum(((wi * t * t).sum() for wi, t in zip(w, parts, strict=True)), torch.zeros(()))

    params = list(model.parameters())
    g1 = torch.autograd.grad(loss(jet.value, jet.grad, jet.hess), params)
    g2 = torch.autograd.grad(loss(y, grad, hess), params)
    for u, v in zip(g1, g2, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-11, atol=1e-12)
    return jet


@pytest.mark.parametrize("act", [nn.Tanh, nn.Sigmoid])
def test_mlp_jet_matches_autograd(act: type[nn.Module]) -> None:
    model = _mlp(act)
    assert model.taylor_mode
    _check_against_autograd(model, PAIRS)


def test_linear_mlp_jet_has_zero_second_derivatives() -> None:
    model = _mlp(hidden=())
    assert model.taylor_mode
    jet = _check_against_autograd(model, [(0, 1)])
    assert bool((jet.hess[(0, 1)] == 0).all())


def test_constrained_hard_boundary_jet_matches_autograd_and_holds_the_boundary() -> None:
    model = hm.Constrained(_mlp(), _boundary())
    assert model.taylor_mode
    jet = _check_against_autograd(model, PAIRS)
    # on t = 0 the value is exactly -sin(pi x) whatever the network outputs
    x0 = torch.tensor([[0.3, 0.0], [-0.7, 0.0]], dtype=F64)
    torch.testing.assert_close(
        model.jet(x0).value, -torch.sin(math.pi * x0[:, 0:1]).expand(2, 3), rtol=0, atol=0
    )
    assert jet.derivative(0, 1, out=2).shape == (11, 1)


def test_constrained_jet_reuses_the_boundary_functions_from_the_cache() -> None:
    model = hm.Constrained(_mlp(), _boundary())
    x = _points(9, 4)
    cache: dict = {}
    first = model.jet(x, [(0, 0)], cache=cache)
    assert cache  # the parameter-free g and distance are kept
    second = model.jet(x, [(0, 0)], cache=cache)
    plain = model.jet(x, [(0, 0)])
    for jet in (first, second):
        torch.testing.assert_close(jet.hess[(0, 0)], plain.hess[(0, 0)], rtol=0, atol=0)


@pytest.mark.parametrize(
    "model",
    [
        hm.MLP(2, 3, (6, 5), nn.SiLU).to(F64),
        hm.Constrained(hm.MLP(2, 3, (6,)).to(F64), hm.Bounded(-1.0, 2.0)),
    ],
    ids=["silu", "bounded"],
)
def test_networks_outside_taylor_mode_get_the_jet_by_autograd(model: nn.Module) -> None:
    assert not model.taylor_mode
    jet = _check_against_autograd(model, PAIRS)
    # by autograd the jet can be differentiated again with respect to x
    x = _points(5, 6).requires_grad_(True)
    jet = model.jet(x, [(0, 0)])
    (g,) = torch.autograd.grad(jet.hess[(0, 0)].sum(), x)
    assert torch.isfinite(g).all()


def test_jet_derivative_and_pairs_in_any_order() -> None:
    model = _mlp()
    x = _points(8, 7).requires_grad_(True)
    jet = model.jet(x, [(1, 0), (0, 0)])  # (1, 0) is the pair (0, 1)
    assert sorted(jet.hess) == [(0, 0), (0, 1)]
    y = model(x)
    # the uncompiled Taylor-mode jet is differentiable with respect to x: partial of the
    # jet's first derivative is the second derivative
    u_x = jet.derivative(0, out=1)
    torch.testing.assert_close(u_x, hm.partial(y, x, 0, out=1), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(
        jet.derivative(1, 0, out=1), hm.partial(u_x, x, 1), rtol=1e-11, atol=1e-12
    )
    torch.testing.assert_close(jet.derivative(out=-1), y[:, 2:], rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match=r"second derivative \(1, 1\) was not computed"):
        jet.derivative(1, 1)
    with pytest.raises(ValueError, match="up to order 2"):
        jet.derivative(0, 0, 0)
    with pytest.raises(IndexError, match="out of range"):
        jet.derivative(2)


def test_residual_loss_with_the_jet_equals_the_one_with_partial() -> None:
    # u_t + u u_x - nu u_xx written both ways: the same loss and parameter gradient
    model = hm.Constrained(
        hm.MLP(2, 1, (8, 8), input_lower=[-1, 0], input_upper=[1, 1]), _boundary()
    )
    model = model.to(F64)
    nu = 0.01 / math.pi

    def by_partial(m: nn.Module, x: Tensor) -> Tensor:
        u = m(x)
        u_x = hm.partial(u, x, 0)
        return hm.partial(u, x, 1) + u * u_x - nu * hm.partial(u_x, x, 0)

    def by_jet(m: nn.Module, x: Tensor) -> Tensor:
        jet = m.jet(x, [(0, 0)])
        u = jet.value
        return jet.derivative(1) + u * jet.derivative(0) - nu * jet.derivative(0, 0)

    pts = _points(50, 8).abs()
    losses = [hm.ResidualLoss(r, pts).to(F64) for r in (by_partial, by_jet)]
    values = [term(model) for term in losses]
    grads = [torch.autograd.grad(v, list(model.parameters())) for v in values]
    torch.testing.assert_close(values[1], values[0], rtol=1e-12, atol=0)
    for u, v in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-13)


def test_jet_argument_errors() -> None:
    model = _mlp()
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        model.jet(torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match=r"extra must have shape \(n, 2\)"):
        model.jet(_points(3, 0), extra=torch.zeros(2, 3, dtype=F64))
    with pytest.raises(IndexError, match="out of range for 2 inputs"):
        model.jet(_points(3, 0), [(0, 2)])
    with pytest.raises(TypeError, match="input index pairs"):
        model.jet(_points(3, 0), [0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.precompile_jet(0)
    with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
        model.precompile_jet(5, dtype=torch.int64)
    assert hm.MLP(2, 1, (4,), nn.SiLU).precompile_jet(5) is None  # not Taylor mode


_FAILING_COMPILE = textwrap.dedent(
    """
    import json, sys, warnings
    import torch
    import hybridml as hm

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler (simulated)")

    torch.compile = broken
    net = hm.MLP(2, 2, (7, 5), generator=torch.Generator().manual_seed(0)).double()
    x = torch.rand(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = net.jet(x, [(0, 0)])
    with warnings.catch_warnings(record=True) as first:
        warnings.simplefilter("always")
        jet = net.jet(x, [(0, 0)], compiled=True)
    with warnings.catch_warnings(record=True) as second:
        warnings.simplefilter("always")
        again = net.jet(x, [(0, 0)], compiled=True)
    json.dump({
        "first": [str(w.message) for w in first if w.category is RuntimeWarning],
        "second": [str(w.message) for w in second if w.category is RuntimeWarning],
        "compiled": [jet.compiled, again.compiled],
        "same": all(
            torch.equal(j.value, ref.value) and torch.equal(j.hess[(0, 0)], ref.hess[(0, 0)])
            for j in (jet, again)
        ),
    }, sys.stdout)
    """
)


def test_compile_failure_warns_once_and_falls_back() -> None:
    # in a process of its own: a failed compilation turns the compiled jet off for the
    # rest of the process
    out = subprocess.run(
        [sys.executable, "-c", _FAILING_COMPILE], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert len(result["first"]) == 1 and "simulated" in result["first"][0]
    assert result["second"] == []  # warned once
    assert result["compiled"] == [False, False]
    assert result["same"]  # the uncompiled jet, bit for bit


def test_a_failed_precompilation_is_reported_and_started_again_when_asked() -> None:
    # float8 passes the dtype check here but the child cannot even draw its random
    # inputs in it: a real failure of the background process
    net = hm.MLP(2, 1, (4,))
    dtype = torch.float8_e4m3fn
    job = net.precompile_jet(3, [(0, 0)], dtype=dtype)
    assert job is not None
    assert net.precompile_jet(3, [(0, 0)], dtype=dtype) is job or job.done()  # one at a time
    assert not job.wait(240)  # import torch and hybridml, then fail
    assert job.returncode not in (None, 0) and not job.succeeded
    assert "Float8_e4m3fn" in job.output()
    again = net.precompile_jet(3, [(0, 0)], dtype=dtype)
    assert again is not None and again is not job  # a failed one is started again
    again.cancel()
