"""Study configurations: typed, validated, errors that name the key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridml import ConfigError, load_config

GOOD = """\
[study]
name = "demo"
seed = 3

[data]
path = "d.csv"
inputs = ["t [s]"]
outputs = ["x [m]"]

[training]
adam_steps = 10
lr = 0.01
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "d.csv").write_text("t [s],x [m]\n0,1\n1,2\n", encoding="utf-8")
    p = tmp_path / "study.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config_is_typed(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.name == "demo" and cfg.seed == 3
    assert cfg.training.adam_steps == 10 and cfg.training.lr == 0.01
    assert cfg.training.lbfgs_steps == 200  # default
    assert cfg.data.path == tmp_path / "d.csv"


@pytest.mark.parametrize(
    ("old", "new", "key", "line"),
    [
        ("adam_steps = 10", 'adam_steps = "ten"', "training.adam_steps", 11),
        ("lr = 0.01", "lr = -1.0", "training.lr", 12),
        ("seed = 3", "seed = 3\nsede = 4", "study.sede", 4),
        ('inputs = ["t [s]"]', "inputs = [1]", "data.inputs", 7),
        ('path = "d.csv"', 'path = "missing.csv"', "data.path", 6),
    ],
)
def test_errors_name_key_and_line(tmp_path: Path, old: str, new: str, key: str, line: int) -> None:
    p = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert f"`{key}`" in msg and f"line {line}" in msg and str(p) in msg


def test_missing_required_table(tmp_path: Path) -> None:
    p = write(tmp_path, '[study]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"`data`.*required"):
        load_config(p)


def test_invalid_toml_says_so(tmp_path: Path) -> None:
    p = write(tmp_path, "[study\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
