"""Studies: typed TOML configs, reproducible run folders and manifests, shared by every
command."""

from ._config import StudyConfig, load_config
from ._folder import RunFolder, atomic_write
from ._run import run_manifest, run_study, sha256_file

__all__ = [
    "RunFolder",
    "StudyConfig",
    "atomic_write",
    "load_config",
    "run_manifest",
    "run_study",
    "sha256_file",
]
