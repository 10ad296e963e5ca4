"""Simulator pre-training + fine-tuning with frozen layers, and synthetic-data augmentation:
freezing is exact, bad specs are clear errors, the mixed loss has the promised weights, and
with a mis-specified simulator and few measurements both beat training from scratch."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import hybridml as hm
from hybridml import (
    augmented_losses,
    layer_names,
    mixed_data_loss,
    pretrain_finetune,
)


def truth(x: np.ndarray) -> np.ndarray:
    return np.sin(4 * np.pi * x) + 0.5 * x


def simulator(x: np.ndarray) -> np.ndarray:
    """Mis-specified on purpose: misses the linear drift 0.5 x (RMSE 0.29 on [0, 1])."""
    return np.sin(4 * np.pi * x)


GRID = np.linspace(0.0, 1.0, 201)[:, None]
X_SIM = np.linspace(0.0, 1.0, 200)[:, None]


def net(seed: int = 0) -> hm.MLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return hm.MLP(1, 1, (32, 32), input_lower=0.0, input_upper=1.0)


def rmse(model: torch.nn.Module) -> float:
    with torch.no_grad():
        pred = model(torch.as_tensor(GRID, dtype=torch.get_default_dtype())).numpy()
    return float(np.sqrt(np.mean((pred - truth(GRID)) ** 2)))


def value(term: hm.LossTerm, model: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(term(model))


def quick(steps: int = 20, lr: float = 1e-3) -> hm.Trainer:
    return hm.Trainer((hm.Adam(steps, lr=lr),), progress=False)


def test_layer_names_and_exact_freezing() -> None:
    model = net()
    assert layer_names(model) == ["layers.0", "layers.2", "layers.4"]
    before = copy.deepcopy(model.state_dict())
    xm, ym = np.array([[0.1], [0.5]]), np.array([[1.0], [2.0]])
    res = pretrain_finetune(
        model, None, {"data": hm.DataLoss(xm, ym)}, freeze=2, unfreeze=[], finetuner=quick()
    )
    after = model.state_dict()
    for name in ("layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"):
        assert torch.equal(before[name], after[name]), name  # frozen: bitwise unchanged
    assert not torch.equal(before["layers.4.weight"], after["layers.4.weight"])
    assert res.frozen == [["layers.0", "layers.2"]] and res.pretrain_history is None
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_gradual_unfreezing_thaws_from_the_output_side() -> None:
    xm, ym = np.array([[0.1], [0.5]]), np.array([[1.0], [2.0]])
    data = {"data": hm.DataLoss(xm, ym)}
    model = net()
    before = copy.deepcopy(model.state_dict())
    # freeze 2, then unfreeze 1: the output-side frozen layer (layers.2) thaws, layers.0 not
    res = pretrain_finetune(model, None, data, freeze=2, unfreeze=[1], finetuner=quick())
    assert res.frozen == [["layers.0", "layers.2"], ["layers.0"]]
    assert torch.equal(before["layers.0.weight"], model.state_dict()["layers.0.weight"])
    assert not torch.equal(before["layers.2.weight"], model.state_dict()["layers.2.weight"])
    # a further stage by name thaws the rest; one trainer per stage; with pre-training
    res = pretrain_finetune(
        model,
        {"sim": hm.DataLoss(X_SIM, simulator(X_SIM))},
        data,
        freeze=["layers.0", "layers.2"],
        unfreeze=[1, ["layers.0"]],
        pretrainer=quick(),
        finetuner=[quick(), quick(), quick()],
    )
    assert res.frozen == [["layers.0", "layers.2"], ["layers.0"], []]
    assert len(res.finetune_histories) == 3 and res.pretrain_history is not None


def test_bad_freeze_specs_are_clear_errors() -> None:
    data = {"data": hm.DataLoss([[0.0], [1.0]], [[0.0], [1.0]])}
    with pytest.raises(ValueError, match=r"'layers.9'.*layers.0, layers.2, layers.4"):
        pretrain_finetune(net(), None, data, freeze=["layers.9"], finetuner=quick())
    with pytest.raises(ValueError, match="every parameter frozen"):
        pretrain_finetune(net(), None, data, freeze=3, finetuner=quick())
    with pytest.raises(ValueError, match=r"unfreeze\[0\]=2 but only 1 layer"):
        pretrain_finetune(net(), None, data, freeze=1, unfreeze=[2], finetuner=quick())
    with pytest.raises(ValueError, match="2 finetuner"):
        pretrain_finetune(net(), None, data, freeze=1, finetuner=[quick(), quick()])


def test_mixed_loss_has_the_requested_share() -> None:
    # For any model, the mixed loss is (1 - s) MSE(measured) + s MSE(synthetic), whatever
    # the numbers of points (5 vs 200). Tolerance: float32 rounding of sums of ~200 terms.
    model = net(3)
    xm = np.linspace(0.0, 1.0, 5)[:, None]
    ym, ys = truth(xm), simulator(X_SIM)
    mse_m = value(hm.DataLoss(xm, ym), model)
    mse_s = value(hm.DataLoss(X_SIM, ys), model)
    for share in (0.0, 0.2, 0.7):
        mixed = value(mixed_data_loss(xm, ym, X_SIM, ys, synthetic_share=share), model)
        assert mixed == pytest.approx((1 - share) * mse_m + share * mse_s, rel=1e-5)
    with pytest.raises(ValueError, match=r"synthetic_share must lie in \[0, 1\)"):
        mixed_data_loss(xm, ym, X_SIM, ys, synthetic_share=1.0)
    with pytest.raises(ValueError, match="1 inputs and 1 outputs but synthetic data has 2"):
        mixed_data_loss(xm, ym, np.zeros((3, 2)), np.zeros((3, 1)))
    terms = augmented_losses(xm, ym, X_SIM, ys)
    assert set(terms) == {"data", "synthetic"}  # separate terms, for a balancer
    assert value(terms["synthetic"], model) == pytest.approx(mse_s, rel=1e-6)
    assert set(augmented_losses(xm, ym, X_SIM, ys, synthetic_share=0.3)) == {"data"}


def test_simulator_knowledge_beats_scratch_with_few_measurements() -> None:
    # Truth sin(4 pi x) + 0.5 x; the simulator misses the drift (RMSE 0.29). With 6 random
    # measurements a network from scratch cannot resolve two periods (measured RMSE 0.5-1.5
    # for these seeds), while pre-training on the simulator and fine-tuning the last layers
    # (freeze 2, then unfreeze 1) learns the drift (measured 0.016-0.026), and augmenting the
    # measurements with simulator samples (share 0.3) stays near the simulator's shape.
    # Bounds with a margin of 3x or more: fine-tuned < 0.1 (and below the simulator alone),
    # scratch error > 3x fine-tuned; augmented < scratch.
    pretrained = net()
    hm.Trainer((hm.Adam(300, lr=1e-2), hm.LBFGS(100)), progress=False).fit(
        pretrained, {"sim": hm.DataLoss(X_SIM, simulator(X_SIM))}
    )
    sim_error = float(np.sqrt(np.mean((simulator(GRID) - truth(GRID)) ** 2)))
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        xm = np.sort(rng.uniform(0.0, 1.0, (6, 1)), axis=0)
        measured = {"data": hm.DataLoss(xm, truth(xm))}
        tuned = copy.deepcopy(pretrained)
        pretrain_finetune(
            tuned,
            None,
            measured,
            freeze=2,
            unfreeze=[1],
            finetuner=hm.Trainer((hm.Adam(200, lr=1e-3),), progress=False),
        )
        scratch = net()
        hm.Trainer((hm.Adam(300, lr=1e-2), hm.LBFGS(100)), progress=False).fit(scratch, measured)
        augmented = net()
        hm.Trainer((hm.Adam(300, lr=1e-2), hm.LBFGS(100)), progress=False).fit(
            augmented,
            augmented_losses(xm, truth(xm), X_SIM, simulator(X_SIM), synthetic_share=0.3),
        )
        e_tuned, e_scratch, e_aug = rmse(tuned), rmse(scratch), rmse(augmented)
        assert e_tuned < min(0.1, sim_error), (seed, e_tuned)
        assert e_scratch > 3 * e_tuned, (seed, e_scratch, e_tuned)
        assert e_aug < e_scratch, (seed, e_aug, e_scratch)


def test_augmentation_input_errors_name_the_argument_and_row() -> None:
    xm, ym = np.array([[0.1], [0.5]]), np.array([[1.0], [2.0]])
    xs = X_SIM.copy()
    xs[7, 0] = np.nan
    with pytest.raises(hm.DataError, match=r"\(synthetic\): x has the value nan at row 7"):
        mixed_data_loss(xm, ym, xs, simulator(X_SIM))
    with pytest.raises(hm.DataError, match=r"\(measured\): x has 2 rows but y has 1"):
        augmented_losses(xm, ym[:1], X_SIM, simulator(X_SIM))
    # the data term reads tensors and lists like arrays: the same loss either way
    model = net()
    as_lists = value(hm.DataLoss(xm.tolist(), ym.tolist()), model)
    assert as_lists == value(hm.DataLoss(torch.as_tensor(xm), torch.as_tensor(ym)), model)
