"""Model files of a fitted :class:`.FleetHybridMethod`: everything it needs to forecast a
new cell from its early cycles, in one file.

The file is a data-only model file of hybridml (:func:`hybridml.write_model_file`, read
back by :func:`hybridml.read_model_file` with ``weights_only=True``): JSON
metadata (the settings, the window, the choices made on the training cells, the fade
library's parameters, the training cells' ids and conditions, the versions it was saved
with and a hash of the training data) and tensors (the fade library's curves, the fleet
prior, the training cells' measurements, which the fleet forecast and the physics prior of
a new cell are built from). The network is a :class:`hybridml.BatchedEnsemble` model file,
embedded as it was written by :meth:`hybridml.BatchedEnsemble.save`. The file is written
atomically.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._hybrid import FleetHybridMethod

__all__: list[str] = []

FORMAT = "hybridml-battery.FleetHybridMethod"
VERSION = 5


def _versions() -> dict[str, str]:
    import hybridml

    from . import __version__

    return {"hybridml": hybridml.__version__, "hybridml_battery": __version__}


def _hash(cells: list[Any]) -> str:
    """SHA-256 of the training cells' ids, cycles and capacities."""
    import hashlib

    h = hashlib.sha256()
    for c in cells:
        h.update(c.cell_id.encode() + b"\0")
        h.update(np.ascontiguousarray(c.cycle, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(c.capacity, dtype=np.float64).tobytes())
    return h.hexdigest()


def save_hybrid(method: FleetHybridMethod, path: str | os.PathLike[str]) -> None:
    """Write a fitted hybrid (see :meth:`.FleetHybridMethod.save`)."""
    import torch

    from hybridml import NotFittedError, write_model_file

    if not hasattr(method, "fold_"):
        raise NotFittedError(
            f"FleetHybridMethod.save: {method.name!r} is not fitted; call fit(train, test, "
            "window) (or fit_fleet(train, window)) first."
        )
    fold = method.fold_
    fp, cfg, scale_prior = fold.setting
    cells = list(method.train_)
    lib = method.library
    meta: dict[str, Any] = {
        "settings": {
            "name": method.name,
            "seed": method.seed,
            "physics": method.parts.physics,
            "fleet": method.parts.fleet,
            "shrink": list(method.shrink),
            "weights": list(method.weights),
            "own_physics": method.parts.own,
            "by_condition": method.by_condition,
            "nets": dataclasses.asdict(method.settings),
            "eol_thresholds": method.eol_thresholds,
        },
        "fitted": {
            "window": {"known_cycles": fold.window.known_cycles, "every": fold.window.every},
            "choice": list(method.choice_),
            "condition_choices": {k: list(c) for k, c in method.condition_choices_.items()},
            "q": method.q_,
            "life": fold.life,
            "regen_tau": None if fp is None else fp.regen_tau,
            "scale_prior": scale_prior,
            "fleet_config": None if cfg is None else dataclasses.asdict(cfg),
            "inner_rmse": [[*c, v] for c, v in method.inner_rmse_.items()],
            "inner_eol": [[*c, v] for c, v in method.inner_eol_.items()],
        },
        "library": {"params": list(lib.params), "description": lib.description},
        "cells": [
            {"id": c.cell_id, "conditions": dict(c.conditions), "condition": c.condition}
            for c in cells
        ],
        "data_hash": _hash(cells),
        "versions": _versions(),
    }
    tensors: dict[str, Any] = {"library.curves": lib.curves}
    if fp is not None:
        tensors["prior.mean"], tensors["prior.std"] = fp.mean, fp.std
    for i, c in enumerate(cells):
        tensors[f"cell.{i}.cycle"] = np.asarray(c.cycle, dtype=np.float64)
        tensors[f"cell.{i}.capacity"] = np.asarray(c.capacity, dtype=np.float64)
        tensors[f"cell.{i}.lines"] = np.asarray(c.lines, dtype=np.int64)
    network = None
    if fold.ensemble is not None:
        with tempfile.TemporaryDirectory() as tmp:
            fold.ensemble.save(Path(tmp) / "network.pt")
            network = torch.load(Path(tmp) / "network.pt", map_location="cpu", weights_only=True)
    write_model_file(path, FORMAT, VERSION, meta, tensors, extra={"network": network})


def load_hybrid(path: str | os.PathLike[str]) -> FleetHybridMethod:
    """Read a model file written by :func:`save_hybrid` (see
    :meth:`.FleetHybridMethod.load`)."""
    import torch

    from hybridml import BatchedEnsemble, ModelFileError, ModelFileWarning, read_model_file

    from ._data import Cell
    from ._fleet import FleetConfig
    from ._hybrid import Candidate, FleetHybridMethod, _FoldModel
    from ._identify import FleetPrior
    from ._matched import SCALE_PRIORS
    from ._methods import NetSettings, Window
    from ._physics import FadeLibrary

    path = Path(path)
    what = "FleetHybridMethod.load"
    payload = read_model_file(
        path,
        FORMAT,
        VERSION,
        what=what,
        writer="FleetHybridMethod.save",
        kind="a model file of the battery hybrid",
        reader="hybridml-battery",
    )
    try:
        meta = payload["meta"]
        ts = {k: v.numpy() for k, v in payload["tensors"].items()}
        s, fit = meta["settings"], meta["fitted"]
        saved = meta.get("versions", {})
        cells = [
            Cell(
                d["id"],
                ts[f"cell.{i}.cycle"],
                ts[f"cell.{i}.capacity"],
                ts[f"cell.{i}.lines"],
                {k: float(v) for k, v in d["conditions"].items()},
                d["condition"],
            )
            for i, d in enumerate(meta["cells"])
        ]
        library = FadeLibrary(
            params=tuple(meta["library"]["params"]),
            curves=ts["library.curves"],
            description=meta["library"]["description"],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise ModelFileError(f"{what}: '{path}' is damaged ({why}).") from None
    now = _versions()
    other = {k: v for k, v in saved.items() if now.get(k) != v}
    if other:
        warnings.warn(
            f"{what}: '{path}' was saved with "
            + ", ".join(f"{k} {v}" for k, v in sorted(other.items()))
            + f"; this is {', '.join(f'{k} {v}' for k, v in sorted(now.items()))}. "
            "It loads as saved; refit it if the forecasts look different.",
            ModelFileWarning,
            stacklevel=3,
        )
    if _hash(cells) != meta.get("data_hash"):
        raise ModelFileError(
            f"{what}: '{path}' is damaged (its training cells do not match their hash)."
        )
    method = FleetHybridMethod(
        library,
        NetSettings(**{**s["nets"], "hidden": tuple(s["nets"]["hidden"])}),
        int(s["seed"]),
        physics=bool(s["physics"]),
        fleet=bool(s["fleet"]),
        shrink=s["shrink"],
        weights=s["weights"],
        own_physics=bool(s["own_physics"]),
        by_condition=bool(s["by_condition"]),
        eol_thresholds=s["eol_thresholds"],
        name=s["name"],
    )
    try:
        fp = None
        if "prior.mean" in ts:
            fp = FleetPrior(ts["prior.mean"], ts["prior.std"], fit["regen_tau"])
        cfg = None if fit["fleet_config"] is None else FleetConfig(**fit["fleet_config"])
        window = Window(float(fit["window"]["known_cycles"]), int(fit["window"]["every"]))
        scale_prior = str(fit["scale_prior"])
    except (KeyError, TypeError, ValueError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise ModelFileError(f"{what}: '{path}' is damaged ({why}).") from None
    if scale_prior not in SCALE_PRIORS:
        raise ModelFileError(
            f"{what}: '{path}' is damaged (time-scale prior {scale_prior!r} is none of "
            f"{SCALE_PRIORS})."
        )
    ensemble = None
    if payload.get("network") is not None:
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(payload["network"], Path(tmp) / "network.pt")
            ensemble = BatchedEnsemble.load(Path(tmp) / "network.pt")
    method.fold_ = _FoldModel.restored(
        cells,
        window,
        method.parts,
        library,
        (fp, cfg, scale_prior),
        float(fit["life"]),
        ensemble,
    )
    method.train_ = tuple(cells)
    try:
        prior, w, lam = fit["choice"]
        method.choice_ = Candidate(str(prior), float(w), float(lam))
        method.cell_choice_ = method.choice_
        method.condition_choices_ = {
            str(k): Candidate(str(p), float(w), float(lam))
            for k, (p, w, lam) in fit["condition_choices"].items()
        }
        method.q_ = None if fit["q"] is None else float(fit["q"])
        method.inner_rmse_ = {Candidate(p, w, lam): v for p, w, lam, v in fit["inner_rmse"]}
        method.inner_eol_ = {Candidate(p, w, lam): v for p, w, lam, v in fit["inner_eol"]}
    except (KeyError, TypeError, ValueError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise ModelFileError(f"{what}: '{path}' is damaged ({why}).") from None
    return method
