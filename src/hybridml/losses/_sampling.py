"""Collocation-point samplers (:class:`BoxSampler`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ..nn._util import _check_bounds

__all__ = ["BoxSampler"]


class BoxSampler:
    """Uniform random points in a box, drawn from an explicit ``torch.Generator``.

    Args:
        lower: lower corner, a number (1-d box) or one per dimension.
        upper: upper corner, a number or one per dimension.
        names: optional names of the dimensions (e.g. ``("t [s]", "x [m]")``).
    """

    def __init__(
        self,
        lower: float | Sequence[float],
        upper: float | Sequence[float],
        names: Sequence[str] | None = None,
    ) -> None:
        lo = torch.as_tensor(lower, dtype=torch.float64).reshape(-1)
        hi = torch.as_tensor(upper, dtype=torch.float64).reshape(-1)
        if lo.numel() == 0 or lo.shape != hi.shape:
            raise InvalidArgumentError(
                f"BoxSampler: lower has {lo.numel()} entries and upper {hi.numel()}; give "
                "one number per dimension in each."
            )
        if not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all())):
            raise InvalidArgumentError("BoxSampler: lower and upper must be finite.")
        _check_bounds(lo, hi, "BoxSampler")
        if names is not None:
            names = tuple(str(n) for n in names)
            if len(names) != lo.numel():
                raise InvalidArgumentError(
                    f"BoxSampler: {len(names)} names given for a {lo.numel()}-d box."
                )
        self._lower = lo
        self._upper = hi
        self._names = names

    @property
    def dim(self) -> int:
        """Number of dimensions of the box."""
        return int(self._lower.numel())

    @property
    def lower(self) -> tuple[float, ...]:
        """Lower corner."""
        return tuple(self._lower.tolist())

    @property
    def upper(self) -> tuple[float, ...]:
        """Upper corner."""
        return tuple(self._upper.tolist())

    @property
    def names(self) -> tuple[str, ...] | None:
        """Names of the dimensions, or None."""
        return self._names

    def sample(
        self, n: int, generator: torch.Generator, *, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Draw ``n`` points uniformly in the box.

        Args:
            n: number of points.
            generator: the random generator (the only source of randomness, so the same
                seed gives the same points).
            dtype: dtype of the result (default: torch's default dtype). Points are drawn
                in float64 and then converted, so they agree across dtypes up to rounding.

        Returns:
            Tensor of shape ``(n, dim)`` on the generator's device.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(
                f"BoxSampler.sample: n must be a positive integer, got {n!r}."
            )
        if not isinstance(generator, torch.Generator):
            raise InvalidTypeError(
                "BoxSampler.sample: generator must be a torch.Generator (e.g. "
                f"torch.Generator().manual_seed(0)), got {type(generator).__name__}."
            )
        device = generator.device
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64, device=device)
        lo, hi = self._lower.to(device), self._upper.to(device)
        pts = lo + (hi - lo) * u
        return pts.to(torch.get_default_dtype() if dtype is None else dtype)

    def __repr__(self) -> str:
        names = f", names={self._names!r}" if self._names else ""
        return f"BoxSampler(lower={self.lower}, upper={self.upper}{names})"
