"""Deep ensembles with prediction intervals calibrated on held-out data.

:class:`DeepEnsemble` fits copies of an estimator that differ by seed (initial weights) and,
optionally, by a bootstrap resample of the training rows; the members' spread is the
model's uncertainty. The members train on any ``concurrent.futures.Executor`` (threads, a
process pool, a Dask ``Client.get_executor()``). A member whose training fails is recorded
in ``failures_`` and the ensemble goes on with the others (with a warning).

Intervals are calibrated by split conformal prediction on held-out points: the
normalised errors ``|y - mean| / std`` of the calibration points give the multiplier ``q``
of the interval ``mean ± q·std`` that covers a new point with probability at least the
requested ``coverage``, whatever the members' distribution, as long as calibration and new
points are exchangeable (Lei et al. 2018, "Distribution-free predictive inference").
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import ConsistencyReport, Policy
from ..exceptions import (
    EnsembleMemberWarning,
    InvalidArgumentError,
    InvalidTypeError,
    NotFittedError,
    TrainingError,
)
from ._base import (
    _ChecksPredictions,
    _is_dataset,
    _is_frame,
    _ParamsMixin,
    _predict_array,
    _read,
    _RegressorTags,
    _take,
    _targets,
    check_ensemble_settings,
    clone,
)
from ._ensemble_results import (
    Calibration,
    EnsemblePrediction,
    MemberFailure,
    calibrated_quantiles,
)
from ._model_meta import data_hash

__all__ = [
    "Calibration",
    "DeepEnsemble",
    "EnsembleMemberWarning",
    "EnsemblePrediction",
    "MemberFailure",
]


class _MeanModel(nn.Module):
    """The members' mean as one model, for checks that evaluate the model (residuals)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.models]).mean(dim=0)


def _as_float_2d(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr[:, None] if arr.ndim == 1 else arr


def _member_checkpoint(path: Any, index: int) -> str:
    """The checkpoint path of member ``index``: ``ckpt.pt`` -> ``ckpt.member<index>.pt``."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}.member{index}{p.suffix}"))


def _fit_member(estimator: Any, overrides: Mapping[str, Any], X: Any, y: Any) -> tuple[bool, Any]:
    """Fit one member; runs in a worker. A failure is returned as a value, not raised."""
    try:
        member = clone(estimator, **overrides)
        member.fit(X, y)
        return True, member
    except Exception as exc:  # recorded in failures_, warned about, never swallowed silently
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return False, (type(exc).__name__, f"{exc}{where}")


class DeepEnsemble(_ParamsMixin, _RegressorTags):
    """An ensemble of copies of an estimator, with conformal prediction intervals.

    Args:
        estimator: the template, anything with ``fit``/``predict``/``get_params`` (e.g. a
            :class:`~hybridml.HybridRegressor`). Members are ``type(est)(**params)`` with
            ``seed`` set to ``seed + i`` when the estimator has a ``seed`` setting, and a
            ``checkpoint`` path (if set) made the member's own: ``ckpt.pt`` becomes
            ``ckpt.member<i>.pt``, so each member resumes only its own training.
        n_members: number of members.
        bootstrap: fit each member on a bootstrap resample of the training rows (of whole
            groups when ``groups`` are given). For a :class:`~hybridml.Dataset` the distinct
            rows of the resample are used, since a dataset cannot hold a row twice.
        calibration: fraction of the rows (of the groups, with ``groups``) held out to
            calibrate the intervals, or None to skip calibration (intervals are then the
            uncalibrated ``mean ± 2·std``). Ignored when ``fit`` gets ``calibration_data``.
        coverage: the interval's target coverage, in (0, 1).
        member_params: optional per-member settings (one mapping per member) overriding
            the template's, e.g. different widths.
        executor: a ``concurrent.futures.Executor`` to train members on (serial if None);
            with processes or Dask the estimator and the data must pickle.
        seed: seeds the calibration split, the bootstrap resamples and the members.
        progress: show a progress bar over members (None: on a terminal or in a notebook).
        device: every member's ``device`` setting (see :class:`~hybridml.HybridRegressor`;
            ``member_params`` may give one its own, e.g. ``{"device": "cuda:1"}``); None
            keeps the estimator's. Checked before any member trains, unless there is an
            executor: its workers resolve it (a CPU client may send ``"cuda"`` to GPU ones).

    Attributes:
        members_: the fitted members that succeeded.
        member_seeds_: their seeds.
        failures_: the :class:`MemberFailure` of each member that failed.
        calibration_: the :class:`Calibration` (None without calibration).
        calibration_index_: the rows of ``X`` held out for calibration (empty if none).
    """

    def __init__(
        self,
        estimator: Any,
        *,
        n_members: int = 5,
        bootstrap: bool = True,
        calibration: float | None = 0.2,
        coverage: float = 0.9,
        member_params: Sequence[Mapping[str, Any]] | None = None,
        executor: Executor | None = None,
        seed: int = 0,
        progress: bool | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.calibration = calibration
        self.coverage = coverage
        self.member_params = member_params
        self.executor = executor
        self.seed = seed
        self.progress = progress
        self.device = device

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        n = self.n_members
        check_ensemble_settings("DeepEnsemble", n, self.coverage, self.calibration)
        if self.member_params is not None and len(self.member_params) != n:
            raise InvalidArgumentError(
                f"DeepEnsemble: member_params has {len(self.member_params)} entries but "
                f"n_members={n}; give one mapping per member."
            )
        for attr in ("fit", "predict", "get_params"):
            if not callable(getattr(self.estimator, attr, None)):
                raise InvalidTypeError(
                    f"DeepEnsemble: estimator must have fit/predict/get_params; "
                    f"{type(self.estimator).__name__} has no {attr}()."
                )
        if self.device is not None:
            from .._device import check_device_setting

            check_device_setting(self.estimator, self.device, self.executor, "DeepEnsemble")

    # ------------------------------------------------------------------ fit
    def _split(
        self, n: int, groups: Any, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.calibration is not None
        frac = float(self.calibration)
        if groups is None:
            perm = rng.permutation(n)
            n_cal = max(1, round(frac * n))
            if n_cal >= n:
                raise InvalidArgumentError(
                    f"DeepEnsemble: holding out {n_cal} of {n} rows for calibration leaves none "
                    "to train on; lower calibration= or pass more data."
                )
            return np.sort(perm[n_cal:]), np.sort(perm[:n_cal])
        labels = np.unique(np.asarray(groups))
        n_cal = max(1, round(frac * labels.size))
        if n_cal >= labels.size:
            raise InvalidArgumentError(
                f"DeepEnsemble: {labels.size} group(s); holding out {n_cal} for calibration "
                "leaves none to train on. Pass calibration_data= or more groups."
            )
        cal_labels = rng.permutation(labels)[:n_cal]
        is_cal = np.isin(np.asarray(groups), cal_labels)
        return np.flatnonzero(~is_cal), np.flatnonzero(is_cal)

    def _resample(self, X: Any, n: int, groups: Any, rng: np.random.Generator) -> np.ndarray:
        if not self.bootstrap:
            return np.arange(n)
        if groups is None:
            idx = rng.integers(0, n, size=n)
        else:
            g = np.asarray(groups)
            labels = np.unique(g)
            drawn = rng.choice(labels, size=labels.size, replace=True)
            idx = np.concatenate([np.flatnonzero(g == lab) for lab in drawn])
        return np.unique(idx) if _is_dataset(X) else np.sort(idx)

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        groups: Any = None,
        calibration_data: tuple[Any, Any] | None = None,
    ) -> DeepEnsemble:
        """Fit the members and calibrate the intervals.

        Args:
            X: inputs, shape ``(n, d)``, or a :class:`~hybridml.Dataset`.
            y: targets, shape ``(n, k)`` (may be omitted with a Dataset).
            groups: group labels per row, so that calibration holds out whole groups and
                the bootstrap resamples whole groups (default: a Dataset's group column).
            calibration_data: ``(X_cal, y_cal)`` held out by the caller; then all of
                ``X`` trains the members.

        Returns:
            ``self``.

        Raises:
            RuntimeError: if every member fails (their errors are listed).
            ValueError: if the calibration set is too small for the coverage.
        """
        self._validate()
        data = _read(self.estimator, X, y, groups=groups, what="DeepEnsemble.fit")
        assert data.y is not None
        n, yy, groups = data.n_rows, data.y, data.groups
        y_arg = None if (y is None and (_is_dataset(X) or _is_frame(X))) else yy
        rng = np.random.default_rng(self.seed)
        if calibration_data is not None:
            train_idx, cal_idx = np.arange(n), np.arange(0)
            X_cal = calibration_data[0]
            y_cal = _targets(self.estimator, X_cal, calibration_data[1])
        elif self.calibration is not None:
            train_idx, cal_idx = self._split(n, groups, rng)
            X_cal, y_cal = _take(X, cal_idx), yy[cal_idx]
        else:
            train_idx, cal_idx = np.arange(n), np.arange(0)
            X_cal, y_cal = None, None
        X_tr = _take(X, train_idx)
        y_tr = None if y_arg is None else y_arg[train_idx]
        g_tr = None if groups is None else np.asarray(groups)[train_idx]

        has_seed = "seed" in self.estimator.get_params()
        checkpoint = self.estimator.get_params().get("checkpoint")
        jobs: list[tuple[int, dict[str, Any], Any, Any]] = []
        for i in range(self.n_members):
            member_seed = int(self.seed) + i
            overrides: dict[str, Any] = {"seed": member_seed} if has_seed else {}
            if self.device is not None:
                overrides["device"] = self.device
            if checkpoint is not None:  # each member resumes its own fit, never another's
                overrides["checkpoint"] = _member_checkpoint(checkpoint, i)
            if self.member_params is not None:
                overrides.update(self.member_params[i])
            idx = self._resample(X_tr, len(train_idx), g_tr, np.random.default_rng([self.seed, i]))
            jobs.append(
                (member_seed, overrides, _take(X_tr, idx), None if y_tr is None else y_tr[idx])
            )
        outcomes = self._run(jobs)

        members: list[Any] = []
        seeds: list[int] = []
        failures: list[MemberFailure] = []
        for i, ((member_seed, *_), (ok, value)) in enumerate(zip(jobs, outcomes, strict=True)):
            if ok:
                members.append(value)
                seeds.append(member_seed)
            else:
                failures.append(MemberFailure(i, member_seed, value[0], value[1]))
        if not members:
            raise TrainingError(
                f"DeepEnsemble: all {self.n_members} members failed: "
                + "; ".join(
                    f"member {f.index} (seed {f.seed}): {f.error}: {f.message}" for f in failures
                )
            )
        if failures:
            warnings.warn(
                f"DeepEnsemble: {len(failures)} of {self.n_members} members failed and are left "
                "out: "
                + "; ".join(
                    f"member {f.index} (seed {f.seed}): {f.error}: {f.message}" for f in failures
                )
                + ". See failures_.",
                EnsembleMemberWarning,
                stacklevel=2,
            )
        self.members_ = members
        self.member_seeds_ = seeds
        self.failures_ = failures
        self.calibration_index_ = cal_idx
        self.n_outputs_ = yy.shape[1]
        self.n_features_in_ = data.X.shape[1]
        self.data_hash_ = data_hash(data.X, yy)  # recorded in the model file
        self.calibration_: Calibration | None = None
        if X_cal is not None and y_cal is not None:
            self.calibrate(X_cal, y_cal)
        return self

    def _run(self, jobs: list[tuple[int, dict[str, Any], Any, Any]]) -> list[tuple[bool, Any]]:
        from .._progress import progress_bar

        bar = progress_bar(total=len(jobs), desc="ensemble", enabled=self.progress)
        try:
            if self.executor is None:
                outcomes = []
                for _, overrides, Xi, yi in jobs:
                    outcomes.append(_fit_member(self.estimator, overrides, Xi, yi))
                    bar.update(1)
                return outcomes
            futures: list[Future[tuple[bool, Any]]] = [
                self.executor.submit(_fit_member, self.estimator, overrides, Xi, yi)
                for _, overrides, Xi, yi in jobs
            ]
            results = []
            for fut in futures:
                results.append(fut.result())
                bar.update(1)
            return results
        finally:
            bar.close()

    # ------------------------------------------------------------------ calibration
    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise NotFittedError("this DeepEnsemble is not fitted yet; call fit(X, y) first.")

    def _scale_floor(self, std: np.ndarray) -> np.ndarray:
        # a floor on the std so that points where all members agree exactly still get a
        # finite normalised error: a millionth of the typical spread (or 1e-12 absolute)
        typical = np.nanmean(std, axis=0)
        return np.maximum(1e-6 * np.where(np.isfinite(typical), typical, 0.0), 1e-12)

    def calibrate(self, X: Any, y: Any = None) -> DeepEnsemble:
        """(Re)calibrate the intervals on held-out points ``(X, y)``; returns ``self``.

        Raises:
            ValueError: if there are too few measured points for the coverage.
        """
        self._check_fitted()
        yy = _targets(self.estimator, X, y)
        members = self._member_predictions(X)
        mean, std = members.mean(axis=0), members.std(axis=0)
        if yy.shape != mean.shape:
            raise InvalidArgumentError(
                f"DeepEnsemble.calibrate: targets have shape {yy.shape} but the ensemble "
                f"predicts {mean.shape}."
            )
        floor = self._scale_floor(std)
        scores = []
        for j in range(yy.shape[1]):
            m = np.isfinite(yy[:, j])
            s = np.abs(yy[m, j] - mean[m, j]) / np.maximum(std[m, j], floor[j])
            scores.append(np.sort(s))
        names = list(getattr(self.estimator, "outputs", None) or [])
        q, achieved = calibrated_quantiles(scores, float(self.coverage), names)
        self.calibration_ = Calibration(float(self.coverage), tuple(scores), q, achieved)
        self.calibration_floor_ = floor
        return self

    # ------------------------------------------------------------------ predict
    def _member_predictions(self, X: Any) -> np.ndarray:
        # members that check their predictions give their values unchecked here: the
        # checks run once, on the mean (see predict)
        return np.stack(
            [
                _as_float_2d(m.predict_values(X))
                if isinstance(m, _ChecksPredictions)
                else _predict_array(m, X)[0]
                for m in self.members_
            ]
        )

    def predict(
        self,
        X: Any,
        *,
        coverage: float | None = None,
        policy: Policy | str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> EnsemblePrediction:
        """Predict with the ensemble and run the members' consistency checks on the mean.

        Args:
            X: inputs, shape ``(n, d)``, or a Dataset or DataFrame.
            coverage: coverage of the interval (default: the calibrated ``coverage``).
            policy: overrides the members' ``check_policy`` for this call.
            extra: extra columns (e.g. group labels) the checks may need, each of length n.

        Returns:
            An :class:`EnsemblePrediction` (mean, std, interval, every member's values and
            the consistency report of the mean).
        """
        self._check_fitted()
        members = self._member_predictions(X)
        mean, std = members.mean(axis=0), members.std(axis=0)
        cal = self.calibration_
        if cal is None:
            if coverage is not None:
                raise InvalidArgumentError(
                    "DeepEnsemble.predict: coverage= needs a calibrated ensemble; fit with "
                    "calibration= or call calibrate(X_cal, y_cal)."
                )
            half = 2.0 * std
            cov: float | None = None
        else:
            cov = cal.coverage if coverage is None else float(coverage)
            q = cal.quantile if coverage is None else cal.multiplier(cov)
            half = q * np.maximum(std, self.calibration_floor_)
        report, columns, units = self._check_mean(X, mean, policy, extra)
        return EnsemblePrediction(
            mean, std, mean - half, mean + half, cov, members, report, columns, units
        )

    def _check_mean(
        self, X: Any, mean: np.ndarray, policy: Any, extra: Mapping[str, Any] | None
    ) -> tuple[ConsistencyReport | None, tuple[str, ...], dict[str, str]]:
        """The first member's checks run on the ensemble mean, with a model of the members'
        mean, under the members' check policy (or ``policy``)."""
        first = self.members_[0]
        if not isinstance(first, _ChecksPredictions):
            return None, (), {}
        models = [m.prediction_model() for m in self.members_]
        model = _MeanModel(models) if all(isinstance(m, nn.Module) for m in models) else None
        pred = first.check_prediction(X, mean, model=model, policy=policy, extra=extra)
        return pred.report, tuple(pred.columns), dict(pred.units)

    def coverage_score(self, X: Any, y: Any = None, *, coverage: float | None = None) -> float:
        """Fraction of measured targets of ``(X, y)`` inside their interval (achieved coverage).

        Use points not used for training or calibration.
        """
        yy = _targets(self.estimator, X, y)
        pred = self.predict(X, coverage=coverage, policy=Policy.RECORD)
        m = np.isfinite(yy)
        inside = (yy >= pred.lower) & (yy <= pred.upper)
        return float(inside[m].mean())

    def score(self, X: Any, y: Any = None) -> float:
        """R² of the ensemble mean over measured targets."""
        from ._metrics import r2

        yy = _targets(self.estimator, X, y)
        return r2(yy, np.asarray(self.predict(X, policy=Policy.RECORD)))

    # ------------------------------------------------------------------ model files
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted ensemble (of :class:`~hybridml.HybridRegressor` members) to a
        model file: every member as :meth:`HybridRegressor.save` writes it, the ensemble's
        settings (not the executor), the calibration and the failures (atomically)."""
        from ._persist import save_ensemble

        save_ensemble(self, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, executor: Executor | None = None, **settings: Any
    ) -> DeepEnsemble:
        """Read a model file written by :meth:`save`, on the CPU; it predicts bitwise the
        same (mean, members, calibrated interval).

        Args:
            path: the model file.
            executor: the executor of the loaded ensemble (not stored).
            **settings: the members' object settings, given again as for
                :meth:`HybridRegressor.load` (``adapters=``, ``checks=``, ...); they go to
                the template estimator and to every member.

        Raises:
            ModelFileError: as :meth:`HybridRegressor.load`.
        """
        from ._persist import load_ensemble

        out: DeepEnsemble = load_ensemble(cls, path, {"executor": executor, **settings})
        return out
