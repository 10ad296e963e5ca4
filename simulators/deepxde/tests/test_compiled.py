"""The compiled Taylor-mode jet and the condition values shared with the residual's pass.

Each ``compiled=True`` evaluation at a new network structure, point count or dtype compiles
(inductor, seconds), so these tests use few, small shapes. (A failing compilation and a
failing background compilation are tested in the core's tests/unit/test_jet.py, in processes of
their own: a failure turns the compiled jet off for the rest of the process.)
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hybridml_deepxde import _terms as terms_module
from hybridml_deepxde import taylor_jet
from hybridml_deepxde.examples import burgers, burgers_hard_transform

import hybridml


def _net(act: type[torch.nn.Module], dtype: torch.dtype) -> hybridml.MLP:
    torch.manual_seed(0)
    net = hybridml.MLP(2, 2, (7, 5, 6), act, input_lower=[-1, 0], input_upper=[1, 2])
    return net.to(dtype)


def _loss_grads(model, jet, pairs, weights):
    parts = (jet.value, jet.grad, *(jet.hess[p] for p in pairs))
    parts += () if jet.extra is None else (jet.extra,)
    loss = sum((w * t * t).sum() for w, t in zip(weights, parts, strict=True))
    return torch.autograd.grad(loss, list(model.parameters()))


@pytest.mark.parametrize(
    ("act", "dtype", "tol"),
    [(torch.nn.Tanh, torch.float64, 1e-11), (torch.nn.Sigmoid, torch.float32, 2e-5)],
)
def test_compiled_jet_matches_uncompiled(act, dtype, tol) -> None:
    model = hybridml.Constrained(_net(act, dtype), burgers_hard_transform())
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(33, 2, generator=gen) * 2 - torch.tensor([1.0, 0.0])).to(dtype)
    extra = torch.rand(5, 2, generator=gen).to(dtype)
    pairs = [(0, 0), (0, 1), (1, 1)]
    ref = taylor_jet(model, x, pairs, extra=extra)  # checked against autograd elsewhere
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback here
        jet = taylor_jet(model, x, pairs, extra=extra, compiled=True)
    assert jet.extra is not None and ref.extra is not None
    for a, b in [(jet.value, ref.value), (jet.grad, ref.grad), (jet.extra, ref.extra)]:
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    for p in pairs:
        torch.testing.assert_close(jet.hess[p], ref.hess[p], rtol=tol, atol=tol)
    # the parameter gradients (compiled: derived by AOTAutograd; uncompiled: hand-written)
    weights = [
        torch.randn(t.shape, generator=gen).to(dtype)
        for t in (ref.value, ref.grad, *(ref.hess[p] for p in pairs), ref.extra)
    ]
    g1 = _loss_grads(model, jet, pairs, weights)
    g2 = _loss_grads(model, ref, pairs, weights)
    for u, v in zip(g1, g2, strict=True):
        torch.testing.assert_close(u, v, rtol=10 * tol, atol=10 * tol)


def test_compiled_jet_without_input_scaling_or_extra_points() -> None:
    # the other branches of the compiled jet: a bare MLP (no input box, no transform), no
    # value-only points, one hidden layer
    torch.manual_seed(3)
    model = hybridml.MLP(2, 3, (6,), torch.nn.Tanh).double()
    x = torch.rand(17, 2, dtype=torch.float64)
    pairs = [(0, 1), (1, 1)]
    ref = taylor_jet(model, x, pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        jet = taylor_jet(model, x, pairs, compiled=True)
    assert jet.extra is None
    for a, b in [
        (jet.value, ref.value),
        (jet.grad, ref.grad),
        *((jet.hess[p], ref.hess[p]) for p in pairs),
    ]:
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)
    weights = [torch.randn(t.shape, dtype=torch.float64) for t in (ref.value, ref.grad)]
    weights += [torch.randn(ref.hess[p].shape, dtype=torch.float64) for p in pairs]
    g1 = _loss_grads(model, jet, pairs, weights)
    g2 = _loss_grads(model, ref, pairs, weights)
    for u, v in zip(g1, g2, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-10)


def test_each_jet_shape_compiles_apart_from_the_recompile_limit() -> None:
    # dynamo limits the compilations of one code object (8 by default): the jets of many
    # shapes in one process (RAR's growing point sets) must not share one
    torch.manual_seed(4)
    model = hybridml.MLP(2, 1, (3,), torch.nn.Tanh).double()
    with torch._dynamo.config.patch(recompile_limit=1), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would warn
        for n in (5, 6):
            x = torch.rand(n, 2, dtype=torch.float64)
            jet = taylor_jet(model, x, [(0, 0)], compiled=True)
            torch.testing.assert_close(jet.value, model(x), rtol=1e-12, atol=1e-12)
            assert jet.compiled


def _record_compiled_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Wrap ``MLP.jet``: the list records, per call asking for the compiled jet, whether the
    compiled jet served it."""
    calls: list[bool] = []
    original = hybridml.MLP.jet

    def counting(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if kwargs.get("compiled"):
            calls.append(out.compiled)
        return out

    monkeypatch.setattr(hybridml.MLP, "jet", counting)
    return calls


def test_compiled_training_follows_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """derivatives="compiled": the compiled jet after a few steps; the same trajectory."""
    monkeypatch.setattr(terms_module, "_COMPILE_AFTER", 2)
    calls = _record_compiled_calls(monkeypatch)
    losses = {}
    for how in ("compiled", "autograd"):
        adapter = burgers(num_domain=60, num_boundary=8, num_initial=12, derivatives=how)
        model = adapter.default_model((8, 8), generator=torch.Generator().manual_seed(0))
        model = model.double()
        terms = {k: t.to(torch.float64) for k, t in adapter.loss_terms().items()}
        trainer = hybridml.Trainer((hybridml.Adam(6, lr=1e-2),), progress=False, seed=0)
        history = trainer.fit(model, terms)
        losses[how] = history.loss
    # the compiled jet served steps 3-6 (the first evaluation of all learns the derivatives)
    assert calls and all(calls) and len(calls) >= 3
    torch.testing.assert_close(
        torch.tensor(losses["compiled"]), torch.tensor(losses["autograd"]), rtol=1e-9, atol=0
    )


def test_conditions_share_the_residual_pass_only_while_parameters_are_unchanged() -> None:
    adapter = burgers(num_domain=60, num_boundary=8, num_initial=12, derivatives="taylor")
    model = adapter.default_model((8, 8)).double()
    terms = {k: t.to(torch.float64) for k, t in adapter.loss_terms().items()}
    ic = terms["ic"]
    fresh = terms_module.ConditionLoss(ic._dde, ic.condition, ic.points.numpy())
    fresh.to(torch.float64)
    terms["pde"](model)  # learns the derivatives (autograd)
    terms["pde"](model)  # Taylor mode: the condition points ride along
    assert ic._pending is not None
    torch.testing.assert_close(ic.errors(model), fresh.errors(model), rtol=1e-12, atol=1e-13)
    assert ic._pending is None and ic._share  # used once
    # parameters changed in place by a fused optimiser step (version counters unchanged)
    opt = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    terms["pde"](model).backward()
    assert ic._pending is not None
    opt.step()
    torch.testing.assert_close(ic.errors(model), fresh.errors(model), rtol=1e-12, atol=1e-13)
    assert not ic._share  # out of step with the residual: no longer shared
    terms["pde"](model)
    assert ic._pending is None


def test_precompile_warms_the_cache_and_the_term_compiles_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """PDEResidual.precompile: a child process compiles the float64 jet; the term then
    compiles from inductor's cache (hits, no misses) and uses it from its first float64
    evaluation, with the uncompiled jet's results."""
    # an inductor cache of this test's own (inherited by the child), so that a hit means
    # the child's compilation (torch's own helper: it also drops in-memory cache state)
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    with temporary_cache_dir(str(tmp_path / "inductor")):
        _precompile_then_train(monkeypatch)


def _precompile_then_train(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._dynamo.utils import counters

    calls = _record_compiled_calls(monkeypatch)
    losses = {}
    for how in ("compiled", "taylor"):
        # 37 points and a 9x9 net: shapes no other test compiles
        adapter = burgers(hard=True, num_domain=37, num_boundary=0, num_initial=0, derivatives=how)
        terms = adapter.loss_terms()
        model = adapter.default_model(
            (9, 9), transform=burgers_hard_transform(), generator=torch.Generator().manual_seed(0)
        )
        if how == "compiled":
            job = terms["pde"].precompile(model, dtype=torch.float64)
            assert job is not None
            assert (job.spec.n, job.spec.dtype, job.spec.pairs) == (37, "float64", ((0, 0),))
            assert job.wait(600), job.output()
            counters.clear()
        # a float64 BFGS phase: compiled from its first evaluation (not after 50)
        trainer = hybridml.Trainer((hybridml.BFGS(4),), progress=False, seed=0)
        losses[how] = trainer.fit(model, terms).loss
        if how == "compiled":
            assert calls and all(calls)
            assert counters["inductor"]["fxgraph_cache_hit"] >= 1
            assert counters["inductor"]["fxgraph_cache_miss"] == 0
    # compiled and uncompiled jets agree to rounding (the 1e-9 of the test above)
    torch.testing.assert_close(
        torch.tensor(losses["compiled"]), torch.tensor(losses["taylor"]), rtol=1e-9, atol=0
    )


def test_precompile_arguments_and_nothing_to_compile() -> None:
    adapter = burgers(num_domain=20, num_boundary=4, num_initial=4, derivatives="autograd")
    pde = adapter.loss_terms()["pde"]
    model = adapter.default_model((5,))
    with pytest.raises(ValueError, match="num_points must be a positive integer"):
        pde.precompile(model, num_points=0)
    with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
        pde.precompile(model, dtype=torch.int64)
    assert pde.precompile(model) is None  # autograd derivatives: no jet to compile
    taylor = burgers(num_domain=20, num_boundary=4, num_initial=4, derivatives="taylor")
    assert taylor.loss_terms()["pde"].precompile(torch.nn.Linear(2, 1)) is None  # no MLP
