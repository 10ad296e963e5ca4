"""Atomic file writes, shared by every part of the library that writes files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write"]


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], object],
    *,
    binary: bool = False,
    fsync: bool = True,
) -> None:
    """Write a file atomically: ``write(f)`` writes into a temporary file in the same
    folder, which then replaces ``path`` in one rename.

    A reader, or a run killed mid-write, sees either the old file or the complete new one,
    never a part. The folder is created if missing; the file gets the usual permissions
    from the umask (the temporary file is opened with mode ``"x"``, not ``mkstemp``'s
    owner-only mode). Text is written as UTF-8 with newlines as given. With ``fsync`` the
    data reach the disk before the rename, so a power cut cannot leave an empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        f: IO[Any]
        with open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8", newline="") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
