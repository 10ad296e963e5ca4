"""Tests for hybridml's Trainer: phases, float64 L-BFGS, seeding, early stopping,
non-finite losses, checkpoints and resume, history, callbacks."""

from __future__ import annotations

import copy
import itertools
import math
import statistics
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from hybridml.losses import DataLoss, LossTerm
from hybridml.training import (
    BFGS,
    LBFGS,
    Adam,
    EarlyStopping,
    History,
    NonFiniteLossError,
    ReLoBRaLo,
    StepInfo,
    Trainer,
)


def make_net(seed: int = 0, width: int = 16, n_in: int = 1) -> nn.Module:
    """A small tanh MLP with a seeded init (the global RNG is not touched)."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(n_in, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))
    return net


class Poisson(LossTerm):
    """Residual of u'' = -pi^2 sin(pi x) on [0, 1] at collocation points (resamplable)."""

    def __init__(self, n: int = 32) -> None:
        super().__init__()
        self.register_buffer("x", torch.linspace(0.0, 1.0, n)[:, None])

    def resample(self, generator: torch.Generator) -> None:
        self.x = torch.rand(self.x.shape, generator=generator, dtype=self.x.dtype)

    def forward(self, model: nn.Module) -> Tensor:
        x = self.x.clone().requires_grad_(True)
        u = model(x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        (d2u,) = torch.autograd.grad(du.sum(), x, create_graph=True)
        return ((d2u + math.pi**2 * torch.sin(math.pi * x)) ** 2).mean()


class TurnsNaN(DataLoss):
    """A data loss that returns NaN from its ``after``-th evaluation on."""

    def __init__(self, x: Tensor, y: Tensor, after: int) -> None:
        super().__init__(x, y)
        self.after = after
        self.calls = 0

    def forward(self, model: nn.Module) -> Tensor:
        self.calls += 1
        out = super().forward(model)
        return out * float("nan") if self.calls > self.after else out


def pinn_losses() -> dict[str, LossTerm]:
    xb = torch.tensor([[0.0], [1.0]])
    return {"pde": Poisson(32), "bc": DataLoss(xb, torch.zeros(2, 1))}


def regression_data() -> tuple[Tensor, Tensor]:
    x = torch.linspace(-1.0, 1.0, 64)[:, None]
    return x, torch.sin(3.0 * x) + 0.5 * x**2


def flat(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


# ----------------------------------------------------------------------------- L-BFGS


def test_lbfgs_after_adam_runs_every_iteration_in_float64_and_beats_more_adam():
    x, y = regression_data()
    model = make_net()
    param_log: list[Tensor] = []

    def log_params(trainer: Trainer, info: StepInfo) -> None:
        if info.phase == "lbfgs":
            param_log.append(flat(model).clone())

    adam_steps, lbfgs_steps = 150, 80
    history = Trainer(
        phases=(Adam(adam_steps, lr=1e-2), LBFGS(lbfgs_steps)),
        progress=False,
        callbacks=[log_params],
    ).fit(model, {"data": DataLoss(x, y)})

    phases = history.phase
    first = phases.index("lbfgs")
    adam_end, lbfgs_losses = history.loss[first - 1], history.loss[first:]
    # every requested iteration ran (no early exit, which float32 strong-Wolfe is prone to)
    assert len(lbfgs_losses) == lbfgs_steps
    assert not [e for e in history.events if e["event"] == "lbfgs_converged"]
    # each recorded L-BFGS step is a real iteration: the parameters moved every time
    assert all(not torch.equal(a, b) for a, b in itertools.pairwise(param_log))
    # strong-Wolfe line searches guarantee a decrease at every iteration
    assert all(b <= a for a, b in itertools.pairwise(lbfgs_losses))
    # substantial improvement over where Adam stopped (observed 1800x-4500x over init seeds
    # 0-2; 50x leaves a wide margin)
    assert lbfgs_losses[-1] < adam_end / 50
    # ... and over spending the same number of steps on more Adam (observed 400x-800x)
    more_adam = make_net()
    h_adam = Trainer(phases=(Adam(adam_steps + lbfgs_steps, lr=1e-2),), progress=False).fit(
        more_adam, {"data": DataLoss(x, y)}
    )
    assert lbfgs_losses[-1] < min(h_adam.loss) / 20
    # the user's model keeps its dtype; the phase itself ran in float64
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_float64_lbfgs_keeps_iterating_on_a_pinn_after_adam():
    # On this PINN (second derivatives in the loss), float32 strong-Wolfe L-BFGS after the
    # same Adam phase stopped after 63 of 100 iterations on a zero step when this test was
    # written (torch 2.13, CPU). The float64 phase runs every iteration.
    model = make_net(seed=0)
    history = Trainer(phases=(Adam(300, lr=1e-2), LBFGS(100)), progress=False).fit(
        model, pinn_losses()
    )
    first = history.phase.index("lbfgs")
    assert len(history) - first == 100
    assert not [e for e in history.events if e["event"] == "lbfgs_converged"]
    # observed: 2.6e-4 -> 1.8e-7 (1400x); 100x leaves margin for other platforms
    assert history.loss[-1] < history.loss[first] / 100


def test_lbfgs_phase_runs_in_float64_and_converts_back():
    seen: list[torch.dtype] = []

    class DtypeProbe(DataLoss):
        def forward(self, model: nn.Module) -> Tensor:
            seen.append(next(model.parameters()).dtype)
            assert self.x.dtype == seen[-1]  # the loss term's data was converted too
            return super().forward(model)

    x, y = regression_data()
    model = make_net()
    term = DtypeProbe(x, y)
    Trainer(phases=(Adam(3), LBFGS(3)), progress=False).fit(model, {"data": term})
    assert set(seen[:3]) == {torch.float32}
    assert set(seen[3:]) == {torch.float64}
    assert next(model.parameters()).dtype == torch.float32
    assert term.x.dtype == torch.float32


def test_lbfgs_stops_early_only_when_converged_and_records_it():
    # a convex quadratic in 2 parameters: L-BFGS converges exactly within a few iterations
    model = nn.Linear(1, 1)
    x = torch.tensor([[0.0], [1.0], [2.0]])
    history = Trainer(phases=(LBFGS(100),), progress=False).fit(
        model, {"data": DataLoss(x, 2.0 * x + 1.0)}
    )
    events = [e for e in history.events if e["event"] == "lbfgs_converged"]
    assert len(events) == 1
    assert len(history) < 100
    assert events[0]["iterations"] == len(history)
    # converged to the exact solution (float64 phase; 1e-6 is far above its rounding)
    assert torch.allclose(model.weight, torch.tensor([[2.0]]), atol=1e-6)
    assert torch.allclose(model.bias, torch.tensor([1.0]), atol=1e-6)


# ----------------------------------------------------------------------------- BFGS


def test_bfgs_phase_beats_lbfgs_on_a_pinn_and_converts_back():
    # the same Adam phase, then 150 iterations of each quasi-Newton method (float64), on the
    # nets of five seeds. The end point of one run depends on the CPU's floating-point
    # kernels (the trajectories are chaotic): observed here (torch 2.13, x86-64) the ratio
    # L-BFGS / BFGS is 5, 23, 10, 205 and 98 for seeds 0-4, while another machine measured
    # 1.3 for seed 0. So the property asserted is the median ratio over the five seeds
    # (>= 3: it needs three seeds where self-scaled BFGS wins by 3x; plain BFGS, without
    # the scaling, ends within 2.2x of L-BFGS on every seed, so a broken scaling fails it)
    ratios = []
    for seed in range(5):
        losses = {}
        for phase in (LBFGS(150), BFGS(150)):
            model = make_net(seed=seed)
            history = Trainer(phases=(Adam(300, lr=1e-2), phase), progress=False).fit(
                model, pinn_losses()
            )
            first = history.phase.index(phase.name)
            qn = history.loss[first:]
            assert len(qn) == 150  # every iteration ran: no early stop
            # strong-Wolfe line searches decrease the loss at every iteration
            assert all(b <= a for a, b in itertools.pairwise(qn))
            # both methods take the loss far below where Adam left it (observed: 50x to
            # 10^4x; 10x leaves room for any machine's trajectory)
            assert qn[-1] < history.loss[first - 1] / 10
            assert all(p.dtype == torch.float32 for p in model.parameters())
            losses[phase.name] = qn[-1]
        ratios.append(losses["lbfgs"] / losses["bfgs"])
    assert statistics.median(ratios) >= 3, ratios


def test_bfgs_phase_refuses_models_above_max_params():
    model = make_net(width=16)  # 321 parameters
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"321 trainable parameters, more than max_params=100"):
        Trainer(phases=(Adam(5), BFGS(5, max_params=100)), progress=False).fit(model, pinn_losses())
    # refused before any training: the Adam phase did not run
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": -1}, "steps must be an int >= 0"),
        ({"steps": 5, "lr": 0.0}, "lr must be finite and > 0"),
        ({"steps": 5, "max_params": 0}, "max_params must be an int >= 1"),
        ({"steps": 5, "dtype": torch.int32}, "dtype must be a floating-point"),
        ({"steps": 5, "scaling": "dfp"}, "scaling must be 'al-baali' or None"),
        ({"steps": 5, "tolerance_grad": -1.0}, "tolerance_grad must be a number >= 0"),
    ],
)
def test_bfgs_phase_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BFGS(**kwargs)


def test_bfgs_phase_resumes_from_a_checkpoint_bitwise(tmp_path: Path):
    def trainer(path: Path | None, callbacks=()) -> Trainer:
        return Trainer(
            phases=(Adam(20, lr=1e-2), BFGS(30)),
            checkpoint=path,
            checkpoint_every=10,
            seed=1,
            progress=False,
            callbacks=callbacks,
        )

    template = make_net()
    reference = copy.deepcopy(template)
    h_ref = trainer(None).fit(reference, pinn_losses())
    path = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):  # in the BFGS phase, with its matrix saved
        trainer(path, [InterruptAt(45)]).fit(copy.deepcopy(template), pinn_losses())
    ckpt = torch.load(path, weights_only=True)
    assert (ckpt["phase_index"], ckpt["phase_step"]) == (1, 20)
    model = make_net(seed=99)
    h = trainer(path).fit(model, pinn_losses(), resume=True)
    assert h.loss == h_ref.loss
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True)
    )


# ----------------------------------------------------------------------------- seeding


def run_seeded(seed: int | None) -> tuple[History, nn.Module]:
    model = make_net()  # (nn.Linear's default init draws from the global RNG)
    losses = pinn_losses()
    trainer = Trainer(
        phases=(Adam(30, lr=1e-2, resample_every=5), LBFGS(10)),
        balancer=ReLoBRaLo(expected_rho=0.5),
        seed=seed,
        progress=False,
    )
    rng_before = torch.get_rng_state()
    history = trainer.fit(model, losses)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the fit left it alone
    return history, model


def test_same_seed_gives_bitwise_same_numbers():
    h1, m1 = run_seeded(7)
    torch.rand(5)  # moving the global RNG must not matter
    h2, m2 = run_seeded(7)
    assert h1.loss == h2.loss
    assert h1.terms == h2.terms
    assert h1.weights == h2.weights
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))
    h3, _ = run_seeded(8)
    # another seed draws other collocation points, so the PDE losses differ
    assert h3.terms["pde"] != h1.terms["pde"]


def test_seed_none_runs_without_touching_global_rng():
    history, _ = run_seeded(None)  # asserts the global RNG state is unchanged
    assert len(history) == 40


# ----------------------------------------------------------------------------- early stopping


def test_early_stopping_stops_and_restores_best_validation_weights():
    # 12 noisy points, a wide net and a large learning rate: it overfits quickly
    gen = torch.Generator().manual_seed(3)
    x = torch.linspace(-1.0, 1.0, 12)[:, None]
    y = torch.sin(3.0 * x) + 0.3 * torch.randn(x.shape, generator=gen)
    x_val = torch.linspace(-0.95, 0.95, 50)[:, None]
    val = DataLoss(x_val, torch.sin(3.0 * x_val))
    model = make_net(width=64)
    budget = 3000
    trainer = Trainer(
        phases=(Adam(budget, lr=1e-2),),
        early_stopping=EarlyStopping(patience=5, every=10),
        progress=False,
    )
    history = trainer.fit(model, {"data": DataLoss(x, y)}, val_losses={"val": val})
    assert history.stopped_early
    assert len(history) < budget
    assert history.best_val is not None
    # it really stopped on a rising validation loss: the last evaluations are all worse
    assert min(history.val_loss[-5:]) > history.best_val
    # the restored weights are those of the best evaluation: evaluating them again is the
    # same computation on the same weights, so the value matches exactly
    assert float(val(model).detach()) == history.best_val
    assert history.best_val_step == next(
        e["step"] for e in history.events if e["event"] == "restored_best"
    )


def test_validation_loss_is_evaluated_in_both_phases():
    x, y = regression_data()
    val = DataLoss(x[::3], y[::3])
    history = Trainer(
        phases=(Adam(20), LBFGS(10)), early_stopping=EarlyStopping(every=5), progress=False
    ).fit(make_net(), {"data": DataLoss(x, y)}, val_losses={"val": val})
    # every 5 global steps (0..25) plus once at the end (step 30)
    assert history.val_step == [0, 5, 10, 15, 20, 25, 30]
    assert val.x.dtype == torch.float32


# ----------------------------------------------------------------------------- NaN / inf


def test_nan_loss_raises_names_the_term_and_restores_best_weights():
    x, y = regression_data()
    model = make_net()
    bad = TurnsNaN(x, y, after=25)
    other = DataLoss(x, 0.5 * y)
    trainer = Trainer(phases=(Adam(100, lr=1e-2),), progress=False)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit(model, {"other": other, "blowup": bad})
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.term == "blowup" and err.step == 25 and err.phase == "adam"
    message = str(err)
    assert "'blowup'" in message and "step 25" in message and "'adam'" in message
    assert "learning rate" in message and "inputs" in message
    history = trainer.history_
    assert len(history) == 25  # the steps before the NaN are recorded
    # the weights with the lowest (unweighted) training loss were restored: evaluating
    # them again reproduces that recorded loss exactly (same computation, same weights)
    sums = [a + b for a, b in zip(history.terms["other"], history.terms["blowup"], strict=True)]
    restored = other(model).item() + DataLoss.forward(bad, model).item()
    assert restored == min(sums)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_during_lbfgs_restores_weights_and_dtype():
    x, y = regression_data()
    model = make_net()
    bad = TurnsNaN(x, y, after=25)
    with pytest.raises(NonFiniteLossError, match=r"'data'.*'lbfgs'"):
        Trainer(phases=(Adam(20), LBFGS(50)), progress=False).fit(model, {"data": bad})
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert bad.x.dtype == torch.float32
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ----------------------------------------------------------------------------- checkpoints


class InterruptAt:
    """Callback that raises KeyboardInterrupt once, after global step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, trainer: Trainer, info: StepInfo) -> None:
        if info.step == self.step:
            raise KeyboardInterrupt


def make_trainer(path: Path | None, callbacks=()) -> Trainer:
    return Trainer(
        phases=(Adam(40, lr=1e-2, resample_every=10), LBFGS(30)),
        balancer=ReLoBRaLo(expected_rho=0.5),
        checkpoint=path,
        checkpoint_every=10,
        seed=1,
        progress=False,
        callbacks=callbacks,
    )


def test_interrupted_and_resumed_run_matches_uninterrupted_bitwise(tmp_path: Path):
    template = make_net()
    reference = copy.deepcopy(template)
    h_ref = make_trainer(None).fit(reference, pinn_losses())

    path = tmp_path / "run" / "ckpt.pt"
    model = copy.deepcopy(template)
    with pytest.raises(KeyboardInterrupt):  # in the Adam phase
        make_trainer(path, [InterruptAt(25)]).fit(model, pinn_losses())
    ckpt = torch.load(path, weights_only=True)
    assert (ckpt["phase_index"], ckpt["phase_step"]) == (0, 20)

    # resume in a "new process": fresh model object with other weights, fresh loss terms
    model = make_net(seed=99)
    with pytest.raises(KeyboardInterrupt):  # in the L-BFGS phase
        make_trainer(path, [InterruptAt(55)]).fit(model, pinn_losses(), resume=True)
    assert next(model.parameters()).dtype == torch.float32  # converted back on interrupt
    ckpt = torch.load(path, weights_only=True)
    assert (ckpt["phase_index"], ckpt["phase_step"]) == (1, 10)

    model = make_net(seed=98)
    h = make_trainer(path).fit(model, pinn_losses(), resume=True)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True)
    )
    assert h.loss == h_ref.loss
    assert h.weights == h_ref.weights
    assert h.step == list(range(70))
    # written atomically: no temporary files left next to the checkpoint
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]

    # resuming a finished run restores the final weights and does nothing else
    again = make_net(seed=97)
    h_again = make_trainer(path).fit(again, pinn_losses(), resume=True)
    assert h_again.loss == h_ref.loss
    assert all(
        torch.equal(a, b) for a, b in zip(again.parameters(), reference.parameters(), strict=True)
    )


def test_resume_with_mismatched_checkpoint_fails_clearly(tmp_path: Path):
    path = tmp_path / "ckpt.pt"
    Trainer(phases=(Adam(5),), checkpoint=path, progress=False).fit(make_net(), pinn_losses())
    trainer = Trainer(phases=(Adam(5),), checkpoint=path, progress=False)
    x, y = regression_data()
    with pytest.raises(ValueError, match=r"loss terms \['bc', 'pde'\]|loss terms \['pde', 'bc'\]"):
        trainer.fit(make_net(), {"data": DataLoss(x, y)}, resume=True)
    with pytest.raises(ValueError, match=r"does not match the model.*resume=False"):
        trainer.fit(make_net(width=8), pinn_losses(), resume=True)
    with pytest.raises(ValueError, match="phases"):
        Trainer(phases=(LBFGS(5),), checkpoint=path, progress=False).fit(
            make_net(), pinn_losses(), resume=True
        )
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read the checkpoint"):
        Trainer(checkpoint=tmp_path / "junk.pt").fit(make_net(), pinn_losses(), resume=True)


def test_resume_without_existing_file_starts_fresh(tmp_path: Path):
    path = tmp_path / "new.pt"
    history = Trainer(phases=(Adam(5),), checkpoint=path, progress=False).fit(
        make_net(), pinn_losses(), resume=True
    )
    assert len(history) == 5
    assert torch.load(path, weights_only=True)["finished"] is True


# ----------------------------------------------------------------------------- misc


def test_history_records_weights_to_dict_and_plot():
    from matplotlib.figure import Figure

    x, y = regression_data()
    history = Trainer(phases=(Adam(10), LBFGS(5)), balancer={"data": 2.0}, progress=False).fit(
        make_net(),
        {"data": DataLoss(x, y), "small": DataLoss(x, 0 * y)},
        val_losses={"val": DataLoss(x, y)},
    )
    assert history.step == list(range(15))
    assert history.phase == ["adam"] * 10 + ["lbfgs"] * 5
    # total = sum_i w_i L_i with the fixed weights (missing name -> weight 1)
    for total, a, b in zip(
        history.loss, history.terms["data"], history.terms["small"], strict=True
    ):
        assert total == pytest.approx(2.0 * a + b, rel=1e-12)  # float rounding only
    assert set(history.weights["data"]) == {2.0} and set(history.weights["small"]) == {1.0}
    assert all(b >= a for a, b in itertools.pairwise(history.time))
    d = history.to_dict()
    assert d["val_step"] == history.val_step and len(d["loss"]) == 15
    assert History.from_dict(d).to_dict() == d
    records = history.records()
    assert records[0]["val_loss"] is not None and records[1]["val_loss"] is None
    ax = history.plot(ax=Figure().add_subplot())
    assert ax.get_yscale() == "log"
    assert len(ax.get_lines()) >= 4  # total, two terms, validation


def test_callbacks_get_step_info_and_progress_is_quiet(capsys):
    infos: list[StepInfo] = []
    x, y = regression_data()
    Trainer(
        phases=(Adam(4), LBFGS(2)), progress=False, callbacks=[lambda t, i: infos.append(i)]
    ).fit(make_net(), {"data": DataLoss(x, y)})
    assert [i.step for i in infos] == list(range(6))
    assert [i.phase_step for i in infos] == [0, 1, 2, 3, 0, 1]
    assert infos[0].terms.keys() == {"data"} and infos[0].weights == {"data": 1.0}
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_bar_shows_the_loss_when_enabled(capsys):
    x, y = regression_data()
    Trainer(phases=(Adam(3),), progress=True).fit(make_net(), {"data": DataLoss(x, y)})
    assert "loss=" in capsys.readouterr().err


def test_lr_decay_shrinks_the_last_updates():
    x, y = regression_data()

    def last_update(decay: float | None) -> float:
        model = make_net()
        log: list[Tensor] = []
        Trainer(
            phases=(Adam(50, lr=1e-2, lr_decay=decay),),
            progress=False,
            callbacks=[lambda t, i: log.append(flat(model).clone())],
        ).fit(model, {"data": DataLoss(x, y)})
        return float((log[-1] - log[-2]).abs().max())

    # Adam moves each parameter by about lr per step (|m/sqrt(v)| <~ 1), so with the lr
    # decayed to ~1e-5 at the end the last update is ~1000x smaller; 100x leaves margin
    assert last_update(1e-3) < last_update(None) / 100


def test_parameters_held_by_loss_terms_are_trained():
    class Offset(LossTerm):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Parameter(torch.tensor(0.5))
            self.register_buffer("x0", torch.zeros(1, 1))

        def forward(self, model: nn.Module) -> Tensor:
            return (model(self.x0).squeeze() - self.c - 3.0) ** 2 + self.c**2

    term = Offset()
    Trainer(phases=(LBFGS(50),), progress=False).fit(nn.Linear(1, 1), {"fit": term})
    # optimum: c = 0 (its own penalty), model(0) = 3; float64 L-BFGS converges to ~1e-8
    assert abs(term.c.item()) < 1e-4
    assert term.c.dtype == torch.float32


def test_fixed_dtype_tensor_in_float64_phase_gets_a_clear_error():
    class FixedDtype(LossTerm):
        def forward(self, model: nn.Module) -> Tensor:
            return model(torch.zeros(1, 1, dtype=torch.float32)).pow(2).sum()

    model = nn.Linear(1, 1)
    with pytest.raises(RuntimeError, match=r"register_buffer.*dtype=None"):
        Trainer(phases=(LBFGS(5),), progress=False).fit(model, {"bad": FixedDtype()})
    assert model.weight.dtype == torch.float32
    # with dtype=None the phase keeps float32 and works
    Trainer(phases=(LBFGS(5, dtype=None),), progress=False).fit(model, {"bad": FixedDtype()})


def test_invalid_settings_are_reported_clearly():
    x, y = regression_data()
    data = {"data": DataLoss(x, y)}
    with pytest.raises(ValueError, match="early_stopping needs validation losses"):
        Trainer(early_stopping=EarlyStopping()).fit(make_net(), data)
    with pytest.raises(ValueError, match="resume=True"):
        Trainer().fit(make_net(), data, resume=True)
    with pytest.raises(TypeError, match="not a LossTerm"):
        Trainer().fit(make_net(), {"data": lambda m: m(x).sum()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"no loss term named 'pde'.*\['data'\]"):
        Trainer(balancer={"pde": 2.0}).fit(make_net(), data)
    with pytest.raises(ValueError, match="lr_decay"):
        Adam(10, lr_decay=2.0)
    with pytest.raises(ValueError, match="line_search"):
        LBFGS(10, line_search="backtracking")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        Adam(-1)

    class Vector(DataLoss):
        def forward(self, model: nn.Module) -> Tensor:
            return (model(self.x) - self.y) ** 2

    with pytest.raises(ValueError, match=r"'vec' returned.*0-d tensor"):
        Trainer(phases=(Adam(2),), progress=False).fit(make_net(), {"vec": Vector(x, y)})


# ----------------------------------------------------------------------------- budget, stop()


def test_budget_s_ends_the_fit_after_a_step_and_records_it() -> None:
    torch.manual_seed(0)
    net = make_net()
    trainer = Trainer((Adam(10**7, lr=1e-3), LBFGS(10**7)), progress=False, budget_s=0.2)
    history = trainer.fit(net, {"pde": Poisson()})
    # ten million steps cannot run in 0.2 s on any machine: the budget ended the fit
    assert 1 <= len(history) < 10**7
    events = [e for e in history.events if e["event"] == "budget_spent"]
    assert len(events) == 1 and events[0]["step"] == len(history)
    assert "budget_s=0.2" in events[0]["reason"]
    assert set(history.phase) == {"adam"}  # the L-BFGS phase never started
    assert "budget_s=0.2" in repr(trainer)


def test_budget_s_in_a_float64_phase_converts_the_model_back() -> None:
    net = make_net()
    history = Trainer((LBFGS(10**7),), progress=False, budget_s=0.2).fit(net, {"pde": Poisson()})
    assert history.events[-1]["event"] == "budget_spent"
    assert all(p.dtype == torch.float32 for p in net.parameters())


@pytest.mark.parametrize("budget", [0, -1.0, math.inf, math.nan, "10", True])
def test_budget_s_must_be_a_positive_number(budget) -> None:
    with pytest.raises(ValueError, match="budget_s must be a finite number of seconds > 0"):
        Trainer((Adam(5),), progress=False, budget_s=budget).fit(make_net(), {"pde": Poisson()})


def test_stop_from_a_callback_ends_the_fit_after_that_step() -> None:
    def stop_at_5(trainer: Trainer, info: StepInfo) -> None:
        if info.step == 5:
            trainer.stop("enough")

    net = make_net()
    trainer = Trainer((Adam(50), LBFGS(20)), progress=False, callbacks=[stop_at_5])
    history = trainer.fit(net, {"pde": Poisson()})
    assert len(history) == 6 and set(history.phase) == {"adam"}
    assert history.events[-1] == {"event": "stopped", "reason": "enough", "step": 6}
    # the next fit starts without the request
    assert len(trainer.fit(make_net(), {"pde": Poisson()})) == 6
    stop_in_lbfgs = Trainer(
        (Adam(3), LBFGS(50)),
        progress=False,
        callbacks=[lambda t, i: t.stop() if i.phase == "lbfgs" and i.phase_step == 2 else None],
    )
    history = stop_in_lbfgs.fit(net, {"pde": Poisson()})
    assert history.phase.count("lbfgs") == 3 and history.events[-1]["event"] == "stopped"
    assert all(p.dtype == torch.float32 for p in net.parameters())  # converted back


# ----------------------------------------------------------------------------- resampling


class CountsResamples(Poisson):
    """The Poisson residual, recording the step before which it was resampled."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.at: list[int] = []

    def resample(self, generator: torch.Generator) -> None:
        super().resample(generator)
        self.at.append(self.calls)

    def forward(self, model: nn.Module) -> Tensor:
        self.calls += 1
        return super().forward(model)


def test_adam_does_not_resample_before_its_first_step() -> None:
    term = CountsResamples()
    Trainer((Adam(12, resample_every=5),), progress=False).fit(make_net(), {"pde": term})
    # before steps 5 and 10 (one evaluation per Adam step), not before step 0: the initial
    # points are trained on first
    assert term.at == [5, 10]


def test_quasi_newton_phases_resample_every_n_iterations() -> None:
    for phase in (LBFGS(12, resample_every=5), BFGS(12, resample_every=5)):
        term = CountsResamples()
        history = Trainer((phase,), progress=False).fit(make_net(), {"pde": term})
        assert len(term.at) == 2 and len(history) == 12
        assert "resample_every=5" in repr(phase)
    with pytest.raises(ValueError, match="resample_every"):
        BFGS(10, resample_every=0)
