"""Model files of a :class:`~hybridml.BatchedEnsemble`: the same format as those of
:class:`~hybridml.HybridRegressor` and :class:`~hybridml.DeepEnsemble` (``_persist.py``):
a ``torch.save`` of data only, JSON metadata (settings, names, units, history, versions,
training-data hash, calibration groups) and tensors (the batched network with its input
box and output scaling, the member weights, the calibration scores)."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch

from ._persist import ModelFileError, _activation, _path_of, _read, _tensor, _write

__all__: list[str] = []

#: settings stored as data (besides dtype, check_policy and the objects)
_DATA = (
    "inputs",
    "outputs",
    "hidden",
    "n_members",
    "bootstrap",
    "weight_decay",
    "scale_inputs",
    "scale_targets",
    "calibration",
    "coverage",
    "conformal_unit",
    "conformal_fallback",
    "seed",
    "progress",
)


def _labels(groups: Any) -> Any:
    return None if groups is None else np.asarray(groups).tolist()


def save_batched(est: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted BatchedEnsemble (see :meth:`BatchedEnsemble.save`)."""
    from ..checks import Policy

    est._check_fitted()
    settings = {k: getattr(est, k) for k in _DATA}
    for k in ("inputs", "outputs", "hidden"):
        settings[k] = None if settings[k] is None else list(settings[k])
    policy = est.check_policy
    settings["check_policy"] = policy.value if isinstance(policy, Policy) else policy
    settings["dtype"] = str(est.dtype).removeprefix("torch.")
    tensors = {f"model.{k}": _tensor(v) for k, v in est._wrapped.state_dict().items()}
    tensors["member_weights"] = _tensor(est.member_weights_)
    tensors["calibration_index"] = _tensor(np.asarray(est.calibration_index_, dtype=np.int64))
    cal = est.calibration_
    if cal is not None:
        for j, s in enumerate(est._cal_scores):
            tensors[f"calibration.scores.{j}"] = _tensor(s)
        tensors["calibration.floor"] = _tensor(est.calibration_floor_)
    meta = {
        "settings": settings,
        "objects": {
            "activation": _path_of(est.activation),
            "checks": [{"name": c.name, "class": _path_of(c)} for c in est.checks],
            "phases": [repr(p) for p in est.phases],
        },
        "fitted": {
            "input_names": list(est.input_names_),
            "output_names": list(est.output_names_),
            "named_inputs": bool(est._named),
            "units": dict(est.units_),
            "in_features": int(est.model_.in_features),
            "member_seeds": [int(s) for s in est.member_seeds_],
            "history": est.history_.to_dict(),
            "data_hash": getattr(est, "data_hash_", None),
        },
        "calibration": None
        if cal is None
        else {"coverage": cal.coverage, "groups": [_labels(g) for g in est._cal_groups]},
    }
    _write(path, "BatchedEnsemble", meta, tensors, ())


def load_batched(cls: type, path: str | os.PathLike[str], given: dict[str, Any]) -> Any:
    """Read a BatchedEnsemble model file (see :meth:`BatchedEnsemble.load`)."""
    from ..nn._batched import BatchedMLP
    from ..training import History
    from ._conformal import ConformalFallbackWarning
    from ._ensemble_results import Calibration
    from ._network import _Affine

    what = f"{cls.__name__}.load"
    meta, tensors = _read(path, cls.__name__)
    valid = set(cls._param_names())  # type: ignore[attr-defined]
    unknown = sorted(set(given) - valid)
    if unknown:
        raise ModelFileError(f"{what}: no setting(s) {unknown}; its settings are {sorted(valid)}.")
    objects, fitted = meta["objects"], meta["fitted"]
    saved_checks = [c["name"] for c in objects["checks"]]
    passed = [getattr(c, "name", repr(c)) for c in given.get("checks", ())]
    if passed != saved_checks:
        raise ModelFileError(
            f"{what}: the model was fitted with the checks {saved_checks}; checks= gives "
            f"{passed}. Pass the same checks (by name, in order): {what}(path, checks=[...])."
        )
    params = dict(meta["settings"])
    params["hidden"] = tuple(params["hidden"])
    params["dtype"] = getattr(torch, params["dtype"])
    params["activation"] = _activation(objects, given, what)
    params.update({k: v for k, v in given.items() if k != "activation"})
    est = cls(**params)
    n_in, outs = int(fitted["in_features"]), list(fitted["output_names"])
    box = ([0.0] * n_in, [1.0] * n_in) if est.scale_inputs else (None, None)
    net = BatchedMLP(
        n_in,
        len(outs),
        tuple(est.hidden),
        est.activation,
        seeds=fitted["member_seeds"],
        input_lower=box[0],
        input_upper=box[1],
    )
    zeros, ones = torch.zeros(len(outs)), torch.ones(len(outs))
    wrapped = _Affine(net, zeros.double(), ones.double()).to(est.dtype)
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        wrapped.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as exc:
        raise ModelFileError(
            f"{what}: the stored weights do not fit the network built from the saved "
            f"settings ({str(exc)[:300]})."
        ) from None
    est.model_, est._wrapped = net, wrapped
    est.member_seeds_ = list(fitted["member_seeds"])
    est.member_weights_ = tensors["member_weights"].numpy()
    est.input_names_, est.output_names_ = list(fitted["input_names"]), outs
    est.units_ = dict(fitted["units"])
    est._named = bool(fitted["named_inputs"])
    est.history_ = History.from_dict(fitted["history"])
    est.data_hash_ = fitted.get("data_hash")
    est.calibration_index_ = tensors["calibration_index"].numpy()
    est.calibration_, est.conformal_ = None, ()
    cal = meta["calibration"]
    if cal is not None:
        est.calibration_floor_ = tensors["calibration.floor"].numpy()
        est._cal_scores = [tensors[f"calibration.scores.{j}"].numpy() for j in range(len(outs))]
        est._cal_groups = [None if g is None else np.asarray(g) for g in cal["groups"]]
        cov = float(cal["coverage"])
        with warnings.catch_warnings():  # a fallback was warned about when it was fitted
            warnings.simplefilter("ignore", ConformalFallbackWarning)
            est.conformal_ = est._conformal(cov)
        q = np.array([c.quantile for c in est.conformal_])
        achieved = np.array([c.achieved for c in est.conformal_])
        scores = tuple(np.sort(s) for s in est._cal_scores)
        est.calibration_ = Calibration(cov, scores, q, achieved)
    return est


class _BatchedFiles:
    """``save``/``load`` of :class:`~hybridml.BatchedEnsemble`."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted ensemble to a model file that :meth:`load` reads back
        (atomically; data only, readable with ``torch.load(..., weights_only=True)``): the
        settings that are data, names and units, history, the batched members' weights with
        their input box and output scaling, the member weights, the calibration scores and
        groups, the package versions and the training data's hash (``data_hash_``)."""
        save_batched(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **settings: Any) -> Any:
        """Read a model file written by :meth:`save`, on the CPU; it predicts bitwise the
        same (mean, members, calibrated interval).

        Args:
            path: the model file.
            **settings: settings to give the loaded ensemble: ``checks=`` again when it had
                checks (the same names, in order), an ``activation=`` outside ``torch.nn``;
                ``phases`` serve only training (the default unless given).

        Raises:
            ModelFileError: as :meth:`HybridRegressor.load`.
            FileNotFoundError: no such file.
        """
        return load_batched(cls, path, settings)
