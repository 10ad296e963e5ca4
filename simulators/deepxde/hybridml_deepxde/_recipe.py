"""The default PINN recipe: ``train(adapter, budget_s=...)`` picks every training setting.

The rule (also in :func:`train`'s docstring and docs/simulators/deepxde.md) generalises the
hand-tuned Burgers set-up of ``benchmarks/pinn_burgers.py``: Adam on a few residual points
with RAD resampling, then a float64 quasi-Newton phase (self-scaled BFGS for small networks,
L-BFGS for larger ones) on more points, with Taylor-mode derivatives, compiled in the
background when the budget repays the compilation.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hybridml import BFGS, LBFGS, Adam, History, OutputTransform, Trainer, resolve_device
from hybridml.exceptions import InvalidArgumentError, InvalidTypeError

from ._adapter import DeepXDEAdapter
from ._taylor import taylor_supported
from ._terms import RAD, PDEResidual

__all__ = ["PINNResult", "train"]

#: version of the rule below; recorded in ``settings["recipe"]``
RECIPE_VERSION = 1
#: quasi-Newton residual points by input dimension (space and time together); Adam
#: trains on a third of them (the Burgers set-up: 6000 and 2000 points for 2 inputs)
_QN_POINTS = {1: 512, 2: 6000, 3: 12000}
_QN_POINTS_MORE = 16000  # 4 inputs or more
#: dense BFGS up to this many parameters (its matrix: 8 n^2 bytes, 200 MB at 5000), else
#: L-BFGS
_BFGS_MAX_PARAMS = 5000
#: share of the budget planned for Adam (Burgers: 20-25 s of about 160 s)
_ADAM_SHARE = 0.2
_ADAM_STEPS = (200, 5000)  # the fewest and most Adam steps
_ADAM_LR, _ADAM_LR_DECAY = 2e-3, 0.1
#: an Adam step (optimiser, resampling, bookkeeping) in units of one timed evaluation
_ADAM_STEP_COST = 2.0
#: Adam may run over its planned share by this factor (a machine slower than the timed
#: evaluation said) before its trainer's budget stops it
_ADAM_OVERRUN = 1.25
#: the quasi-Newton iterations the point count is planned for (fewer points when the
#: budget would allow fewer iterations on the full count)
_QN_PLANNED_ITERATIONS = 1000
#: cost of a float64 quasi-Newton iteration (1.4 loss evaluations on average, float64 and
#: its line search) in units of one float32 loss evaluation with its backward, per point
_QN_COST = 3.0
#: seconds per entry of the n x n BFGS matrix per iteration (update and product, measured
#: 18 ms for 3297 parameters)
_BFGS_ENTRY_S = 1.6e-9
#: the quasi-Newton phase redraws its points (RAD) every this many iterations
_QN_RESAMPLE_EVERY = 500
#: stop when the loss on one set of points falls by less than this share over a window
#: of _QN_RESAMPLE_EVERY iterations
_STALL_TOLERANCE = 0.01
#: compile the float64 jet (in a background process) only from this budget on: a cold
#: compilation takes 15-60 s on a loaded 2-core machine
_COMPILE_MIN_BUDGET_S = 120.0
#: no switch to the compiled jet with less of the budget left than this (seconds)
_COMPILE_MIN_LEFT_S = 20.0
#: seconds kept back from the quasi-Newton phase's budget for what follows it
_RESERVE_S = 0.5


@dataclass
class PINNResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained network (a ``torch.nn.Module``, in the training's first dtype).
        history: the :class:`hybridml.History` of all phases (Adam, then the quasi-Newton
            phase; global step numbers and times run on across them).
        settings: every choice the recipe made and what happened (JSON-serialisable).
        wall_s: seconds from the call of :func:`train` to its return.
        parameters: the learnt coefficients of an inverse problem, name -> value (a float,
            or a list for a vector coefficient); empty for a forward problem.
        adapter: the adapter the recipe trained (the problem with the recipe's points).
    """

    model: nn.Module
    history: History
    settings: dict[str, Any]
    wall_s: float
    parameters: dict[str, Any] = field(default_factory=dict)
    adapter: DeepXDEAdapter | None = None

    def predict(self, x: Any) -> np.ndarray:
        """The model's output at points ``x`` (``(n, d)``, time last), as float64 ``(n, k)``."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        p = next(self.model.parameters())
        with torch.no_grad():
            y = self.model(torch.as_tensor(arr, dtype=p.dtype, device=p.device))
        return y.detach().to(torch.float64).cpu().numpy()


def _hidden(d: int, k: int) -> tuple[int, ...]:
    """Hidden layers: 3 for one input, else 4; width 32, 48 or 64 by inputs + outputs."""
    width = 32 if d + k <= 3 else 48 if d + k <= 5 else 64
    return (width,) * (3 if d == 1 else 4)


def _n_params(d: int, k: int, hidden: tuple[int, ...]) -> int:
    sizes = (d, *hidden, k)
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _boundary_counts(adapter: DeepXDEAdapter, n_domain: int) -> tuple[int, int]:
    """Boundary and initial points: a tenth of the domain points each (at least 32)."""
    n_extra = max(32, n_domain // 10)
    return n_extra, (n_extra if adapter.is_time else 0)


def _evaluation_seconds(model: nn.Module, terms: Mapping[str, nn.Module]) -> float:
    """Seconds of one evaluation of all loss terms with its backward (best of 3, after one
    to warm up; the first evaluation also learns which derivatives the pde takes)."""
    best = math.inf
    for i in range(4):
        t0 = time.perf_counter()
        total = sum(term(model) for term in terms.values())
        assert isinstance(total, torch.Tensor)
        total.backward()
        float(total.detach())  # waits for a GPU
        if i:
            best = min(best, time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    for term in terms.values():
        term.zero_grad(set_to_none=True)
    return best


class _Stall:
    """Quasi-Newton callback: stop the fit when the loss on one set of points fell by less
    than ``tolerance`` (a share) over a window of ``window`` iterations."""

    def __init__(self, window: int, tolerance: float) -> None:
        self.window, self.tolerance = window, tolerance
        self.start: float | None = None

    def __call__(self, trainer: Trainer, info: Any) -> None:
        k = info.phase_step % self.window
        if k == 0:
            self.start = info.loss
        elif k == self.window - 1 and self.start is not None:
            if info.loss > (1.0 - self.tolerance) * self.start:
                trainer.stop(
                    f"loss stalled: {self.start:.3e} -> {info.loss:.3e} over {self.window} "
                    f"iterations (less than {self.tolerance:.0%})"
                )


class _CompileWhenReady:
    """Quasi-Newton callback: switch the residual to the compiled jet once the background
    compilation has finished (never waiting for it), unless less than
    ``_COMPILE_MIN_LEFT_S`` of the budget is left (compiling from the warm cache takes a few
    seconds, in one step)."""

    def __init__(
        self, term: PDEResidual, job: Any, settings: dict[str, Any], deadline: float
    ) -> None:
        self.term, self.job, self.settings, self.deadline = term, job, settings, deadline

    def __call__(self, trainer: Trainer, info: Any) -> None:
        if self.term.derivatives == "compiled" or info.phase_step % 10:
            return
        if self.deadline - time.perf_counter() < _COMPILE_MIN_LEFT_S:
            return
        if self.job.done():
            if self.job.succeeded:
                self.term.derivatives = "compiled"
                self.settings["compiled_from_iteration"] = info.phase_step + 1
            else:
                self.settings["compile_failed"] = True
                self.term.derivatives = "taylor"
                self.job = _Never()


class _Never:
    def done(self) -> bool:
        return False


def _merge(first: History, second: History | None) -> History:
    """One history of two fits run one after the other."""
    if second is None:
        return first
    a, b = first.to_dict(), second.to_dict()
    n_steps = len(a["step"])
    t_end = a["time"][-1] if a["time"] else 0.0
    shift = len(a["phases"])
    out = {
        "names": a["names"],
        "phases": a["phases"] + b["phases"],
        "step": a["step"] + [s + n_steps for s in b["step"]],
        "phase_index": a["phase_index"] + [i + shift for i in b["phase_index"]],
        "loss": a["loss"] + b["loss"],
        "terms": {n: a["terms"][n] + b["terms"][n] for n in a["names"]},
        "weights": {n: a["weights"][n] + b["weights"][n] for n in a["names"]},
        "time": a["time"] + [t + t_end for t in b["time"]],
        "val_step": [],
        "val_loss": [],
        "events": a["events"]
        + [{**e, "step": e.get("step", 0) + n_steps} if "step" in e else e for e in b["events"]],
    }
    return History.from_dict(out)


def _coefficients(parameters: Mapping[str, nn.Module]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in parameters.items():
        value = getattr(p, "value", None)
        if not isinstance(value, torch.Tensor):
            flat = [q.detach().reshape(-1) for q in p.parameters()]
            value = torch.cat(flat) if flat else torch.empty(0)
        v = value.detach().to(torch.float64).cpu()
        out[name] = float(v) if v.numel() == 1 else v.reshape(-1).tolist()
    return out


def train(
    adapter: DeepXDEAdapter,
    *,
    budget_s: float,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    dtype: torch.dtype | None = None,
    callbacks: tuple[Callable[[Trainer, Any], object], ...] = (),
    threads: int | None = 1,
    transform: OutputTransform | None = None,
) -> PINNResult:
    """Train a PINN for a DeepXDE-style problem with the default recipe, within a budget.

    The user writes the geometry, ``pde``, conditions (and, for an inverse problem,
    ``parameters`` and ``observations``) as a :class:`DeepXDEAdapter`; everything else is
    chosen here, by a fixed rule, from the problem's dimensions and the time budget. The
    adapter's own point counts, ``derivatives`` and ``resampling`` are replaced (its
    geometry, ``pde``, conditions, parameters, observations, anchors, outputs and
    ``train_distribution`` are kept). The rule, with ``d`` inputs (space and time) and
    ``k`` outputs:

    * **Network**: tanh :class:`hybridml.MLP`, inputs scaled to ``[-1, 1]``
      (:meth:`DeepXDEAdapter.default_model`); 3 hidden layers for ``d = 1``, else 4; width
      32 for ``d + k <= 3``, 48 for ``d + k <= 5``, else 64. Initial weights from ``seed``.
    * **Quasi-Newton method**: self-scaled dense :class:`hybridml.BFGS` up to 5000
      parameters (its matrix is 8 n^2 bytes: 200 MB), :class:`hybridml.LBFGS` above; in
      float64.
    * **Points**: the quasi-Newton phase's residual points ``N`` = 512, 6000, 12000,
      16000 for ``d`` = 1, 2, 3, 4+ (Burgers' hand-tuned 6000 for ``d = 2``); Adam trains
      on ``N / 3`` (at least 128). Boundary and initial points (where the conditions are
      enforced; kept throughout): a tenth of Adam's domain points each, at least 32.
      ``N`` is lowered (not below Adam's count) when the budget would not allow about
      1000 quasi-Newton iterations on ``N`` points, as estimated from one timed loss
      evaluation on Adam's points (a float64 iteration counted as 3 such evaluations per
      point, plus the BFGS matrix work).
    * **Adam**: 20 % of the budget by the same estimate, 200 to 5000 steps, learning rate
      2e-3 decaying exponentially to 2e-4, RAD (``k = 1, c = 1``; Wu et al. 2023) every
      third of the phase (not at its start).
    * **Switch**: RAD draws the ``N`` points from the trained network's residual.
    * **Quasi-Newton phase**: until the budget is spent, BFGS/L-BFGS converges, or the loss
      stalls: RAD redraws the points every 500 iterations (the curvature estimate is kept
      across redraws) and the fit stops when the loss on one set of points fell by less
      than 1 % over those 500 iterations. Loss weights all 1 (DeepXDE's default).
    * **Derivatives**: Taylor-mode jets (``derivatives="taylor"``) throughout; with a
      budget of 120 s or more on the CPU, the float64 jet for ``N`` points is compiled in
      a background process from the start (:meth:`PDEResidual.precompile`) and the
      residual switches to it (``"compiled"``) once that has finished, never waiting for
      it (a cold compilation takes 15-60 s on a loaded 2-core machine: below 120 s it
      would not pay). A ``pde`` the jet cannot serve uses autograd (the adapter's rule).
    * **Budget**: counted from this call; each phase's :class:`hybridml.Trainer` gets the
      time left as ``budget_s`` and stops at most one step after it is spent, so the call
      returns within about one quasi-Newton iteration (plus the final bookkeeping) of
      ``budget_s``.

    Args:
        adapter: the problem.
        budget_s: wall-time budget in seconds (> 0); the recipe needs a few seconds at
            least (a 1-d problem learns something in 5 s, Burgers needs minutes).
        seed: seed of the network's initial weights, the points and the resampling.
        device: where to train (``None``: the CPU, as ``hybridml.Trainer``).
        progress: progress bars (``None``: only when stderr is a terminal).
        dtype: ``None``: Adam in the network's dtype (float32) and the quasi-Newton phase
            in float64; ``torch.float64``: both in float64; ``torch.float32``: both in
            float32 (faster, stalls sooner).
        callbacks: further ``callback(trainer, step_info)`` run after every step of both
            phases (``phase_index`` 0 is Adam, 1 the quasi-Newton phase).
        transform: optional hard constraint on the recipe's network, e.g. a
            :class:`hybridml.HardBoundary` holding boundary and initial values exactly (leave
            the conditions it imposes out of the adapter). A ``HardBoundary`` keeps the fast
            Taylor-mode derivatives; any other transform makes the residual take autograd
            derivatives (slower), with a ``RuntimeWarning`` saying so.
        threads: torch's CPU threads during the call (``torch.set_num_threads``; the
            previous setting is restored on return). The default, 1, suits the small
            networks of PINNs: on a 2-core machine shared with other work, two threads
            made an Adam step ten times slower (spinning thread pools) than one. ``None``
            keeps torch's setting.

    Returns:
        A :class:`PINNResult`: the model, ``predict(x)``, the history, ``settings`` (every
        choice above, the timings it was based on and what happened: steps run, why it
        stopped), ``wall_s`` and the learnt ``parameters``.

    Raises:
        TypeError: ``adapter`` is not a :class:`DeepXDEAdapter`.
        ValueError: a budget that is not a positive number, an invalid ``dtype``.
    """
    t_start = time.perf_counter()
    if not isinstance(adapter, DeepXDEAdapter):
        raise InvalidTypeError(
            "train: adapter must be a hybridml_deepxde.DeepXDEAdapter (geometry, pde, "
            f"conditions), got {type(adapter).__name__}."
        )
    if (
        isinstance(budget_s, bool)
        or not isinstance(budget_s, (int, float))
        or not math.isfinite(budget_s)
        or budget_s <= 0
    ):
        raise InvalidArgumentError(
            f"train: budget_s must be a number of seconds > 0, got {budget_s!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"train: seed must be an int, got {seed!r}.")
    if transform is not None and not isinstance(transform, OutputTransform):
        raise InvalidTypeError(
            "train: transform must be a hybridml.OutputTransform such as HardBoundary(g, "
            f"distance), or None; got {type(transform).__name__}."
        )
    if dtype not in (None, torch.float32, torch.float64):
        raise InvalidArgumentError(
            f"train: dtype must be None, torch.float32 or torch.float64, got {dtype!r}."
        )
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidArgumentError(f"train: threads must be an int >= 1 or None, got {threads!r}.")
    dev = resolve_device(device, what="train: device")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(adapter, budget_s, seed, dev, progress, dtype, callbacks, t_start, transform)
    finally:
        torch.set_num_threads(before)


def _train(
    adapter: DeepXDEAdapter,
    budget_s: float,
    seed: int,
    dev: torch.device | None,
    progress: bool | None,
    dtype: torch.dtype | None,
    callbacks: tuple[Callable[[Trainer, Any], object], ...],
    t_start: float,
    transform: OutputTransform | None,
) -> PINNResult:
    """:func:`train` after its checks."""
    budget = float(budget_s)
    d, k = adapter.dim, adapter.num_outputs
    hidden = _hidden(d, k)
    n_params = _n_params(d, k, hidden) + sum(
        p.numel() for m in adapter.parameters.values() for p in m.parameters()
    )
    quasi_newton = "bfgs" if n_params <= _BFGS_MAX_PARAMS else "lbfgs"
    n_qn_max = _QN_POINTS.get(d, _QN_POINTS_MORE)
    n_adam = max(128, n_qn_max // 3)
    n_boundary, n_initial = _boundary_counts(adapter, n_adam)
    problem = adapter.replace(
        num_domain=n_adam,
        num_boundary=n_boundary,
        num_initial=n_initial,
        derivatives="taylor",
        resampling=RAD(k=1.0, c=1.0),
        seed=seed,
    )
    model = problem.default_model(
        hidden, transform=transform, generator=torch.Generator().manual_seed(seed)
    )
    if not taylor_supported(model):
        warnings.warn(
            f"train: with transform={type(transform).__name__}(...) the network is not one "
            "the Taylor-mode derivatives serve (a hybridml.MLP, alone or under a "
            "HardBoundary): the residual takes DeepXDE's autograd derivatives, about twice "
            "as slow, and nothing is compiled.",
            RuntimeWarning,
            stacklevel=3,
        )
    if dtype is not None:
        model.to(dtype)
    terms = problem.loss_terms()
    if dev is not None:
        model.to(dev)
        for term in terms.values():
            term.to(dev)
    pde = terms["pde"]
    assert isinstance(pde, PDEResidual)
    qn_dtype = torch.float64 if dtype is None else dtype

    # one timed evaluation sizes the phases (after the one-time imports of a first
    # optimiser step, several seconds in a fresh process, so that they do not eat Adam's
    # share)
    _warm_up_optimizers()
    t_eval = _evaluation_seconds(model, terms)
    t_point = t_eval / n_adam
    plan_s = max(budget - (time.perf_counter() - t_start), 1e-3)  # what is left to train
    adam_steps = int(
        min(max(_ADAM_SHARE * plan_s / (_ADAM_STEP_COST * t_eval), _ADAM_STEPS[0]), _ADAM_STEPS[1])
    )
    qn_budget = plan_s * (1 - _ADAM_SHARE)
    matrix_s = _BFGS_ENTRY_S * n_params**2 if quasi_newton == "bfgs" else 0.0
    # (a float32 Adam before a float64 phase: the evaluations cost about twice as much)
    per_point = t_point * (_QN_COST if dtype is None else _QN_COST / 2)
    affordable = (qn_budget / _QN_PLANNED_ITERATIONS - matrix_s) / per_point
    n_qn = int(min(n_qn_max, max(n_adam, affordable)))
    compiled = (
        budget >= _COMPILE_MIN_BUDGET_S
        and (dev is None or dev.type == "cpu")
        and taylor_supported(model)
    )
    settings: dict[str, Any] = {
        "recipe": RECIPE_VERSION,
        "budget_s": budget,
        "seed": seed,
        "device": str(dev) if dev is not None else "cpu",
        "threads": torch.get_num_threads(),
        "inputs": d,
        "outputs": k,
        "hidden": list(hidden),
        "activation": "tanh",
        "transform": None if transform is None else type(transform).__name__,
        "input_scaling": "bounding box to [-1, 1]",
        "n_params": n_params,
        "quasi_newton": quasi_newton,
        "adam_points": n_adam,
        "quasi_newton_points": n_qn,
        "quasi_newton_points_max": n_qn_max,
        "num_boundary": n_boundary,
        "num_initial": n_initial,
        "condition_points": {name: len(v) for name, v in problem.condition_points.items()},
        "adam_steps": adam_steps,
        "adam_lr": _ADAM_LR,
        "adam_lr_decay": _ADAM_LR_DECAY,
        "adam_resample_every": max(1, adam_steps // 3),
        "resampling": "RAD(k=1, c=1, candidates=10)",
        "quasi_newton_resample_every": _QN_RESAMPLE_EVERY,
        "stall_window": _QN_RESAMPLE_EVERY,
        "stall_tolerance": _STALL_TOLERANCE,
        "loss_weights": {name: 1.0 for name in terms},
        "adam_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "quasi_newton_dtype": str(qn_dtype).replace("torch.", ""),
        "derivatives": "taylor",
        "compile": compiled,
        "eval_seconds": t_eval,
        "setup_s": time.perf_counter() - t_start,
    }
    job = None
    if compiled:
        job = pde.precompile(model, num_points=n_qn, dtype=qn_dtype)
        settings["precompile_started"] = job is not None

    # phase 1: Adam, on n_adam points, RAD every third of the phase
    adam = Adam(
        adam_steps,
        lr=_ADAM_LR,
        lr_decay=_ADAM_LR_DECAY,
        resample_every=settings["adam_resample_every"],
    )
    left = budget - (time.perf_counter() - t_start) - _RESERVE_S
    adam_budget = max(min(_ADAM_OVERRUN * _ADAM_SHARE * plan_s, left), 1e-3)
    first = Trainer(
        (adam,),
        seed=seed,
        progress=progress,
        callbacks=callbacks,
        budget_s=adam_budget,
        device=dev,
    ).fit(model, terms)
    settings["adam_steps_run"] = len(first)
    settings["adam_s"] = first.time[-1] if first.time else 0.0

    # the switch: RAD draws the quasi-Newton phase's points from the trained residual
    second: History | None = None
    left = budget - (time.perf_counter() - t_start) - _RESERVE_S
    if left > 0.05 * budget:
        gen = torch.Generator(dev or "cpu").manual_seed(seed + 1)
        pde.n_points = n_qn
        pde.resample(gen)
        qn_cls = BFGS if quasi_newton == "bfgs" else LBFGS
        qn = qn_cls(10**7, dtype=qn_dtype, resample_every=_QN_RESAMPLE_EVERY)
        extra: list[Callable[[Trainer, Any], object]] = [
            _Stall(_QN_RESAMPLE_EVERY, _STALL_TOLERANCE)
        ]
        if job is not None:
            extra.append(_CompileWhenReady(pde, job, settings, t_start + budget))
        left = budget - (time.perf_counter() - t_start) - _RESERVE_S
        trainer = Trainer(
            (qn,),
            seed=seed + 1,
            progress=progress,
            callbacks=(*extra, *_shifted(callbacks, len(first))),
            budget_s=max(left, 1e-3),
            device=dev,
        )
        second = trainer.fit(model, terms)
    settings["quasi_newton_iterations_run"] = 0 if second is None else len(second)
    history = _merge(first, second)
    last = history.events[-1] if history.events else {}
    settings["stopped_by"] = (
        "budget"
        if last.get("event") == "budget_spent"
        else "stall"
        if last.get("event") == "stopped"
        else "converged"
        if str(last.get("event", "")).endswith("_converged")
        else "steps"
    )
    settings["final_loss"] = history.loss[-1] if history.loss else None
    settings["derivatives_final"] = pde.derivatives
    if job is not None and not job.done():
        job.cancel()  # the phase ended before the background compilation
    wall = time.perf_counter() - t_start
    settings["wall_s"] = wall
    return PINNResult(
        model=model,
        history=history,
        settings=settings,
        wall_s=wall,
        parameters=_coefficients(problem.parameters),
        adapter=problem,
    )


def _warm_up_optimizers() -> None:
    """Take one step of a throwaway Adam: torch imports its compiler stack (``torch._dynamo``)
    at an optimiser's first use, seconds in a fresh process."""
    p = torch.zeros(1, requires_grad=True)
    p.grad = torch.zeros(1)
    torch.optim.Adam([p], lr=1e-3).step()


def _shifted(
    callbacks: tuple[Callable[[Trainer, Any], object], ...], steps_before: int
) -> tuple[Callable[[Trainer, Any], object], ...]:
    """The user's callbacks for the quasi-Newton fit: ``phase_index`` 1 and global step
    numbers that run on from Adam's."""
    if not callbacks:
        return ()

    def shifted(trainer: Trainer, info: Any) -> None:
        moved = dataclasses.replace(
            info, phase_index=info.phase_index + 1, step=info.step + steps_before
        )
        for cb in callbacks:
            cb(trainer, moved)

    return (shifted,)
