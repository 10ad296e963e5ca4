"""Active learning: which measurement to take next.

:class:`ActiveLearner` keeps a pool of candidates (cycles or cells that could be measured,
sensor or collocation points, simulations that could be run) and the measurements so far.
``recommend(n)`` fits an ensemble to the measurements and proposes the ``n`` candidates where
the members disagree most (their spread is the model's uncertainty), spread out by a
diversity term so a batch does not pile up in one uncertain spot; the user measures them and
hands the values to ``update``::

    learner = ActiveLearner(DeepEnsemble(HybridRegressor(...)), pool, X0, y0)
    for _ in range(rounds):
        rec = learner.recommend(4)
        y_new = measure(rec.X)          # the experiment
        learner.update(rec, y_new)

The diversity term is a local penalty (in the spirit of González et al. 2016, "Batch Bayesian
optimization via local penalization"): after a candidate is picked, the scores of candidates
within about ``diversity`` of it (inputs scaled to the unit box of the pool) are multiplied
by ``1 - exp(-(distance / diversity)²)``; ``diversity=0`` gives plain top-``n`` uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checks import ConsistencyReport
from ..data._input import as_inputs
from ..exceptions import InvalidArgumentError, InvalidTypeError, NotFittedError
from ._base import clone
from ._ensemble import DeepEnsemble
from ._model_selection import clone_with_own_checkpoint

__all__ = ["ActiveLearner", "Recommendation"]


@dataclass(frozen=True)
class Recommendation:
    """The candidates to measure next, in the order they were picked.

    Attributes:
        index: their rows in the learner's current pool (``learner.pool_``).
        X: their inputs, shape ``(n, d)``.
        uncertainty: the ensemble's spread at each (the norm over outputs of the members'
            standard deviation divided by the measured targets' spread; NaN before any
            measurement, when the batch is picked to fill the space).
        score: the acquisition value when each was picked (uncertainty times the
            diversity penalty).
        report: the consistency report of the ensemble's checks on its mean prediction
            over the pool the batch was picked from (None before any measurement, or when
            the estimator runs no checks).
    """

    index: np.ndarray
    X: np.ndarray
    uncertainty: np.ndarray
    score: np.ndarray
    report: ConsistencyReport | None = None


class ActiveLearner:
    """Recommends the next measurements by ensemble disagreement with a diversity term.

    Args:
        model: a :class:`~hybridml.DeepEnsemble`, or an estimator (e.g. a
            :class:`~hybridml.HybridRegressor`) that is wrapped in a five-member one. The
            ensemble is refitted on all measurements before each recommendation; its
            intervals are not calibrated inside the loop (``calibration=None``), since
            every measurement is needed for training.
        pool: the candidate inputs, shape ``(m, d)`` (1-d: one input).
        X: inputs measured so far, shape ``(n0, d)`` (None: nothing measured yet; the
            first batch then fills the space by max-min distance). Candidates equal to a
            measured input leave the pool.
        y: their measured targets, shape ``(n0, k)``.
        diversity: length scale of the diversity penalty, as a fraction of the pool's
            range in each input (0 disables it).
        seed: seeds the ensemble (through its own seed) and the first space-filling pick.

    Attributes:
        pool_: the candidates not yet measured.
        X_: all measured inputs. ``y_``: all measured targets.
        ensemble_: the ensemble fitted at the last recommendation (None before).
        n_rounds_: number of ``update`` calls so far.
    """

    def __init__(
        self,
        model: Any,
        pool: Any,
        X: Any = None,
        y: Any = None,
        *,
        diversity: float = 0.1,
        seed: int = 0,
    ) -> None:
        if not isinstance(model, DeepEnsemble):
            for attr in ("fit", "predict", "get_params"):
                if not callable(getattr(model, attr, None)):
                    raise InvalidTypeError(
                        "ActiveLearner: model must be a DeepEnsemble or an estimator with "
                        f"fit/predict/get_params; {type(model).__name__} has no {attr}()."
                    )
            model = DeepEnsemble(model, n_members=5, calibration=None, seed=seed)
        self.model = clone(model, calibration=None)
        # empty pools, NaN/inf and non-numbers are refused by as_inputs, naming row and column
        p = as_inputs(pool, what="ActiveLearner", x_name="the candidate pool").X
        if not (isinstance(diversity, float | int) and diversity >= 0):
            raise InvalidArgumentError(f"ActiveLearner: diversity must be >= 0, got {diversity!r}.")
        self.diversity = float(diversity)
        self.seed = seed
        lo, hi = p.min(axis=0), p.max(axis=0)
        self._lo, self._span = lo, np.where(hi > lo, hi - lo, 1.0)
        self.pool_ = p
        self.X_ = np.empty((0, p.shape[1]))
        self.y_: np.ndarray | None = None
        self.ensemble_: DeepEnsemble | None = None
        self.n_rounds_ = 0
        self._stale = True
        if X is not None or y is not None:
            if X is None or y is None:
                raise InvalidArgumentError(
                    "ActiveLearner: give both X and y (initial measurements), or neither."
                )
            self._add(X, y)

    # ------------------------------------------------------------------ bookkeeping
    def _add(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        data = as_inputs(X, y, what="ActiveLearner", require_y=True)
        x, yy = data.X, data.y
        assert yy is not None
        if x.shape[1] != self.pool_.shape[1]:
            raise InvalidArgumentError(
                f"ActiveLearner: the measurements have {x.shape[1]} input column(s) but the pool "
                f"has {self.pool_.shape[1]}."
            )
        if self.y_ is not None and yy.shape[1] != self.y_.shape[1]:
            raise InvalidArgumentError(
                f"ActiveLearner: y has {yy.shape[1]} column(s) but earlier measurements had "
                f"{self.y_.shape[1]}."
            )
        self.X_ = np.concatenate([self.X_, x])
        self.y_ = yy if self.y_ is None else np.concatenate([self.y_, yy])
        self._stale = True
        keep = np.ones(self.pool_.shape[0], dtype=bool)
        for row in x:  # a measured candidate leaves the pool
            keep &= ~np.all(self.pool_ == row, axis=1)
        self.pool_ = self.pool_[keep]
        return x, yy

    @property
    def n_measured(self) -> int:
        """Number of measurements so far."""
        return int(self.X_.shape[0])

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        return (x - self._lo) / self._span

    def fit(self) -> DeepEnsemble:
        """Fit (or return the up-to-date) ensemble on all measurements so far."""
        if self.y_ is None or self.n_measured == 0:
            raise NotFittedError("ActiveLearner: nothing measured yet; call update(X, y) first.")
        if self._stale or self.ensemble_ is None:
            # each refit (more measurements) resumes only its own checkpoints
            tag = f"n{self.n_measured}"
            self.ensemble_ = clone_with_own_checkpoint(self.model, tag).fit(self.X_, self.y_)
            self._stale = False
        return self.ensemble_

    def predict(self, X: Any, **kwargs: Any) -> Any:
        """The ensemble's prediction (mean, std, interval and the consistency report of the
        checks on the mean) at ``X``, fitted on all data; ``kwargs`` go to
        :meth:`DeepEnsemble.predict` (``coverage``, ``policy``, ``extra``)."""
        return self.fit().predict(X, **kwargs)

    # ------------------------------------------------------------------ the loop
    def recommend(self, n: int = 1) -> Recommendation:
        """Propose the next ``n`` candidates to measure.

        Args:
            n: batch size, ``1 <= n <=`` the number of candidates left.

        Returns:
            A :class:`Recommendation` (rows of ``pool_``, inputs, uncertainty, score).

        Raises:
            ValueError: if the pool is empty or ``n`` is not in ``[1, len(pool_)]``.
        """
        m = self.pool_.shape[0]
        if m == 0:
            raise InvalidArgumentError(
                "ActiveLearner.recommend: the candidate pool is empty (every candidate has "
                "been measured); add candidates with add_candidates()."
            )
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise InvalidArgumentError(
                f"ActiveLearner.recommend: n must be a positive integer, got {n!r}."
            )
        if n > m:
            raise InvalidArgumentError(
                f"ActiveLearner.recommend: a batch of {n} is larger than the pool, which has "
                f"{m} candidate(s) left; ask for at most {m}."
            )
        z = self._scaled(self.pool_)
        if self.y_ is None or self.n_measured == 0:
            idx, score = self._space_filling(z, n)
            return Recommendation(idx, self.pool_[idx].copy(), np.full(n, np.nan), score)
        pred = self.fit().predict(self.pool_)
        y = self.y_
        scale = np.nanstd(y, axis=0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        u = np.sqrt(np.sum((np.asarray(pred.std) / scale) ** 2, axis=1))
        idx, score = self._greedy(z, u, n)
        return Recommendation(idx, self.pool_[idx].copy(), u[idx], score, pred.report)

    def _greedy(self, z: np.ndarray, u: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        a = u.astype(float).copy()
        chosen: list[int] = []
        scores: list[float] = []
        for _ in range(n):
            masked = a.copy()
            masked[chosen] = -np.inf
            i = int(np.argmax(masked))
            chosen.append(i)
            scores.append(float(a[i]))
            if self.diversity > 0:
                d = np.linalg.norm(z - z[i], axis=1)
                a = a * (1.0 - np.exp(-((d / self.diversity) ** 2)))
        return np.asarray(chosen, dtype=np.intp), np.asarray(scores)

    def _space_filling(self, z: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        chosen = [int(rng.integers(z.shape[0]))]
        dmin = np.linalg.norm(z - z[chosen[0]], axis=1)
        scores = [float("nan")]
        for _ in range(n - 1):
            masked = dmin.copy()
            masked[chosen] = -np.inf
            i = int(np.argmax(masked))
            chosen.append(i)
            scores.append(float(dmin[i]))
            dmin = np.minimum(dmin, np.linalg.norm(z - z[i], axis=1))
        return np.asarray(chosen, dtype=np.intp), np.asarray(scores)

    def update(self, X_new: Any, y_new: Any) -> ActiveLearner:
        """Add measurements and remove the measured candidates from the pool.

        Args:
            X_new: the measured inputs, shape ``(n, d)``, or the :class:`Recommendation`
                they were taken for. Candidates equal to a measured input leave the pool;
                inputs that were not in the pool are simply added to the data.
            y_new: the measured targets, shape ``(n, k)``.

        Returns:
            ``self``.
        """
        self._add(X_new.X if isinstance(X_new, Recommendation) else X_new, y_new)
        self.n_rounds_ += 1
        return self

    def add_candidates(self, candidates: Any) -> ActiveLearner:
        """Append candidates to the pool (e.g. newly possible experiments); returns ``self``."""
        c = as_inputs(candidates, what="ActiveLearner.add_candidates", x_name="candidates").X
        if c.shape[1] != self.pool_.shape[1]:
            raise InvalidArgumentError(
                f"ActiveLearner.add_candidates: {c.shape[1]} input column(s), the pool has "
                f"{self.pool_.shape[1]}."
            )
        self.pool_ = np.concatenate([self.pool_, c])
        return self
