"""The physics side of the battery study: a library of PyBaMM capacity-fade trajectories
over a sweep of degradation parameters (the physics prior of a cell, identified from its
measured points with this library, is :mod:`._identify`).

The library is an SPM with solvent-consumption SEI growth (``"ec reaction limited"``) on the
Mohtat 2020 parameter set, cycled with a CC-CV protocol; the swept SEI kinetic rate constant
and EC diffusivity move the fade from reaction limited (linear in cycles) to diffusion limited
(square-root like). Each trajectory is normalised by its first cycle, so it is a *shape*
``g(u)``. Every simulated shape also enters the library with a delayed *onset* of fade
(flat for the first few simulated cycles, then the simulated fade): the NASA cells, like many
real cells, hold their capacity (with regeneration bumps) for their first 20-40 cycles before
the fade sets in, which the SEI model, fading from its first cycle, does not show; the
delayed shapes let the fade after the onset keep the simulated SEI shape while matching the
flat start (which on every fold of an inner leave-one-cell-out over the training cells made
the prior's end-of-life prediction better).

PyBaMM is imported only inside :func:`fade_library` (through the PyBaMM adapter).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridml.exceptions import InvalidArgumentError

__all__ = [
    "REFERENCE_AH",
    "FadeLibrary",
    "SweepDesign",
    "capacity_scale",
    "default_cache_dir",
    "fade_library",
    "with_onsets",
]

RATE = "SEI kinetic rate constant [m.s-1]"
DIFFUSIVITY = "EC diffusivity [m2.s-1]"
ONSET = "fade onset [simulated cycle]"
_EXPERIMENT = (
    "Discharge at 1C until 3 V",
    "Charge at 1C until 4.2 V",
    "Hold at 4.2 V until C/5",
)
#: the capacity [A.h] at which the study's capacity thresholds were set: the rated capacity
#: of the NASA cells. Every threshold in A.h scales with a cell's :func:`capacity_scale`
#: divided by this (1 for cells of 1.4-2.8 A.h, so the NASA results are those the
#: thresholds were calibrated on).
REFERENCE_AH = 2.0
#: largest capacity regeneration step seen in the NASA data (README: 20-150 mAh) for a cell
#: of :data:`REFERENCE_AH`: a rise up to this size is physical, a larger one is not
REGEN_TOL_AH = 0.15


@dataclass(frozen=True)
class SweepDesign:
    """Which PyBaMM simulations make the library.

    Attributes:
        cycles: cycles simulated per run.
        rates: values of the SEI kinetic rate constant [m/s].
        diffusivities: values of the EC diffusivity [m^2/s].
        onsets: delays of the onset of fade [simulated cycles] with which every simulated
            trajectory enters the library (not simulated: the shape is shifted).
    """

    cycles: int
    rates: tuple[float, ...]
    diffusivities: tuple[float, ...]
    onsets: tuple[int, ...] = (0, 4, 8, 12, 16)

    @classmethod
    def default(cls, quick: bool = False) -> SweepDesign:
        """4 simulations of 40 cycles (quick) or 12 of 60 cycles; onsets 0-16 cycles."""
        if quick:
            return cls(40, (1e-14, 1e-13), (2e-18, 2e-17))
        return cls(60, (1e-14, 3e-14, 1e-13), (2e-19, 2e-18, 2e-17, 2e-16))

    def param_sets(self) -> list[dict[str, float]]:
        """One parameter set per grid point."""
        return [{RATE: k, DIFFUSIVITY: d} for k in self.rates for d in self.diffusivities]


def capacity_scale(capacity: np.ndarray) -> float:
    """The nominal capacity [A.h] of a cell that capacity thresholds scale with.

    Its initial capacity (the mean of its first 5 measured cycles) rounded to the nearest
    power-of-two multiple of :data:`REFERENCE_AH` (2 A.h): 2 A.h for cells of 1.41-2.83 A.h,
    4 A.h for 2.83-5.66 A.h, 0.0625 A.h for a 50 mA.h coin cell. Thresholds stay within a
    factor 1.41 of proportional to the cell's capacity, and are exactly the calibrated ones
    on the NASA cells (initial 1.84-2.02 A.h), whose results therefore do not change.
    """
    cap = np.asarray(capacity, dtype=float)
    initial = float(np.mean(cap[:5]))
    if not initial > 0 or not math.isfinite(initial):
        return REFERENCE_AH
    return float(REFERENCE_AH * 2.0 ** round(math.log2(initial / REFERENCE_AH)))


def default_cache_dir() -> Path:
    """``$HYBRIDML_CACHE`` or ``$XDG_CACHE_HOME/hybridml`` (``~/.cache/hybridml``), plus
    ``pybamm-fade``."""
    root = os.environ.get("HYBRIDML_CACHE")
    if root:
        return Path(root) / "pybamm-fade"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hybridml" / "pybamm-fade"


@dataclass(frozen=True)
class FadeLibrary:
    """Normalised capacity-fade trajectories from a PyBaMM sweep.

    Attributes:
        params: the degradation parameters of each trajectory.
        curves: capacity / first-cycle capacity, shape ``(n_curves, n_cycles)``.
        failures: messages of simulations that failed (not in the library).
        n_cached: how many simulations came from the on-disk cache.
        seconds: wall time of the sweep.
        description: the model, parameter set and protocol.
    """

    params: tuple[dict[str, float], ...]
    curves: np.ndarray
    failures: tuple[str, ...] = ()
    n_cached: int = 0
    seconds: float = 0.0
    description: str = ""

    def shape(self, j: int, u: np.ndarray) -> np.ndarray:
        """Trajectory ``j`` at (fractional, 0-based) simulated cycles ``u``.

        Beyond the simulated cycles the trajectory continues at the fade rate of its last
        five cycles (a straight line), floored at 1 % of the initial capacity.
        """
        g = self.curves[j]
        n = g.shape[0]
        out = np.interp(u, np.arange(n), g)
        tail = u > n - 1
        if tail.any():
            slope = (g[-1] - g[-6]) / 5.0
            out[tail] = g[-1] + slope * (u[tail] - (n - 1))
        return np.maximum(out, 0.01)

    def shapes(self, u: np.ndarray) -> np.ndarray:
        """Every trajectory at ``u`` (any shape); result shape ``(n_curves, *u.shape)``."""
        return np.stack([self.shape(j, u.reshape(-1)).reshape(u.shape) for j in range(len(self))])

    def __len__(self) -> int:
        return int(self.curves.shape[0])


def with_onsets(library: FadeLibrary, onsets: Sequence[int]) -> FadeLibrary:
    """The library with every trajectory also delayed by each of ``onsets``.

    The delayed trajectory stays at 1 for ``d`` simulated cycles, then follows the
    original one (``g_d(u) = g(u - d)``); trajectories are extended (by the linear tail of
    :meth:`FadeLibrary.shape`) to a common length.

    Args:
        library: the simulated library.
        onsets: non-negative delays in simulated cycles (0: the original trajectory).

    Returns:
        A library of ``len(library) * len(onsets)`` trajectories whose parameters gain
        the key ``"fade onset [simulated cycle]"``.

    Raises:
        ValueError: if an onset is negative or ``onsets`` is empty.
    """
    onsets = [int(d) for d in onsets]
    if not onsets or min(onsets) < 0:
        raise InvalidArgumentError(
            f"onsets must be non-negative integers (at least one), got {onsets}."
        )
    n = library.curves.shape[1] + max(onsets)
    u = np.arange(n, dtype=float)
    curves, params = [], []
    for d in onsets:
        for j in range(len(library)):
            g = np.ones(n)
            g[d:] = library.shape(j, u[: n - d])
            curves.append(g)
            params.append({**library.params[j], ONSET: float(d)})
    return FadeLibrary(
        params=tuple(params),
        curves=np.asarray(curves),
        failures=library.failures,
        n_cached=library.n_cached,
        seconds=library.seconds,
        description=f"{library.description}; each with fade onsets {onsets} simulated cycles",
    )


def _adapter_class() -> Any:
    """The PyBaMM adapter class, from the plug-in registry (or the installed package)."""
    from hybridml import SimulationError, UnknownSimulatorError, load_simulator

    try:
        return load_simulator("pybamm")
    except UnknownSimulatorError:
        pass
    try:
        from hybridml_pybamm import PyBaMMAdapter

        return PyBaMMAdapter
    except ImportError:
        raise SimulationError(
            "the battery-ageing study needs the PyBaMM adapter: install it with "
            "`pip install -e simulators/pybamm` (it needs pybamm)."
        ) from None


def fade_library(
    design: SweepDesign,
    *,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    progress: bool | None = None,
) -> FadeLibrary:
    """Simulate the sweep (or read it from the cache) and return the library.

    Args:
        design: the sweep.
        cache_dir: where simulations are cached (None: no cache).
        workers: processes for the sweep (1: in this process).
        progress: show a progress bar (None: only on a terminal).

    Returns:
        The :class:`FadeLibrary`.

    Raises:
        hybridml.SimulationError: if fewer than two simulations succeed.
        hybridml.InvalidArgumentError: ``cache_dir`` is a file (checked before PyBaMM is
            imported).

    Warns:
        hybridml.CacheWarning: a cache entry that cannot be read (named; it is moved aside
            as ``<name>.corrupt`` and simulated again). The cache is the library's sweep
            cache (:meth:`hybridml.ProvidesData.sweep`): keyed by the adapter's settings,
            the PyBaMM and adapter versions and the parameters; a failed simulation is
            tried once more on a later run; workers end when this process dies.
    """
    import time

    from hybridml import SimulationError

    if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise InvalidArgumentError(
            f"the PyBaMM cache folder (--cache-dir) '{cache_dir}' is a file; pass a folder "
            "(created if missing) or move the file away."
        )
    t0 = time.perf_counter()
    adapter = _adapter_class()(
        "SPM",
        "Mohtat2020",
        options={"SEI": "ec reaction limited"},
        experiment=list(_EXPERIMENT),
        cycles=design.cycles,
        output="cycles",
        variables=["Current [A]", "Voltage [V]"],
        summary_variables=["Capacity [A.h]"],
    )
    sets = design.param_sets()
    executor = None
    if workers > 1 and len(sets) > 4:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # forkserver/spawn: the parent may already hold torch threads, which fork would copy
        ctx = mp.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        result = adapter.sweep(sets, executor=executor, cache_dir=cache_dir, progress=progress)
    finally:
        if executor is not None:
            executor.shutdown()
    params, curves = [], []
    for p, data in result.succeeded:
        cap = np.asarray(data["Capacity [A.h]"], dtype=float)
        if cap.shape[0] < design.cycles or not np.all(np.isfinite(cap)) or cap[0] <= 0:
            continue
        params.append(dict(p))
        curves.append(cap[: design.cycles] / cap[0])
    failures = tuple(f"{f.params}: {f.error}: {f.message}" for f in result.failures)
    if len(curves) < 2:
        raise SimulationError(
            f"the PyBaMM fade sweep gave {len(curves)} usable trajectories of {len(sets)}; at "
            f"least 2 are needed. Failures: {'; '.join(failures) or 'none'}"
        )
    library = FadeLibrary(
        params=tuple(params),
        curves=np.asarray(curves),
        failures=failures,
        n_cached=result.n_cached,
        seconds=time.perf_counter() - t0,
        description=(
            f"PyBaMM SPM, Mohtat2020, SEI 'ec reaction limited', {design.cycles} cycles of "
            f"{'; '.join(_EXPERIMENT)}; swept {RATE} over {list(design.rates)} and "
            f"{DIFFUSIVITY} over {list(design.diffusivities)}"
        ),
    )
    return with_onsets(library, design.onsets) if design.onsets != (0,) else library
