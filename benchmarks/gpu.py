"""GPU benchmark: the same training on a device (a CUDA GPU) and on the CPU, side by side.

In one run, on one machine, it measures

* **Adam**: iterations per second on the Burgers PINN set-up (hybridml's DeepXDE adapter,
  hard boundary and initial conditions, the Taylor-mode residual) scaled to 50,000
  collocation points and an 8x64 tanh network, on the device and on the CPU (goal on a
  GPU: at least 50x the CPU);
* **batched ensemble**: the wall time of a :class:`hybridml.BatchedEnsemble` of 32 small
  members (2x32 networks, trained as one batched model) on the device, against one member
  alone on the same device (goal: at most 2x the time of one);
* **BFGS**: iterations per second of the float64 dense self-scaled BFGS phase on the
  Burgers set-up (4x32 network: a 3297 x 3297 inverse Hessian; 6,000 points), device
  against CPU.

It prints a table and, with ``--json PATH``, writes the figures with the device's name.
``--device cpu --quick`` runs a reduced version that compares the CPU with itself (a
smoke test for machines without a GPU; the test suite runs it). Asking for ``cuda`` where
there is none prints "no CUDA" and exits with status 2.

Usage: python benchmarks/gpu.py [--device cuda|cuda:N|cpu|auto] [--quick] [--json PATH]
       [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("DDE_BACKEND", "pytorch")

import numpy as np
import torch

import hybridml as hm


@dataclass
class Sizes:
    """What each part trains (full run or ``--quick``)."""

    adam_points: int = 50_000
    adam_hidden: tuple[int, ...] = (64,) * 8
    adam_steps_device: int = 200
    adam_steps_cpu: int = 10
    ensemble_members: int = 32
    ensemble_hidden: tuple[int, ...] = (32, 32)
    ensemble_rows: int = 2_000
    ensemble_steps: int = 300
    bfgs_points: int = 6_000
    bfgs_hidden: tuple[int, ...] = (32, 32, 32, 32)
    bfgs_steps_device: int = 60
    bfgs_steps_cpu: int = 10
    warmup_steps: int = 3


QUICK = Sizes(
    adam_points=1_000,
    adam_hidden=(16, 16),
    adam_steps_device=5,
    adam_steps_cpu=5,
    ensemble_members=4,
    ensemble_hidden=(8,),
    ensemble_rows=200,
    ensemble_steps=10,
    bfgs_points=500,
    bfgs_hidden=(16, 16),
    bfgs_steps_device=3,
    bfgs_steps_cpu=3,
    warmup_steps=1,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _burgers(points: int, hidden: tuple[int, ...]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The Burgers PINN: model and loss terms, on the CPU (the trainer moves them).

    With the DeepXDE adapter installed: its Burgers example (Taylor-mode residual, hard
    boundary and initial conditions), as ``benchmarks/pinn_burgers.py``. Without it (a bare
    GPU machine): the same problem from the core alone (a :class:`hybridml.ResidualLoss`
    with autograd derivatives, the same hard-constraint transform).
    """
    try:
        from hybridml_deepxde.examples import burgers, burgers_hard_transform

        adapter = burgers(
            hard=True,
            num_domain=points,
            num_boundary=0,
            num_initial=0,
            train_distribution="pseudo",
            seed=0,
            derivatives="taylor",
        )
    except (ImportError, RuntimeError):  # not installed, or DeepXDE on another backend
        return _burgers_core(points, hidden)
    terms = dict(adapter.loss_terms())
    model = adapter.default_model(
        hidden, transform=burgers_hard_transform(), generator=torch.Generator().manual_seed(0)
    )
    return model, terms


def _burgers_core(points: int, hidden: tuple[int, ...]) -> tuple[torch.nn.Module, dict[str, Any]]:
    nu = 0.01 / math.pi

    def residual(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        u = model(x)
        u_x, u_t = hm.partial(u, x, 0), hm.partial(u, x, 1)
        return u_t + u * u_x - nu * hm.partial(u_x, x, 0)

    box = hm.BoxSampler([-1.0, 0.0], [1.0, 0.99])
    term = hm.ResidualLoss(residual, sampler=box, n_points=points)
    net = hm.MLP(
        2,
        1,
        hidden,
        input_lower=[-1.0, 0.0],
        input_upper=[1.0, 0.99],
        generator=torch.Generator().manual_seed(0),
    )
    hard = hm.HardBoundary(
        lambda x: -torch.sin(math.pi * x[:, 0:1]), lambda x: (1 - x[:, 0:1] ** 2) * x[:, 1:2]
    )
    return hm.Constrained(net, hard), {"pde": term}


def burgers_setup() -> str:
    """Which Burgers set-up :func:`_burgers` builds here."""
    try:
        from hybridml_deepxde import import_deepxde

        import_deepxde()
    except (ImportError, RuntimeError):  # not installed, or DeepXDE on another backend
        return "core ResidualLoss, autograd derivatives (no DeepXDE here)"
    return "DeepXDE adapter, Taylor-mode residual"


def _rate(
    make_phase: Callable[[int], hm.Phase],
    points: int,
    hidden: tuple[int, ...],
    steps: int,
    warmup: int,
    device: torch.device,
) -> dict[str, float]:
    """Iterations per second of ``make_phase(steps)`` on a fresh Burgers set-up, after
    ``warmup`` iterations (the first ones allocate memory and pick kernels)."""
    model, terms = _burgers(points, hidden)
    hm.Trainer((make_phase(warmup),), progress=False, device=device).fit(model, terms)
    _sync(device)
    t0 = time.perf_counter()
    history = hm.Trainer((make_phase(steps),), progress=False, device=device).fit(model, terms)
    _sync(device)
    wall = time.perf_counter() - t0
    return {
        "its_per_s": len(history.loss) / wall,
        "steps": len(history.loss),
        "wall_s": wall,
        "final_loss": history.loss[-1],
    }


def adam_part(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    cpu = torch.device("cpu")
    out: dict[str, Any] = {"points": sizes.adam_points, "hidden": list(sizes.adam_hidden)}
    for name, dev, steps in (
        ("device", device, sizes.adam_steps_device),
        ("cpu", cpu, sizes.adam_steps_cpu),
    ):
        out[name] = _rate(
            lambda k: hm.Adam(k, lr=1e-3),
            sizes.adam_points,
            sizes.adam_hidden,
            steps,
            sizes.warmup_steps,
            dev,
        )
    out["speedup"] = out["device"]["its_per_s"] / out["cpu"]["its_per_s"]
    return out


def bfgs_part(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    cpu = torch.device("cpu")
    n_params = sum(
        a * b + b for a, b in zip((2, *sizes.bfgs_hidden), (*sizes.bfgs_hidden, 1), strict=True)
    )
    out: dict[str, Any] = {
        "points": sizes.bfgs_points,
        "hidden": list(sizes.bfgs_hidden),
        "parameters": n_params,
        "dtype": "float64",
    }
    for name, dev, steps in (
        ("device", device, sizes.bfgs_steps_device),
        ("cpu", cpu, sizes.bfgs_steps_cpu),
    ):
        out[name] = _rate(
            hm.BFGS, sizes.bfgs_points, sizes.bfgs_hidden, steps, sizes.warmup_steps, dev
        )
    out["speedup"] = out["device"]["its_per_s"] / out["cpu"]["its_per_s"]
    return out


def ensemble_part(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (sizes.ensemble_rows, 3))
    y = np.sin(3 * x[:, :1]) * np.cos(x[:, 1:2]) + 0.1 * x[:, 2:]

    def fit(members: int, steps: int) -> float:
        est = hm.BatchedEnsemble(
            hidden=sizes.ensemble_hidden,
            n_members=members,
            phases=(hm.Adam(steps),),
            calibration=None,
            progress=False,
            device=device,
        )
        _sync(device)
        t0 = time.perf_counter()
        est.fit(x, y)
        _sync(device)
        return time.perf_counter() - t0

    fit(sizes.ensemble_members, sizes.warmup_steps)  # warm-up: kernels, allocator
    one = fit(1, sizes.ensemble_steps)
    many = fit(sizes.ensemble_members, sizes.ensemble_steps)
    return {
        "members": sizes.ensemble_members,
        "hidden": list(sizes.ensemble_hidden),
        "rows": sizes.ensemble_rows,
        "steps": sizes.ensemble_steps,
        "one_member_s": one,
        "all_members_s": many,
        "time_ratio": many / one,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def table(result: dict[str, Any]) -> str:
    a, e, b = result["adam"], result["ensemble"], result["bfgs"]
    net = f"{len(a['hidden'])}x{a['hidden'][0]}"
    labels = (
        f"Adam it/s, Burgers {a['points']} pts, {net}",
        f"BFGS float64 it/s, {b['parameters']} params, {b['points']} pts",
        f"batched ensemble, {e['members']} members vs 1 (s)",
    )
    values = (
        (a["device"]["its_per_s"], a["cpu"]["its_per_s"], a["speedup"]),
        (b["device"]["its_per_s"], b["cpu"]["its_per_s"], b["speedup"]),
        (e["all_members_s"], e["one_member_s"], e["time_ratio"]),
    )
    quick = " (quick)" if result["quick"] else ""
    rows = [
        f"device: {result['device']} = {result['device_name']}; CPU threads "
        f"{result['cpu_threads']}; torch {result['torch']}{quick}",
        f"{'part':<50}{'device':>12}{'CPU / one':>12}{'ratio':>10}",
    ]
    rows += [
        f"{label:<50}{dev:>12.3f}{ref:>12.3f}{ratio:>9.2f}x"
        for label, (dev, ref, ratio) in zip(labels, values, strict=True)
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, cpu or auto")
    parser.add_argument("--quick", action="store_true", help="a reduced run (smoke test)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    try:
        device = hm.resolve_device(args.device, what="--device")
    except hm.DeviceError as exc:
        if "cuda requested but not available" in str(exc):
            print(f"no CUDA: {exc}", file=sys.stderr)
        else:
            print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    assert device is not None
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else Sizes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result: dict[str, Any] = {
            "device": str(device),
            "device_name": device_name(device),
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "quick": args.quick,
            "burgers": burgers_setup(),
            "sizes": asdict(sizes),
        }
        t0 = time.perf_counter()
        result["adam"] = adam_part(sizes, device)
        result["ensemble"] = ensemble_part(sizes, device)
        result["bfgs"] = bfgs_part(sizes, device)
        result["wall_s"] = time.perf_counter() - t0
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
