"""Importing DeepXDE with its PyTorch backend, leaving the user's global settings alone.

DeepXDE chooses its backend when it is first imported (from ``DDE_BACKEND``, else from
``~/.deepxde/config.json``, which it writes when neither is set), prints to stderr, and its
PyTorch backend may change torch's default device (to a GPU when one is visible). Its
``config.set_default_float`` changes torch's default dtype. :func:`import_deepxde` imports it
the way hybridml needs and puts back whatever global torch/NumPy setting the import changed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import torch

__all__ = ["DeepXDEBackendError", "import_deepxde", "torch_global_state"]

_log = logging.getLogger("hybridml_deepxde")
_LOCK = threading.Lock()


class DeepXDEBackendError(RuntimeError):
    """DeepXDE is (or would be) imported with a backend other than PyTorch."""


def torch_global_state() -> dict[str, Any]:
    """A snapshot of the global torch/NumPy/Python settings a library import could change.

    Returns:
        A dict (setting name -> value) that compares equal for equal settings.
    """
    return {
        "default_dtype": torch.get_default_dtype(),
        "default_device": str(torch.get_default_device()),
        "num_threads": torch.get_num_threads(),
        "grad_enabled": torch.is_grad_enabled(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "anomaly": torch.is_anomaly_enabled(),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "torch_rng": torch.random.get_rng_state().clone(),
        "numpy_rng": np.random.get_state(),  # noqa: NPY002 - the legacy global state is what we guard
        "python_rng": random.getstate(),
    }


def _restore(before: dict[str, Any]) -> list[str]:
    """Put back every setting of ``before`` that differs now; return the names restored."""
    now = torch_global_state()
    restored = []
    setters: dict[str, Callable[[Any], object]] = {
        "default_dtype": torch.set_default_dtype,
        "default_device": torch.set_default_device,
        "num_threads": torch.set_num_threads,
        "grad_enabled": torch.set_grad_enabled,
        "deterministic": torch.use_deterministic_algorithms,
        "anomaly": torch.set_anomaly_enabled,
        "matmul_precision": torch.set_float32_matmul_precision,
    }
    for name, setter in setters.items():
        if now[name] != before[name]:
            setter(before[name])
            restored.append(name)
    if not torch.equal(now["torch_rng"], before["torch_rng"]):
        torch.random.set_rng_state(before["torch_rng"])
        restored.append("torch_rng")
    a, b = now["numpy_rng"], before["numpy_rng"]
    if a[0] != b[0] or not np.array_equal(a[1], b[1]) or a[2:] != b[2:]:
        np.random.set_state(b)  # noqa: NPY002 - restoring the legacy global state
        restored.append("numpy_rng")
    if now["python_rng"] != before["python_rng"]:
        random.setstate(before["python_rng"])
        restored.append("python_rng")
    return restored


def _check_backend(dde: ModuleType) -> ModuleType:
    name = getattr(getattr(dde, "backend", None), "backend_name", None)
    if name != "pytorch":
        raise DeepXDEBackendError(
            f"DeepXDE was already imported with the {name!r} backend, but hybridml trains with "
            "PyTorch. Import hybridml_deepxde.import_deepxde() (or set the environment "
            "variable DDE_BACKEND=pytorch) before anything imports deepxde, in a fresh Python "
            "process."
        )
    autodiff = getattr(getattr(dde, "config", None), "autodiff", "reverse")
    if autodiff != "reverse":
        raise DeepXDEBackendError(
            f"DeepXDE's automatic differentiation is set to {autodiff!r}; hybridml needs "
            "'reverse' (the default). Remove the dde.config.set_default_autodiff call."
        )
    return dde


def import_deepxde() -> ModuleType:
    """Import DeepXDE with its PyTorch backend and return the module (``dde``).

    Use it in place of ``import deepxde as dde``::

        from hybridml_deepxde import import_deepxde

        dde = import_deepxde()

    On the first import, ``DDE_BACKEND`` is set to ``"pytorch"`` for the duration of the
    import (so DeepXDE writes no ``~/.deepxde/config.json``), DeepXDE's backend banner is
    sent to the ``hybridml_deepxde`` logger instead of stderr, and any global torch, NumPy or
    Python setting the import changed (default dtype and device, threads, random states) is
    put back.

    Returns:
        The ``deepxde`` module.

    Raises:
        DeepXDEBackendError: DeepXDE was already imported with another backend, or
            ``DDE_BACKEND`` names another backend.
    """
    with _LOCK:
        if "deepxde" in sys.modules:
            return _check_backend(sys.modules["deepxde"])
        env = os.environ.get("DDE_BACKEND")
        if env is not None and env != "pytorch":
            raise DeepXDEBackendError(
                f"the environment variable DDE_BACKEND is {env!r}; hybridml needs DeepXDE's "
                "'pytorch' backend. Unset it or set DDE_BACKEND=pytorch."
            )
        before = torch_global_state()
        banner = io.StringIO()
        os.environ["DDE_BACKEND"] = "pytorch"
        try:
            with contextlib.redirect_stderr(banner), contextlib.redirect_stdout(banner):
                import deepxde
        finally:
            if env is None:
                os.environ.pop("DDE_BACKEND", None)
            restored = _restore(before)
        if banner.getvalue().strip():
            _log.debug("deepxde import: %s", banner.getvalue().strip())
        if restored:
            _log.debug("restored global settings changed by importing deepxde: %s", restored)
        return _check_backend(deepxde)
