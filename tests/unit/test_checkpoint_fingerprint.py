"""Checkpoints resume only their own fit: a checkpoint holds a fingerprint of the data and
settings, a different fit is refused with a CheckpointMismatchError that names the file,
says what differs and how to start fresh; the same fit still resumes bitwise; a
DeepEnsemble gives each member its own checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import hybridml as hm


def make_net(seed: int = 0, width: int = 8) -> nn.Module:
    """A small tanh MLP with a seeded init (the global RNG is not touched)."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))
    return net


class Collocation(hm.LossTerm):
    """Residual of u' = cos(x) at collocation points on [0, 1] that it can resample."""

    def __init__(self, n: int = 16) -> None:
        super().__init__()
        self.register_buffer("x", torch.linspace(0.0, 1.0, n)[:, None])

    def resample(self, generator: torch.Generator) -> None:
        self.x = torch.rand(self.x.shape, generator=generator, dtype=self.x.dtype)

    def forward(self, model: nn.Module) -> Tensor:
        x = self.x.clone().requires_grad_(True)
        (du,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
        return ((du - torch.cos(x)) ** 2).mean()


def losses(shift: float = 0.0) -> dict[str, hm.LossTerm]:
    x = torch.linspace(0.0, 1.0, 12)[:, None]
    return {"data": hm.DataLoss(x, torch.sin(x) + shift), "ode": Collocation()}


class InterruptAt:
    """Callback that raises KeyboardInterrupt after global step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, trainer: hm.Trainer, info: hm.StepInfo) -> None:
        if info.step == self.step:
            raise KeyboardInterrupt


def trainer(path: Path | None, callbacks=(), **kw) -> hm.Trainer:
    settings = {
        "phases": (hm.Adam(30, lr=1e-2, resample_every=10), hm.LBFGS(10)),
        "checkpoint": path,
        "checkpoint_every": 5,
        "seed": 1,
        "progress": False,
        "callbacks": callbacks,
    }
    settings.update(kw)
    return hm.Trainer(**settings)


def interrupted(path: Path) -> None:
    """An Adam phase interrupted after step 22: the checkpoint is at step 20."""
    with pytest.raises(KeyboardInterrupt):
        trainer(path, [InterruptAt(22)]).fit(make_net(), losses())


# ------------------------------------------------------------------------- Trainer


def test_a_different_fit_is_refused_with_a_message_that_says_what_differs(tmp_path: Path):
    path = tmp_path / "ckpt.pt"
    interrupted(path)
    with pytest.raises(hm.CheckpointMismatchError) as info:
        trainer(path).fit(make_net(), losses(shift=0.5), resume=True)
    message = str(info.value)
    assert str(path) in message
    assert "the data of loss term 'data'" in message
    assert "'ode'" not in message  # only what differs is named
    assert "delete the file" in message and "resume=False" in message
    # a hybridml error that callers catching ValueError still catch
    assert isinstance(info.value, hm.HybridMLError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seed": 2}, "the seed differs (checkpoint 1, this fit 2)"),
        ({"phases": (hm.Adam(30, lr=2e-2, resample_every=10), hm.LBFGS(10))}, "the phases"),
        ({"balancer": {"data": 1.0, "ode": 2.0}}, "the balancer"),
    ],
)
def test_other_settings_are_refused(tmp_path: Path, change: dict, named: str):
    path = tmp_path / "ckpt.pt"
    interrupted(path)
    with pytest.raises(hm.CheckpointMismatchError, match="belongs to another fit") as info:
        trainer(path, **change).fit(make_net(), losses(), resume=True)
    assert named in str(info.value)


def test_another_architecture_or_validation_data_is_refused(tmp_path: Path):
    path = tmp_path / "ckpt.pt"
    interrupted(path)
    relu = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))  # same shapes
    with pytest.raises(hm.CheckpointMismatchError, match="model's architecture"):
        trainer(path).fit(relu, losses(), resume=True)

    x = torch.linspace(0.0, 1.0, 5)[:, None]
    val_path = tmp_path / "val.pt"
    with pytest.raises(KeyboardInterrupt):
        trainer(val_path, [InterruptAt(22)]).fit(
            make_net(), losses(), val_losses={"val": hm.DataLoss(x, torch.sin(x))}
        )
    with pytest.raises(hm.CheckpointMismatchError, match="data of validation loss term 'val'"):
        trainer(val_path).fit(
            make_net(), losses(), val_losses={"val": hm.DataLoss(x, torch.cos(x))}, resume=True
        )


def test_the_same_fit_resumes_bitwise_with_fresh_or_reused_objects(tmp_path: Path):
    reference = make_net()
    h_ref = trainer(None).fit(reference, losses())

    # a fresh process: a model with other initial weights, fresh loss terms
    path = tmp_path / "fresh.pt"
    interrupted(path)
    model = make_net(seed=7)
    h = trainer(path).fit(model, losses(), resume=True)
    assert h.loss == h_ref.loss
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True)
    )

    # the same process: the model and the loss terms of the interrupted fit, the
    # collocation points already resampled (their values are not part of the fingerprint)
    path = tmp_path / "reused.pt"
    model, terms = make_net(), losses()
    with pytest.raises(KeyboardInterrupt):
        trainer(path, [InterruptAt(22)]).fit(model, terms)
    h = trainer(path).fit(model, terms, resume=True)
    assert h.loss == h_ref.loss
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True)
    )


def test_a_physical_parameters_value_is_not_part_of_the_fingerprint(tmp_path: Path):
    # its repr shows its value, which training changes and the checkpoint restores
    class Scaled(nn.Module):
        def __init__(self, init: float) -> None:
            super().__init__()
            self.net = make_net()
            self.k = hm.PhysicalParameter(init)

        def forward(self, x: Tensor) -> Tensor:
            return self.k() * self.net(x)

    path = tmp_path / "ckpt.pt"
    first = Scaled(1.0)
    trainer(path, phases=(hm.Adam(10, lr=1e-2),)).fit(first, losses())
    again = Scaled(3.0)
    trainer(path, phases=(hm.Adam(10, lr=1e-2),)).fit(again, losses(), resume=True)
    assert float(again.k) == float(first.k)


def test_a_checkpoint_without_fingerprint_resumes_with_a_warning(tmp_path: Path):
    path = tmp_path / "old.pt"
    interrupted(path)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["fingerprint"]  # as written before checkpoints had one
    torch.save(ckpt, path)
    with pytest.warns(hm.HybridMLWarning, match="no fingerprint"):
        h = trainer(path).fit(make_net(), losses(), resume=True)
    assert len(h) == 40


# ------------------------------------------------------------------------- estimators


def small(**kw: object) -> hm.HybridRegressor:
    settings: dict = {
        "hidden": (8, 8),
        "adam_steps": 60,
        "lr": 1e-2,
        "lbfgs_steps": 0,
        "progress": False,
    }
    settings.update(kw)
    return hm.HybridRegressor(**settings)


def test_refitting_a_regressor_on_other_data_is_refused(tmp_path: Path):
    path = tmp_path / "reg.pt"
    x = np.linspace(0.0, 1.0, 20)[:, None]
    first = small(checkpoint=str(path)).fit(x, np.sin(3 * x))
    # the same fit again resumes the finished checkpoint: bitwise the same model
    again = small(checkpoint=str(path)).fit(x, np.sin(3 * x))
    np.testing.assert_array_equal(np.asarray(again.predict(x)), np.asarray(first.predict(x)))
    assert again.history_.loss == first.history_.loss

    with pytest.raises(hm.CheckpointMismatchError) as info:
        small(checkpoint=str(path)).fit(x, np.cos(3 * x))
    message = str(info.value)
    assert str(path) in message and "the data of loss term 'data'" in message
    assert "another checkpoint path" in message
    with pytest.raises(hm.CheckpointMismatchError, match="the seed differs"):
        small(checkpoint=str(path), seed=3).fit(x, np.sin(3 * x))


def test_ensemble_members_get_their_own_checkpoints_and_differ(tmp_path: Path):
    path = tmp_path / "ens.pt"
    x = np.linspace(0.0, 1.0, 24)[:, None]
    y = np.sin(3 * x)
    ens = hm.DeepEnsemble(small(checkpoint=str(path)), n_members=3, calibration=None)
    pred = ens.fit(x, y).predict(x)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ens.member0.pt",
        "ens.member1.pt",
        "ens.member2.pt",
    ]
    assert [m.checkpoint for m in ens.members_] == [
        str(tmp_path / f"ens.member{i}.pt") for i in range(3)
    ]
    assert not ens.failures_
    # members with different seeds and bootstrap rows never agree exactly at every point
    assert (pred.upper - pred.lower > 0).all()
    for i in range(3):
        for j in range(i):
            assert not np.array_equal(pred.members[i], pred.members[j])
    # fitted again, every member resumes its own finished checkpoint: the same numbers
    again = hm.DeepEnsemble(small(checkpoint=str(path)), n_members=3, calibration=None)
    np.testing.assert_array_equal(again.fit(x, y).predict(x).members, pred.members)
    # the template itself is untouched (scikit-learn convention)
    assert ens.estimator.checkpoint == str(path)


def test_cross_validation_folds_and_active_learning_rounds_get_their_own_checkpoints(
    tmp_path: Path,
):
    # folds fit other data: with one shared checkpoint the second fold would be refused
    # (or, before fingerprints, silently return the first fold's model)
    path = tmp_path / "cv.pt"
    x = np.linspace(0.0, 1.0, 24)[:, None]
    y = np.sin(3 * x)
    groups = np.repeat(np.arange(3), 8)
    cv = hm.cross_validate(
        small(checkpoint=str(path)), x, y, groups=groups, cv=hm.LeaveOneGroupOut()
    )
    assert not cv.failures
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"cv.fold{k}.pt" for k in range(3)]
    again = hm.cross_validate(
        small(checkpoint=str(path)), x, y, groups=groups, cv=hm.LeaveOneGroupOut()
    )
    np.testing.assert_array_equal(
        again.predictions, cv.predictions
    )  # each fold resumed its own fit
    # a DeepEnsemble inside cross-validation: per fold and per member
    ens = hm.DeepEnsemble(small(checkpoint=str(tmp_path / "e.pt")), n_members=2, calibration=None)
    cv = hm.cross_validate(ens, x, y, groups=groups, cv=hm.LeaveOneGroupOut())
    assert not cv.failures
    assert len(list(tmp_path.glob("e.fold*.member*.pt"))) == 6
