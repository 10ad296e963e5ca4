"""Tests for the loss balancers: FixedWeights, LRAnnealing, ReLoBRaLo."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import Tensor, nn

from hybridml.losses import DataLoss
from hybridml.training import (
    LBFGS,
    Adam,
    Balancer,
    FixedWeights,
    LRAnnealing,
    ReLoBRaLo,
    Trainer,
)


def roundtrip(state: dict) -> dict:
    """Save and load a state as a checkpoint would (weights_only=True)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def two_losses() -> tuple[nn.Module, dict[str, Tensor], list[Tensor]]:
    """A linear model and two losses whose gradients differ in scale by design."""
    model = nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        model.bias.fill_(0.1)
    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0], [2.0, 0.0, -1.0]])
    big = ((model(x) - 10.0) ** 2).mean()  # large residual: large gradient
    small = 1e-3 * (model(x) ** 2).mean()
    return model, {"pde": big, "bc": small}, list(model.parameters())


# ----------------------------------------------------------------------------- FixedWeights


def test_fixed_weights_defaults_unknown_names_and_validation():
    fw = FixedWeights({"bc": 10.0})
    fw.init(["pde", "bc"])
    assert fw.weights(0, {}, []) == {"pde": 1.0, "bc": 10.0}
    with pytest.raises(ValueError, match=r"no loss term named 'typo'.*\['pde', 'bc'\]"):
        FixedWeights({"typo": 1.0}).init(["pde", "bc"])
    with pytest.raises(ValueError, match="finite and >= 0"):
        FixedWeights({"bc": -1.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        FixedWeights({"bc": math.nan})


def test_fixed_weights_are_used_by_the_trainer():
    x = torch.linspace(-1.0, 1.0, 16)[:, None]
    losses = {"a": DataLoss(x, x), "b": DataLoss(x, -x)}
    history = Trainer(phases=(Adam(5),), balancer=FixedWeights({"b": 3.0}), progress=False).fit(
        nn.Linear(1, 1), losses
    )
    for total, a, b in zip(history.loss, history.terms["a"], history.terms["b"], strict=True):
        assert total == pytest.approx(a + 3.0 * b, rel=1e-12)  # float rounding only


# ----------------------------------------------------------------------------- LRAnnealing


def test_lr_annealing_matches_the_formula():
    _, losses, params = two_losses()
    g_ref = torch.autograd.grad(losses["pde"], params, retain_graph=True)
    g_bc = torch.autograd.grad(losses["bc"], params, retain_graph=True)
    max_ref = max(float(g.abs().max()) for g in g_ref)
    mean_bc = sum(float(g.abs().sum()) for g in g_bc) / sum(p.numel() for p in params)
    lam_hat = max_ref / mean_bc
    assert lam_hat > 100  # the setup makes the bc gradient much smaller

    bal = LRAnnealing(every=10, alpha=0.9)
    bal.init(["pde", "bc"])
    w0 = bal.weights(0, losses, params)
    assert w0["pde"] == 1.0  # the reference (first term by default) keeps weight 1
    expected = 0.9 * 1.0 + 0.1 * lam_hat
    assert w0["bc"] == pytest.approx(expected, rel=1e-6)  # float32 gradient sums
    # between updates the weights do not change (and the same dict comes back)
    assert bal.weights(5, losses, params) is w0
    w10 = bal.weights(10, losses, params)
    assert w10["bc"] == pytest.approx(0.9 * expected + 0.1 * lam_hat, rel=1e-6)


def test_lr_annealing_max_weight_caps_a_runaway_weight():
    _, losses, params = two_losses()  # lam_hat > 100 for "bc" (see the test above)
    capped = LRAnnealing(every=1, alpha=0.0, max_weight=50.0)
    capped.init(["pde", "bc"])
    assert capped.weights(0, losses, params)["bc"] == 50.0
    free = LRAnnealing(every=1, alpha=0.0)
    free.init(["pde", "bc"])
    assert free.weights(0, losses, params)["bc"] > 100.0  # the paper's rule, unbounded
    assert "max_weight=50.0" in repr(capped)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="max_weight"):
            LRAnnealing(max_weight=bad)


def test_lr_annealing_reference_and_state():
    _, losses, params = two_losses()
    with pytest.raises(ValueError, match=r"reference='data'.*\['pde', 'bc'\]"):
        LRAnnealing(reference="data").init(["pde", "bc"])
    bal = LRAnnealing(reference="bc", every=1)
    bal.init(["pde", "bc"])
    w = bal.weights(0, losses, params)
    assert w["bc"] == 1.0 and w["pde"] < 1.0  # the big-gradient term is scaled down
    state = roundtrip(bal.state_dict())
    other = LRAnnealing(reference="bc", every=1)
    other.init(["pde", "bc"])
    other.load_state_dict(state)
    assert other.weights(1, losses, params) == bal.weights(1, losses, params)
    wrong = LRAnnealing()
    wrong.init(["a", "b"])
    with pytest.raises(ValueError, match="loss terms"):
        wrong.load_state_dict(state)


def test_lr_annealing_in_the_trainer_updates_every_n_steps_and_freezes_in_lbfgs():
    x = torch.linspace(-1.0, 1.0, 16)[:, None]
    losses = {"fit": DataLoss(x, torch.sin(3 * x)), "small": DataLoss(x[:2], torch.zeros(2, 1))}
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
    history = Trainer(
        phases=(Adam(25), LBFGS(5)), balancer=LRAnnealing(every=10), progress=False
    ).fit(model, losses)
    w = history.weights["small"]
    changes = [i for i in range(1, 25) if w[i] != w[i - 1]]
    assert changes == [10, 20]  # updated at steps 0, 10, 20 only
    assert w[0] != 1.0
    assert set(w[25:]) == {w[24]}  # frozen during L-BFGS
    assert set(history.weights["fit"]) == {1.0}  # the reference


# ----------------------------------------------------------------------------- ReLoBRaLo


def test_relobralo_matches_the_formula():
    alpha, temp = 0.9, 0.5
    bal = ReLoBRaLo(alpha=alpha, temperature=temp, expected_rho=1.0)  # rho == 1 always
    bal.init(["a", "b"])

    def t(v: float) -> Tensor:
        return torch.tensor(v, dtype=torch.float64)  # exact decimal-ish values

    assert bal.weights(0, {"a": t(4.0), "b": t(1.0)}, []) == {"a": 1.0, "b": 1.0}
    w = bal.weights(1, {"a": t(2.0), "b": t(0.9)}, [])
    # bal(t, t-1) = m * softmax(L(t) / (T L(t-1))); with rho = 1 the history is lambda(t-1)
    za, zb = 2.0 / (temp * 4.0), 0.9 / (temp * 1.0)
    bal_a = 2 * math.exp(za) / (math.exp(za) + math.exp(zb))
    bal_b = 2 - bal_a
    assert w["a"] == pytest.approx(alpha * 1.0 + (1 - alpha) * bal_a, rel=1e-12)
    assert w["b"] == pytest.approx(alpha * 1.0 + (1 - alpha) * bal_b, rel=1e-12)
    # "a" halved while "b" barely moved: "b" now gets the larger weight
    assert w["b"] > w["a"]
    # the weights stay a convex-like mix of vectors summing to m = 2
    assert w["a"] + w["b"] == pytest.approx(2.0, rel=1e-12)


def test_relobralo_lookback_uses_initial_losses_and_is_seeded():
    def run(seed: int) -> list[dict[str, float]]:
        bal = ReLoBRaLo(alpha=0.5, temperature=1.0, expected_rho=0.5, seed=seed)
        bal.init(["a", "b"])
        losses = [(1.0, 1.0), (0.5, 0.9), (0.4, 0.8), (0.3, 0.8), (0.2, 0.7), (0.1, 0.7)]
        return [
            bal.weights(i, {"a": torch.tensor(a), "b": torch.tensor(b)}, [])
            for i, (a, b) in enumerate(losses)
        ]

    assert run(0) == run(0)  # reproducible
    assert any(run(s) != run(0) for s in range(1, 5))  # rho really is random

    # expected_rho = 0: always look back to step 0; alpha = 1 keeps only that part
    bal = ReLoBRaLo(alpha=1.0, temperature=1.0, expected_rho=0.0)
    bal.init(["a", "b"])
    bal.weights(0, {"a": torch.tensor(1.0), "b": torch.tensor(2.0)}, [])
    w = bal.weights(1, {"a": torch.tensor(0.5), "b": torch.tensor(2.0)}, [])
    za, zb = 0.5 / 1.0, 2.0 / 2.0
    assert w["a"] == pytest.approx(2 * math.exp(za) / (math.exp(za) + math.exp(zb)), rel=1e-12)


def test_relobralo_state_roundtrip_continues_identically():
    seq = [(1.0, 2.0), (0.8, 1.9), (0.7, 1.5), (0.5, 1.4), (0.45, 1.0), (0.3, 0.9)]

    def feed(bal: ReLoBRaLo, items: list[tuple[float, float]], start: int) -> list[dict]:
        return [
            bal.weights(start + i, {"a": torch.tensor(a), "b": torch.tensor(b)}, [])
            for i, (a, b) in enumerate(items)
        ]

    full = ReLoBRaLo(expected_rho=0.5)
    full.init(["a", "b"])
    expected = feed(full, seq, 0)

    first = ReLoBRaLo(expected_rho=0.5)
    first.init(["a", "b"])
    feed(first, seq[:3], 0)
    state = roundtrip(first.state_dict())
    second = ReLoBRaLo(expected_rho=0.5)
    second.init(["a", "b"])
    second.load_state_dict(state)
    assert feed(second, seq[3:], 3) == expected[3:]


def test_relobralo_weights_frozen_during_lbfgs():
    x = torch.linspace(-1.0, 1.0, 16)[:, None]
    losses = {"a": DataLoss(x, torch.sin(3 * x)), "b": DataLoss(x, x)}
    history = Trainer(phases=(Adam(15), LBFGS(5)), balancer=ReLoBRaLo(), progress=False).fit(
        nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)), losses
    )
    wa = history.weights["a"]
    assert len(set(wa[:15])) > 1  # adapted every Adam step
    assert set(wa[15:]) == {wa[14]}


def test_custom_balancer_contract_is_checked():
    class Broken(Balancer):
        def weights(self, step, losses, params):
            return {"a": 1.0}  # forgets "b"

    x = torch.linspace(-1.0, 1.0, 8)[:, None]
    losses = {"a": DataLoss(x, x), "b": DataLoss(x, -x)}
    with pytest.raises(ValueError, match="no weight for loss term 'b'"):
        Trainer(phases=(Adam(2),), balancer=Broken(), progress=False).fit(nn.Linear(1, 1), losses)


def test_balancer_states_load_with_weights_only():
    names = ["pde", "bc"]
    _, losses, params = two_losses()
    for bal in (FixedWeights({"bc": 2.0}), LRAnnealing(), ReLoBRaLo()):
        bal.init(names)
        bal.weights(0, losses, params)
        bal.weights(1, losses, params)
        state = roundtrip(bal.state_dict())  # raises if anything is not weights_only-safe
        bal.load_state_dict(state)


# ----------------------------------------------------------------------------- compiled terms


class CompiledResidual(DataLoss):
    """A loss term that says its backward can run only once (compiled derivatives)."""

    derivatives = "compiled"


def test_lr_annealing_with_compiled_derivatives_is_refused_before_training() -> None:
    from hybridml.exceptions import HybridMLError

    x = torch.linspace(0.0, 1.0, 8)[:, None]
    model = nn.Linear(1, 1)
    before = [p.detach().clone() for p in model.parameters()]
    terms = {"pde": CompiledResidual(x, x), "data": DataLoss(x, 2 * x)}
    with pytest.raises(HybridMLError, match="'pde' uses compiled derivatives") as info:
        Trainer((Adam(5),), balancer=LRAnnealing(), progress=False).fit(model, terms)
    assert "derivatives='taylor'" in str(info.value) and "ReLoBRaLo()" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # balancers that differentiate nothing themselves are fine with such terms
    for balancer in (None, ReLoBRaLo(), {"pde": 1.0, "data": 2.0}):
        Trainer((Adam(3),), balancer=balancer, progress=False).fit(model, terms)
    assert LRAnnealing.backpropagates_terms and not ReLoBRaLo.backpropagates_terms


class _FailingBackward(torch.autograd.Function):
    """The identity whose backward raises the RuntimeError its context says (ctx.message)."""

    @staticmethod
    def forward(ctx, value: Tensor, message: str) -> Tensor:
        ctx.message = message
        return value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None]:
        raise RuntimeError(ctx.message)


class FailingBackwardLoss(DataLoss):
    """A data loss whose backward fails as a compiled backward run twice would."""

    def __init__(self, x: Tensor, y: Tensor, message: str) -> None:
        super().__init__(x, y)
        self.message = message

    def forward(self, model: nn.Module) -> Tensor:
        return _FailingBackward.apply(super().forward(model), self.message)


def test_torchs_donated_buffer_error_is_explained() -> None:
    from hybridml.exceptions import TrainingError

    x = torch.linspace(0.0, 1.0, 8)[:, None]
    donated = "This backward function was compiled with non-empty donated buffers"
    terms = {"pde": FailingBackwardLoss(x, x, donated)}
    with pytest.raises(TrainingError, match="derivatives='taylor'"):
        Trainer((Adam(2),), progress=False).fit(nn.Linear(1, 1), terms)
    # any other RuntimeError from a backward passes through unchanged
    terms = {"pde": FailingBackwardLoss(x, x, "something else")}
    with pytest.raises(RuntimeError, match="something else") as info:
        Trainer((Adam(2),), progress=False).fit(nn.Linear(1, 1), terms)
    assert not isinstance(info.value, TrainingError)
