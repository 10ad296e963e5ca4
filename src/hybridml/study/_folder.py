"""Run folders that are never half-written: a run writes into a temporary folder beside its
destination and moves it into place when it has finished."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from .._atomic import atomic_write
from ..exceptions import InvalidArgumentError, NotFittedError

__all__ = ["INCOMPLETE_MARKER", "RunFolder", "atomic_write"]

#: the file that marks a run folder whose run did not finish
INCOMPLETE_MARKER = "INCOMPLETE"


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(
            f"the output folder {str(out)!r} is an existing file; choose another --out "
            "(a folder, existing or not)"
        )
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InvalidArgumentError(f"cannot create {str(out)!r}: {str(parent)!r} is a file")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot create the output folder {str(out)!r}: {exc.strerror or exc}; choose a "
            "writable place with --out"
        ) from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgumentError(
            f"cannot write into {str(parent)!r} (permission denied); choose a writable place "
            "for the output folder"
        )


class RunFolder:
    """A run folder written as a whole: files go into a temporary folder beside ``out``,
    which replaces ``out`` when the ``with`` block ends without an error.

    While the run writes, the temporary folder holds a file named ``INCOMPLETE``. On
    success the marker is removed and the folder takes the place of ``out``: an older run
    folder there is removed as a whole, so no stale file of an older run survives beside
    the new ones. On an error (or when the process is killed) ``out`` keeps the older
    run's complete folder, and the partial one stays beside it, marked ``INCOMPLETE``
    (``<out>.partial-<pid>``, removed by the next successful run into ``out``).

    Example::

        with RunFolder("runs/mine") as folder:          # folder: the temporary Path
            (folder / "figures").mkdir()
            folder.write_json("metrics.json", metrics)
        # now runs/mine holds exactly what this run wrote

    Args:
        out: the destination folder; its parent is created if missing. An existing file
            there, or a place that cannot be written, is refused at once with a message
            naming the path.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        _check_destination(self.out)
        self.path: Path | None = None

    def __enter__(self) -> RunFolder:
        # a run killed between its two renames left the older folder as `<out>.old-<pid>`:
        # put it back; leftovers of dead runs go
        for old in sorted(self.out.parent.glob(f"{self.out.name}.old-*")):
            if old.is_dir() and not _alive(old.name.rsplit("-", 1)[-1]):
                if not self.out.exists():
                    os.replace(old, self.out)
                else:
                    shutil.rmtree(old, ignore_errors=True)
        for stale in self.out.parent.glob(f"{self.out.name}.partial-*"):
            if stale.is_dir() and not _alive(stale.name.rsplit("-", 1)[-1]):
                shutil.rmtree(stale, ignore_errors=True)
        self.path = self.out.parent / f"{self.out.name}.partial-{os.getpid()}"
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()
        (self.path / INCOMPLETE_MARKER).write_text(
            "this run did not finish; its files are incomplete\n", encoding="utf-8"
        )
        return self

    def __truediv__(self, name: str) -> Path:
        """Path of ``name`` inside the temporary folder."""
        if self.path is None:
            raise NotFittedError("RunFolder is used outside its `with` block")
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file (UTF-8) atomically into the folder; return its path."""
        target = self / name
        atomic_write(target, lambda f: f.write(text))
        return target

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON atomically into the folder; return its path."""
        return self.write_text(name, json.dumps(obj, indent=2) + "\n")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.path is not None
        if exc_type is not None:
            return  # the partial folder stays, marked INCOMPLETE; `out` is untouched
        (self.path / INCOMPLETE_MARKER).unlink()
        old = None
        if self.out.exists():
            old = self.out.parent / f"{self.out.name}.old-{os.getpid()}"
            os.replace(self.out, old)
        os.replace(self.path, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.path = self.out


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True
