"""Devices: ``device=`` on the trainer, the estimators and cross-validation.

On the CPU (every machine): ``device="cpu"`` gives bitwise the numbers of the default
``device=None``; ``"auto"`` resolves to the CPU where there is no GPU; bad settings and
``"cuda"`` without CUDA are clear :class:`~hybridml.DeviceError` s, raised before anything
trains. On a GPU (skipped with a reason elsewhere; ``scripts/gpu-check.sh`` runs them): a
fit on CUDA agrees with the CPU's to rounding, a CUDA checkpoint resumes on the CPU, the
estimators train and predict there, and RAD resampling keeps its points on the device.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import hybridml as hm

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU here (torch.cuda.is_available())")
no_cuda = pytest.mark.skipif(CUDA, reason="this machine has a CUDA GPU")


def _problem(dtype: torch.dtype = torch.float32) -> tuple[nn.Module, dict[str, hm.LossTerm]]:
    """A small model with a data term and a resampled residual term (u' = -u on [0, 1])."""
    x = torch.linspace(0, 1, 16, dtype=dtype)[:, None]
    model = hm.MLP(1, 1, (8, 8), generator=torch.Generator().manual_seed(0)).to(dtype)

    def residual(m: nn.Module, pts: torch.Tensor) -> torch.Tensor:
        u = m(pts)
        return hm.partial(u, pts, 0) + u

    terms: dict[str, hm.LossTerm] = {
        "data": hm.DataLoss(x.to(dtype), torch.exp(-x).to(dtype)),
        "ode": hm.ResidualLoss(residual, sampler=hm.BoxSampler(0.0, 1.0), n_points=32),
    }
    for t in terms.values():
        t.to(dtype)
    return model, terms


def _phases() -> tuple[hm.Phase, ...]:
    return (hm.Adam(30, lr=1e-2, resample_every=10), hm.BFGS(10))


def _state(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().cpu() for t in model.state_dict().values()]


# --------------------------------------------------------------------------- resolving


def test_auto_resolves_to_cuda_where_there_is_one_else_to_the_cpu() -> None:
    assert hm.resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    assert hm.resolve_device(None) is None  # None: leave the tensors where they are
    assert hm.resolve_device(" CPU ") == torch.device("cpu")
    assert hm.resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", "cpu:cuda"])
def test_a_string_that_is_not_a_device_names_the_choices(bad: str) -> None:
    with pytest.raises(hm.DeviceError, match=r"not a device; use one of 'auto', 'cpu'"):
        hm.resolve_device(bad)


def test_another_type_or_an_unsupported_device_kind_is_refused() -> None:
    with pytest.raises(hm.DeviceError, match="must be a string"):
        hm.resolve_device(0)
    with pytest.raises(hm.DeviceError, match="only the CPU and CUDA"):
        hm.resolve_device("meta")
    # a DeviceError is a HybridMLError and a ValueError: callers catch either
    assert issubclass(hm.DeviceError, hm.HybridMLError)
    assert issubclass(hm.DeviceError, ValueError)


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_says_so_and_what_to_do(name: str) -> None:
    with pytest.raises(hm.DeviceError, match="cuda requested but not available") as info:
        hm.resolve_device(name)
    assert "device='cpu'" in str(info.value)


@needs_cuda
def test_a_cuda_index_beyond_the_machine_is_refused() -> None:
    n = torch.cuda.device_count()
    with pytest.raises(hm.DeviceError, match=f"there is no cuda:{n}"):
        hm.resolve_device(f"cuda:{n}")


# --------------------------------------------------------------------------- trainer (CPU)


def test_trainer_device_cpu_equals_the_default_bitwise() -> None:
    runs = []
    for device in (None, "cpu", torch.device("cpu")):
        model, terms = _problem()
        history = hm.Trainer(_phases(), seed=3, progress=False, device=device).fit(model, terms)
        runs.append((history.loss, _state(model), terms["ode"].points.clone()))
    for loss, state, points in runs[1:]:
        assert loss == runs[0][0]  # every step's loss, as floats: bitwise
        assert all(torch.equal(a, b) for a, b in zip(state, runs[0][1], strict=True))
        assert torch.equal(points, runs[0][2])  # the same resampled collocation points


@no_cuda
def test_trainer_cuda_without_cuda_fails_before_moving_or_training() -> None:
    model, terms = _problem()
    before = _state(model)
    trainer = hm.Trainer(_phases(), progress=False, device="cuda")
    with pytest.raises(hm.DeviceError, match="cuda requested but not available"):
        trainer.fit(model, terms)
    assert not hasattr(trainer, "history_")  # nothing ran
    assert all(torch.equal(a, b) for a, b in zip(_state(model), before, strict=True))


def test_a_checkpoint_whose_generator_was_on_another_device_resumes_with_a_warning(
    tmp_path: Path,
) -> None:
    # A checkpoint written on a GPU holds a CUDA generator's state, which a CPU generator
    # cannot take. Here a CPU checkpoint is relabelled as such (data, not a mock): the fit
    # resumes its weights and history, seeds a fresh generator and says so.
    path = tmp_path / "ckpt.pt"
    stop_at = 15

    def stop(trainer: hm.Trainer, info: hm.StepInfo) -> None:
        if info.step == stop_at:
            raise KeyboardInterrupt

    model, terms = _problem()
    trainer = hm.Trainer(
        _phases(), seed=1, progress=False, checkpoint=path, checkpoint_every=5, callbacks=[stop]
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(model, terms)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["generator_device"] == "cpu"
    ckpt["generator_device"] = "cuda"
    ckpt["generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state size
    torch.save(ckpt, path)

    model, terms = _problem()
    trainer = hm.Trainer(_phases(), seed=1, progress=False, checkpoint=path, checkpoint_every=5)
    with pytest.warns(hm.HybridMLWarning, match="random generator on the cuda"):
        history = trainer.fit(model, terms, resume=True)
    assert len(history.loss) == 40  # 30 Adam + 10 BFGS steps, the first 15 from the file
    assert np.isfinite(history.loss).all()


# --------------------------------------------------------------------------- estimators (CPU)


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 2))
    y = np.sin(2 * x[:, :1]) + x[:, 1:] ** 2
    return x, y, np.repeat(np.arange(8), 5)


def test_regressor_device_cpu_equals_the_default_bitwise(tmp_path: Path) -> None:
    x, y, _ = _data()
    settings = {"hidden": (8,), "adam_steps": 40, "quasi_newton_steps": 5, "progress": False}
    default = hm.HybridRegressor(**settings).fit(x, y)
    on_cpu = hm.HybridRegressor(**settings, device="cpu").fit(x, y)
    assert np.array_equal(default.predict_values(x), on_cpu.predict_values(x))
    assert default.history_.loss == on_cpu.history_.loss
    assert on_cpu.get_params()["device"] == "cpu"
    assert type(on_cpu)(**on_cpu.get_params()).device == "cpu"
    # model files are device-free: CPU tensors, and the setting is not stored
    on_cpu.save(tmp_path / "m.pt")
    loaded = hm.HybridRegressor.load(tmp_path / "m.pt")
    assert loaded.device is None
    assert np.array_equal(loaded.predict_values(x), on_cpu.predict_values(x))


def test_batched_ensemble_device_cpu_equals_the_default_bitwise() -> None:
    x, y, _ = _data()
    settings = {"hidden": (8,), "n_members": 3, "phases": (hm.Adam(30),), "calibration": None}
    default = hm.BatchedEnsemble(**settings).fit(x, y)
    on_cpu = hm.BatchedEnsemble(**settings, device="cpu").fit(x, y)
    assert np.array_equal(default.member_predictions(x), on_cpu.member_predictions(x))


def test_deep_ensemble_gives_its_members_the_device() -> None:
    x, y, _ = _data()
    template = hm.HybridRegressor(hidden=(4,), adam_steps=20, quasi_newton_steps=0)
    default = hm.DeepEnsemble(template, n_members=2, calibration=None).fit(x, y)
    on_cpu = hm.DeepEnsemble(template, n_members=2, calibration=None, device="cpu").fit(x, y)
    assert [m.device for m in on_cpu.members_] == ["cpu", "cpu"]
    assert template.device is None  # the template itself is not changed
    assert np.array_equal(default.predict(x).mean, on_cpu.predict(x).mean)


@no_cuda
def test_wrappers_refuse_cuda_without_cuda_before_any_member_or_fold_trains() -> None:
    x, y, groups = _data()
    template = hm.HybridRegressor(hidden=(4,), adam_steps=5, quasi_newton_steps=0)
    with pytest.raises(hm.DeviceError, match="DeepEnsemble: device='cuda': cuda requested"):
        hm.DeepEnsemble(template, n_members=2, device="cuda").fit(x, y)
    with pytest.raises(hm.DeviceError, match="cross_validate: device='cuda': cuda requested"):
        hm.cross_validate(template, x, y, groups=groups, cv=2, device="cuda")
    with pytest.raises(hm.DeviceError, match="HybridRegressor: device='cuda'"):
        template.set_params(device="cuda").fit(x, y)
    with pytest.raises(hm.DeviceError, match="BatchedEnsemble: device='cuda'"):
        hm.BatchedEnsemble(device="cuda").fit(x, y)


def test_wrappers_refuse_a_device_for_an_estimator_without_that_setting() -> None:
    x, y, groups = _data()

    class NoDevice(hm.HybridRegressor):
        def __init__(self, *, hidden: tuple[int, ...] = (4,)) -> None:
            super().__init__(hidden=hidden, adam_steps=5, quasi_newton_steps=0)

    with pytest.raises(hm.DeviceError, match="has no device setting"):
        hm.DeepEnsemble(NoDevice(), n_members=2, device="cpu").fit(x, y)
    with pytest.raises(hm.DeviceError, match="has no device setting"):
        hm.cross_validate(NoDevice(), x, y, groups=groups, cv=2, device="cpu")


def test_cross_validate_device_cpu_equals_the_default_bitwise() -> None:
    x, y, groups = _data()
    est = hm.HybridRegressor(hidden=(4,), adam_steps=20, quasi_newton_steps=0)
    default = hm.cross_validate(est, x, y, groups=groups, cv=2)
    on_cpu = hm.cross_validate(est, x, y, groups=groups, cv=2, device="cpu")
    assert np.array_equal(default.predictions, on_cpu.predictions)


# --------------------------------------------------------------------------- GPU


@needs_cuda
def test_a_fit_on_cuda_matches_the_cpu_to_rounding() -> None:
    # float64 and no resampling (the GPU's generator draws other points than the CPU's):
    # the two runs differ only in the order of floating-point reductions (~1e-16 relative
    # per operation), which 60 steps of Adam and BFGS on a smooth loss amplify to far
    # below 1e-6.
    phases = (hm.Adam(50, lr=1e-2), hm.BFGS(10))
    runs = {}
    for device in ("cpu", "cuda"):
        model, terms = _problem(torch.float64)
        terms["ode"].sampler = None  # fixed points: the same on both devices
        history = hm.Trainer(phases, seed=0, progress=False, device=device).fit(model, terms)
        assert next(model.parameters()).device.type == device
        assert terms["data"].x.device.type == device  # the terms' data moved too
        runs[device] = (np.array(history.loss), _state(model))
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=1e-6)
    for a, b in zip(runs["cuda"][1], runs["cpu"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@needs_cuda
def test_a_cuda_checkpoint_resumes_on_the_cpu(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    phases = (hm.Adam(30, lr=1e-2), hm.BFGS(10))

    def stop(trainer: hm.Trainer, info: hm.StepInfo) -> None:
        if info.step == 34:  # inside the float64 BFGS phase: its dense matrix is saved
            raise KeyboardInterrupt

    model, terms = _problem(torch.float64)
    terms["ode"].sampler = None
    with pytest.raises(KeyboardInterrupt):
        hm.Trainer(
            phases,
            progress=False,
            checkpoint=path,
            checkpoint_every=5,
            device="cuda",
            callbacks=[stop],
        ).fit(model, terms)
    # the file loads on a machine without a GPU (every tensor mapped to the CPU)
    ckpt = torch.load(path, weights_only=True, map_location="cpu")
    assert ckpt["generator_device"] == "cuda"

    model, terms = _problem(torch.float64)
    terms["ode"].sampler = None
    trainer = hm.Trainer(phases, progress=False, checkpoint=path, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(model, terms, resume=True)
    assert any("random generator on the cuda" in str(w.message) for w in caught)
    assert next(model.parameters()).device.type == "cpu"
    assert len(history.loss) == 40 and np.isfinite(history.loss).all()

    # and back: the CPU's finished checkpoint loads into a model on the GPU
    model2, terms2 = _problem(torch.float64)
    terms2["ode"].sampler = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hm.HybridMLWarning)
        hm.Trainer(phases, progress=False, checkpoint=path, device="cuda").fit(
            model2, terms2, resume=True
        )
    for a, b in zip(_state(model2), _state(model), strict=True):
        assert torch.equal(a, b)  # a finished fit returns the checkpoint's weights


@needs_cuda
def test_estimators_train_and_predict_on_cuda() -> None:
    x, y, groups = _data()
    reg = hm.HybridRegressor(hidden=(8,), adam_steps=40, quasi_newton_steps=5, device="cuda")
    reg.fit(x, y)
    assert next(reg.model_.parameters()).device.type == "cuda"
    cpu = hm.HybridRegressor(hidden=(8,), adam_steps=40, quasi_newton_steps=5).fit(x, y)
    # float32 Adam and float64 L-BFGS: rounding differences, far below the fit's error
    np.testing.assert_allclose(reg.predict_values(x), cpu.predict_values(x), atol=1e-3)
    batched = hm.BatchedEnsemble(hidden=(8,), n_members=4, calibration=None, device="cuda").fit(
        x, y
    )
    assert batched.member_predictions(x).shape == (4, 40, 1)
    ens = hm.DeepEnsemble(
        hm.HybridRegressor(hidden=(4,), adam_steps=20, quasi_newton_steps=0),
        n_members=2,
        calibration=None,
        device="cuda",
    ).fit(x, y)
    assert all(next(m.model_.parameters()).is_cuda for m in ens.members_)
    cv = hm.cross_validate(
        hm.HybridRegressor(hidden=(4,), adam_steps=20, quasi_newton_steps=0),
        x,
        y,
        groups=groups,
        cv=2,
        device="cuda",
    )
    assert np.isfinite(cv.predictions).all()


@needs_cuda
def test_rad_keeps_its_points_on_the_device() -> None:
    hd = pytest.importorskip("hybridml_deepxde")
    from hybridml_deepxde.examples import burgers, burgers_hard_transform

    adapter = burgers(
        hard=True,
        num_domain=500,
        num_boundary=0,
        num_initial=0,
        resampling=hd.RAD(),
        derivatives="taylor",
    )
    terms = adapter.loss_terms()
    model = adapter.default_model(
        (16, 16), transform=burgers_hard_transform(), generator=torch.Generator().manual_seed(0)
    )
    trainer = hm.Trainer((hm.Adam(40, resample_every=20),), progress=False, device="cuda")
    history = trainer.fit(model, terms)
    assert terms["pde"].points.is_cuda and terms["pde"].points.shape[0] == 500
    assert np.isfinite(history.loss).all()


# --------------------------------------------------------------------------- the benchmark

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


@pytest.mark.slow  # runs a benchmark
@pytest.mark.skipif(not BENCHMARK.exists(), reason="benchmarks/ is not in this checkout")
def test_gpu_benchmark_runs_quick_on_the_cpu_and_says_no_cuda(
    tmp_path: Path, load_script: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("hybridml_deepxde")
    module = load_script(BENCHMARK, "gpu_benchmark")
    out = tmp_path / "gpu.json"
    # about 10 s on one core: the quick sizes compare the CPU with itself
    result = module.main(["--device", "cpu", "--quick", "--threads", "1", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["device"] == "cpu" and saved["device_name"].startswith("CPU")
    for part, key in (("adam", "speedup"), ("bfgs", "speedup"), ("ensemble", "time_ratio")):
        assert saved[part][key] > 0 and np.isfinite(saved[part][key])
    assert saved["adam"]["device"]["steps"] == result["sizes"]["adam_steps_device"]
    assert "Adam it/s" in capsys.readouterr().out
    if not CUDA:
        with pytest.raises(SystemExit) as info:
            module.main(["--device", "cuda", "--quick"])
        assert info.value.code == 2
        assert "no CUDA" in capsys.readouterr().err
