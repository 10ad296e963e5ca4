"""Runs that resume: each finished fold job's results are saved, and a rerun of the same
study skips the jobs already done.

The saved results live in a progress folder beside the run folder,
``<out>.progress/<fingerprint>/``, one small file per job (its N and fold), written
atomically (:func:`hybridml.atomic_write`): a run killed at any point leaves only complete
files. The fingerprint (:func:`fingerprint`) hashes everything a job's results depend on
(the data file, the cells, the protocol, the thresholds, the seed, the network settings,
the PyBaMM library and the plug-in's version), so a rerun with other data or settings
never reads another study's results. The progress folder is removed once the run folder
is complete.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._data import CellData
from ._protocol import FoldJob

__all__ = ["JobStore", "fingerprint", "progress_dir"]

#: a saved job file starts with this, so that a foreign or older file is not unpickled
_MAGIC = b"hybridml-battery-job 1\n"


def fingerprint(cd: CellData, settings: Mapping[str, Any], library_curves: np.ndarray) -> str:
    """A hex digest of the data ``cd`` (every cell's cycles and capacities), the
    JSON-serialisable ``settings`` and the PyBaMM library's trajectories."""
    from . import __version__

    h = hashlib.sha256()
    h.update(f"hybridml-battery {__version__}\n".encode())
    for cid, c in cd.cells.items():
        h.update(cid.encode() + b"\0")
        h.update(np.ascontiguousarray(c.cycle, dtype=float).tobytes())
        h.update(np.ascontiguousarray(c.capacity, dtype=float).tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(library_curves, dtype=float).tobytes())
    return h.hexdigest()


def progress_dir(out: Path, digest: str) -> Path:
    """The progress folder of the run writing to ``out`` with fingerprint ``digest``."""
    return out.parent / f"{out.name}.progress" / digest[:20]


def _key(job: FoldJob) -> str:
    return f"n{job.known_cycles}-fold{job.fold}"


class JobStore:
    """The saved results of a run's fold jobs, one file per job in ``path``.

    Args:
        path: the progress folder (created on the first save).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def file(self, job: FoldJob) -> Path:
        """The file of ``job``'s results."""
        return self.path / f"{_key(job)}.pkl"

    def load(self, job: FoldJob) -> Any | None:
        """``job``'s saved results, or None when not saved (or unreadable: recomputed)."""
        try:
            raw = self.file(job).read_bytes()
        except OSError:
            return None
        if not raw.startswith(_MAGIC):
            return None
        try:
            return pickle.loads(raw[len(_MAGIC) :])
        except Exception:  # a damaged file: the job is run again
            return None

    def save(self, job: FoldJob, result: Any) -> None:
        """Save ``job``'s results atomically."""
        from hybridml import atomic_write

        data = _MAGIC + pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write(self.file(job), lambda f: f.write(data), binary=True)

    def split(self, jobs: Sequence[FoldJob]) -> tuple[dict[int, Any], list[int]]:
        """The saved results by job index, and the indices of the jobs still to run."""
        done: dict[int, Any] = {}
        todo: list[int] = []
        for i, job in enumerate(jobs):
            r = self.load(job)
            if r is None:
                todo.append(i)
            else:
                done[i] = r
        return done, todo

    def discard_others(self) -> list[Path]:
        """Remove the saved jobs of other studies written to the same ``out`` (another
        fingerprint: other data or settings; never resumed). Returns what was removed."""
        gone = []
        if self.path.parent.is_dir():
            for other in sorted(self.path.parent.iterdir()):
                if other.is_dir() and other.name != self.path.name:
                    shutil.rmtree(other, ignore_errors=True)
                    gone.append(other)
        return gone

    def remove(self) -> None:
        """Remove the progress folder (and its parent ``<out>.progress`` when empty)."""
        shutil.rmtree(self.path, ignore_errors=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass  # other runs' progress, or already gone
