""":class:`BatchedEnsemble`: an ensemble of small MLPs trained together in one batched pass.

Where :class:`~hybridml.DeepEnsemble` fits ``n_members`` copies of an estimator one after
the other (or on an executor), this estimator holds its members in one
:class:`~hybridml.BatchedMLP` and trains them in one loop of the library's
:class:`~hybridml.Trainer`: one forward pass, one backward pass and one optimiser step per
step for all members. Each member sees every training row with its own weight (a bootstrap
count, a caller's row weights, zero for the rows it leaves out), so members trained on
different resamples or group subsets still share the batched pass. Since Adam's update is
elementwise, every member is trained exactly as it would be alone (same seed, same row
weights), only faster; ``tests/unit/test_batched_ensemble.py`` checks that in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..checks import Check, Policy, run_checks
from ..exceptions import InvalidArgumentError, NotFittedError
from ..losses._base import LossTerm
from ..nn._batched import BatchedMLP
from ..training import BFGS, LBFGS, Adam, Phase, Trainer
from ._base import _ParamsMixin, _read, check_ensemble_settings
from ._batched_files import _BatchedFiles
from ._batched_terms import _MemberLoss, _WeightDecay
from ._conformal import (
    ConformalCalibration,
    TooFewScoresError,
    Unit,
    conformal_calibration,
    conformal_scores,
)
from ._ensemble_results import Calibration, EnsemblePrediction
from ._model_meta import data_hash
from ._network import _Affine

__all__ = ["BatchedEnsemble"]


_DEFAULT_PHASES = (Adam(2000, lr=1e-3),)


class BatchedEnsemble(_ParamsMixin, _BatchedFiles):
    """An ensemble of MLPs trained together in one batched pass, with conformal intervals.

    Member ``m`` is an MLP with seed ``seed + m`` (its initial weights, see
    :class:`~hybridml.BatchedMLP`) fitted to every training row with the weight
    ``member_weights[m, i]`` times its bootstrap count. All members train in one
    :class:`~hybridml.Trainer` loop over ``phases``; their losses are summed, and since the
    phases' updates are elementwise each member ends exactly where it would trained alone.
    A member of an ensemble with ``seed=s`` is therefore the one-member ensemble with
    ``seed=s + m`` and that member's weights (``calibration=None``; floats agree to
    rounding).

    Args:
        inputs: input column names (of a Dataset or DataFrame, or names for arrays).
        outputs: output (target) names.
        hidden: hidden layer widths of every member.
        activation: an elementwise activation module class, e.g. ``nn.Tanh``.
        n_members: number of members.
        bootstrap: weight the rows by a bootstrap resample per member (of whole groups when
            ``groups`` are given), drawn from ``numpy.random.default_rng(seed + m)``.
        phases: the optimiser phases; phases with elementwise updates only (``Adam`` or
            a :class:`~hybridml.Phase` of your own, e.g. Adam with a cosine learning-rate
            schedule). ``LBFGS``/``BFGS`` are refused: their line search would take one step
            length for all members together and couple them.
        weight_decay: an L2 penalty ``weight_decay * sum(W**2)`` on every member's weights
            (not biases), added to the loss as the term ``"weight_decay"``.
        scale_inputs: scale the inputs from the training rows' range to ``[-1, 1]``.
        scale_targets: members learn targets standardised by the training rows' mean and
            standard deviation (per output).
        calibration: fraction of the rows (of the groups, with groups) held out to
            calibrate the intervals, or None (intervals are then ``mean ± 2·std``).
        coverage: the intervals' target coverage, in (0, 1).
        conformal_unit: what the calibration treats as exchangeable (see
            :func:`~hybridml.conformal_calibration`): ``"groups"`` (the default with
            groups) or ``"rows"``.
        conformal_fallback: ``"rows"`` to fall back, with a warning, to row-level
            calibration when the held-out groups are too few for ``coverage``; None raises
            :class:`~hybridml.TooFewScoresError` instead.
        dtype: the members' dtype (``torch.float64`` for exact comparisons).
        seed: seeds the members, their bootstrap and the calibration split.
        progress: show the trainer's progress bar (None: on a terminal or in a notebook).
        device: where the batched members train and predict (``"auto"``, ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device`); ``None``: the CPU, as
            before (``"cpu"`` gives bitwise the same numbers).

    Attributes:
        model_: the trained :class:`~hybridml.BatchedMLP` (members' standardised outputs).
        member_seeds_: the members' seeds.
        member_weights_: the row weights each member was trained with, ``(n_members, n)``
            over the training rows (bootstrap counts times ``member_weights``).
        history_: the trainer's :class:`~hybridml.History` (loss summed over members).
        calibration_: the :class:`~hybridml.Calibration` of the intervals (None without).
        conformal_: per output, the :class:`~hybridml.ConformalCalibration` (per-group
            coverage, unit, fallback), or ``()`` without calibration.
        calibration_index_: the rows of ``X`` held out for calibration.

    A member whose loss becomes non-finite stops the whole batch
    (:class:`~hybridml.NonFiniteLossError`), unlike :class:`~hybridml.DeepEnsemble`, which
    leaves a failed member out. ``checks`` (consistency checks of the outputs, by column
    name) run on the members' mean at every prediction, under ``check_policy``, and their
    report is the prediction's ``report``; checks that evaluate a model at fresh points
    (:class:`~hybridml.ResidualBelow`) need a :class:`~hybridml.DeepEnsemble` of
    :class:`~hybridml.HybridRegressor` instead.
    """

    def __init__(
        self,
        *,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        hidden: Sequence[int] = (32, 32),
        activation: Callable[[], nn.Module] = nn.Tanh,
        n_members: int = 5,
        bootstrap: bool = True,
        phases: Sequence[Phase] = _DEFAULT_PHASES,
        weight_decay: float = 0.0,
        scale_inputs: bool = True,
        scale_targets: bool = True,
        calibration: float | None = 0.2,
        coverage: float = 0.9,
        conformal_unit: Unit | None = None,
        conformal_fallback: Literal["rows"] | None = None,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        progress: bool | None = None,
        device: str | torch.device | None = None,
        checks: Sequence[Check] = (),
        check_policy: Policy | str = "warn",
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.hidden = hidden
        self.activation = activation
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.phases = phases
        self.weight_decay = weight_decay
        self.scale_inputs = scale_inputs
        self.scale_targets = scale_targets
        self.calibration = calibration
        self.coverage = coverage
        self.conformal_unit = conformal_unit
        self.conformal_fallback = conformal_fallback
        self.dtype = dtype
        self.seed = seed
        self.progress = progress
        self.device = device
        self.checks = checks
        self.check_policy = check_policy

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        n = self.n_members
        check_ensemble_settings("BatchedEnsemble", n, self.coverage, self.calibration)
        if str(getattr(self.check_policy, "value", self.check_policy)) not in (
            "raise",
            "warn",
            "record",
        ):
            raise InvalidArgumentError(
                f"BatchedEnsemble: check_policy must be 'raise', 'warn' or 'record', got "
                f"{self.check_policy!r}."
            )
        wd = self.weight_decay
        if isinstance(wd, bool) or not isinstance(wd, int | float) or not wd >= 0:
            raise InvalidArgumentError(
                f"BatchedEnsemble: weight_decay must be a number >= 0, got {wd!r}."
            )
        if not (isinstance(self.dtype, torch.dtype) and self.dtype.is_floating_point):
            raise InvalidArgumentError(
                f"BatchedEnsemble: dtype must be a floating torch dtype, got {self.dtype!r}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InvalidArgumentError(f"BatchedEnsemble: seed must be an int, got {self.seed!r}.")
        for p in self.phases:
            if isinstance(p, LBFGS | BFGS):
                raise InvalidArgumentError(
                    f"BatchedEnsemble: {type(p).__name__} cannot train batched members: its line "
                    "search takes one step length for all members, which couples them. Use "
                    "Adam phases (or a Phase with elementwise updates)."
                )

    # ------------------------------------------------------------------ fit
    def _split(self, n: int, groups: Any, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        # as DeepEnsemble: a fraction of the rows, or of the groups, held out
        assert self.calibration is not None
        units = np.arange(n) if groups is None else np.unique(groups)
        n_cal = max(1, round(float(self.calibration) * units.size))
        if n_cal >= units.size:
            what = "rows" if groups is None else "groups"
            raise InvalidArgumentError(
                f"BatchedEnsemble: holding out {n_cal} of {units.size} {what} for calibration "
                "leaves none to train on; lower calibration=, pass calibration_data= or more data."
            )
        held = rng.permutation(units)[:n_cal]
        is_cal = np.isin(np.arange(n) if groups is None else groups, held)
        return np.flatnonzero(~is_cal), np.flatnonzero(is_cal)

    def _bootstrap_counts(self, n: int, groups: np.ndarray | None, seed: int) -> np.ndarray:
        if not self.bootstrap:
            return np.ones(n)
        rng = np.random.default_rng(seed)
        if groups is None:
            return np.bincount(rng.integers(0, n, size=n), minlength=n).astype(float)
        labels, inverse = np.unique(groups, return_inverse=True)
        drawn = np.bincount(rng.integers(0, labels.size, size=labels.size), minlength=labels.size)
        return drawn[inverse].astype(float)

    def _weights(self, given: Any, n_all: int, train_idx: np.ndarray, groups: Any) -> np.ndarray:
        m = self.n_members
        if given is None:
            base = np.ones((m, train_idx.size))
        else:
            w = np.asarray(given, dtype=float)
            w = np.broadcast_to(w, (m, w.shape[-1])) if w.ndim == 1 else w
            if w.shape != (m, n_all):
                raise InvalidArgumentError(
                    f"BatchedEnsemble.fit: member_weights must have shape ({n_all},) or "
                    f"({m}, {n_all}) (rows of X), got {np.shape(given)}."
                )
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise InvalidArgumentError(
                    "BatchedEnsemble.fit: member_weights must be finite and >= 0."
                )
            base = w[:, train_idx]
        g = None if groups is None else np.asarray(groups)[train_idx]
        counts = np.stack(
            [self._bootstrap_counts(train_idx.size, g, s) for s in self.member_seeds_]
        )
        weights = base * counts
        empty = np.flatnonzero(weights.sum(axis=1) <= 0)
        if empty.size:
            raise InvalidArgumentError(
                f"BatchedEnsemble.fit: member(s) {empty.tolist()} have zero weight on every "
                "training row; give each member some rows."
            )
        return weights

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        groups: Any = None,
        member_weights: Any = None,
        calibration_data: tuple[Any, Any] | None = None,
    ) -> BatchedEnsemble:
        """Train every member in one batched loop and calibrate the intervals.

        Args:
            X: inputs ``(n, d)``, or a :class:`~hybridml.Dataset` or DataFrame.
            y: targets ``(n, k)`` (NaN: not measured; may be omitted with a Dataset).
            groups: group labels per row (default: a Dataset's group column): calibration
                holds out whole groups and calibrates over groups, the bootstrap draws
                whole groups.
            member_weights: row weights, ``(n,)`` for every member or ``(n_members, n)``
                (rows of ``X``; zero leaves a row out of a member, e.g. a group subset per
                member). They multiply the bootstrap counts (``bootstrap=False`` for
                these weights alone).
            calibration_data: ``(X_cal, y_cal)`` or ``(X_cal, y_cal, groups_cal)`` held out
                by the caller; then every row of ``X`` trains the members.

        Returns:
            ``self``.

        Raises:
            TooFewScoresError: the calibration points (groups) cannot certify ``coverage``.
            NonFiniteLossError: the loss became non-finite (see :class:`~hybridml.Trainer`).
        """
        from .._device import resolve_device

        self._validate()
        device = resolve_device(self.device, what="BatchedEnsemble: device")
        data = _read(self, X, y, groups=groups, what="BatchedEnsemble.fit")
        assert data.y is not None
        n = data.n_rows
        g_all = data.groups
        rng = np.random.default_rng(self.seed)
        if calibration_data is None and self.calibration is not None:
            train_idx, cal_idx = self._split(n, g_all, rng)
        else:
            train_idx, cal_idx = np.arange(n), np.arange(0)
        self.member_seeds_ = [self.seed + m for m in range(self.n_members)]
        self.member_weights_ = self._weights(member_weights, n, train_idx, g_all)
        self.input_names_, self.output_names_ = data.input_names, data.output_names
        self.units_ = dict(data.units)
        self.data_hash_ = data_hash(data.X, data.y)
        self._named = data.named
        x, yy = data.X[train_idx], data.y[train_idx]
        self.model_, self._wrapped = self._build(x, yy)
        t = torch.as_tensor
        losses: dict[str, LossTerm] = {
            "data": _MemberLoss(
                t(x, dtype=self.dtype),
                t(yy, dtype=self.dtype),
                t(self.member_weights_, dtype=self.dtype),
            )
        }
        if self.weight_decay:
            losses["weight_decay"] = _WeightDecay(float(self.weight_decay))
        trainer = Trainer(tuple(self.phases), seed=self.seed, progress=self.progress, device=device)
        self.history_ = trainer.fit(self._wrapped, losses)
        self.calibration_index_ = cal_idx
        self.calibration_: Calibration | None = None
        self.conformal_: tuple[ConformalCalibration, ...] = ()
        if calibration_data is not None:
            self.calibrate(*calibration_data)
        elif cal_idx.size:
            g_cal = None if g_all is None else np.asarray(g_all)[cal_idx]
            self._calibrate_arrays(data.X[cal_idx], data.y[cal_idx], g_cal)
        return self

    def _build(self, x: np.ndarray, y: np.ndarray) -> tuple[BatchedMLP, _Affine]:
        lo = hi = None
        if self.scale_inputs:
            lo, hi = x.min(axis=0), x.max(axis=0)
            hi = np.where(hi - lo > 0, hi, lo + 1.0)  # a constant column: any box will do
            lo, hi = lo.tolist(), hi.tolist()
        net = BatchedMLP(
            x.shape[1],
            y.shape[1],
            tuple(self.hidden),
            self.activation,
            seeds=self.member_seeds_,
            input_lower=lo,
            input_upper=hi,
        )
        shift, scale = np.zeros(y.shape[1]), np.ones(y.shape[1])
        if self.scale_targets:
            m = np.isfinite(y)
            cnt = np.maximum(m.sum(axis=0), 1)
            shift = np.where(m, y, 0.0).sum(axis=0) / cnt
            sd = np.sqrt((np.where(m, y - shift, 0.0) ** 2).sum(axis=0) / cnt)
            scale = np.where(sd > 0, sd, 1.0)
        wrapped = _Affine(net, torch.as_tensor(shift), torch.as_tensor(scale)).to(self.dtype)
        return net, wrapped

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this BatchedEnsemble is not fitted yet; call fit(X, y) first.")

    def _inputs(self, X: Any, what: str) -> np.ndarray:
        from ..data._input import as_inputs

        names = self.input_names_ if self._named else None
        x = as_inputs(X, inputs=names, what=what).X
        if x.shape[1] != self.model_.in_features:
            raise InvalidArgumentError(
                f"{what}: X has {x.shape[1]} input column(s); the ensemble was fitted on "
                f"{self.model_.in_features} ({', '.join(self.input_names_)})."
            )
        return x

    def member_predictions(self, X: Any) -> np.ndarray:
        """Every member's prediction at ``X``: shape ``(n_members, n, k)``."""
        self._check_fitted()
        x = self._inputs(X, "BatchedEnsemble.predict")
        device = next(self._wrapped.parameters()).device  # where it was trained
        with torch.no_grad():
            out = self._wrapped(torch.as_tensor(x, dtype=self.dtype, device=device))
        return np.asarray(out.detach().cpu().numpy(), dtype=float)

    def _floor(self, std: np.ndarray) -> np.ndarray:
        # as DeepEnsemble: points where every member agrees keep a finite score
        typical = np.nanmean(std, axis=0)
        return np.maximum(1e-6 * np.where(np.isfinite(typical), typical, 0.0), 1e-12)

    def predict(
        self, X: Any, *, coverage: float | None = None, policy: Policy | str | None = None
    ) -> EnsemblePrediction:
        """The members' mean, spread and conformal interval at ``X``, with the report of
        the ``checks`` on the mean.

        Args:
            X: inputs ``(n, d)``, or a Dataset or DataFrame.
            coverage: another coverage than the calibrated one (recalibrated from the
                stored scores, same unit and fallback).
            policy: what a failed check does (default: ``check_policy``).

        Returns:
            An :class:`~hybridml.EnsemblePrediction`; its ``report`` holds one result per
            check (none when there are no checks).
        """
        members = self.member_predictions(X)
        mean, std = members.mean(axis=0), members.std(axis=0)
        cal = self.calibration_
        if cal is None:
            if coverage is not None:
                raise InvalidArgumentError(
                    "BatchedEnsemble.predict: coverage= needs a calibrated ensemble; fit with "
                    "calibration= or call calibrate(X_cal, y_cal)."
                )
            half, cov = 2.0 * std, None
        else:
            cov = cal.coverage if coverage is None else float(coverage)
            q = cal.quantile if coverage is None else self._quantiles(cov)
            half = q * np.maximum(std, self.calibration_floor_)
        units = {k: v for k, v in self.units_.items() if k in self.output_names_}
        report = self._report(X, mean, policy)
        return EnsemblePrediction(
            mean, std, mean - half, mean + half, cov, members, report, self.output_names_, units
        )

    def _report(self, X: Any, mean: np.ndarray, policy: Policy | str | None) -> Any:
        """Run the checks on the inputs and the members' mean, by column name."""
        chosen = Policy(self.check_policy if policy is None else policy)
        x = self._inputs(X, "BatchedEnsemble.predict")
        data = {name: x[:, j] for j, name in enumerate(self.input_names_)}
        data.update({name: mean[:, j] for j, name in enumerate(self.output_names_)})
        return run_checks(list(self.checks), data).enforce(chosen)

    # ------------------------------------------------------------------ calibration
    def calibrate(self, X: Any, y: Any = None, groups: Any = None) -> BatchedEnsemble:
        """(Re)calibrate the intervals on held-out points; returns ``self``.

        Args:
            X: held-out inputs (or a Dataset).
            y: their targets.
            groups: their group labels (default: a Dataset's group column): calibration
                over groups (``conformal_unit``).

        Raises:
            TooFewScoresError: too few points (groups) for ``coverage``.
        """
        self._check_fitted()
        data = _read(self, X, y, groups=groups, what="BatchedEnsemble.calibrate")
        assert data.y is not None
        self._calibrate_arrays(data.X, data.y, data.groups)
        return self

    def _calibrate_arrays(self, x: np.ndarray, y: np.ndarray, groups: Any) -> None:
        members = self.member_predictions(x)
        mean, std = members.mean(axis=0), members.std(axis=0)
        if y.shape != mean.shape:
            raise InvalidArgumentError(
                f"BatchedEnsemble.calibrate: targets have shape {y.shape} but the ensemble "
                f"predicts {mean.shape}."
            )
        floor = self._floor(std)
        self.calibration_floor_ = floor
        self._cal_scores: list[np.ndarray] = []
        self._cal_groups: list[np.ndarray | None] = []
        for j in range(y.shape[1]):
            m = np.isfinite(y[:, j])
            self._cal_scores.append(
                conformal_scores(y[m, j], mean[m, j], np.maximum(std[m, j], floor[j]))
            )
            self._cal_groups.append(None if groups is None else np.asarray(groups)[m])
        cov = float(self.coverage)
        try:
            self.conformal_ = self._conformal(cov)
        except TooFewScoresError as exc:
            raise TooFewScoresError(
                f"BatchedEnsemble: {exc} Here: hold out more groups (calibration=, or "
                "calibration_data=), or set conformal_fallback='rows' or conformal_unit='rows'."
            ) from None
        q = np.array([c.quantile for c in self.conformal_])
        achieved = np.array([c.achieved for c in self.conformal_])
        scores = tuple(np.sort(s) for s in self._cal_scores)
        self.calibration_ = Calibration(cov, scores, q, achieved)

    def _conformal(self, coverage: float) -> tuple[ConformalCalibration, ...]:
        return tuple(
            conformal_calibration(
                s,
                g,
                coverage=coverage,
                unit=self.conformal_unit,
                fallback=self.conformal_fallback,
            )
            for s, g in zip(self._cal_scores, self._cal_groups, strict=True)
        )

    def _quantiles(self, coverage: float) -> np.ndarray:
        return np.array([c.quantile for c in self._conformal(coverage)])

    def coverage_score(self, X: Any, y: Any = None, *, coverage: float | None = None) -> float:
        """Share of the measured targets of held-out ``(X, y)`` inside their interval."""
        data = _read(self, X, y, what="BatchedEnsemble.coverage_score")
        assert data.y is not None
        pred = self.predict(X, coverage=coverage)
        m = np.isfinite(data.y)
        return float(((data.y >= pred.lower) & (data.y <= pred.upper))[m].mean())

    def score(self, X: Any, y: Any = None) -> float:
        """R² of the ensemble mean over measured targets."""
        from ._metrics import r2

        data = _read(self, X, y, what="BatchedEnsemble.score")
        assert data.y is not None
        return r2(data.y, self.predict(X).mean)
