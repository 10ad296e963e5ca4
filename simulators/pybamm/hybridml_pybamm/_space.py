"""Parameter spaces for sweeps: ranges, log-uniform ranges, choices; grids, random and
Latin-hypercube designs (``scipy.stats.qmc``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hybridml.exceptions import InvalidArgumentError, InvalidTypeError

from ._validation import ParameterError, check_physical

__all__ = ["Choice", "LogUniform", "ParameterSpace", "Uniform"]


@dataclass(frozen=True)
class Uniform:
    """Values spread evenly between ``low`` and ``high`` (inclusive for grids)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise InvalidArgumentError(
                f"Uniform: need finite low < high, got ({self.low}, {self.high})."
            )

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Map points of [0, 1] to the range."""
        return self.low + (self.high - self.low) * u

    def bounds(self) -> tuple[float, float]:
        """The two ends of the range."""
        return self.low, self.high


@dataclass(frozen=True)
class LogUniform:
    """Values spread evenly in log space between ``low > 0`` and ``high`` (rates, diffusivities
    spanning decades)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low < self.high and math.isfinite(self.high)):
            raise InvalidArgumentError(
                f"LogUniform: need 0 < low < high (finite), got ({self.low}, {self.high})."
            )

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Map points of [0, 1] to the range (uniform in log)."""
        lo, hi = math.log(self.low), math.log(self.high)
        return np.exp(lo + (hi - lo) * u)

    def bounds(self) -> tuple[float, float]:
        """The two ends of the range."""
        return self.low, self.high


@dataclass(frozen=True)
class Choice:
    """A finite set of values (e.g. operating temperatures)."""

    values: tuple[float, ...]

    def __init__(self, values: Sequence[float]) -> None:
        vals = tuple(float(v) for v in values)
        if not vals:
            raise InvalidArgumentError("Choice: give at least one value.")
        object.__setattr__(self, "values", vals)

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Map points of [0, 1] to the values (equal probability each)."""
        idx = np.minimum((u * len(self.values)).astype(int), len(self.values) - 1)
        return np.asarray(self.values)[idx]

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value."""
        return min(self.values), max(self.values)


Dimension = Uniform | LogUniform | Choice


class ParameterSpace:
    """A box of parameters to sweep over, checked against physical limits on creation.

    Args:
        dimensions: parameter name -> :class:`Uniform`, :class:`LogUniform` or
            :class:`Choice`. Names are PyBaMM parameter names (with units) or placeholders
            of the adapter's experiment (operating conditions such as ``"C-rate"``).
        fixed: parameters held at one value in every set.

    Raises:
        ParameterError: if a range reaches outside physical limits (a negative diffusivity),
            before anything is simulated.

    Example::

        space = ParameterSpace({
            "SEI kinetic rate constant [m.s-1]": LogUniform(1e-13, 1e-11),
            "Ambient temperature [K]": Uniform(288.15, 308.15),
        })
        sets = space.latin_hypercube(40, seed=0)
    """

    def __init__(
        self,
        dimensions: Mapping[str, Dimension],
        *,
        fixed: Mapping[str, float] | None = None,
    ) -> None:
        if not dimensions:
            raise InvalidArgumentError("ParameterSpace: give at least one dimension.")
        for name, dim in dimensions.items():
            if not isinstance(dim, Uniform | LogUniform | Choice):
                raise InvalidTypeError(
                    f"ParameterSpace: dimension {name!r} must be Uniform(low, high), "
                    f"LogUniform(low, high) or Choice(values), got {type(dim).__name__}."
                )
            lo, hi = dim.bounds()
            check_physical({name: lo}, where="lower end of the sweep range")
            check_physical({name: hi}, where="upper end of the sweep range")
        self.dimensions: dict[str, Dimension] = dict(dimensions)
        self.fixed: dict[str, float] = {k: float(v) for k, v in (fixed or {}).items()}
        check_physical(self.fixed, where="fixed value of the sweep")
        overlap = set(self.fixed) & set(self.dimensions)
        if overlap:
            raise ParameterError(f"ParameterSpace: {sorted(overlap)} are both swept and fixed.")

    @property
    def names(self) -> tuple[str, ...]:
        """The swept parameter names, in order."""
        return tuple(self.dimensions)

    def _sets(self, u: np.ndarray) -> list[dict[str, float]]:
        cols = [dim.ppf(u[:, j]) for j, dim in enumerate(self.dimensions.values())]
        return [
            {**self.fixed, **{n: float(c[i]) for n, c in zip(self.names, cols, strict=True)}}
            for i in range(u.shape[0])
        ]

    def grid(self, n: int | Mapping[str, int]) -> list[dict[str, float]]:
        """A full factorial grid, ``n`` values per dimension (ends included).

        A :class:`Choice` dimension always uses all its values.
        """
        per = {name: (n[name] if isinstance(n, Mapping) else n) for name in self.names}
        axes = []
        for name, dim in self.dimensions.items():
            if isinstance(dim, Choice):
                axes.append(np.asarray(dim.values))
                continue
            k = int(per[name])
            if k < 1:
                raise InvalidArgumentError(f"grid: need at least one value for {name!r}, got {k}.")
            u = np.array([0.5]) if k == 1 else np.linspace(0.0, 1.0, k)
            axes.append(dim.ppf(u))
        return [
            {**self.fixed, **{n: float(v) for n, v in zip(self.names, combo, strict=True)}}
            for combo in itertools.product(*axes)
        ]

    def random(self, n: int, *, seed: int | None = None) -> list[dict[str, float]]:
        """``n`` independent random draws (seeded by ``seed``)."""
        rng = np.random.default_rng(seed)
        return self._sets(rng.random((int(n), len(self.names))))

    def latin_hypercube(self, n: int, *, seed: int | None = None) -> list[dict[str, float]]:
        """``n`` points of a Latin hypercube design (``scipy.stats.qmc.LatinHypercube``)."""
        from scipy.stats import qmc

        sampler = qmc.LatinHypercube(d=len(self.names), rng=np.random.default_rng(seed))
        return self._sets(sampler.random(int(n)))
