"""Fault injection: ``hybridml run`` killed with SIGKILL at random points (seeded) during
training and during writing, rerun until it completes, gives the same outputs as an
uninterrupted run, and resumes what it had saved instead of recomputing it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import hybridml as hm

MAIN = "import sys; from hybridml.cli import main; sys.exit(main())"
ENV = {
    **os.environ,
    "PYBAMM_DISABLE_TELEMETRY": "true",
    "DDE_BACKEND": "pytorch",
    "MPLBACKEND": "Agg",
}
ADAM, LBFGS = 300, 20  # the trainer checkpoints every 100 steps and after each phase


def _small_study(folder: Path, adam: int = ADAM, lbfgs: int = LBFGS) -> Path:
    """The ODE example with a smaller network and fewer steps (seconds, not minutes)."""
    config = hm.write_example(folder, quick=True)
    text = config.read_text(encoding="utf-8")
    for old, new in (
        ("adam_steps = 2000", f"adam_steps = {adam}"),
        ("lbfgs_steps = 1000", f"lbfgs_steps = {lbfgs}"),
        ("hidden = [32, 32, 32]", "hidden = [16, 16]"),
    ):
        assert old in text
        text = text.replace(old, new)
    config.write_text(text, encoding="utf-8")
    return config


def _start(config: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", MAIN, "run", str(config), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    """Wait for a run that should complete; its standard error."""
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return err


def _wait(proc: subprocess.Popen[str], ready: Callable[[], bool]) -> bool:
    """Poll until ``ready()`` (True) or the run has exited (False)."""
    while not ready():
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return True


def _kill(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return err


def _step(ckpt: Path) -> int:
    """The global step a trainer checkpoint was saved at."""
    return int(torch.load(ckpt, weights_only=True, map_location="cpu")["global_step"])


def _model(run: Path, config: Path) -> hm.HybridRegressor:
    est = hm.build_estimator(hm.load_config(config))
    return hm.HybridRegressor.load(run / "checkpoint.pt", checks=est.checks, adapters=est.adapters)


@pytest.mark.slow
def test_killed_run_resumes_to_the_outputs_of_an_uninterrupted_run(tmp_path: Path) -> None:
    config = _small_study(tmp_path / "study")
    reference = tmp_path / "reference"
    _finish(_start(config, reference))

    out = tmp_path / "run"
    progress = tmp_path / "run.progress"
    ckpt = progress / "checkpoint.pt"
    rng = np.random.default_rng(18)  # the kill points: seeded, so a failure can be rerun

    def writing(before: frozenset[Path] = frozenset()) -> bool:
        """This run is writing: predictions.csv is in a partial run folder that is not one
        of ``before`` (a killed run's partial folder stays until the next run removes it,
        and on a fast machine the run before may have been killed while writing)."""
        return any(
            (p / "predictions.csv").exists()
            for p in tmp_path.glob("run.partial-*")
            if p not in before
        )

    kills: list[tuple[str, int]] = []  # (stage, the step saved when the run was killed)
    resumed: list[int] = []
    # training: once a checkpoint exists, then once this run has saved a newer one; then
    # writing: once predictions.csv is in the partial run folder (figures follow)
    for stage in ("training", "training", "writing"):
        saved = _step(ckpt) if ckpt.exists() else -1
        before = frozenset(tmp_path.glob("run.partial-*"))
        proc = _start(config, out)
        if stage == "training":
            reached = _wait(proc, lambda s=saved: ckpt.exists() and _step(ckpt) > s)
            delay = rng.uniform(0.0, 0.2)  # 100+ steps remain: training still, even if fast
        else:
            reached = _wait(proc, lambda b=before: writing(b))
            delay = rng.uniform(0.0, 0.05)  # writing the figures takes longer on any machine
        assert reached, f"the run ended before the {stage} kill point"
        time.sleep(delay)
        assert proc.poll() is None, f"the run ended within {delay:.2f} s of the kill point"
        in_writing = writing(before)
        err = _kill(proc)
        kills.append(("writing" if in_writing else "training", _step(ckpt)))
        if saved >= 0:  # this run resumed the step the previous one had saved
            assert f"(step {saved}," in err, err
            resumed.append(saved)
        assert not out.exists()  # a killed run never leaves a run folder in place
        assert list(tmp_path.glob("run.partial-*"))  # but a partial one, marked incomplete

    last = _finish(_start(config, out))
    resumed.append(kills[-1][1])
    assert f"(step {kills[-1][1]}, finished)" in last, last
    assert [k[0] for k in kills][-1] == "writing" and kills[0][0] == "training"
    # progress was used: every rerun resumed a saved step above 0 and below the last
    n_steps = ADAM + LBFGS
    assert 0 < resumed[0] < resumed[1] <= n_steps, (kills, resumed)
    assert resumed[-1] == n_steps  # killed while writing: the rerun trained no step
    assert not progress.exists() and not list(tmp_path.glob("run.partial-*"))
    assert not list(tmp_path.glob("run.old-*"))

    def metrics(run: Path) -> dict[str, object]:
        m = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        m.pop("fit_seconds")  # a timing
        return m

    assert metrics(out) == metrics(reference)
    for name in ("predictions.csv", "consistency.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    a, b = _model(out, config), _model(reference, config)
    assert len(a.history_.loss) == len(b.history_.loss) == n_steps
    assert a.history_.loss == b.history_.loss
    t = np.linspace(0.0, 10.0, 57)[:, None]
    np.testing.assert_array_equal(a.predict_values(t), b.predict_values(t))
    print(f"kills (stage, saved step): {kills}; reruns resumed at steps {resumed} of {n_steps}")


@pytest.mark.slow
def test_unreadable_checkpoint_is_reported_discarded_and_the_fit_starts_over(
    tmp_path: Path,
) -> None:
    config = _small_study(tmp_path / "study")
    out = tmp_path / "run"
    ckpt = tmp_path / "run.progress" / "checkpoint.pt"
    proc = _start(config, out)
    assert _wait(proc, ckpt.exists)
    _kill(proc)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # a file cut short (not by hybridml's writes)
    err = _finish(_start(config, out))
    assert "discarding the saved training progress" in err and str(ckpt) in err, err
    assert "resuming" not in err
    assert not ckpt.parent.exists()
    assert len(_model(out, config).history_.loss) == ADAM + LBFGS


# a 3-step fit fails the example's checks; the run records that, the warning says so
@pytest.mark.filterwarnings("ignore::hybridml.ConsistencyWarning")
def test_stale_progress_folder_is_discarded_and_fresh_discards_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _small_study(tmp_path / "study", adam=3, lbfgs=0)
    out = tmp_path / "run"
    progress = tmp_path / "run.progress"
    for fresh, why in ((False, "another config"), (True, "--fresh")):
        progress.mkdir()
        (progress / "KEY").write_text("an older config\n", encoding="utf-8")
        (progress / "checkpoint.pt").write_bytes(b"not a checkpoint")
        hm.run_study(config, out, fresh=fresh)
        err = capsys.readouterr().err
        assert f"discarding the saved training progress {str(progress)!r}" in err, err
        assert why in err and "resuming" not in err, err
        assert not progress.exists() and (out / "metrics.json").is_file()
