"""Checks that evaluate a model or a user's function: :class:`ResidualBelow` (the
governing equation at fresh points) and :class:`CustomCheck`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ._base import Check, CheckResult
from ._helpers import _coords, _nonneg, _result, _rows_of

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

__all__ = ["CustomCheck", "ResidualBelow", "Sampler"]


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
            raise InvalidTypeError(
                f"ResidualBelow({name!r}): residual must be callable (model, x)."
            )
        if not callable(getattr(sampler, "sample", None)):
            raise InvalidTypeError(
                f"ResidualBelow({name!r}): sampler must have a sample(n, generator) method, "
                f"e.g. hybridml.BoxSampler; got {type(sampler).__name__}."
            )
        if int(n_points) < 1:
            raise InvalidArgumentError(
                f"ResidualBelow({name!r}): n_points must be >= 1, got {n_points}."
            )
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
            raise InvalidArgumentError(
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
            raise InvalidArgumentError(
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
            raise InvalidArgumentError(
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
            raise InvalidTypeError(f"CustomCheck({name!r}): fn must be callable (data, model).")
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
            raise InvalidTypeError(
                f"check {self.name!r}: fn returned a boolean array, which is ambiguous; return "
                "one bool (True = passed) or violation magnitudes, e.g. (~ok).astype(float)."
            )
        if arr.dtype.kind not in "iuf":
            raise InvalidTypeError(
                f"check {self.name!r}: fn returned {type(out).__name__} of dtype {arr.dtype}; "
                "return a bool or an array of violation magnitudes."
            )
        mag = arr.astype(np.float64).reshape(-1) if arr.ndim == 0 else arr.astype(np.float64)
        if mag.ndim != 1:
            raise InvalidArgumentError(
                f"check {self.name!r}: fn returned shape {arr.shape}; return a 1-d array of "
                "violation magnitudes, one a point."
            )
        if np.any(mag < 0):
            raise InvalidArgumentError(
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
