"""Tests for the optimiser-phase contract (hybridml.Phase): a phase written here, outside the
library, trains, stops early and resumes; the defaults agree between the trainer, the
estimator and the study config."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor, nn

import hybridml as hm
from hybridml.study import load_config


def make_net(seed: int = 0, width: int = 16) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))
    return net


def data_losses() -> dict[str, hm.LossTerm]:
    x = torch.linspace(-1.0, 1.0, 48)[:, None]
    return {"data": hm.DataLoss(x, torch.sin(2.0 * x))}


@dataclass(frozen=True)
class SGD(hm.Phase):
    """Plain SGD with momentum: a user phase, nothing in the library knows it."""

    lr: float = 0.05
    momentum: float = 0.9

    name: ClassVar[str] = "sgd"

    def make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)


class InterruptAt:
    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, trainer: hm.Trainer, info: hm.StepInfo) -> None:
        if info.step == self.step:
            raise KeyboardInterrupt


def test_a_user_sgd_phase_trains_and_lowers_the_loss():
    model = make_net()
    history = hm.Trainer((SGD(300),), progress=False).fit(model, data_losses())
    assert history.phases == ("sgd",)
    assert len(history) == 300
    # 300 momentum-SGD steps on a 1-16-1 tanh net fitting sin(2x): the loss falls by far
    # more than half on any machine (it is ~0.7 at the start); a broken step would not move it
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert all(math.isfinite(v) for v in history.loss)


def test_a_user_phase_after_adam_resumes_from_a_checkpoint_bitwise(tmp_path: Path):
    def trainer(path: Path | None, callbacks=()) -> hm.Trainer:
        return hm.Trainer(
            (hm.Adam(20, lr=1e-2), SGD(30)),
            checkpoint=path,
            checkpoint_every=5,
            seed=3,
            progress=False,
            callbacks=callbacks,
        )

    reference = make_net()
    h_ref = trainer(None).fit(reference, data_losses())
    path = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):  # in the SGD phase, with momentum buffers
        trainer(path, [InterruptAt(37)]).fit(make_net(), data_losses())
    ckpt = torch.load(path, weights_only=True)
    assert (ckpt["phase_index"], ckpt["phase_step"]) == (1, 15)
    assert ckpt["optimizer"]["state"]  # the SGD momentum is in the checkpoint

    model = make_net(seed=5)  # other weights: all of them come from the checkpoint
    h = trainer(path).fit(model, data_losses(), resume=True)
    assert h.loss == h_ref.loss
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True)
    )


@dataclass(frozen=True)
class StopBelow(hm.Phase):
    """SGD that declares convergence once the loss is below ``threshold``."""

    lr: float = 0.05
    threshold: float = 0.0

    name: ClassVar[str] = "stop_below"

    def make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=0.9)

    def step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Tensor], index: int
    ) -> hm.Converged | None:
        loss = float(optimizer.step(closure))  # type: ignore[arg-type]
        return hm.Converged("loss below threshold") if loss < self.threshold else None


def test_a_phase_ends_early_with_converged_and_the_event_is_recorded():
    first = hm.Trainer((SGD(300),), progress=False).fit(make_net(), data_losses())
    threshold = first.loss[100]  # reached after ~100 steps of the same run
    history = hm.Trainer((StopBelow(300, threshold=threshold),), progress=False).fit(
        make_net(), data_losses()
    )
    assert len(history) < 300
    (event,) = history.events
    assert event["event"] == "stop_below_converged"
    assert event["reason"] == "loss below threshold"
    assert event["iterations"] == len(history)  # the converged step is recorded
    assert history.loss[-1] < threshold


def test_a_step_that_never_calls_the_closure_is_reported():
    @dataclass(frozen=True)
    class Lazy(SGD):
        name: ClassVar[str] = "lazy"

        def step(self, optimizer, closure, index):
            return None

    with pytest.raises(RuntimeError, match=r"Lazy.step did not call the closure"):
        hm.Trainer((Lazy(3),), progress=False).fit(make_net(), data_losses())


def test_phase_contract_errors_are_clear():
    with pytest.raises(TypeError, match="abstract"):
        hm.Phase(10, 0.1)  # type: ignore[abstract]

    class Nameless(hm.Phase):
        def make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
            return torch.optim.SGD(params, lr=self.lr)

    with pytest.raises(TypeError, match="class attribute name"):
        Nameless(10, 0.1)
    with pytest.raises(ValueError, match="SGD: steps"):
        SGD(-1)
    with pytest.raises(ValueError, match="SGD: dtype"):
        SGD(5, dtype=torch.int64)
    with pytest.raises(TypeError, match=r"each phase must be a hybridml.Phase.*'adam'"):
        hm.Trainer(("adam",)).fit(make_net(), data_losses())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"phases must be a sequence.*phases=\(SGD"):
        hm.Trainer(SGD(5)).fit(make_net(), data_losses())  # type: ignore[arg-type]


def test_built_in_phases_share_the_base_fields():
    assert all(isinstance(p, hm.Phase) for p in (hm.Adam(1), hm.LBFGS(1), hm.BFGS(1)))
    assert (hm.Adam(1).dtype, hm.LBFGS(1).dtype, hm.BFGS(1).dtype) == (
        None,
        torch.float64,
        torch.float64,
    )
    assert not hm.Adam.freezes_weights and hm.LBFGS.freezes_weights and hm.BFGS.freezes_weights
    assert hm.Adam(7, 0.5) == hm.Adam(steps=7, lr=0.5)  # steps and lr stay positional
    with pytest.raises(TypeError):
        hm.LBFGS(7, 0.5)  # type: ignore[call-arg]  # lr stays keyword-only


def test_adam_in_float64_runs_in_float64_and_converts_back():
    seen: list[torch.dtype] = []

    def record(trainer: hm.Trainer, info: hm.StepInfo) -> None:
        seen.append(next(model.parameters()).dtype)

    model = make_net()
    hm.Trainer((hm.Adam(3, dtype=torch.float64),), progress=False, callbacks=[record]).fit(
        model, data_losses()
    )
    assert seen == [torch.float64] * 3
    assert next(model.parameters()).dtype == torch.float32


# ----------------------------------------------------------------------------- defaults


def test_trainer_estimator_and_config_share_the_default_phases(tmp_path: Path):
    defaults = hm.default_phases()
    assert defaults == (hm.Adam(2000, lr=1e-3), hm.LBFGS(200))
    assert tuple(hm.Trainer().phases) == defaults
    est = hm.HybridRegressor()
    assert (est.adam_steps, est.lr, est.quasi_newton) == (2000, 1e-3, "lbfgs")
    assert est.quasi_newton_steps is None and est.lbfgs_steps is None  # None: the default 200
    (tmp_path / "d.csv").write_text("t [s],x [m]\n0,1\n1,2\n", encoding="utf-8")
    config = tmp_path / "study.toml"
    config.write_text(
        '[study]\nname = "d"\n[data]\npath = "d.csv"\ninputs = ["t [s]"]\noutputs = ["x [m]"]\n',
        encoding="utf-8",
    )
    training = load_config(config).training
    assert hm.default_phases(training.adam_steps, training.lbfgs_steps, lr=training.lr) == (
        defaults
    )
    assert hm.default_phases(10, 0) == (hm.Adam(10),)  # 0 quasi-Newton steps: no phase
    assert hm.default_phases(10, 5, quasi_newton="bfgs") == (hm.Adam(10), hm.BFGS(5))


def regression() -> tuple[Tensor, Tensor]:
    x = torch.linspace(0.0, 1.0, 24)[:, None]
    return x, torch.sin(3.0 * x)


def test_estimator_phases_win_and_the_shortcuts_build_the_same_phases():
    x, y = regression()
    common: dict[str, Any] = {"hidden": (8,), "progress": False}
    est = hm.HybridRegressor(phases=(SGD(7), hm.BFGS(3)), adam_steps=-5, **common).fit(x, y)
    assert est.history_.phases == ("sgd", "bfgs")  # phases win; adam_steps is not looked at
    assert sum(p == "sgd" for p in est.history_.phase) == 7

    # quasi_newton_steps, and lbfgs_steps as its alias, give the same numbers
    a = hm.HybridRegressor(adam_steps=10, quasi_newton_steps=4, **common).fit(x, y)
    b = hm.HybridRegressor(adam_steps=10, lbfgs_steps=4, **common).fit(x, y)
    c = hm.HybridRegressor(phases=(hm.Adam(10), hm.LBFGS(4)), **common).fit(x, y)
    assert a.history_.phases == ("adam", "lbfgs")
    assert a.history_.loss == b.history_.loss == c.history_.loss
    d = hm.HybridRegressor(adam_steps=10, quasi_newton_steps=4, quasi_newton="bfgs", **common)
    assert d.fit(x, y).history_.phases == ("adam", "bfgs")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"phases": ("adam", "lbfgs")},
            TypeError,
            r"phases\[0\] is 'adam' \(str\)",
        ),
        ({"phases": SGD(5)}, TypeError, "phases must be a sequence of hybridml.Phase"),
        ({"phases": ()}, ValueError, "phases is empty"),
        ({"quasi_newton_steps": 5, "lbfgs_steps": 6}, ValueError, r"disagree.*give one"),
        ({"lbfgs_steps": -1}, ValueError, r"HybridRegressor: lbfgs_steps must be an int >= 0"),
        ({"quasi_newton_steps": 2.5}, ValueError, r"quasi_newton_steps must be an int"),
        ({"adam_steps": "10"}, ValueError, r"HybridRegressor: adam_steps must be an int"),
        ({"quasi_newton": "lbgfs"}, ValueError, r"quasi_newton must be 'lbfgs' or 'bfgs'"),
    ],
)
def test_estimator_phase_settings_errors_name_the_parameter(kwargs, error, match):
    x, y = regression()
    with pytest.raises(error, match=match):
        hm.HybridRegressor(hidden=(4,), progress=False, **kwargs).fit(x, y)


def _objective(x: Tensor, shift: float) -> Tensor:
    # a convex quadratic whose minimum moves with shift (new collocation points)
    scales = torch.arange(1, x.numel() + 1, dtype=x.dtype)
    return (scales * (x - shift) ** 2).sum()


@pytest.mark.parametrize("phase_cls", [hm.BFGS, hm.LBFGS])
def test_quasi_newton_keeps_its_curvature_across_a_resample(phase_cls) -> None:
    """After a redraw (``resample_every``) the next iteration adds no curvature pair built
    from two objectives; the memory of the earlier pairs is kept."""

    def run(resample_every: int | None) -> dict[str, Any]:
        x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        phase = phase_cls(10, resample_every=resample_every)
        opt = phase.make_optimizer([x])
        shift = [1.0]

        def closure() -> Tensor:
            opt.zero_grad()
            loss = _objective(x, shift[0])
            loss.backward()
            return loss.detach()

        for k in range(3):
            phase.step(opt, closure, k)
        before = {
            k: v.clone() if isinstance(v, Tensor) else list(v) if isinstance(v, list) else v
            for k, v in opt.state[x].items()
        }
        shift[0] = 0.8  # the objective changes, as when the points are redrawn
        phase.step(opt, closure, 3)
        return {"before": before, "after": opt.state[x]}

    kept = run(resample_every=3)
    mixed = run(resample_every=None)
    if phase_cls is hm.BFGS:
        # the inverse-Hessian approximation is the same after the iteration that followed
        # the redraw; without the redraw step it was updated with the mixed pair
        assert torch.equal(kept["after"]["H"], kept["before"]["H"])
        assert not torch.equal(mixed["after"]["H"], mixed["before"]["H"])
    else:
        assert len(kept["after"]["old_dirs"]) == len(kept["before"]["old_dirs"])
        assert len(mixed["after"]["old_dirs"]) == len(mixed["before"]["old_dirs"]) + 1
    assert hm.BFGS(5).resamples(0) is False and hm.BFGS(5, resample_every=2).resamples(4)
