"""Loss terms from battery physics for a network that predicts per-cycle quantities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hybridml import LossTerm
from hybridml.exceptions import InvalidArgumentError

__all__ = ["FadeRateEnvelopeLoss", "SyntheticDataLoss", "fade_rate_envelope"]


class SyntheticDataLoss(LossTerm):
    """``weight`` times the mean squared error between ``model(x)`` and simulated ``y``.

    The weight says how much the simulator is trusted against measurements (e.g. 0.1 when
    measured points are the reference and the simulator only fills gaps); per-point
    ``point_weights`` (normalised to mean 1) weight cycles or runs within the term.

    Args:
        x: inputs, ``(n,)`` or ``(n, d_in)`` (for the adapter's terms, cycle numbers).
        y: simulated targets, ``(n,)`` or ``(n, d_out)``.
        weight: overall weight of the term (>= 0).
        point_weights: optional per-point weights, ``(n,)``.
    """

    def __init__(
        self, x: Any, y: Any, *, weight: float = 1.0, point_weights: Any | None = None
    ) -> None:
        super().__init__()
        dtype = torch.get_default_dtype()
        xt = torch.as_tensor(np.asarray(x, dtype=float), dtype=dtype)
        yt = torch.as_tensor(np.asarray(y, dtype=float), dtype=dtype)
        xt = xt[:, None] if xt.ndim == 1 else xt
        yt = yt[:, None] if yt.ndim == 1 else yt
        if xt.shape[0] != yt.shape[0] or xt.shape[0] == 0:
            raise InvalidArgumentError(
                f"SyntheticDataLoss: x has {xt.shape[0]} rows and y {yt.shape[0]}; give the "
                "same, non-zero number of rows."
            )
        if not weight >= 0:
            raise InvalidArgumentError(f"SyntheticDataLoss: weight must be >= 0, got {weight}.")
        w = torch.ones(xt.shape[0], dtype=dtype)
        if point_weights is not None:
            w = torch.as_tensor(np.asarray(point_weights, dtype=float), dtype=dtype).reshape(-1)
            if w.shape[0] != xt.shape[0] or bool((w < 0).any()) or float(w.sum()) == 0:
                raise InvalidArgumentError(
                    "SyntheticDataLoss: point_weights needs one non-negative weight per row "
                    "and a positive sum."
                )
            w = w / w.mean()
        self.weight = float(weight)
        self.register_buffer("x", xt)
        self.register_buffer("y", yt)
        self.register_buffer("w", w[:, None])

    x: Tensor
    y: Tensor
    w: Tensor

    def forward(self, model: nn.Module) -> Tensor:
        """``weight * mean(w * (model(x) - y)**2)``."""
        return self.weight * (self.w * (model(self.x) - self.y) ** 2).mean()


def fade_rate_envelope(
    tables: Sequence[Mapping[str, Any]],
    *,
    column: str = "Capacity [A.h]",
    cycle: str = "Cycle number",
    margin: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The envelope of fade rates ``d column / d cycle`` over a set of simulations.

    The rate of each run is taken by central differences (one-sided at the ends) on the
    cycles all runs share; the envelope is the pointwise minimum and maximum over the runs,
    widened by ``margin`` times the largest absolute rate.

    Returns:
        ``(cycles, lower, upper)``, three arrays of the same length.
    """
    if not tables:
        raise InvalidArgumentError("fade_rate_envelope: no simulations given.")
    common = None
    for t in tables:
        c = np.asarray(t[cycle], dtype=float)
        common = c if common is None else np.intersect1d(common, c)
    assert common is not None
    if common.size < 2:
        raise InvalidArgumentError(
            "fade_rate_envelope: the simulations share fewer than 2 cycles; a fade rate needs "
            "at least two cycles (run an experiment with cycles >= 2)."
        )
    rates = []
    for t in tables:
        c = np.asarray(t[cycle], dtype=float)
        q = np.asarray(t[column], dtype=float)
        order = np.argsort(c)
        q_common = np.interp(common, c[order], q[order])
        rates.append(np.gradient(q_common, common))
    r = np.stack(rates)
    scale = float(np.abs(r).max()) or 1.0
    return common, r.min(0) - margin * scale, r.max(0) + margin * scale


class FadeRateEnvelopeLoss(LossTerm):
    """The predicted fade rate ``d model(cycle) / d cycle`` stays within the simulator's
    envelope.

    At collocation cycles between the first and last tabulated cycle, the derivative of
    the model's output ``output`` with respect to its input ``input`` (by autograd) is
    compared with the envelope (linearly interpolated); the loss is the mean squared
    excursion outside it, divided by the squared largest envelope rate so that it is
    dimensionless. Zero inside the envelope.

    Args:
        cycles: cycle numbers of the envelope (increasing).
        lower: the lowest admissible rate at each cycle.
        upper: the highest admissible rate at each cycle.
        n_points: collocation points; :meth:`resample` draws them afresh.
        n_inputs: number of model inputs (the others are held at ``context``).
        input: index of the cycle-number input.
        output: index of the output column that is the faded quantity.
        context: values of the other inputs, shape ``(n_inputs,)`` (the cycle entry is
            ignored); zeros by default.
    """

    points: Tensor
    lower: Tensor
    upper: Tensor
    context: Tensor
    scale: Tensor

    def __init__(
        self,
        cycles: Any,
        lower: Any,
        upper: Any,
        *,
        n_points: int = 64,
        n_inputs: int = 1,
        input: int = 0,
        output: int = 0,
        context: Any | None = None,
    ) -> None:
        super().__init__()
        c = np.asarray(cycles, dtype=float)
        lo = np.asarray(lower, dtype=float)
        hi = np.asarray(upper, dtype=float)
        if not (c.ndim == 1 and c.shape == lo.shape == hi.shape and c.size >= 2):
            raise InvalidArgumentError(
                "FadeRateEnvelopeLoss: cycles, lower, upper need equal 1-d shapes."
            )
        if np.any(np.diff(c) <= 0) or np.any(lo > hi):
            raise InvalidArgumentError(
                "FadeRateEnvelopeLoss: cycles must increase and lower <= upper."
            )
        dtype = torch.get_default_dtype()
        self._table = (c, lo, hi)
        self.n_points = int(n_points)
        self.input = int(input)
        self.output = int(output)
        ctx = np.zeros(n_inputs) if context is None else np.asarray(context, dtype=float)
        self.register_buffer("context", torch.as_tensor(ctx, dtype=dtype))
        scale = max(float(np.abs(lo).max()), float(np.abs(hi).max()), 1e-12)
        self.register_buffer("scale", torch.tensor(scale, dtype=dtype))
        self._set_points(np.linspace(c[0], c[-1], self.n_points))

    def _set_points(self, pts: np.ndarray) -> None:
        c, lo, hi = self._table
        dtype = self.context.dtype if hasattr(self, "context") else torch.get_default_dtype()
        device = self.context.device
        for name, values in (
            ("points", pts),
            ("lower", np.interp(pts, c, lo)),
            ("upper", np.interp(pts, c, hi)),
        ):
            self.register_buffer(name, torch.as_tensor(values, dtype=dtype, device=device))

    def resample(self, generator: torch.Generator) -> None:
        """Draw ``n_points`` collocation cycles uniformly between the first and last."""
        c = self._table[0]
        u = torch.rand(self.n_points, generator=generator, dtype=torch.float64).numpy()
        self._set_points(c[0] + (c[-1] - c[0]) * u)

    def forward(self, model: nn.Module) -> Tensor:
        """Mean squared excursion of the predicted rate outside the envelope."""
        x = self.context.expand(self.points.shape[0], -1).clone()
        x[:, self.input] = self.points
        x.requires_grad_(True)
        y = model(x)
        y = y[:, self.output] if y.ndim == 2 else y
        (grad,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        rate = grad[:, self.input]
        excess = torch.relu(self.lower - rate) + torch.relu(rate - self.upper)
        return (excess**2).mean() / self.scale**2
