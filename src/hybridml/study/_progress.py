"""The saved training progress of ``hybridml run``: a folder beside the run folder.

A run of ``hybridml run CONFIG --out OUT`` keeps its trainer checkpoints in
``OUT.progress/`` (``checkpoint.pt``; a :class:`~hybridml.DeepEnsemble`'s members and
the cross-validation folds get their own files beside it). A rerun of the same command
after a kill resumes from them; the folder is removed once the run folder has been
moved into place. The folder is keyed (``KEY``: a digest of the config's text, the
input files' bytes, the device and the versions of hybridml and torch): a folder of
another config or other data is discarded, never resumed. A checkpoint that cannot be
read (a truncated or empty file) is reported by name and discarded; that fit starts over.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

__all__: list[str] = []

#: the file in a progress folder that names the config and data it belongs to
KEY_FILE = "KEY"
#: the trainer checkpoint of the run's (final) fit; other fits' files derive from it
CHECKPOINT = "checkpoint.pt"


def _log(message: str) -> None:
    print(f"hybridml run: {message}", file=sys.stderr, flush=True)


def progress_key(config_text: str, inputs: Iterable[Path], device: str | None) -> str:
    """A digest of what a run's training depends on: the config, the bytes of its input
    files, the device and the versions of hybridml and torch."""
    h = hashlib.sha256()
    h.update(config_text.encode())
    for path in inputs:
        h.update(f"\0{path.name}\0".encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    h.update(f"\0device={device}".encode())
    for dist in ("hybridml", "torch"):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
            version = "?"
        h.update(f"\0{dist}={version}".encode())
    return h.hexdigest()


class TrainingProgress:
    """The progress folder ``<out>.progress`` of the run into ``out``.

    Args:
        out: the run folder.
        key: :func:`progress_key` of this run.
        log: where the messages go (default: standard error, prefixed ``hybridml run:``).
    """

    def __init__(self, out: Path, key: str, log: Callable[[str], None] = _log) -> None:
        self.path = out.parent / f"{out.name}.progress"
        self.key = key
        self.log = log

    @property
    def checkpoint(self) -> Path:
        """The checkpoint path the estimator is given."""
        return self.path / CHECKPOINT

    def open(self, *, fresh: bool = False) -> None:
        """Make the folder ready: discard it when ``fresh`` or when it belongs to another
        config or data; discard unreadable checkpoints (by name) and temporary files of a
        killed write; report what will be resumed."""
        if self.path.exists() and not self.path.is_dir():
            self.path.unlink()
        if self.path.is_dir():
            if fresh:
                self.discard("--fresh")
            elif self._saved_key() != self.key:
                self.discard("it belongs to another config, other data or another version")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / KEY_FILE).write_text(self.key + "\n", encoding="utf-8")
        for tmp in self.path.glob(".*.tmp"):  # a write killed before its rename
            tmp.unlink(missing_ok=True)
        for ckpt in sorted(self.path.glob("*.pt")):
            self._check(ckpt)

    def _saved_key(self) -> str | None:
        try:
            return (self.path / KEY_FILE).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None

    def _check(self, path: Path) -> None:
        from ..exceptions import CheckpointMismatchError
        from ..training._checkpoint import load_checkpoint

        try:
            ckpt = load_checkpoint(path)
        except CheckpointMismatchError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            self.log(
                f"discarding the saved training progress {str(path)!r}: it cannot be read "
                f"({type(cause).__name__}: {cause}); that fit starts over."
            )
            path.unlink(missing_ok=True)
            return
        n_phases = len(ckpt.get("phases", ()))
        state = (
            "finished"
            if ckpt.get("finished")
            else f"phase {int(ckpt.get('phase_index', 0)) + 1} of {n_phases}"
        )
        self.log(
            f"resuming from the saved training progress {str(path)!r} "
            f"(step {int(ckpt.get('global_step', 0))}, {state})"
        )

    def discard(self, why: str) -> None:
        """Remove the folder, saying why."""
        if self.path.exists():
            self.log(f"discarding the saved training progress {str(self.path)!r}: {why}")
            shutil.rmtree(self.path, ignore_errors=True)

    def remove(self) -> None:
        """Remove the folder once its run has finished (nothing is left to resume)."""
        shutil.rmtree(self.path, ignore_errors=True)
