"""Studies: typed TOML configs, reproducible run folders and manifests, shared by every
command."""

from ._config import ConfigError, StudyConfig, load_config
from ._run import run_manifest, run_study, sha256_file

__all__ = ["ConfigError", "StudyConfig", "load_config", "run_manifest", "run_study", "sha256_file"]
