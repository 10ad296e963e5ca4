"""Studies: typed TOML configs, reproducible run folders and manifests, shared by every
command."""

from ._build import build_estimator
from ._config import StudyConfig, load_config
from ._example import write_example
from ._folder import RunFolder, atomic_write
from ._run import run_manifest, run_study, sha256_file
from ._schema import config_reference, config_schema
from ._tracking import TrackingError, log_to_mlflow

__all__ = [
    "RunFolder",
    "StudyConfig",
    "TrackingError",
    "atomic_write",
    "build_estimator",
    "config_reference",
    "config_schema",
    "load_config",
    "log_to_mlflow",
    "run_manifest",
    "run_study",
    "sha256_file",
    "write_example",
]
