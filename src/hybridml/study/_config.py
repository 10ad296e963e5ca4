"""Typed, validated study configuration read from TOML (``hybridml run CONFIG.toml``).

Errors name the file, the key and its line, and say what is expected.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "StudyConfig", "config_error", "load_config", "parse_checks"]


@dataclass(frozen=True)
class DataConfig:
    path: Path
    inputs: list[str]
    outputs: list[str]
    group: str | None = None
    coordinate: str | None = None
    test_path: Path | None = None


@dataclass(frozen=True)
class SimulatorConfig:
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    callables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    hidden: list[int] = field(default_factory=lambda: [32, 32, 32])
    activation: str = "tanh"


@dataclass(frozen=True)
class TrainingConfig:
    # no defaults here: load_config fills them from hybridml.training.default_phases's
    # (the trainer's and the estimator's), imported there so that this module needs no torch
    adam_steps: int
    lr: float
    lbfgs_steps: int
    balancer: str = "fixed"
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PredictConfig:
    grid: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: what to fit, with which physics, how to train and check."""

    path: Path
    text: str
    name: str
    seed: int
    data: DataConfig
    simulator: SimulatorConfig | None
    model: ModelConfig
    training: TrainingConfig
    predict: PredictConfig
    checks: list[dict[str, Any]]
    check_policy: str


ACTIVATIONS = ("tanh", "silu", "gelu", "relu", "softplus")
#: at most this many points in the axes [predict] grid sets (predictions.csv gets a row per
#: point of the whole grid: the product of every axis)
MAX_GRID_POINTS = 10_000_000
BALANCERS = ("fixed", "lr-annealing", "relobralo")
POLICIES = ("raise", "warn", "record")


class _Reader:
    """Typed access to one TOML table; errors point at the key's line in the file."""

    def __init__(self, path: Path, text: str, table: dict[str, Any], section: str) -> None:
        self.path, self.text, self.table, self.section = path, text, table, section
        self.used: set[str] = set()

    def line_of(self, key: str) -> int | None:
        lines = self.text.splitlines()
        in_section = self.section == ""
        header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*$")
        for i, line in enumerate(lines, start=1):
            m = header.match(line)
            if m:
                in_section = m.group(1) == self.section
                continue
            if in_section and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
                return i
        if self.section:
            for i, line in enumerate(lines, start=1):
                m = header.match(line)
                if m and m.group(1) == self.section:
                    return i
        return None

    def error(self, key: str, msg: str) -> ConfigError:
        line = self.line_of(key)
        where = f"{self.path}" + (f", line {line}" if line else "")
        full = f"{self.section}.{key}" if self.section else key
        return ConfigError(f"{where}: key `{full}`: {msg}")

    def get(
        self, key: str, typ: type | tuple[type, ...], default: Any = ..., *, what: str = ""
    ) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self.error(key, f"is required ({what or _typename(typ)}).")
            return default
        value = self.table[key]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (isinstance(value, bool) and typ in (int, float)):
            raise self.error(
                key, f"expected {what or _typename(typ)}, got {type(value).__name__} {value!r}."
            )
        return value

    def str_list(self, key: str, default: Any = ...) -> list[str]:
        value = self.get(key, list, default, what="a list of strings")
        if not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected a list of strings, got {value!r}.")
        return list(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}.")
        return str(value)

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(
                unknown[0],
                f"unknown key; valid keys here: {', '.join(sorted(self.used))}.",
            )


def _typename(typ: type | tuple[type, ...]) -> str:
    if isinstance(typ, tuple):
        return " or ".join(t.__name__ for t in typ)
    return {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "list": "a list",
        "dict": "a table",
        "bool": "true or false",
    }.get(typ.__name__, typ.__name__)


def config_error(path: Path, text: str, section: str, key: str, msg: str) -> ConfigError:
    """A :class:`ConfigError` for ``key`` of the table ``section`` (dotted, e.g.
    ``"simulator.options"``), naming the file, the line and the dotted key.

    The table may be written as a ``[section]`` header or inline in its parent
    (``options = {key = ...}``); the line is that of the key, else of the table.
    """
    parent, _, sub = section.rpartition(".")

    def header(name: str) -> re.Match[str] | None:
        return re.search(rf"^[ \t]*\[[ \t]*{re.escape(name)}[ \t]*\][ \t]*$", text, re.MULTILINE)

    if (table := header(f"{section}.{key}")) is not None:  # the key is itself a [table]
        line: int | None = text.count("\n", 0, table.start()) + 1
    elif not sub or header(section):
        line = _Reader(path, text, {}, section).line_of(key)
    else:  # written inline in the parent table: the line of `sub = {...}`
        line = _Reader(path, text, {}, parent).line_of(sub)
    where = f"{path}" + (f", line {line}" if line else "")
    return ConfigError(f"{where}: key `{section}.{key}`: {msg}")


def _table(root: _Reader, key: str, required: bool = False) -> dict[str, Any] | None:
    value = root.get(key, dict, ... if required else None, what=f"a [{key}] table")
    return value


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study configuration file (TOML)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such configuration file.")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    base = path.parent
    root = _Reader(path, text, raw, "")

    study_t = _table(root, "study") or {}
    study = _Reader(path, text, study_t, "study")
    name = study.get("name", str, path.stem)
    seed = study.get("seed", int, 0)
    policy = study.choice("check_policy", POLICIES, "warn")
    study.finish()

    data_t = _table(root, "data", required=True) or {}
    d = _Reader(path, text, data_t, "data")
    data_path = base / d.get("path", str, what="the path of a CSV or NumPy file")
    if not data_path.exists():
        raise d.error("path", f"file {data_path} does not exist.")
    test = d.get("test_path", str, None)
    test_path = base / test if test is not None else None
    if test_path is not None and not test_path.exists():
        raise d.error("test_path", f"file {test_path} does not exist.")
    data = DataConfig(
        path=data_path,
        inputs=d.str_list("inputs"),
        outputs=d.str_list("outputs"),
        group=d.get("group", str, None),
        coordinate=d.get("coordinate", str, None),
        test_path=test_path,
    )
    d.finish()

    sim_t = _table(root, "simulator")
    simulator = None
    if sim_t is not None:
        s = _Reader(path, text, sim_t, "simulator")
        simulator = SimulatorConfig(
            name=s.get("name", str),
            options=dict(s.get("options", dict, {})),
            callables=dict(s.get("callables", dict, {})),
        )
        for k, v in simulator.callables.items():
            if not isinstance(v, str) or ":" not in v:
                raise config_error(
                    path, text, "simulator.callables", k, f'{v!r}: expected "module:attribute".'
                )
        s.finish()

    m = _Reader(path, text, _table(root, "model") or {}, "model")
    hidden = m.get("hidden", list, [32, 32, 32], what="a list of layer widths")
    if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise m.error("hidden", f"expected a list of positive integers, got {hidden!r}.")
    model = ModelConfig(hidden=list(hidden), activation=m.choice("activation", ACTIVATIONS, "tanh"))
    m.finish()

    from ..training._phases import DEFAULT_ADAM_STEPS, DEFAULT_LR, DEFAULT_QUASI_NEWTON_STEPS

    t = _Reader(path, text, _table(root, "training") or {}, "training")
    training = TrainingConfig(
        adam_steps=t.get("adam_steps", int, DEFAULT_ADAM_STEPS),
        lr=t.get("lr", float, DEFAULT_LR),
        lbfgs_steps=t.get("lbfgs_steps", int, DEFAULT_QUASI_NEWTON_STEPS),
        balancer=t.choice("balancer", BALANCERS, "fixed"),
        weights={k: float(v) for k, v in t.get("weights", dict, {}).items()},
    )
    if training.adam_steps < 0 or training.lbfgs_steps < 0:
        raise t.error("adam_steps", "step counts must be >= 0.")
    if training.lr <= 0:
        raise t.error("lr", f"the learning rate must be > 0, got {training.lr}.")
    t.finish()

    p = _Reader(path, text, _table(root, "predict") or {}, "predict")
    grid_raw = p.get("grid", dict, {}, what="a table name -> [start, stop, n]")
    grid: dict[str, list[float]] = {}
    for k, v in grid_raw.items():
        if not (isinstance(v, list) and len(v) == 3 and all(isinstance(e, int | float) for e in v)):
            raise p.error("grid", f"{k} = {v!r}: expected [start, stop, n].")
        if k not in data.inputs:
            raise p.error("grid", f"{k!r} is not one of the inputs {data.inputs}.")
        _check_axis(path, text, k, v)
        grid[k] = [float(e) for e in v]
    total = math.prod(int(n) for _, _, n in grid.values())
    if total > MAX_GRID_POINTS:
        raise p.error(
            "grid",
            f"the grid has {total:,} points (the product of every axis's n), more than "
            f"{MAX_GRID_POINTS:,}; predictions.csv gets one row per point: use fewer points.",
        )
    p.finish()

    checks_raw = root.get("checks", list, [], what="an array of [[checks]] tables")
    for i, c in enumerate(checks_raw):
        if not isinstance(c, dict) or "type" not in c:
            raise ConfigError(f"{path}: [[checks]] entry {i + 1} needs a `type` key.")
    root.finish()
    return StudyConfig(
        path=path,
        text=text,
        name=name,
        seed=seed,
        data=data,
        simulator=simulator,
        model=model,
        training=training,
        predict=PredictConfig(grid=grid),
        checks=list(checks_raw),
        check_policy=policy,
    )


def _check_axis(path: Path, text: str, name: str, axis: list[Any]) -> None:
    """One ``[predict] grid`` axis ``[start, stop, n]``: finite ends, n an integer >= 1."""
    start, stop, n = axis
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise config_error(
            path,
            text,
            "predict.grid",
            name,
            f"{axis!r}: the number of points n must be an integer >= 1, got {n!r}; "
            f"e.g. [{start}, {stop}, 50].",
        )
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise config_error(
            path,
            text,
            "predict.grid",
            name,
            f"{axis!r}: start and stop must be finite numbers, e.g. [0.0, 10.0, {n}].",
        )


CHECK_TYPES = ("bounds", "monotone")


def parse_checks(entries: list[dict[str, Any]], *, source: str = "<config>") -> list[Any]:
    """Build check objects from ``[[checks]]`` tables (``type = "bounds" | "monotone"``)."""
    from ..checks import Bounds, Monotone

    checks: list[Any] = []
    for i, entry in enumerate(entries, start=1):
        opts = dict(entry)
        kind = opts.pop("type", None)
        try:
            if kind == "bounds":
                checks.append(Bounds(**opts))
            elif kind == "monotone":
                checks.append(Monotone(**opts))
            else:
                raise ConfigError(
                    f"{source}: [[checks]] entry {i}: unknown type {kind!r}; "
                    f"valid: {', '.join(CHECK_TYPES)}."
                )
        except (TypeError, ValueError, KeyError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{source}: [[checks]] entry {i} ({kind}): {exc}") from None
    return checks
