"""The training domain of a model: per-input ranges and a k-nearest-neighbour distance.

The distance of a point is the Euclidean distance, in inputs scaled by the training
inputs' standard deviations, to its ``k``-th nearest training input. Its threshold is a
conformal quantile of the training inputs' own leave-one-out distances: with ``n``
training inputs and ``r = min(ceil((n + 1) q), n)``, the threshold is the ``r``-th smallest,
and a new input drawn like the training inputs is flagged with probability at most
``1 - r / (n + 1)`` (at most ``1 - q`` once ``n >= q / (1 - q)``). (The ``n + 1`` points are
exchangeable; a training point's distance is computed without the new point, which can
only make it larger and the threshold higher.)
"""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import DataError, InvalidArgumentError

__all__: list[str] = []

#: rows per block when computing distances (bounds the memory to ~ block * n floats)
_BLOCK = 512


def conformal_rank(n: int, quantile: float) -> int:
    """The rank ``r = min(ceil((n + 1) q), n)`` (1-based) of the conformal threshold."""
    return max(1, min(math.ceil((n + 1) * quantile), n))


def conformal_threshold(scores: np.ndarray, quantile: float) -> tuple[float, float]:
    """The conformal threshold of ``scores`` (1-d) and the bound ``1 - r / (n + 1)`` on the
    probability that an exchangeable new score exceeds it."""
    s = np.sort(np.asarray(scores, dtype=float))
    r = conformal_rank(s.size, quantile)
    return float(s[r - 1]), 1.0 - r / (s.size + 1)


def kth_distances(
    points: np.ndarray, reference: np.ndarray, k: int, *, leave_one_out: bool
) -> np.ndarray:
    """Distance of each of ``points`` to its ``k``-th nearest row of ``reference``.

    With ``leave_one_out``, ``points`` is ``reference`` and a point is not its own neighbour.
    """
    ref_sq = (reference**2).sum(axis=1)
    out = np.empty(points.shape[0])
    for start in range(0, points.shape[0], _BLOCK):
        block = points[start : start + _BLOCK]
        d2 = (block**2).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * block @ reference.T
        np.maximum(d2, 0.0, out=d2)
        if leave_one_out:
            rows = np.arange(block.shape[0])
            d2[rows, start + rows] = np.inf
        out[start : start + block.shape[0]] = np.sqrt(np.partition(d2, k - 1, axis=1)[:, k - 1])
    return out


class Domain:
    """The fitted training domain (internal to :class:`~hybridml.Monitor`).

    Attributes:
        names: the input names.
        lower, upper: the admissible range per input (training range widened by the margin).
        k: the neighbour whose distance is used.
        threshold: the distance above which an input is far from the training inputs.
        false_flag_rate: the bound on the probability that an input drawn like the
            training inputs is flagged as far.
    """

    def __init__(
        self,
        X: np.ndarray,
        names: tuple[str, ...],
        *,
        neighbours: int,
        quantile: float,
        range_margin: float,
    ) -> None:
        n = X.shape[0]
        if n < 2:
            raise DataError(
                f"Monitor.fit: {n} training input row(s); the distance to the training "
                "inputs needs at least 2."
            )
        self.names = names
        lo, hi = X.min(axis=0), X.max(axis=0)
        pad = range_margin * (hi - lo)
        self.lower, self.upper = lo - pad, hi + pad
        std = X.std(axis=0)
        self.center = X.mean(axis=0)
        self.scale = np.where(std > 0, std, 1.0)
        self.train = (X - self.center) / self.scale
        self.k = min(int(neighbours), n - 1)
        scores = kth_distances(self.train, self.train, self.k, leave_one_out=True)
        self.threshold, self.false_flag_rate = conformal_threshold(scores, quantile)

    def distances(self, X: np.ndarray) -> np.ndarray:
        """The k-th nearest-neighbour distance of each row of ``X`` to the training inputs."""
        return kth_distances(
            (X - self.center) / self.scale, self.train, self.k, leave_one_out=False
        )

    def outside(self, X: np.ndarray) -> np.ndarray:
        """Per row and input: True where the input lies outside its admissible range."""
        return (X < self.lower) | (X > self.upper)


def check_quantile(quantile: float, what: str) -> float:
    """``quantile`` as a float in (0, 1), or an error naming ``what``."""
    if isinstance(quantile, bool) or not isinstance(quantile, int | float):
        raise InvalidArgumentError(
            f"{what}: quantile must be a number in (0, 1), got {quantile!r}."
        )
    if not 0.0 < float(quantile) < 1.0:
        raise InvalidArgumentError(f"{what}: quantile must lie in (0, 1), got {quantile!r}.")
    return float(quantile)
