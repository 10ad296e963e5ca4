"""The model-file envelope: one data-only file per fitted model, written atomically and
read back with ``torch.load(..., weights_only=True)``, so that loading a file never runs
code from it.

A file is the ``torch.save`` of ``{"format": str, "version": int, "meta": <JSON text>,
"tensors": {name: tensor}, ...}`` plus any further entries of plain data (numbers,
strings, lists, dicts, tensors). hybridml's own model files (:func:`hybridml.load_model`)
are such files of format ``"hybridml.model"``; a plug-in that saves a model of its own
writes its own format with :func:`write_model_file` and reads it with
:func:`read_model_file`, which refuse what is not such a file, another format or another
format version with a :class:`~hybridml.ModelFileError` that names the file and what to
do.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic import atomic_write
from ..exceptions import HybridMLError, InvalidTypeError

__all__ = ["ModelFileError", "read_model_file", "write_model_file"]

#: the format of hybridml's own model files
HYBRIDML_FORMAT = "hybridml.model"
# the entries every file has; write_model_file's ``extra`` may not use them
_ENVELOPE = ("format", "version", "meta", "tensors")


class ModelFileError(HybridMLError, ValueError):
    """A model file that cannot be loaded: not a hybridml model file, another format
    version, another class, damaged, or settings given to ``load`` that do not match the
    saved model (another adapter, other checks, a missing simulator)."""


def _tensor(a: Any) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().clone()
    return torch.from_numpy(np.array(a, copy=True))


def write_model_file(
    path: str | os.PathLike[str],
    format: str,
    version: int,
    meta: Mapping[str, Any],
    tensors: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write a data-only model file, atomically (a reader sees the old file or the new
    one, never half of one).

    Args:
        path: the file to write (its folder must exist).
        format: the file's format name, e.g. ``"mypackage.MyModel"``.
        version: the format's version; raise it whenever a file of the old layout would
            be read wrongly by the new reader.
        meta: metadata that JSON can hold (settings, fitted numbers, versions, ...).
        tensors: arrays by name (torch tensors or anything ``numpy.array`` takes); stored
            as CPU tensors, copied.
        extra: further entries of plain data (e.g. another model file's contents).

    Raises:
        InvalidTypeError: ``meta`` is not JSON-serialisable, or ``extra`` uses a name of the
            envelope (``format``, ``version``, ``meta``, ``tensors``).
    """
    try:
        text = json.dumps(dict(meta))
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"write_model_file: meta must be JSON data ({exc}).") from None
    clash = sorted(set(extra or {}) & set(_ENVELOPE))
    if clash:
        raise InvalidTypeError(f"write_model_file: extra may not set {clash} (the envelope).")
    payload = {
        **(extra or {}),
        "format": format,
        "version": int(version),
        "meta": text,
        "tensors": {str(k): _tensor(v) for k, v in tensors.items()},
    }
    atomic_write(Path(path), lambda f: torch.save(payload, f), binary=True)


def read_model_file(
    path: str | os.PathLike[str],
    format: str,
    version: int,
    *,
    what: str,
    writer: str,
    kind: str | None = None,
    reader: str = "hybridml",
) -> dict[str, Any]:
    """Read a model file written by :func:`write_model_file`.

    Args:
        path: the file.
        format: the format expected.
        version: the format version this reader reads.
        what: who reads, named first in every error (e.g. ``"MyModel.load"``).
        writer: what writes such files, named in the errors (e.g. ``"MyModel.save"``).
        kind: how the errors name the file expected (default ``"a '<format>' model
            file"``).
        reader: the package that reads it, named when the version differs.

    Returns:
        The file's entries, with ``meta`` parsed from JSON and ``tensors`` as a dict of
        CPU tensors.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a data-only torch file (or one ``weights_only`` refuses),
            another format (a hybridml model file or a bare state dict is named as such),
            another format version, or damaged metadata.
    """
    path = Path(path)
    kind = kind or f"a {format!r} model file"
    if not path.exists():
        raise FileNotFoundError(f"{what}: no file '{path}'.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(
            f"{what}: '{path}' is not {kind} (torch.load with weights_only=True refused it: "
            f"{type(exc).__name__}: {str(exc)[:200]}). Write it with {writer}."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != format:
        raise ModelFileError(
            f"{what}: '{path}' is not {kind}{_but(payload)}. Write it with {writer}."
        )
    found = payload.get("version")
    if found != version:
        newer = isinstance(found, int) and found > version
        raise ModelFileError(
            f"{what}: '{path}' has format version {found!r}; this {reader} reads version "
            f"{version}"
            + (f"; upgrade {reader} to read it." if newer else "; save the model again.")
        )
    try:
        meta = json.loads(payload["meta"])
        tensors = dict(payload["tensors"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{what}: '{path}' is damaged ({type(exc).__name__}: {exc})."
        ) from None
    if not isinstance(meta, dict):
        raise ModelFileError(
            f"{what}: '{path}' is damaged (its metadata is a {type(meta).__name__}, not a dict)."
        )
    return {**payload, "meta": meta, "tensors": tensors}


def _but(payload: Any) -> str:
    """What a file of another format is, where that can be told."""
    if not isinstance(payload, dict):
        return ""
    if payload.get("format") == HYBRIDML_FORMAT:
        return (
            f" but a hybridml {payload.get('class')} model file (read it with hybridml.load_model)"
        )
    if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return (
            " but a bare state dict (the weights alone, e.g. an older run folder's "
            "checkpoint.pt), from which no model can be rebuilt; fit again and save"
        )
    if isinstance(payload.get("format"), str):
        return f" but a {payload['format']!r} file"
    return ""
