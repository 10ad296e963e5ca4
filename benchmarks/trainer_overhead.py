"""Overhead of ``hybridml.Trainer``'s Adam phase against a plain PyTorch loop.

Both sides do the same work per step: a 3x64 tanh MLP, a data loss (MSE on 64 points)
plus a residual term with an autograd second derivative (u'' + pi^2 sin(pi x) on 256
collocation points), the sum backpropagated and one Adam step; the plain loop also reads
the loss with ``.item()`` as any loop that logs it does. Repeats are interleaved (plain,
trainer, plain, trainer, ...) so that machine load affects both alike; the median time
per step is reported, for wall-clock time and for the process's CPU time (the latter is
less disturbed by other processes on a busy machine).

Usage::

    python benchmarks/trainer_overhead.py --steps 500 --repeats 7 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

try:
    import hybridml
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import hybridml

from hybridml import Adam, DataLoss, LossTerm, Trainer


class PoissonResidual(LossTerm):
    """Mean squared residual of u'' = -pi^2 sin(pi x) at fixed collocation points."""

    x: Tensor

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("x", torch.linspace(0.0, 1.0, n)[:, None])

    def forward(self, model: nn.Module) -> Tensor:
        x = self.x.clone().requires_grad_(True)
        u = model(x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        (d2u,) = torch.autograd.grad(du.sum(), x, create_graph=True)
        return ((d2u + math.pi**2 * torch.sin(math.pi * x)) ** 2).mean()


def make_model(width: int, depth: int) -> nn.Module:
    """A ``depth`` x ``width`` tanh MLP from 1 input to 1 output (seeded init)."""
    gen = torch.Generator().manual_seed(0)
    layers: list[nn.Module] = []
    n_in = 1
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.Tanh()]
        n_in = width
    layers.append(nn.Linear(n_in, 1))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / math.sqrt(max(p.shape[-1], 1))))
    return model


def make_losses(n_data: int, n_colloc: int) -> dict[str, LossTerm]:
    """The data and residual terms (the same objects serve both loops)."""
    x = torch.linspace(0.0, 1.0, n_data)[:, None]
    return {"data": DataLoss(x, torch.sin(math.pi * x)), "pde": PoissonResidual(n_colloc)}


Timing = tuple[float, float]  # (wall seconds per step, CPU seconds per step)


def plain_loop(model: nn.Module, losses: dict[str, LossTerm], steps: int, lr: float) -> Timing:
    """A hand-written Adam loop; returns (wall, CPU) seconds per step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    data, pde = losses["data"], losses["pde"]
    record: list[float] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = data(model) + pde(model)
        loss.backward()
        opt.step()
        record.append(loss.item())
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def trainer_loop(model: nn.Module, losses: dict[str, LossTerm], steps: int, lr: float) -> Timing:
    """The same work through ``Trainer(phases=(Adam(steps, lr),))``; (wall, CPU) s/step."""
    trainer = Trainer(phases=(Adam(steps, lr),), progress=False, checkpoint=None, seed=0)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(model, losses)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print a table and optionally write JSON; return the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="Adam steps per run")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats")
    parser.add_argument("--width", type=int, default=64, help="hidden width")
    parser.add_argument("--depth", type=int, default=3, help="hidden layers")
    parser.add_argument("--points", type=int, default=256, help="collocation points")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: leave)")
    parser.add_argument("--json", type=Path, default=None, help="write results to this file")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    template = make_model(args.width, args.depth)
    losses = make_losses(64, args.points)
    lr = 1e-3
    # warm-up (allocator, autograd caches), not timed
    plain_loop(copy.deepcopy(template), losses, 20, lr)
    trainer_loop(copy.deepcopy(template), losses, 20, lr)

    plain: list[float] = []
    trained: list[float] = []
    plain_cpu: list[float] = []
    trained_cpu: list[float] = []
    for r in range(args.repeats):
        order = (plain_loop, trainer_loop) if r % 2 == 0 else (trainer_loop, plain_loop)
        for fn in order:
            wall, cpu = fn(copy.deepcopy(template), losses, args.steps, lr)
            (plain if fn is plain_loop else trained).append(wall)
            (plain_cpu if fn is plain_loop else trained_cpu).append(cpu)

    med = statistics.median
    result = {
        "trainer_s_per_step": med(trained),
        "plain_s_per_step": med(plain),
        "overhead_ratio": med(trained) / med(plain),
        "trainer_cpu_s_per_step": med(trained_cpu),
        "plain_cpu_s_per_step": med(plain_cpu),
        "overhead_ratio_cpu": med(trained_cpu) / med(plain_cpu),
        "steps": args.steps,
        "repeats": args.repeats,
        "width": args.width,
        "depth": args.depth,
        "collocation_points": args.points,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "hybridml": hybridml.__version__,
        "trainer_runs_s_per_step": trained,
        "plain_runs_s_per_step": plain,
        "trainer_runs_cpu_s_per_step": trained_cpu,
        "plain_runs_cpu_s_per_step": plain_cpu,
    }
    header = f"{'loop':<9}{'clock':<6}{'median ms/step':>16}{'min':>10}{'max':>10}"
    print(header)
    print("-" * len(header))
    for clock, p_runs, t_runs in (("wall", plain, trained), ("cpu", plain_cpu, trained_cpu)):
        for name, runs in (("plain", p_runs), ("trainer", t_runs)):
            print(
                f"{name:<9}{clock:<6}{1e3 * med(runs):>16.3f}"
                f"{1e3 * min(runs):>10.3f}{1e3 * max(runs):>10.3f}"
            )
    print(f"overhead ratio, wall (median trainer / median plain): {result['overhead_ratio']:.3f}")
    print(f"overhead ratio, CPU time: {result['overhead_ratio_cpu']:.3f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
