"""Physics-consistency checks and their reports.

A check looks at a prediction (named columns of numbers) and returns a
:class:`CheckResult`: pass/fail, the worst violation and where it happened, and the
fraction of points that violate. Checks never raise on a failed check; a
:class:`Policy` decides what a failed report does.
"""

from __future__ import annotations

import abc
import enum
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import numpy as np

from ..data._dataset import Dataset
from ..data._validate import parse_unit
from ..exceptions import ConsistencyError, ConsistencyWarning, MissingColumnError, did_you_mean

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

__all__ = [
    "Bounds",
    "Check",
    "CheckResult",
    "Conservation",
    "ConsistencyError",
    "ConsistencyReport",
    "ConsistencyWarning",
    "CustomCheck",
    "Direction",
    "Monotone",
    "Policy",
    "ResidualBelow",
    "Sampler",
    "run_checks",
]


class Policy(enum.Enum):
    """What a failed consistency report does: raise, warn or only record."""

    RAISE = "raise"
    WARN = "warn"
    RECORD = "record"


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check.

    Attributes:
        name: the check's name.
        passed: whether the check passed.
        worst_violation: the largest violation (0.0 when there is none), in the units of
            the checked quantity.
        where: coordinates of the worst violation (column name -> value), empty if none.
        fraction_violating: fraction of checked points that violate (0.0 .. 1.0).
        n_points: number of points checked.
        message: a sentence a person can read.
    """

    name: str
    passed: bool
    worst_violation: float
    where: dict[str, Any] = field(default_factory=dict)
    fraction_violating: float = 0.0
    n_points: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        d = asdict(self)
        d["where"] = {k: _jsonable(v) for k, v in self.where.items()}
        return d


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


@dataclass(frozen=True)
class ConsistencyReport:
    """The results of a set of checks on one prediction."""

    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(r for r in self.results if not r.passed)

    def __getitem__(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no check named {name!r}; checks: {[r.name for r in self.results]}")

    def summary(self) -> str:
        """A table of the results, one line a check."""
        lines = [f"{'check':<32} {'status':<6} {'worst':>11} {'violating':>9}  where"]
        for r in self.results:
            where = ", ".join(f"{k}={_fmt(v)}" for k, v in r.where.items())
            lines.append(
                f"{r.name:<32} {'PASS' if r.passed else 'FAIL':<6} {r.worst_violation:>11.4g} "
                f"{100 * r.fraction_violating:>8.1f}%  {where}"
            )
        lines.append(
            "all checks passed" if self.passed else f"{len(self.failures)} check(s) failed"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"passed": self.passed, "checks": [r.to_dict() for r in self.results]}

    def to_json(self, path: Any) -> None:
        """Write the report as JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)

    def enforce(self, policy: Policy | str = Policy.RAISE) -> ConsistencyReport:
        """Apply ``policy`` to this report and return it.

        ``Policy.RAISE`` raises :class:`ConsistencyError` if any check failed,
        ``Policy.WARN`` issues a :class:`ConsistencyWarning`, ``Policy.RECORD`` does nothing.
        """
        try:
            policy = Policy(policy)
        except ValueError:
            valid = ", ".join(repr(p.value) for p in Policy)
            raise ValueError(
                f"unknown policy {policy!r}; use a hybridml.Policy or one of {valid}"
            ) from None
        if self.passed or policy is Policy.RECORD:
            return self
        if policy is Policy.RAISE:
            raise ConsistencyError(self)
        warnings.warn(
            f"physics-consistency checks failed:\n{self.summary()}",
            ConsistencyWarning,
            stacklevel=2,
        )
        return self


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return str(v)


class Check(abc.ABC):
    """A physics-consistency check.

    Contract for implementations:

    * ``name`` identifies the check in reports (unique within one report).
    * ``__call__(data, model=None)`` evaluates the check on ``data``, a mapping of column
      name -> 1-d numpy array (all of one length; a :class:`~hybridml.Dataset` or a plain
      dict). ``model`` is the fitted torch model, for checks that evaluate it at fresh
      points (e.g. a residual check); others ignore it.
    * It returns a :class:`CheckResult` and does not raise because a check failed; it
      raises ``KeyError``/``ValueError`` only for a mis-specified check (e.g. a missing
      column), with a message naming the column.
    """

    name: str

    @abc.abstractmethod
    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Evaluate the check."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def run_checks(
    checks: Sequence[Check], data: Mapping[str, Any], model: Any = None
) -> ConsistencyReport:
    """Run ``checks`` on ``data`` and collect a :class:`ConsistencyReport`.

    Args:
        checks: the checks, with unique names.
        data: column name -> 1-d array (a :class:`~hybridml.Dataset` or a dict).
        model: the fitted model, for checks that evaluate it (e.g. :class:`ResidualBelow`).

    Returns:
        The report, one result per check in the order given; apply a :class:`Policy`
        with :meth:`ConsistencyReport.enforce`.

    Raises:
        TypeError: if an element of ``checks`` is not a :class:`Check`.
        ValueError: if two checks share a name.
    """
    for c in checks:
        if not isinstance(c, Check):
            raise TypeError(
                f"run_checks: {c!r} is not a hybridml.Check; wrap a function in "
                "CustomCheck(fn, name=...)."
            )
    names = [c.name for c in checks]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(
            f"checks must have unique names; repeated: {sorted(dup)}. Pass name= to tell "
            "checks of the same kind apart."
        )
    return ConsistencyReport(tuple(c(data, model) for c in checks))


# --------------------------------------------------------------------------- concrete checks

#: direction of a :class:`Monotone` trend
Direction = Literal["increasing", "decreasing"]


def _column(data: Mapping[str, Any], name: str, check: str) -> np.ndarray:
    """Column ``name`` of ``data`` as a 1-d float array; a clear error if it is missing."""
    if name not in data:
        available = list(data)
        hint = did_you_mean(name, available, cutoff=0.5)
        raise MissingColumnError(
            f"check {check!r}: column {name!r} is not in the data.{hint} Available columns: "
            f"{', '.join(map(repr, available)) or 'none'}."
        )
    arr = np.asarray(data[name])
    if arr.ndim != 1:
        raise ValueError(
            f"check {check!r}: column {name!r} has shape {arr.shape}; expected a 1-d array."
        )
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"check {check!r}: column {name!r} does not hold numbers (dtype {arr.dtype}); "
            "check a numeric column, or use it as group=."
        ) from None


def _labels(data: Mapping[str, Any], name: str, check: str, n: int) -> np.ndarray:
    if name not in data:
        _column(data, name, check)  # raises the missing-column error
    arr = np.asarray(data[name])
    if arr.shape != (n,):
        raise ValueError(
            f"check {check!r}: group column {name!r} has shape {arr.shape}; expected ({n},)."
        )
    return arr


def _n_rows(check: str, *arrays: np.ndarray) -> int:
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(
            f"check {check!r}: the columns have different lengths {[a.shape[0] for a in arrays]}."
        )
    if n == 0:
        raise ValueError(f"check {check!r}: the data has no rows; there is nothing to check.")
    return n


def _unit(data: Mapping[str, Any], name: str) -> str:
    unit = data.units.get(name, "") if isinstance(data, Dataset) else parse_unit(name)
    return f" {unit}" if unit else ""


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _coords(data: Mapping[str, Any], row: int, *extra: str | None) -> dict[str, Any]:
    """The group and coordinate columns (and ``extra`` ones) of one row, plus its index."""
    names: list[str] = []
    if isinstance(data, Dataset):
        names += [c for c in (data.group, data.coordinate) if c is not None]
    names += [c for c in extra if c is not None and c not in names]
    where = {c: _py(np.asarray(data[c])[row]) for c in names}
    where["row"] = row
    return where


def _tally(magnitude: np.ndarray, tolerance: float) -> tuple[np.ndarray, int, float]:
    """Violating mask, index of the worst point, and the worst magnitude (>= 0)."""
    magnitude = np.where(np.isnan(magnitude), np.inf, magnitude)
    violating = magnitude > tolerance
    worst = int(np.argmax(magnitude))
    return violating, worst, max(float(magnitude[worst]), 0.0)


def _result(
    name: str,
    magnitude: np.ndarray,
    tolerance: float,
    where: Callable[[int], dict[str, Any]],
    describe: Callable[[int, float], str],
    points: str = "points",
) -> CheckResult:
    """A :class:`CheckResult` from per-point violation magnitudes (NaN counts as infinite)."""
    n = magnitude.shape[0]
    if n == 0:
        return CheckResult(name, True, 0.0, {}, 0.0, 0, "no points to check")
    violating, worst_i, worst = _tally(magnitude, tolerance)
    k = int(violating.sum())
    frac = k / n
    status = "PASS" if k == 0 else "FAIL"
    tail = f"{k} of {n} {points} ({100 * frac:.1f}%) violate"
    return CheckResult(
        name=name,
        passed=k == 0,
        worst_violation=worst,
        where=where(worst_i) if worst > 0 else {},
        fraction_violating=frac,
        n_points=n,
        message=f"{status} {name}: {describe(worst_i, worst)}; {tail}.",
    )


def _nonneg(value: float, what: str, cls: str) -> float:
    value = float(value)
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{cls}: {what} must be >= 0, got {value}")
    return value


class Bounds(Check):
    """Every value of a column lies within ``[lower, upper]`` (up to ``tolerance``).

    The violation of a point is its distance outside the interval, in the column's units;
    a point violates when that exceeds ``tolerance``. NaN or infinite values violate
    with an infinite violation.

    Args:
        column: the column to check, e.g. ``"Voltage [V]"``.
        lower: the lower bound (None: unbounded below).
        upper: the upper bound (None: unbounded above).
        tolerance: allowed excursion outside the bounds, in the column's units (>= 0).
        name: the check's name in reports; ``"<column> bounds"`` by default.

    Raises:
        ValueError: if neither bound is given, ``lower > upper`` or ``tolerance < 0``.
    """

    def __init__(
        self,
        column: str,
        lower: float | None = None,
        upper: float | None = None,
        *,
        tolerance: float = 0.0,
        name: str | None = None,
    ) -> None:
        if lower is None and upper is None:
            raise ValueError(f"Bounds({column!r}): give lower=, upper= or both.")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"Bounds({column!r}): lower={lower} is above upper={upper}.")
        self.column = column
        self.lower = None if lower is None else float(lower)
        self.upper = None if upper is None else float(upper)
        self.tolerance = _nonneg(tolerance, "tolerance", f"Bounds({column!r})")
        self.name = name if name is not None else f"{column} bounds"

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Check ``data[column]``; ``model`` is ignored.

        Returns:
            The result; ``where`` holds the worst point's group and coordinate columns
            (for a :class:`~hybridml.Dataset`) and its 0-based ``row``.
        """
        v = _column(data, self.column, self.name)
        _n_rows(self.name, v)
        mag = np.zeros_like(v)
        if self.lower is not None:
            mag = np.maximum(mag, self.lower - v)
        if self.upper is not None:
            mag = np.maximum(mag, v - self.upper)
        mag[~np.isfinite(v)] = np.inf
        unit = _unit(data, self.column)
        lo = "-inf" if self.lower is None else f"{self.lower:g}"
        hi = "inf" if self.upper is None else f"{self.upper:g}"

        def describe(i: int, worst: float) -> str:
            if worst == 0:
                return f"{self.column} within [{lo}, {hi}]{unit} everywhere"
            return (
                f"{self.column} = {v[i]:.6g}{unit} at row {i} is outside [{lo}, {hi}]{unit} "
                f"by {worst:.4g}{unit} (tolerance {self.tolerance:g})"
            )

        return _result(self.name, mag, self.tolerance, lambda i: _coords(data, i), describe)


class Monotone(Check):
    """A column rises or falls monotonically along another (per group).

    Within each group the rows are sorted by ``along`` (stably); each step against
    ``direction`` larger than ``tolerance`` (absolute, in the column's units) is a
    violation, so e.g. a capacity recovery after a rest that stays within the tolerance
    passes. Points are the steps between consecutive rows: ``n_points`` counts steps and
    ``where`` is the point at the end of the worst step. A step touching a NaN or
    infinite value violates with an infinite violation.

    Args:
        column: the column that should be monotone, e.g. ``"Capacity [A.h]"``.
        along: the column to sort by, e.g. ``"Cycle number"``.
        direction: ``"decreasing"`` (no rise larger than ``tolerance``) or
            ``"increasing"`` (no fall larger than ``tolerance``).
        tolerance: the largest step against ``direction`` that is allowed (>= 0).
        group: the column of group labels; each group is checked separately. None uses
            the dataset's group column when ``data`` is a :class:`~hybridml.Dataset` with
            one, and no grouping otherwise.
        name: the check's name in reports; ``"<column> <direction>"`` by default.

    Raises:
        ValueError: for an unknown ``direction`` or a negative ``tolerance``.
    """

    def __init__(
        self,
        column: str,
        along: str,
        *,
        direction: Direction = "decreasing",
        tolerance: float = 0.0,
        group: str | None = None,
        name: str | None = None,
    ) -> None:
        allowed = get_args(Direction)
        if direction not in allowed:
            raise ValueError(
                f"Monotone({column!r}): direction must be one of {allowed}, got {direction!r}."
            )
        self.column = column
        self.along = along
        self.direction: Direction = direction
        self.tolerance = _nonneg(tolerance, "tolerance", f"Monotone({column!r})")
        self.group = group
        self.name = name if name is not None else f"{column} {direction}"

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Check the trend of ``data[column]`` along ``data[along]``; ``model`` is ignored.

        Returns:
            The result; ``where`` holds the group label, the ``along`` value (and the
            dataset's coordinate) of the point ending the worst step, and its 0-based
            ``row``.
        """
        v = _column(data, self.column, self.name)
        a = _column(data, self.along, self.name)
        n = _n_rows(self.name, v, a)
        group = self.group
        if group is None and isinstance(data, Dataset):
            group = data.group
        g = _labels(data, group, self.name, n) if group is not None else np.zeros(n, dtype=int)
        order = np.lexsort((a, g))  # by group, then along; stable
        vs, as_, gs = v[order], a[order], g[order]
        same = gs[1:] == gs[:-1]
        step = vs[1:] - vs[:-1]
        against = step if self.direction == "decreasing" else -step
        mag = np.maximum(against, 0.0)
        finite = np.isfinite(vs) & np.isfinite(as_)
        mag[~(finite[1:] & finite[:-1])] = np.inf
        mag = mag[same]
        end = order[1:][same]  # row index of the point ending each step
        start = order[:-1][same]
        unit = _unit(data, self.column)
        verb = "rises" if self.direction == "decreasing" else "falls"

        def describe(k: int, worst: float) -> str:
            if worst == 0:
                return f"{self.column} is {self.direction} along {self.along} in every group"
            i, j = int(start[k]), int(end[k])
            in_group = f" in {group} {g[j]}" if group is not None else ""
            return (
                f"{self.column} {verb} by {worst:.4g}{unit} from {self.along} = {a[i]:.6g} to "
                f"{a[j]:.6g}{in_group} (tolerance {self.tolerance:g}{unit})"
            )

        return _result(
            self.name,
            mag,
            self.tolerance,
            lambda k: _coords(data, int(end[k]), group, self.along),
            describe,
            points="steps",
        )


class Conservation(Check):
    """A conserved quantity (total mass, charge, energy) stays at its expected value.

    ``quantity(data)`` returns the quantity, typically one value a time step (an
    integral over space that the user computes from the columns). Each value is compared
    with ``expected``, or with the first value when ``expected`` is None; a value
    violates when ``|q - ref| > atol + rtol * |ref|``. The violation is ``|q - ref|`` in
    the quantity's units.

    Args:
        quantity: data -> an array of values (or a single value).
        expected: the value the quantity should keep; the first value when None.
        rtol: relative tolerance (>= 0).
        atol: absolute tolerance (>= 0).
        name: the check's name in reports.

    Raises:
        ValueError: if ``quantity`` is not callable or a tolerance is negative.
    """

    def __init__(
        self,
        quantity: Callable[[Mapping[str, np.ndarray]], np.ndarray | float],
        expected: float | None = None,
        *,
        rtol: float = 1e-3,
        atol: float = 0.0,
        name: str = "conservation",
    ) -> None:
        if not callable(quantity):
            raise ValueError(f"Conservation({name!r}): quantity must be a callable data -> array.")
        self.quantity = quantity
        self.expected = None if expected is None else float(expected)
        self.rtol = _nonneg(rtol, "rtol", f"Conservation({name!r})")
        self.atol = _nonneg(atol, "atol", f"Conservation({name!r})")
        self.name = name

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Evaluate ``quantity(data)`` and compare; ``model`` is ignored.

        Returns:
            The result; ``where`` is ``{"index": i}`` (the position in the quantity's
            output) and, when the output has one value per row of a
            :class:`~hybridml.Dataset`, that row's group and coordinate columns too.

        Raises:
            ValueError: if the quantity is not a scalar or 1-d array of numbers, or is a
                single value while ``expected`` is None.
        """
        out = self.quantity(data)
        try:
            q = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"check {self.name!r}: quantity returned {type(out).__name__}, not numbers "
                f"({exc}); return a 1-d array of floats or one float."
            ) from None
        if q.ndim == 0:
            if self.expected is None:
                raise ValueError(
                    f"check {self.name!r}: quantity returned a single value and expected is "
                    "None; pass expected= or return one value a time step."
                )
            q = q.reshape(1)
        if q.ndim != 1:
            raise ValueError(
                f"check {self.name!r}: quantity returned shape {q.shape}; return a 1-d array "
                "(one value a time step) or a single value."
            )
        if q.shape[0] == 0:
            raise ValueError(f"check {self.name!r}: quantity returned no values.")
        ref = float(q[0]) if self.expected is None else self.expected
        mag = np.abs(q - ref)
        allowed = self.atol + self.rtol * abs(ref)
        if not np.isfinite(ref):
            mag[:] = np.inf

        def where(i: int) -> dict[str, Any]:
            w: dict[str, Any] = {"index": i}
            if isinstance(data, Dataset) and q.shape[0] == data.n_rows:
                w.update(_coords(data, i))
            return w

        def describe(i: int, worst: float) -> str:
            what = "the expected value" if self.expected is not None else "its first value"
            if worst == 0:
                return f"the quantity keeps {what} {ref:.6g} exactly"
            return (
                f"the quantity is {q[i]:.6g} at index {i}, {worst:.4g} away from {what} "
                f"{ref:.6g} (allowed {allowed:.4g} = atol + rtol * |{ref:.4g}|)"
            )

        return _result(self.name, mag, allowed, where, describe)


class Sampler(Protocol):
    """What :class:`ResidualBelow` needs of a sampler (e.g. :class:`~hybridml.BoxSampler`).

    ``sample(n, generator)`` returns ``n`` points, shape ``(n, d)``, drawing randomness only
    from ``generator``. An optional ``names`` attribute names the ``d`` coordinates.
    """

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` points."""
        ...


class ResidualBelow(Check):
    """The model satisfies its governing equation at fresh points.

    Draws ``n_points`` fresh points from ``sampler`` with a private
    ``torch.Generator(seed)`` (no global random state is used or changed), converts them
    to the model's dtype and device, marks them ``requires_grad`` so that ``residual`` can
    take autograd derivatives, and evaluates ``residual(model, x)`` with gradients enabled
    and the model in eval mode (its mode is restored afterwards). The violation of a point
    is ``|residual|`` (the largest component when the residual has several); a point
    violates when it exceeds ``threshold``, so the check passes when the largest residual
    is at most ``threshold``.

    Args:
        residual: (model, x) -> residual, shape ``(n,)`` or ``(n, k)``; the same callable
            as for :class:`~hybridml.ResidualLoss`.
        sampler: an object with ``sample(n, generator) -> Tensor (n, d)`` and optionally
            ``names`` (d coordinate names), e.g. :class:`~hybridml.BoxSampler`.
        threshold: the largest acceptable ``|residual|`` (>= 0).
        n_points: how many fresh points to draw.
        seed: seed of the check's own generator (the same points every call).
        name: the check's name in reports.

    Raises:
        TypeError: if ``residual`` is not callable or ``sampler`` has no ``sample``.
        ValueError: for a negative threshold or ``n_points < 1``.
    """

    def __init__(
        self,
        residual: Callable[[nn.Module, Tensor], Tensor],
        sampler: Sampler,
        threshold: float,
        *,
        n_points: int = 1000,
        seed: int = 0,
        name: str = "residual",
    ) -> None:
        if not callable(residual):
            raise TypeError(f"ResidualBelow({name!r}): residual must be callable (model, x).")
        if not callable(getattr(sampler, "sample", None)):
            raise TypeError(
                f"ResidualBelow({name!r}): sampler must have a sample(n, generator) method, "
                f"e.g. hybridml.BoxSampler; got {type(sampler).__name__}."
            )
        if int(n_points) < 1:
            raise ValueError(f"ResidualBelow({name!r}): n_points must be >= 1, got {n_points}.")
        self.residual = residual
        self.sampler = sampler
        self.threshold = _nonneg(threshold, "threshold", f"ResidualBelow({name!r})")
        self.n_points = int(n_points)
        self.seed = int(seed)
        self.name = name

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Evaluate the residual of ``model`` at fresh points; ``data`` is ignored.

        Returns:
            The result; ``where`` holds the worst point's coordinates, named by the
            sampler's ``names`` (``x0``, ``x1``, ... without them).

        Raises:
            ValueError: if ``model`` is None, or the sampler or residual returns a tensor
                of the wrong shape.
        """
        import torch

        if model is None:
            raise ValueError(
                f"check {self.name!r} evaluates the model at fresh points, but no model was "
                "given; pass the fitted model: run_checks(checks, data, model=model)."
            )
        dtype, device = torch.get_default_dtype(), torch.device("cpu")
        if isinstance(model, torch.nn.Module):
            p = next(model.parameters(), None)
            if p is not None:
                dtype, device = p.dtype, p.device
        gen = torch.Generator().manual_seed(self.seed)
        x = self.sampler.sample(self.n_points, gen)
        if not isinstance(x, torch.Tensor) or x.ndim not in (1, 2) or x.shape[0] != self.n_points:
            raise ValueError(
                f"check {self.name!r}: sampler.sample({self.n_points}, generator) returned "
                f"{getattr(x, 'shape', type(x).__name__)}; expected a tensor of shape "
                f"({self.n_points}, d)."
            )
        if x.ndim == 1:
            x = x[:, None]
        x = x.detach().to(dtype=dtype, device=device).requires_grad_(True)
        training = isinstance(model, torch.nn.Module) and model.training
        if training:
            model.eval()
        try:
            with torch.enable_grad():
                r = self.residual(model, x)
        finally:
            if training:
                model.train()
        if not isinstance(r, torch.Tensor) or r.ndim == 0 or r.shape[0] != self.n_points:
            raise ValueError(
                f"check {self.name!r}: residual returned {getattr(r, 'shape', type(r))}; "
                f"expected a tensor with one row per point, shape ({self.n_points},) or "
                f"({self.n_points}, k)."
            )
        mag = r.detach().reshape(self.n_points, -1).abs().amax(dim=1)
        mag_np = mag.to("cpu", torch.float64).numpy()
        pts = x.detach().to("cpu", torch.float64).numpy()
        names = list(getattr(self.sampler, "names", None) or [])
        if len(names) != pts.shape[1]:
            names = [f"x{j}" for j in range(pts.shape[1])]

        def where(i: int) -> dict[str, Any]:
            return {c: float(pts[i, j]) for j, c in enumerate(names)}

        def describe(i: int, worst: float) -> str:
            at = ", ".join(f"{c}={pts[i, j]:.4g}" for j, c in enumerate(names))
            return (
                f"largest |residual| {worst:.4g} at ({at}) over {self.n_points} fresh points "
                f"(threshold {self.threshold:g})"
            )

        return _result(self.name, mag_np, self.threshold, where, describe)


class CustomCheck(Check):
    """Wrap a function as a check.

    ``fn(data, model)`` returns either one ``bool`` (True = passed; a failure is reported
    with ``worst_violation`` 1.0 and one point) or per-point violation magnitudes
    (an array of numbers >= 0, 0 meaning no violation); a point violates when its
    magnitude exceeds ``threshold``, NaN counts as an infinite violation. When the array
    has one value per row of ``data``, ``where`` holds the worst row's group and
    coordinate columns (for a :class:`~hybridml.Dataset`) and its ``row``; otherwise
    ``{"index": i}``.

    Args:
        fn: (data, model) -> bool or array of violation magnitudes.
        name: the check's name in reports (required).
        threshold: the largest magnitude that is not a violation (>= 0).

    Raises:
        TypeError: if ``fn`` is not callable.
        ValueError: for a negative threshold.
    """

    def __init__(
        self,
        fn: Callable[[Mapping[str, Any], Any], Any],
        *,
        name: str,
        threshold: float = 0.0,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"CustomCheck({name!r}): fn must be callable (data, model).")
        self.fn = fn
        self.name = name
        self.threshold = _nonneg(threshold, "threshold", f"CustomCheck({name!r})")

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        """Call ``fn(data, model)`` and turn its answer into a result.

        Raises:
            TypeError: if ``fn`` returns a boolean array (ambiguous: return
                ``(~ok).astype(float)`` for per-point flags) or something not numeric.
            ValueError: if it returns negative magnitudes or an array that is not 1-d.
        """
        out = self.fn(data, model)
        if isinstance(out, bool | np.bool_):
            ok = bool(out)
            return CheckResult(
                self.name,
                ok,
                0.0 if ok else 1.0,
                {},
                0.0 if ok else 1.0,
                1,
                f"{'PASS' if ok else 'FAIL'} {self.name}: the function returned {ok}.",
            )
        arr = np.asarray(out)
        if arr.dtype.kind == "b":
            raise TypeError(
                f"check {self.name!r}: fn returned a boolean array, which is ambiguous; return "
                "one bool (True = passed) or violation magnitudes, e.g. (~ok).astype(float)."
            )
        if arr.dtype.kind not in "iuf":
            raise TypeError(
                f"check {self.name!r}: fn returned {type(out).__name__} of dtype {arr.dtype}; "
                "return a bool or an array of violation magnitudes."
            )
        mag = arr.astype(np.float64).reshape(-1) if arr.ndim == 0 else arr.astype(np.float64)
        if mag.ndim != 1:
            raise ValueError(
                f"check {self.name!r}: fn returned shape {arr.shape}; return a 1-d array of "
                "violation magnitudes, one a point."
            )
        if np.any(mag < 0):
            raise ValueError(
                f"check {self.name!r}: fn returned negative magnitudes (min {mag.min():g}); "
                "return violation sizes >= 0, e.g. np.abs(...) or np.maximum(..., 0)."
            )
        n_rows = _rows_of(data)

        def where(i: int) -> dict[str, Any]:
            return _coords(data, i) if mag.shape[0] == n_rows else {"index": i}

        def describe(i: int, worst: float) -> str:
            if worst == 0:
                return "no violation"
            return f"largest violation {worst:.4g} at point {i} (threshold {self.threshold:g})"

        return _result(self.name, mag, self.threshold, where, describe)


def _rows_of(data: Mapping[str, Any]) -> int | None:
    if isinstance(data, Dataset):
        return data.n_rows
    for v in data.values():
        return int(np.shape(v)[0]) if np.ndim(v) >= 1 else None
    return None
