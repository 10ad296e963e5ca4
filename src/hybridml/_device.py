"""Where a fit runs: ``device=`` settings resolved to a :class:`torch.device`.

One function, :func:`resolve_device`, reads what a user may write (``"auto"``, ``"cpu"``,
``"cuda"``, ``"cuda:N"``, a :class:`torch.device`, or ``None`` for "leave the tensors
where they are") and says clearly what is wrong with anything else. Nothing here changes
torch's global settings.
"""

from __future__ import annotations

from typing import Any

import torch

from .exceptions import InvalidArgumentError

__all__ = ["DeviceError", "resolve_device"]

#: the device settings a user may write, for error messages and docs
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


class DeviceError(InvalidArgumentError):
    """A ``device=`` setting that cannot be used here: not a device name, or a CUDA device
    that this machine (or this torch build) does not have. A
    :class:`~hybridml.exceptions.InvalidArgumentError` (a ``ValueError``)."""


def _cuda_reason() -> str:
    """Why CUDA is not available: a CPU-only torch build, or no GPU visible."""
    if torch.version.cuda is None:
        return (
            f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build "
            "(e.g. pip install torch --index-url https://download.pytorch.org/whl/cu126, "
            "or scripts/gpu-check.sh)"
        )
    return "torch was built with CUDA but sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)"


def resolve_device(device: Any, *, what: str = "device") -> torch.device | None:
    """Resolve a ``device=`` setting to a :class:`torch.device`.

    Args:
        device: ``None`` (returned as ``None``: the caller keeps its tensors where they
            are, today's behaviour), ``"auto"`` (the current CUDA device when CUDA is
            available, else the CPU), ``"cpu"``, ``"cuda"`` (the current CUDA device),
            ``"cuda:N"``, or a :class:`torch.device` (checked the same way).
        what: the setting's owner and name for messages, e.g. ``"Trainer: device"``.

    Returns:
        The device, or ``None`` for ``None``.

    Raises:
        DeviceError: a string that is not one of the forms above (naming them), another
            type, a CUDA device when CUDA is not available (saying why: a CPU-only torch
            build or no visible GPU), or a CUDA index this machine does not have.
    """
    if device is None:
        return None
    if isinstance(device, str):
        text = device.strip().lower()
        if text == "auto":
            text = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(text)
        except (RuntimeError, ValueError):
            raise DeviceError(
                f"{what}={device!r} is not a device; use one of "
                f"{', '.join(repr(c) for c in DEVICE_CHOICES)} (N: the GPU's index) or a "
                "torch.device."
            ) from None
    elif isinstance(device, torch.device):
        dev = device
    else:
        raise DeviceError(
            f"{what} must be a string ({', '.join(repr(c) for c in DEVICE_CHOICES)}), a "
            f"torch.device or None; got {type(device).__name__} {device!r:.60}."
        )
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise DeviceError(
            f"{what}={device!r}: only the CPU and CUDA GPUs are supported, not "
            f"{dev.type!r}; use one of {', '.join(repr(c) for c in DEVICE_CHOICES)}."
        )
    if not torch.cuda.is_available():
        raise DeviceError(
            f"{what}={device!r}: cuda requested but not available ({_cuda_reason()}); use "
            "device='cpu', or 'auto' to take a GPU only where there is one."
        )
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if not 0 <= index < count:
        raise DeviceError(
            f"{what}={device!r}: this machine has {count} CUDA device(s) (cuda:0 to "
            f"cuda:{count - 1}); there is no cuda:{index}."
        )
    return torch.device("cuda", index)


def check_device_setting(estimator: Any, device: Any, executor: Any, what: str) -> None:
    """Check a wrapper's ``device=`` (an ensemble's, cross-validation's) for ``estimator``.

    The estimator must have a ``device`` setting. Without an executor the device is
    resolved here, so that an unusable one fails before anything trains; with one it is
    left to each worker (a client without a GPU may send ``"cuda"`` to GPU workers).
    """
    if "device" not in estimator.get_params():
        raise DeviceError(
            f"{what}: device={device!r}, but the estimator {type(estimator).__name__} has no "
            "device setting; leave device=None."
        )
    if executor is None:
        resolve_device(device, what=f"{what}: device")
