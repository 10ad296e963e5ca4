"""BatchedEnsemble and BatchedMLP: batching changes nothing but the speed.

The property that proves the batching right: every member of a batched ensemble equals a
network trained on its own (same seed, same row weights, same Adam phase). In float64 the
two differ only by the rounding of the batched matrix products (``baddbmm`` against
``addmm``) carried through training; 1e-8 leaves seven orders of magnitude to that
(measured: ~1e-15) while any real difference (another seed, another weight, a member
seeing another member's rows) moves the predictions by 1e-2 or more.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hybridml as hm

TOL = 1e-8  # see the module docstring


def _data(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2))
    y = np.column_stack([np.sin(2 * x[:, 0]) + x[:, 1] ** 2, x[:, 0] * x[:, 1]])
    return x, y + 0.05 * rng.normal(size=y.shape)


class _L2(hm.LossTerm):
    """The reference's weight decay: ``rate * sum(W**2)`` over its Linear weights."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, model: torch.nn.Module) -> torch.Tensor:
        ws = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
        return self.rate * sum((w**2).sum() for w in ws)


def test_batched_mlp_members_start_as_seeded_mlps() -> None:
    net = hm.BatchedMLP(2, 3, (8, 4), seeds=[3, 11], input_lower=-1.0, input_upper=[1.0, 2.0])
    ref = hm.MLP(
        2, 3, (8, 4), input_lower=-1.0, input_upper=[1.0, 2.0],
        generator=torch.Generator().manual_seed(11),
    )  # fmt: skip
    x = torch.rand(7, 2)
    out = net(x)
    assert out.shape == (2, 7, 3)
    # same draws, same operations up to the batched product's summation order
    torch.testing.assert_close(out[1], ref(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(net.member(1)(x), ref(x), rtol=0, atol=0)
    assert not torch.allclose(out[0], out[1])
    # member m sees x[m] when each member gets its own rows
    xs = torch.rand(2, 5, 2)
    torch.testing.assert_close(net(xs)[0], net.member(0)(xs[0]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(n, 2\) or \(2, n, 2\)"):
        net(torch.rand(5, 3))


def test_batched_members_equal_separately_trained_mlps() -> None:
    """BatchedMLP + a summed per-member loss through the Trainer == each MLP trained alone
    through the Trainer with DataLoss(weights=w[m]) and the same weight decay."""
    x, y = _data()
    seeds = [0, 1, 2]
    rng = np.random.default_rng(5)
    w = rng.integers(0, 3, size=(3, len(x))).astype(float)  # bootstrap-like counts, zeros
    w[2, :20] = 0.0  # member 2 leaves the first 20 rows out
    phases = (hm.Adam(150, lr=1e-2),)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)

    ens = hm.BatchedEnsemble(
        hidden=(16, 16), n_members=3, bootstrap=False, phases=phases, weight_decay=1e-3,
        scale_inputs=False, scale_targets=False, calibration=None, dtype=torch.float64,
        progress=False,
    ).fit(x, y, member_weights=w)  # fmt: skip
    batched = ens.member_predictions(x)

    for m, seed in enumerate(seeds):
        net = hm.MLP(2, 2, (16, 16), generator=torch.Generator().manual_seed(seed))
        net = net.to(torch.float64)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # DataLoss holds its data in the default dtype
        try:
            data = hm.DataLoss(xt, yt, weights=w[m])
        finally:
            torch.set_default_dtype(previous)
        hm.Trainer(phases, seed=0, progress=False).fit(net, {"data": data, "l2": _L2(1e-3)})
        with torch.no_grad():
            alone = net(xt).numpy()
        np.testing.assert_allclose(batched[m], alone, rtol=0, atol=TOL)
        # the members differ from each other by far more than the tolerance
        other = batched[(m + 1) % 3]
        assert np.abs(other - alone).max() > 1e-2


def test_member_of_an_ensemble_is_the_one_member_ensemble() -> None:
    """With scaling and bootstrap on: member m of an ensemble seeded s is the one-member
    ensemble seeded s + m (its bootstrap is drawn from its own seed)."""
    x, y = _data(50, seed=1)
    groups = np.repeat(np.arange(10), 5)
    settings = dict(
        hidden=(8,), phases=(hm.Adam(100, lr=1e-2),), calibration=None,
        dtype=torch.float64, progress=False,
    )  # fmt: skip
    ens = hm.BatchedEnsemble(n_members=3, seed=4, **settings).fit(x, y, groups=groups)
    for m in range(3):
        alone = hm.BatchedEnsemble(n_members=1, seed=4 + m, **settings).fit(x, y, groups=groups)
        np.testing.assert_array_equal(alone.member_weights_[0], ens.member_weights_[m])
        np.testing.assert_allclose(
            ens.member_predictions(x)[m], alone.member_predictions(x)[0], rtol=0, atol=TOL
        )
    # group bootstrap: a group's rows share one count
    counts = ens.member_weights_.reshape(3, 10, 5)
    assert np.all(counts == counts[:, :, :1])
    assert not np.all(ens.member_weights_ == 1.0)


def test_prediction_calibration_over_groups_and_errors() -> None:
    x, y = _data(200, seed=2)
    groups = np.repeat(np.arange(20), 10)
    ens = hm.BatchedEnsemble(
        n_members=4, hidden=(16,), phases=(hm.Adam(200, lr=1e-2),), calibration=0.5,
        progress=False,
    ).fit(x, y, groups=groups)  # fmt: skip
    held = np.unique(groups[ens.calibration_index_])
    assert held.size == 10  # whole groups held out
    assert all(c.unit == "groups" and c.n_groups == 10 for c in ens.conformal_)
    assert set(ens.conformal_[0].per_group) == set(held.tolist())
    pred = ens.predict(x[:5])
    assert isinstance(pred, hm.EnsemblePrediction)
    assert pred.members.shape == (4, 5, 2) and pred.coverage == 0.9
    assert np.all(pred.lower <= pred.mean) and np.all(pred.mean <= pred.upper)
    narrower = ens.predict(x[:5], coverage=0.5)
    assert np.all(narrower.upper - narrower.lower <= pred.upper - pred.lower)

    # 2 held-out groups certify at most 2/3 < 0.9: an error, not a silent fallback
    few = hm.BatchedEnsemble(
        n_members=2, hidden=(4,), phases=(hm.Adam(5),), calibration=0.1, progress=False
    )
    with pytest.raises(hm.TooFewScoresError, match="conformal_fallback='rows'"):
        few.fit(x, y, groups=groups)
    few.set_params(conformal_fallback="rows")
    with pytest.warns(hm.ConformalFallbackWarning, match="not certified for a new group"):
        few.fit(x, y, groups=groups)
    assert few.conformal_[0].fallback and few.conformal_[0].unit == "rows"

    with pytest.raises(ValueError, match="line search"):
        hm.BatchedEnsemble(phases=(hm.Adam(5), hm.LBFGS(5))).fit(x, y)
    with pytest.raises(ValueError, match=r"member_weights must have shape \(200,\)"):
        hm.BatchedEnsemble(n_members=2, calibration=None).fit(x, y, member_weights=np.ones(3))
    w = np.ones((2, 200))
    w[1] = 0.0
    with pytest.raises(ValueError, match=r"member\(s\) \[1\] have zero weight"):
        hm.BatchedEnsemble(n_members=2, calibration=None, bootstrap=False).fit(
            x, y, member_weights=w
        )


def test_checks_run_on_the_members_mean_and_follow_the_policy() -> None:
    import hybridml as hm

    x = np.linspace(0.0, 1.0, 40)[:, None]
    y = np.sin(3 * x)
    checks = [
        hm.Bounds("y", lower=-1.5, upper=1.5, name="y bounded"),
        hm.Bounds("y", lower=5.0, upper=6.0, name="never true"),
    ]
    ens = hm.BatchedEnsemble(
        inputs=["x"], outputs=["y"], hidden=(8,), n_members=3, phases=(hm.Adam(30, lr=1e-2),),
        calibration=None, checks=checks, check_policy="record", progress=False,
    )  # fmt: skip
    pred = ens.fit(x, y).predict(x)
    assert [r.name for r in pred.report] == ["y bounded", "never true"]
    assert [r.passed for r in pred.report] == [True, False]
    with pytest.raises(hm.ConsistencyError, match="never true"):
        ens.predict(x, policy="raise")
    with pytest.raises(hm.InvalidArgumentError, match="check_policy must be"):
        hm.BatchedEnsemble(check_policy="ignore", progress=False).fit(x, y)
