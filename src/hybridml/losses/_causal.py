"""Causal weighting of a residual in time (:class:`CausalWeighting`).

Wang, Sankaran and Perdikaris (2022), "Respecting causality is all you need for training
physics-informed neural networks" (arXiv:2203.07404; CMAME 421, 116813, 2024): the time
span is split into chunks; chunk ``i``'s mean squared residual ``L_i`` enters the loss
with the weight ``w_i = exp(-eps * (L_0 + ... + L_{i-1}))``, computed from detached
losses. A chunk counts only once the chunks before it have small residuals, so the
network cannot lower the loss with a solution that is wrong early (e.g. trivial) and fits
the equation later.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..exceptions import InvalidArgumentError

__all__ = ["CausalWeighting"]


class CausalWeighting:
    """Weight a time-dependent residual chunk by chunk, earlier times first.

    Pass it to a residual term (``ResidualLoss(..., causal=CausalWeighting(...))``, or a
    simulator adapter's residual term, e.g. ``hybridml_deepxde.PDEResidual``). The term's
    loss becomes ``mean_i(w_i * L_i)`` over ``n_chunks`` equal time chunks, where ``L_i`` is
    the mean squared residual of the points in chunk ``i`` and
    ``w_i = exp(-eps * sum_{j<i} L_j)`` (detached: the weights steer the training, they are
    not trained). The first chunk always has weight 1; a chunk's weight is ``exp(-1)``
    once the chunks before it add up to ``1/eps``, so ``eps`` sets which residual level
    counts as "not yet solved" (choose it from the residual's scale; the paper uses 1 to
    100 for losses of order 1 after non-dimensionalisation). With ``eps = 0`` and as many
    points in each chunk, the loss is the plain mean squared residual. A chunk without
    points contributes nothing, and the weights behind it do not change.

    After each evaluation the term keeps the weights as ``term.causal_weights``
    (``(n_chunks,)``, detached); the paper stops raising ``eps`` or training when the
    smallest weight is above about 0.99. The weights are recomputed at every evaluation,
    so the objective moves as chunks get solved: meant for first-order phases (Adam); a
    quasi-Newton phase's line search sees a slightly different function at each trial.

    Args:
        time_column: the input column holding time.
        n_chunks: number of time chunks (>= 1; 1 is the plain loss).
        eps: causality strength (>= 0).
        span: ``(t_start, t_end)`` of the chunks; default: the smallest and largest time
            among the points at each evaluation. Points outside the span count in the
            first or last chunk.
    """

    def __init__(
        self,
        time_column: int = 0,
        n_chunks: int = 32,
        eps: float = 1.0,
        span: Sequence[float] | None = None,
    ) -> None:
        if isinstance(time_column, bool) or not isinstance(time_column, int):
            raise InvalidArgumentError(
                f"CausalWeighting: time_column must be an integer, got {time_column!r}."
            )
        if isinstance(n_chunks, bool) or not isinstance(n_chunks, int) or n_chunks < 1:
            raise InvalidArgumentError(
                f"CausalWeighting: n_chunks must be an integer >= 1, got {n_chunks!r}."
            )
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 <= eps < float("inf"):
            raise InvalidArgumentError(
                f"CausalWeighting: eps must be a finite number >= 0, got {eps!r}."
            )
        if span is not None:
            lo, hi = (float(v) for v in span)
            if not lo < hi:
                raise InvalidArgumentError(
                    f"CausalWeighting: span must be (t_start, t_end) with t_start < t_end, "
                    f"got {tuple(span)!r}."
                )
            span = (lo, hi)
        self.time_column = time_column
        self.n_chunks = n_chunks
        self.eps = float(eps)
        self.span: tuple[float, float] | None = span

    def loss(self, points: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
        """The causally weighted mean squared residual and the chunks' weights.

        Args:
            points: the collocation points, ``(n, d)``.
            residual: the residual at them, ``(n,)`` or ``(n, k)``.

        Returns:
            ``(loss, weights)``: the 0-d loss (differentiable through ``residual``) and
            the detached weights, ``(n_chunks,)``.
        """
        if points.ndim != 2 or not -points.shape[1] <= self.time_column < points.shape[1]:
            raise InvalidArgumentError(
                f"CausalWeighting: time_column={self.time_column} is out of range for points "
                f"of shape {tuple(points.shape)}."
            )
        sq = residual**2
        sq = sq.mean(dim=1) if sq.ndim == 2 else sq  # per point, as in the plain mean
        t = points[:, self.time_column].detach()
        if self.span is not None:
            lo = torch.as_tensor(self.span[0], dtype=t.dtype, device=t.device)
            hi = torch.as_tensor(self.span[1], dtype=t.dtype, device=t.device)
        else:
            lo, hi = t.min(), t.max()
        width = (hi - lo).clamp_min(torch.finfo(t.dtype).tiny)
        chunk = ((t - lo) / width * self.n_chunks).floor().long().clamp(0, self.n_chunks - 1)
        sums = torch.zeros(self.n_chunks, dtype=sq.dtype, device=sq.device).index_add(0, chunk, sq)
        counts = torch.bincount(chunk, minlength=self.n_chunks).to(sq.dtype)
        per_chunk = sums / counts.clamp_min(1)
        done = per_chunk.detach()
        # the sum of the earlier chunks' losses (0 for the first chunk)
        before = torch.cat([done.new_zeros(1), torch.cumsum(done, 0)[:-1]])
        weights = torch.exp(-self.eps * before)
        return (weights * per_chunk).mean(), weights

    def __repr__(self) -> str:
        span = f", span={self.span}" if self.span is not None else ""
        return (
            f"CausalWeighting(time_column={self.time_column}, n_chunks={self.n_chunks}, "
            f"eps={self.eps}{span})"
        )
