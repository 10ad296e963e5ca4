"""Conformal prediction intervals when the data come in groups (cells, experiments, sites).

A conformal interval ``mean ± q·scale`` covers a new point with probability at least the
requested ``coverage`` when the calibration scores and the new point are *exchangeable*
(Vovk et al. 2005; Lei et al. 2018). Rows of one group (the cycles of one battery cell)
are not exchangeable with each other, but whole groups often are: the new point then
belongs to a *new group*. This module calibrates at that level.

* :func:`conformal_calibration` — split conformal (scores of held-out groups from one
  model) or cross-conformal (each group's scores from a model fitted without it, e.g. an
  inner leave-one-group-out), with every group weighing the same. With ``K`` groups of
  scores the new group carries weight ``1/(K+1)``, so coverages up to ``K/(K+1)`` can be
  certified: 9 groups for 90 %. For split conformal this is exact: if the ``K + 1``
  groups are exchangeable, a random point of the new group is covered with probability
  at least ``coverage`` (proof: the quantile is at least that of the group-averaged
  empirical distribution of all ``K + 1`` groups, under which the new group's points are
  covered with expected frequency at least ``coverage`` by exchangeability).
* :func:`jackknife_plus` — the jackknife+ interval (Barber et al. 2021, "Predictive
  inference with the jackknife+") over groups: from the ``K`` leave-one-group-out models'
  predictions at the new points and each left-out group's scores; guaranteed coverage
  ``1 - 2(1 - coverage)`` and typically ``coverage``. For few groups, where refitting
  ``K`` times is affordable.
* :func:`coverage_by_group` — the achieved coverage of intervals on test data, per group.

**Too few scores.** When the groups cannot certify the requested coverage,
:class:`TooFewScoresError` is raised (it says how many groups are needed and the highest
coverage the groups at hand certify). Nothing falls back silently; ``fallback="rows"``
asks explicitly for the pooled row-level calibration (valid when *rows*, not groups, are
exchangeable, an assumption the caller makes), issues a :class:`ConformalFallbackWarning`
and is recorded in the result (``fallback=True``, ``unit="rows"``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..exceptions import HybridMLError, HybridMLWarning, InvalidArgumentError, InvalidTypeError

__all__ = [
    "ConformalCalibration",
    "ConformalFallbackWarning",
    "JackknifePlusInterval",
    "TooFewScoresError",
    "conformal_calibration",
    "conformal_scores",
    "coverage_by_group",
    "jackknife_plus",
]

Unit = Literal["groups", "rows"]

# cumulative weights are sums of fractions: compare with the coverage up to rounding
_TOL = 1e-12


class TooFewScoresError(HybridMLError, ValueError):
    """There are too few calibration scores (or groups) to certify the requested coverage;
    the message says how many are needed and what coverage the data at hand certify."""


class ConformalFallbackWarning(HybridMLWarning):
    """A conformal calibration used the explicitly requested row-level fallback because the
    groups were too few for the coverage."""


@dataclass(frozen=True)
class ConformalCalibration:
    """A conformal multiplier and what it rests on.

    Attributes:
        coverage: the requested coverage.
        quantile: the multiplier ``q``: intervals are ``mean ± q·scale``.
        unit: what was treated as exchangeable: ``"groups"`` (each group weighs the same)
            or ``"rows"`` (each score weighs the same).
        n_scores: number of scores.
        n_groups: number of groups (0 when no group labels were given).
        max_coverage: the highest coverage these scores certify at this ``unit``
            (``K/(K+1)`` for ``K`` groups, ``n/(n+1)`` for ``n`` rows).
        achieved: the share of the calibration scores inside ``q`` (each group weighing the
            same with ``unit="groups"``); in-sample, at least ``coverage`` up to the weight
            of the new group.
        per_group: group label -> share of that group's scores inside ``q`` (in-sample).
        fallback: True when ``fallback="rows"`` was used because the groups were too few.
    """

    coverage: float
    quantile: float
    unit: Unit
    n_scores: int
    n_groups: int
    max_coverage: float
    achieved: float
    per_group: Mapping[Any, float] = field(default_factory=dict)
    fallback: bool = False

    def interval(self, mean: Any, scale: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mean - q·scale, mean + q·scale)`` (``scale`` 1 when None)."""
        mu = np.asarray(mean, dtype=float)
        half = self.quantile * (1.0 if scale is None else np.asarray(scale, dtype=float))
        return mu - half, mu + half


@dataclass(frozen=True)
class JackknifePlusInterval:
    """The jackknife+ interval at the new points.

    Attributes:
        lower: lower ends, shape ``(n,)``.
        upper: upper ends, shape ``(n,)``.
        coverage: the requested coverage (the guarantee is ``1 - 2(1 - coverage)``).
        unit: ``"groups"`` or ``"rows"`` (see :class:`ConformalCalibration`).
        n_groups: number of leave-one-group-out models.
        n_scores: number of scores.
        fallback: True when ``fallback="rows"`` was used.
    """

    lower: np.ndarray
    upper: np.ndarray
    coverage: float
    unit: Unit
    n_groups: int
    n_scores: int
    fallback: bool = False


def conformal_scores(y: Any, mean: Any, scale: Any = None) -> np.ndarray:
    """Nonconformity scores ``|y - mean| / scale`` (``scale`` 1 when None), flattened;
    entries with an unmeasured (NaN) ``y`` are dropped.

    Raises:
        ValueError: for shapes that differ or a scale that is not positive.
    """
    yy, mu = np.asarray(y, dtype=float), np.asarray(mean, dtype=float)
    sd = np.ones_like(mu) if scale is None else np.asarray(scale, dtype=float)
    if yy.shape != mu.shape or sd.shape != mu.shape:
        raise InvalidArgumentError(
            f"conformal_scores: y {yy.shape}, mean {mu.shape} and scale {sd.shape} must have "
            "the same shape."
        )
    if np.any(~(sd > 0)):
        raise InvalidArgumentError("conformal_scores: scale must be positive everywhere.")
    m = np.isfinite(yy)
    return np.asarray(np.abs(yy[m] - mu[m]) / sd[m], dtype=float)


def _check_coverage(coverage: Any, what: str) -> float:
    if isinstance(coverage, bool) or not isinstance(coverage, int | float):
        raise InvalidTypeError(f"{what}: coverage must be a number in (0, 1), got {coverage!r}.")
    if not 0.0 < float(coverage) < 1.0:
        raise InvalidArgumentError(f"{what}: coverage must lie in (0, 1), got {coverage!r}.")
    return float(coverage)


def _weights(
    groups: np.ndarray | None, n: int, unit: Unit, coverage: float, fallback: Any, what: str
) -> tuple[np.ndarray, Unit, bool, float]:
    """Weights of the scores (summing to the finite mass), the unit used, whether the
    fallback was taken and the highest coverage certified."""
    if unit not in ("groups", "rows"):
        raise InvalidArgumentError(f"{what}: unit must be 'groups' or 'rows', got {unit!r}.")
    if fallback not in (None, "rows"):
        raise InvalidArgumentError(f"{what}: fallback must be None or 'rows', got {fallback!r}.")
    if n == 0:
        raise TooFewScoresError(f"{what}: there are no calibration scores.")
    need_rows = math.ceil(coverage / (1.0 - coverage) - _TOL)
    if unit == "groups":
        if groups is None:
            raise InvalidArgumentError(
                f"{what}: unit='groups' needs one group label per score (groups=); pass them, "
                "or unit='rows' if the rows themselves are exchangeable."
            )
        labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        k = labels.size
        top = k / (k + 1)
        if top >= coverage - _TOL:
            return 1.0 / ((k + 1) * counts[inverse]), "groups", False, top
        message = (
            f"{what}: {k} group(s) of scores certify a coverage of at most {k}/{k + 1} = "
            f"{top:.3g}, less than the requested {coverage}; conformal calibration over groups "
            f"needs at least {need_rows} groups for it."
        )
        if fallback != "rows":
            raise TooFewScoresError(
                message + " Use more groups or a lower coverage, or pass fallback='rows' to "
                "pool the scores as exchangeable rows (an assumption rows of one group rarely "
                "meet)."
            )
        if n / (n + 1) < coverage - _TOL:
            raise TooFewScoresError(
                message + f" The row-level fallback cannot help either: {n} score(s) certify "
                f"at most {n / (n + 1):.3g}; it needs {need_rows}."
            )
        warnings.warn(
            message + f" Falling back, as requested (fallback='rows'), to the {n} scores "
            "pooled as exchangeable rows: the coverage is not certified for a new group.",
            ConformalFallbackWarning,
            stacklevel=3,
        )
        return np.full(n, 1.0 / (n + 1)), "rows", True, n / (n + 1)
    top = n / (n + 1)
    if top < coverage - _TOL:
        raise TooFewScoresError(
            f"{what}: {n} score(s) certify a coverage of at most {n}/{n + 1} = {top:.3g}, less "
            f"than the requested {coverage}; split conformal needs at least {need_rows} scores. "
            "Hold out more points or ask for a lower coverage."
        )
    return np.full(n, 1.0 / (n + 1)), "rows", False, top


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, coverage: float) -> np.ndarray:
    """Along the last axis: the smallest value whose cumulative weight reaches
    ``coverage`` (the finite weights sum to at least it)."""
    order = np.argsort(values, axis=-1, kind="stable")
    v = np.take_along_axis(values, order, axis=-1)
    ww = np.take_along_axis(np.broadcast_to(weights, values.shape), order, axis=-1)
    k = np.argmax(np.cumsum(ww, axis=-1) >= coverage - _TOL, axis=-1)
    return np.asarray(np.take_along_axis(v, np.expand_dims(k, -1), axis=-1)[..., 0])


def conformal_calibration(
    scores: Any,
    groups: Any = None,
    *,
    coverage: float = 0.9,
    unit: Unit | None = None,
    fallback: Literal["rows"] | None = None,
) -> ConformalCalibration:
    """The conformal multiplier ``q`` of intervals ``mean ± q·scale`` from calibration scores.

    Split conformal when the scores are those of held-out groups under one model;
    cross-conformal when each group's scores come from a model fitted without that group
    (then the multiplier is applied to the model fitted on all groups).

    Args:
        scores: nonconformity scores, e.g. :func:`conformal_scores` of held-out points.
        groups: one group label per score (cell, experiment), or None.
        coverage: the requested coverage, in (0, 1).
        unit: what is exchangeable: ``"groups"`` (each group weighs the same; the default
            when ``groups`` are given) or ``"rows"`` (the default without groups).
        fallback: ``"rows"`` to use the row-level calibration, with a
            :class:`ConformalFallbackWarning`, when the groups are too few; None (default)
            raises instead.

    Returns:
        A :class:`ConformalCalibration` (its ``per_group`` gives each group's in-sample
        coverage).

    Raises:
        TooFewScoresError: the scores (groups) cannot certify ``coverage``.
        ValueError: for scores that are negative or not finite, or labels of another length.
    """
    what = "conformal_calibration"
    cov = _check_coverage(coverage, what)
    s = np.asarray(scores, dtype=float).reshape(-1)
    if s.size and not (np.all(np.isfinite(s)) and np.all(s >= 0)):
        raise InvalidArgumentError(f"{what}: scores must be finite and >= 0.")
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None and g.size != s.size:
        raise InvalidArgumentError(f"{what}: {s.size} scores but {g.size} group labels.")
    chosen: Unit = unit if unit is not None else ("groups" if g is not None else "rows")
    w, used, fell_back, top = _weights(g, s.size, chosen, cov, fallback, what)
    q = float(_weighted_quantile(s, w, cov))
    inside = s <= q
    per_group: dict[Any, float] = {}
    if g is not None:
        for label in np.unique(g):
            key = label.item() if hasattr(label, "item") else label
            per_group[key] = float(inside[g == label].mean())
    achieved = float(np.sum(w * inside) / np.sum(w))
    return ConformalCalibration(
        cov,
        q,
        used,
        int(s.size),
        0 if g is None else int(np.unique(g).size),
        float(top),
        achieved,
        per_group,
        fell_back,
    )


def jackknife_plus(
    loo_means: Any,
    scores: Sequence[Any],
    *,
    loo_scales: Any = None,
    coverage: float = 0.9,
    unit: Unit = "groups",
    fallback: Literal["rows"] | None = None,
) -> JackknifePlusInterval:
    """The jackknife+ interval over groups at new points.

    For each of ``K`` groups ``g``: a model fitted without ``g`` predicts ``mu_g`` (and a
    scale ``sigma_g``) at the new points, and ``scores[g]`` are its scores
    ``|y - mu_g| / sigma_g`` on group ``g``'s points. The interval at a new point runs from
    the lower ``coverage``-quantile of ``mu_g - s·sigma_g`` to the upper one of
    ``mu_g + s·sigma_g`` over every group's scores ``s`` (each group weighing the same, with
    ``unit="groups"``).

    Args:
        loo_means: shape ``(K, n)``: each leave-one-group-out model's mean at the new points.
        scores: ``K`` arrays: the scores of each left-out group under its model.
        loo_scales: shape ``(K, n)``, the models' scales at the new points (1 when None).
        coverage: the requested coverage; the guarantee is ``1 - 2(1 - coverage)``.
        unit: ``"groups"`` (default) or ``"rows"`` (see :func:`conformal_calibration`).
        fallback: ``"rows"``: with too few groups, pool the scores as rows, with a warning.

    Returns:
        A :class:`JackknifePlusInterval`.

    Raises:
        TooFewScoresError: too few groups (or scores) for ``coverage``: ``K`` groups certify
            at most ``K/(K+1)`` (4 groups: 0.8).
    """
    what = "jackknife_plus"
    cov = _check_coverage(coverage, what)
    mu = np.asarray(loo_means, dtype=float)
    if mu.ndim != 2:
        raise InvalidArgumentError(
            f"{what}: loo_means must have shape (K groups, n points), got {mu.shape}."
        )
    k = mu.shape[0]
    if len(scores) != k:
        raise InvalidArgumentError(
            f"{what}: {k} leave-one-group-out models but {len(scores)} score arrays."
        )
    sd = np.ones_like(mu) if loo_scales is None else np.asarray(loo_scales, dtype=float)
    if sd.shape != mu.shape or np.any(~(sd > 0)):
        raise InvalidArgumentError(
            f"{what}: loo_scales must be positive with the shape {mu.shape}."
        )
    parts = [np.asarray(s, dtype=float).reshape(-1) for s in scores]
    for i, p in enumerate(parts):
        if p.size == 0:
            raise InvalidArgumentError(f"{what}: group {i} has no scores.")
        if not (np.all(np.isfinite(p)) and np.all(p >= 0)):
            raise InvalidArgumentError(f"{what}: the scores of group {i} must be finite and >= 0.")
    s = np.concatenate(parts)
    owner = np.repeat(np.arange(k), [p.size for p in parts])
    w, used, fell_back, _ = _weights(owner, s.size, unit, cov, fallback, what)
    # (n, S): every new point against every score, through its left-out model
    centre, half = mu[owner].T, (sd[owner] * s[:, None]).T
    upper = _weighted_quantile(centre + half, w, cov)
    lower = -_weighted_quantile(-(centre - half), w, cov)
    return JackknifePlusInterval(lower, upper, cov, used, k, int(s.size), fell_back)


def coverage_by_group(y: Any, lower: Any, upper: Any, groups: Any) -> dict[Any, float]:
    """The share of measured ``y`` inside ``[lower, upper]``, per group label.

    All arguments have one entry per point (the same shape); unmeasured (NaN) ``y`` are
    left out, and a group without measured points is left out of the result.
    """
    yy = np.asarray(y, dtype=float)
    lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    g = np.asarray(groups)
    if not (yy.shape == lo.shape == hi.shape) or g.shape[0] != yy.shape[0]:
        raise InvalidArgumentError(
            f"coverage_by_group: y {yy.shape}, lower {lo.shape}, upper {hi.shape} and groups "
            f"{g.shape} must have one entry per point."
        )
    out: dict[Any, float] = {}
    m = np.isfinite(yy)
    inside = (yy >= lo) & (yy <= hi)
    for label in np.unique(g):
        sel = (g == label) & m if yy.ndim == 1 else ((g == label)[:, None] & m)
        if sel.any():
            key = label.item() if hasattr(label, "item") else label
            out[key] = float(inside[sel].mean())
    return out
