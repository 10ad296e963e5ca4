"""What a model file records beside its weights, and what ``load`` checks of it: the
package versions (Python, hybridml, torch, numpy and each adapter's distribution with the
distributions it requires), the hash of the training data, and :func:`load_model`, which
reads a model file of any class.

A model file is read by the hybridml version that wrote it: another version, or an
adapter whose distribution is not installed, is refused with a
:class:`~hybridml.ModelFileError` that names what differs. An adapter distribution of
another version loads with a :class:`ModelFileWarning` (the weights do not depend on it;
the adapter's checks may).
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ModelFileWarning", "data_hash", "load_model"]


class ModelFileWarning(UserWarning):
    """A model file loaded with an adapter distribution of another version than the one it
    was saved with: the weights are the same, the adapter's checks may differ."""


def data_hash(x: Any, y: Any) -> str:
    """SHA-256 (hex) of training data: the inputs ``x`` and targets ``y`` as float64 arrays
    in C order, each preceded by its shape. The same rows in the same order give the same
    hash on any machine; another row, order, value or NaN gives another."""
    h = hashlib.sha256()
    for a in (x, y):
        arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(repr(tuple(arr.shape)).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _package_of(cls: type) -> str | None:
    """The distribution that installs the module of ``cls`` (None for a script or a test)."""
    top = cls.__module__.split(".", 1)[0]
    dists = metadata.packages_distributions().get(top, [])
    return dists[0] if dists else None


def versions(adapters: Iterable[Any]) -> dict[str, Any]:
    """The versions a model file records: Python, hybridml, torch, numpy, and per adapter
    its name, class, distribution and :func:`~hybridml.simulator_versions`."""
    from ..adapters import simulator_versions

    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("hybridml", "torch", "numpy"):
        out[dist] = _version(dist) or "unknown"
    entries = []
    for a in adapters:
        cls = type(a)
        entries.append(
            {
                "name": getattr(a, "name", None),
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "package": _package_of(cls),
                "versions": simulator_versions(a),
            }
        )
    out["adapters"] = entries
    return out


def check_versions(saved: Mapping[str, Any], path: Path, what: str) -> None:
    """Refuse a model file of another hybridml version or whose adapters' distributions are
    not installed; warn for an adapter distribution of another version."""
    from ._persist import ModelFileError

    mine, theirs = _version("hybridml"), saved.get("hybridml")
    if mine and theirs and "unknown" not in (mine, theirs) and mine != theirs:
        raise ModelFileError(
            f"{what}: '{path}' was saved by hybridml {theirs}; this is hybridml {mine}. A "
            f"model file is read by the version that wrote it: install hybridml=={theirs} "
            "to load it, or fit the model again and save it with this version."
        )
    missing, other = [], []
    for entry in saved.get("adapters", ()):
        package = entry.get("package")
        if not package:
            continue
        wanted = entry.get("versions", {}).get(package.lower())
        label = f"adapter {entry.get('name')!r} ({entry.get('class')}) from {package}"
        have = _version(package)
        if have is None:
            missing.append(f"{label} {wanted or ''}".rstrip())
        elif wanted and have != wanted:
            other.append(f"{label}: saved with {wanted}, installed {have}")
    if missing:
        pins = " ".join(
            f"{e['package']}=={e['versions'][e['package'].lower()]}"
            if e["package"].lower() in e.get("versions", {})
            else e["package"]
            for e in saved.get("adapters", ())
            if e.get("package") and _version(e["package"]) is None
        )
        raise ModelFileError(
            f"{what}: '{path}' was fitted with {'; '.join(missing)}, which is not installed "
            f"here; install it (pip install {pins}) to load the model."
        )
    if other:
        warnings.warn(
            f"{what}: '{path}': {'; '.join(other)}. The weights load as saved; the adapter's "
            "checks may report differently.",
            ModelFileWarning,
            stacklevel=4,
        )


def load_model(path: str | os.PathLike[str], **settings: Any) -> Any:
    """Read a model file of any class: a :class:`~hybridml.HybridRegressor`, a
    :class:`~hybridml.DeepEnsemble` or a :class:`~hybridml.BatchedEnsemble`, whichever
    ``save`` wrote, e.g. a run folder's ``checkpoint.pt``.

    Args:
        path: the model file.
        **settings: given to the class's ``load`` (``adapters=``, ``checks=``, ...).

    Raises:
        ModelFileError: as :meth:`HybridRegressor.load` (another format, hybridml version,
            missing adapters, ...).
        FileNotFoundError: no such file.
    """
    from ._batched import BatchedEnsemble
    from ._ensemble import DeepEnsemble
    from ._persist import ModelFileError, _payload
    from ._regressor import HybridRegressor

    classes: dict[str, Any] = {
        "HybridRegressor": HybridRegressor,
        "DeepEnsemble": DeepEnsemble,
        "BatchedEnsemble": BatchedEnsemble,
    }
    name = _payload(path, "load_model").get("class")
    cls = classes.get(str(name))
    if cls is None:
        raise ModelFileError(
            f"load_model: '{path}' holds a {name!r}; model files hold one of {sorted(classes)}."
        )
    return cls.load(path, **settings)
