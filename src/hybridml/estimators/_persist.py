"""Model files: a fitted :class:`~hybridml.HybridRegressor` or
:class:`~hybridml.DeepEnsemble` written to one file and read back, predicting bitwise the
same.

The file is a ``torch.save`` of plain data only (no pickled code), so it is read with
``torch.load(..., weights_only=True)`` on the CPU: ``{"format": "hybridml.model",
"version": 1, "class": ..., "meta": <JSON text>, "tensors": {name: tensor}}``. The JSON
holds the settings that are data (names, units, widths, steps, seed, ...), the fitted
metadata (input and output names, units, history, calibration numbers, the SHA-256 of the
training data as ``data_hash_``), the package versions (Python, hybridml, torch, numpy, each
adapter's distribution: ``_model_meta.py``, which also refuses a file of another hybridml
version or with adapters not installed), and a description (class, registry name,
``repr``) of each setting that is an object: adapters, checks, simulator, transform,
physics, a balancer, phases, early stopping. The tensors are the network's
``state_dict`` (input scaling and output scaling included) and, for an ensemble, every
member's and the calibration's arrays.

Objects are not stored as code. ``load`` takes them again by keyword (``adapters=``,
``checks=``, ``simulator=``, ...) and refuses a file whose objects are missing or differ
(another adapter class, other check names). An adapter given by registry name, or an
instance whose ``repr`` equals that of its class built without settings, is re-created
from the registry by name. The settings used only to train (``physics``, a balancer
``weights``, ``phases``, ``early_stopping``) are ``None`` on a loaded model unless given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..exceptions import HybridMLError
from ._file_format import (
    HYBRIDML_FORMAT,
    ModelFileError,
    _tensor,
    read_model_file,
    write_model_file,
)
from ._model_meta import check_versions, versions

__all__ = ["ModelFileError"]

FORMAT = HYBRIDML_FORMAT
VERSION = 1

#: settings of a HybridRegressor stored as data
_DATA = (
    "inputs",
    "outputs",
    "hidden",
    "synthetic_weight",
    "adam_steps",
    "lr",
    "quasi_newton_steps",
    "lbfgs_steps",
    "quasi_newton",
    "seed",
    "progress",
    "checkpoint",
)
#: object settings that change a prediction or its report: load needs them again
_NEEDED = ("simulator", "transform")
#: object settings used only to train: None on a loaded model unless given
_TRAINING = ("physics", "phases", "early_stopping")


# ----------------------------------------------------------------------------- helpers


def _path_of(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _write(
    path: str | os.PathLike[str], cls_name: str, meta: dict[str, Any], tensors: Any, adapters: Any
) -> None:
    meta = {**meta, "versions": versions(adapters)}
    write_model_file(path, FORMAT, VERSION, meta, tensors, extra={"class": cls_name})


def _payload(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The contents of a hybridml model file of this format version (any class), its
    metadata parsed."""
    save = f"{what.removesuffix('.load')}.save" if what.endswith(".load") else "save"
    return read_model_file(
        path, FORMAT, VERSION, what=what, writer=save, kind="a hybridml model file"
    )


def _read(path: str | os.PathLike[str], cls_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON metadata and the tensors of a model file of class ``cls_name``, after
    checking the versions it was saved with (:func:`check_versions`)."""
    payload = _payload(path, f"{cls_name}.load")
    if payload.get("class") != cls_name:
        raise ModelFileError(
            f"{cls_name}.load: '{path}' holds a {payload.get('class')}, not a {cls_name}; load "
            f"it with hybridml.{payload.get('class')}.load."
        )
    meta, tensors = payload["meta"], payload["tensors"]
    check_versions(meta.get("versions", {}), Path(path), f"{cls_name}.load")
    return meta, tensors


# ----------------------------------------------------------------------------- regressor


def _objects(est: Any) -> dict[str, Any]:
    """A description of each object setting of a HybridRegressor (what load compares)."""
    from ..adapters._contract import SimulatorAdapter

    adapters = []
    for a in est.adapters or ():
        if isinstance(a, str):
            adapters.append({"name": a, "class": None, "repr": None})
        else:
            name = getattr(a, "name", None) if isinstance(a, SimulatorAdapter) else None
            adapters.append({"name": name, "class": _path_of(a), "repr": repr(a)})
    weights = est.weights
    return {
        "activation": _path_of(est.activation),
        "adapters": adapters,
        "checks": [{"name": c.name, "class": _path_of(c)} for c in est.checks],
        "simulator": None if est.simulator is None else _path_of(est.simulator),
        "transform": None if est.transform is None else _path_of(est.transform),
        "physics": None if est.physics is None else sorted(est.physics),
        "weights": None if weights is None or isinstance(weights, Mapping) else _path_of(weights),
        "phases": None if est.phases is None else [repr(p) for p in est.phases],
        "early_stopping": None if est.early_stopping is None else repr(est.early_stopping),
    }


def _settings(est: Any) -> dict[str, Any]:
    from ..checks import Policy

    out = {}
    for name in _DATA:
        v = getattr(est, name)
        out[name] = list(v) if isinstance(v, tuple | list) else v
    policy = est.check_policy
    out["check_policy"] = policy.value if isinstance(policy, Policy) else policy
    w = est.weights
    out["weights"] = {k: float(v) for k, v in w.items()} if isinstance(w, Mapping) else None
    try:
        json.dumps(out)
    except TypeError as exc:
        raise ModelFileError(
            f"{type(est).__name__}.save: a setting cannot be written as data ({exc})."
        ) from None
    return out


def regressor_meta(est: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The metadata and tensors of a fitted HybridRegressor."""
    est._check_fitted()
    tensors = {k: _tensor(v) for k, v in est.model_.state_dict().items()}
    floating = [t.dtype for t in tensors.values() if t.is_floating_point()]
    history = getattr(est, "history_", None)
    meta = {
        "settings": _settings(est),
        "objects": _objects(est),
        "fitted": {
            "input_names": list(est.input_names_),
            "output_names": list(est.output_names_),
            "named_inputs": bool(est.named_inputs_),
            "units": dict(est.units_),
            "n_features_in": int(est.n_features_in_),
            "dtype": str(floating[0]).removeprefix("torch.") if floating else None,
            "history": None if history is None else history.to_dict(),
            "data_hash": getattr(est, "data_hash_", None),
        },
    }
    return meta, tensors


def save_regressor(est: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted HybridRegressor (see :meth:`HybridRegressor.save`)."""
    meta, tensors = regressor_meta(est)
    tensors = {f"model.{k}": v for k, v in tensors.items()}
    _write(path, "HybridRegressor", meta, tensors, est.adapters_)


def _default_adapter(entry: Mapping[str, Any]) -> Any:
    """The adapter an entry describes, re-created from the registry by name, or None."""
    from ..adapters._registry import load_simulator

    if entry["class"] is None:  # given as a registry name
        return entry["name"]
    if not entry["name"]:
        return None
    try:
        cls = load_simulator(entry["name"])
        adapter = cls()
    except (HybridMLError, TypeError, ValueError):
        return None
    same = _path_of(cls) == entry["class"] and repr(adapter) == entry["repr"]
    return adapter if same else None


def _adapters_for(objects: Mapping[str, Any], given: Any, what: str) -> Any:
    entries = objects["adapters"]
    if given is None:
        rebuilt = [_default_adapter(e) for e in entries]
        missing = [e for e, a in zip(entries, rebuilt, strict=True) if a is None]
        if missing:
            names = ", ".join(f"{e['class']} ({e['repr']:.60})" for e in missing)
            raise ModelFileError(
                f"{what}: the model was fitted with adapter instances that cannot be "
                f"re-created from the registry by name: {names}; pass them again: "
                f"{what}(path, adapters=[...]) (the same {len(entries)} adapter(s), in order)."
            )
        return rebuilt
    given = list(given)
    saved = [e["class"] or e["name"] for e in entries]
    passed = [a if isinstance(a, str) else _path_of(a) for a in given]

    def same(e: Mapping[str, Any], p: str, a: Any) -> bool:
        if isinstance(a, str):
            return a == e["name"]
        return p == e["class"] or (e["class"] is None and getattr(a, "name", None) == e["name"])

    if len(given) != len(entries) or not all(
        same(e, p, a) for e, p, a in zip(entries, passed, given, strict=True)
    ):
        raise ModelFileError(
            f"{what}: the model was fitted with the adapters {saved}; adapters= gives "
            f"{passed}. Pass the same adapters, in the same order."
        )
    return given


def _check_objects(objects: Mapping[str, Any], given: dict[str, Any], what: str) -> None:
    """Refuse missing or different object settings that change a prediction or its report."""
    saved_checks = [c["name"] for c in objects["checks"]]
    if "checks" in given:
        passed = [getattr(c, "name", repr(c)) for c in given["checks"]]
        if passed != saved_checks:
            raise ModelFileError(
                f"{what}: the model was fitted with the checks {saved_checks}; checks= gives "
                f"{passed}. Pass the same checks (by name, in order)."
            )
    elif saved_checks:
        raise ModelFileError(
            f"{what}: the model was fitted with the checks {saved_checks}; pass them again: "
            f"{what}(path, checks=[...])."
        )
    for name in _NEEDED:
        saved, given_obj = objects[name], given.get(name)
        if (saved is None) != (given_obj is None):
            raise ModelFileError(
                f"{what}: the model was fitted with {name}="
                + (
                    f"{saved} (not stored as code); pass it again: {what}(path, {name}=...)."
                    if saved
                    else f"None; {name}= cannot be added to it."
                )
            )


def _activation(objects: Mapping[str, Any], given: dict[str, Any], what: str) -> Any:
    if "activation" in given:
        return given["activation"]
    module, _, name = objects["activation"].rpartition(".")
    cls = getattr(torch.nn, name, None) if module.startswith("torch.nn") else None
    if not (isinstance(cls, type) and _path_of(cls) == objects["activation"]):
        raise ModelFileError(
            f"{what}: the model's activation {objects['activation']} is not one of torch.nn's; "
            f"pass it again: {what}(path, activation=...)."
        )
    return cls


def regressor_from_meta(
    cls: type, meta: Mapping[str, Any], tensors: Mapping[str, Any], given: dict[str, Any]
) -> Any:
    """A fitted HybridRegressor from its metadata, tensors and the settings given to load."""
    from ..adapters._contract import ProvidesConstraints
    from ..training import History
    from ._base import _adapters
    from ._network import _assemble

    est = _template(cls, meta, given, f"{cls.__name__}.load")
    what = f"{cls.__name__}.load"
    fitted = meta["fitted"]
    est.adapters_ = _adapters(est.adapters, what)
    n_in, n_out = int(fitted["n_features_in"]), len(fitted["output_names"])
    zeros, ones = np.zeros(n_in), np.ones(n_in)
    mean, std = (np.zeros(n_out), np.ones(n_out)) if est.transform is None else (None, None)
    model = _assemble(est, n_in, n_out, zeros, ones, mean, std)
    if fitted["dtype"] is not None:
        model = model.to(getattr(torch, fitted["dtype"]))
    try:
        model.load_state_dict(dict(tensors), strict=True)
    except (RuntimeError, KeyError) as exc:
        raise ModelFileError(
            f"{what}: the stored weights do not fit the network built from the saved settings "
            f"and the objects given to load ({str(exc)[:300]})."
        ) from None
    est.model_ = model
    sources = [
        (a, dict(a.loss_terms())) for a in est.adapters_ if isinstance(a, ProvidesConstraints)
    ]
    est.checks_ = est._all_checks(sources)
    est.input_names_ = list(fitted["input_names"])
    est.output_names_ = list(fitted["output_names"])
    est.named_inputs_ = bool(fitted["named_inputs"])
    est.units_ = dict(fitted["units"])
    est.n_features_in_ = n_in
    if fitted["history"] is not None:
        est.history_ = History.from_dict(fitted["history"])
    est.data_hash_ = fitted.get("data_hash")
    return est


def load_regressor(cls: type, path: str | os.PathLike[str], given: dict[str, Any]) -> Any:
    """Read a HybridRegressor model file (see :meth:`HybridRegressor.load`)."""
    meta, tensors = _read(path, cls.__name__)
    prefix = "model."
    model = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return regressor_from_meta(cls, meta, model, given)


# ----------------------------------------------------------------------------- ensemble


def save_ensemble(ens: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted DeepEnsemble of HybridRegressors (see :meth:`DeepEnsemble.save`)."""
    from ._regressor import HybridRegressor

    ens._check_fitted()
    if not all(isinstance(m, HybridRegressor) for m in [ens.estimator, *ens.members_]):
        raise ModelFileError(
            "DeepEnsemble.save: model files hold ensembles of HybridRegressor members; this "
            f"one's estimator is a {type(ens.estimator).__name__}."
        )
    tensors: dict[str, torch.Tensor] = {}
    members = []
    for i, m in enumerate(ens.members_):
        m_meta, m_tensors = regressor_meta(m)
        members.append(m_meta)
        tensors.update({f"members.{i}.{k}": v for k, v in m_tensors.items()})
    cal = ens.calibration_
    if cal is not None:
        tensors.update({f"calibration.scores.{j}": _tensor(s) for j, s in enumerate(cal.scores)})
        tensors["calibration.quantile"] = _tensor(cal.quantile)
        tensors["calibration.achieved"] = _tensor(cal.achieved)
        tensors["calibration.floor"] = _tensor(ens.calibration_floor_)
    tensors["calibration_index"] = _tensor(np.asarray(ens.calibration_index_, dtype=np.int64))
    settings = {
        k: getattr(ens, k)
        for k in ("n_members", "bootstrap", "calibration", "coverage", "seed", "progress")
    }
    try:
        settings["member_params"] = json.loads(json.dumps(ens.member_params))
    except TypeError:
        raise ModelFileError(
            "DeepEnsemble.save: member_params holds objects, which a model file does not "
            "store; use settings that are data (numbers, names) per member."
        ) from None
    meta = {
        "settings": settings,
        "estimator": {"settings": _settings(ens.estimator), "objects": _objects(ens.estimator)},
        "members": members,
        "member_seeds": [int(s) for s in ens.member_seeds_],
        "failures": [vars(f) for f in ens.failures_],
        "n_outputs": int(ens.n_outputs_),
        "calibration": None if cal is None else {"coverage": cal.coverage, "n": len(cal.scores)},
        "data_hash": getattr(ens, "data_hash_", None),
    }
    _write(path, "DeepEnsemble", meta, tensors, ens.members_[0].adapters_)


def load_ensemble(cls: type, path: str | os.PathLike[str], given: dict[str, Any]) -> Any:
    """Read a DeepEnsemble model file (see :meth:`DeepEnsemble.load`)."""
    from ._ensemble_results import Calibration, MemberFailure
    from ._regressor import HybridRegressor

    meta, tensors = _read(path, cls.__name__)
    executor = given.pop("executor", None)
    what = f"{cls.__name__}.load"
    template_meta = {**meta["estimator"], "fitted": None}
    template = _template(HybridRegressor, template_meta, given, what)
    members = []
    for i, m_meta in enumerate(meta["members"]):
        prefix = f"members.{i}."
        own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        members.append(regressor_from_meta(HybridRegressor, m_meta, own, dict(given)))
    ens = cls(template, executor=executor, **meta["settings"])
    ens.members_ = members
    ens.member_seeds_ = list(meta["member_seeds"])
    ens.failures_ = [MemberFailure(**f) for f in meta["failures"]]
    ens.calibration_index_ = tensors["calibration_index"].numpy()
    ens.n_outputs_ = int(meta["n_outputs"])
    ens.data_hash_ = meta.get("data_hash")
    ens.calibration_ = None
    cal = meta["calibration"]
    if cal is not None:
        scores = tuple(tensors[f"calibration.scores.{j}"].numpy() for j in range(cal["n"]))
        ens.calibration_ = Calibration(
            float(cal["coverage"]),
            scores,
            tensors["calibration.quantile"].numpy(),
            tensors["calibration.achieved"].numpy(),
        )
        ens.calibration_floor_ = tensors["calibration.floor"].numpy()
    return ens


def _template(cls: type, meta: Mapping[str, Any], given: dict[str, Any], what: str) -> Any:
    """The unfitted template estimator of an ensemble, from its settings and ``given``."""
    valid = set(cls._param_names())  # type: ignore[attr-defined]
    unknown = sorted(set(given) - valid)
    if unknown:
        raise ModelFileError(f"{what}: no setting(s) {unknown}; its settings are {sorted(valid)}.")
    objects = meta["objects"]
    _check_objects(objects, given, what)
    params: dict[str, Any] = dict(meta["settings"])
    params["hidden"] = tuple(params["hidden"])
    params["activation"] = _activation(objects, given, what)
    params["adapters"] = _adapters_for(objects, given.get("adapters"), what)
    params.update({k: v for k, v in given.items() if k not in ("adapters", "activation")})
    return cls(**params)
