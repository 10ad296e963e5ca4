"""Typed, validated study configuration read from TOML (``hybridml run CONFIG.toml``).

Errors name the file, the key and its line, and say what is expected.
"""

from __future__ import annotations

import copy
import math
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError, did_you_mean
from ._config_types import (
    CrossValidationConfig,
    DataConfig,
    EarlyStoppingConfig,
    EnsembleConfig,
    FinetuneConfig,
    ModelConfig,
    PhaseConfig,
    PredictConfig,
    SimulatorConfig,
    StudyConfig,
    SyntheticConfig,
    TrainingConfig,
    TransformConfig,
)
from ._schema import REQUIRED, SECTIONS, Section, check_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "StudyConfig", "config_error", "load_config", "parse_checks"]


#: at most this many points in the axes [predict] grid sets (predictions.csv gets a row per
#: point of the whole grid: the product of every axis)
MAX_GRID_POINTS = 10_000_000


class _Reader:
    """Typed access to one TOML table; errors point at the key's line in the file.

    ``index`` (0-based) picks the entry of an array of tables ``[[section]]``.
    """

    def __init__(
        self, path: Path, text: str, table: dict[str, Any], section: str, index: int | None = None
    ) -> None:
        self.path, self.text, self.table, self.section = path, text, table, section
        self.index = index
        self.used: set[str] = set()

    def _in(self, name: str, count: int) -> bool:
        return name == self.section and (self.index is None or count == self.index)

    def line_of(self, key: str | None) -> int | None:
        lines = self.text.splitlines()
        header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
        for want_key in (True, False):
            if not want_key and not self.section:
                break
            in_section, count = self.section == "", -1
            for i, line in enumerate(lines, start=1):
                m = header.match(line)
                if m:
                    count += m.group(1) == self.section
                    in_section = self._in(m.group(1), count)
                    if in_section and not want_key:
                        return i
                    continue
                if want_key and key is not None and in_section:
                    if re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
                        return i
            if want_key and key is not None:  # the key is itself a [table] or [[table]]
                full = ".".join(p for p in (self.section, key) if p)
                for i, line in enumerate(lines, start=1):
                    m = header.match(line)
                    if m and (m.group(1) == full or m.group(1).startswith(full + ".")):
                        return i
        return None

    def error(self, key: str | None, msg: str) -> ConfigError:
        line = self.line_of(key)
        where = f"{self.path}" + (f", line {line}" if line else "")
        full = ".".join(p for p in (self.section, key) if p)
        entry = f" (entry {self.index + 1})" if self.index is not None else ""
        return ConfigError(f"{where}: key `{full}`{entry}: {msg}")

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

    def schema(self, sec: Section, variant: str | None = None) -> dict[str, Any]:
        """Every key of ``sec`` (and of its ``variant``): checked, defaults filled in;
        an unknown key is an error naming the closest valid ones."""
        out: dict[str, Any] = {}
        for k in sec.keys_for(variant):
            self.used.add(k.name)
            if k.name not in self.table:
                if k.default is REQUIRED:
                    raise self.error(k.name, f"is required ({k.type}: {k.doc}).")
                out[k.name] = copy.deepcopy(k.default)
                continue
            value = self.table[k.name]
            why = check_value(k, value)
            if why is None and k.type == "list of integers":
                why = next((check_value(replace(k, type="integer"), e) for e in value), None)
            if why is not None:
                raise self.error(k.name, why)
            out[k.name] = float(value) if k.type == "number" else value
        self.finish()
        return out

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(
                unknown[0],
                f"unknown key.{did_you_mean(unknown[0], self.used)} Valid keys here: "
                f"{', '.join(sorted(self.used))}.",
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


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study configuration file (TOML).

    Every table and key is described in ``docs/config.md`` (generated from
    :mod:`hybridml.study._schema`, which this reader checks the file against).

    Raises:
        ConfigError: naming the file, the line and the key, for a missing file, invalid
            TOML, a missing or unknown key (with the closest valid names), a value of the
            wrong type or out of range, or settings that do not go together.
    """
    return read_config(path)


def read_config(path: str | Path, *, files: bool = True) -> StudyConfig:
    """:func:`load_config`; with ``files=False`` the data files it names need not exist
    (a run folder's copy of its config, read to rebuild the model's objects)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such configuration file.")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    root = _Reader(path, text, raw, "")
    tables: dict[str, _Reader] = {}
    values: dict[str, Any] = {}
    for sec in SECTIONS:
        if sec.array:
            entries = root.get(sec.name, list, [], what=f"an array of [[{sec.name}]] tables")
            values[sec.name] = _entries(path, text, sec, entries)
            continue
        required = sec.name == "data"
        table = root.get(sec.name, dict, ... if required else None, what=f"a [{sec.name}] table")
        if table is None and sec.name not in ("study", "model", "training", "predict"):
            continue
        tables[sec.name] = _Reader(path, text, table or {}, sec.name)
        values[sec.name] = tables[sec.name].schema(sec)
    root.finish()
    return _build(path, text, tables, values, files)


def _entries(path: Path, text: str, sec: Section, entries: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{path}: [[{sec.name}]] entry {i + 1} needs a `type` key.")
        if sec.name == "checks":  # the other keys are the check's: parse_checks reads them
            out.append(dict(entry))
            continue
        r = _Reader(path, text, entry, sec.name, index=i)
        kind = entry["type"]
        if not isinstance(kind, str) or kind not in sec.variants:
            type_key = next(k for k in sec.keys if k.name == "type")
            raise r.error("type", check_value(type_key, kind) or "")
        out.append(r.schema(sec, kind))
    return out


def _build(
    path: Path, text: str, tables: dict[str, _Reader], v: dict[str, Any], files: bool = True
) -> StudyConfig:
    """The typed config from the checked tables ``v``, with the checks across keys."""
    base = path.parent
    d = tables["data"]

    def existing(reader: _Reader, key: str, name: str | None) -> Path | None:
        if name is None:
            return None
        file = base / name
        if files and not file.exists():
            raise reader.error(key, f"file {file} does not exist.")
        return file

    data = DataConfig(
        path=existing(d, "path", v["data"]["path"]) or base,
        inputs=v["data"]["inputs"],
        outputs=v["data"]["outputs"],
        group=v["data"]["group"],
        coordinate=v["data"]["coordinate"],
        test_path=existing(d, "test_path", v["data"]["test_path"]),
    )
    simulator = None
    if "simulator" in v:
        simulator = SimulatorConfig(**v["simulator"])
        for k, spec in simulator.callables.items():
            if not isinstance(spec, str) or ":" not in spec:
                raise config_error(
                    path, text, "simulator.callables", k, f'{spec!r}: expected "module:attribute".'
                )
    t = tables["training"]
    tv = v["training"]
    qn_steps = tv["quasi_newton_steps"]
    if tv["lbfgs_steps"] is not None:
        if "quasi_newton_steps" in t.table and tv["lbfgs_steps"] != qn_steps:
            raise t.error(
                "lbfgs_steps",
                f"{tv['lbfgs_steps']} disagrees with quasi_newton_steps = {qn_steps}; "
                "lbfgs_steps is its older name: give one of them.",
            )
        qn_steps = tv["lbfgs_steps"]
    for k, w in tv["weights"].items():
        if isinstance(w, bool) or not isinstance(w, int | float):
            raise config_error(path, text, "training.weights", k, f"expected a number, got {w!r}.")
    training = TrainingConfig(
        adam_steps=tv["adam_steps"],
        lr=tv["lr"],
        lbfgs_steps=qn_steps,
        balancer=tv["balancer"],
        weights={k: float(w) for k, w in tv["weights"].items()},
        quasi_newton=tv["quasi_newton"],
    )
    phases = [PhaseConfig(e.pop("type"), e.pop("steps"), e) for e in v["phases"]]
    if phases:
        shortcuts = ("adam_steps", "lr", "quasi_newton", "quasi_newton_steps", "lbfgs_steps")
        given = [k for k in shortcuts if k in t.table]
        if given:
            raise t.error(
                given[0], "[[phases]] gives the phases: leave the [training] shortcuts out."
            )
    transforms = _transforms(path, text, v["transforms"], data.outputs)
    optional: dict[str, Any] = {}
    for name, cls in (
        ("early_stopping", EarlyStoppingConfig),
        ("synthetic", SyntheticConfig),
        ("finetune", FinetuneConfig),
        ("ensemble", EnsembleConfig),
        ("cross_validation", CrossValidationConfig),
    ):
        if name in v:
            values = dict(v[name])
            if name == "early_stopping":
                values["path"] = existing(tables[name], "path", values["path"])
            elif name == "synthetic":
                values["path"] = existing(tables[name], "path", values["path"])
                _check_params(tables[name], values["params"])
            elif name == "ensemble":
                values["calibration"] = values["calibration"] or None
            optional[name] = cls(**values)
    _check_combinations(tables, optional, simulator, phases, transforms)
    p = tables["predict"]
    grid = _grid(path, text, p, v["predict"]["grid"], data.inputs)
    return StudyConfig(
        path=path,
        text=text,
        name=v["study"]["name"] or path.stem,
        seed=v["study"]["seed"],
        data=data,
        simulator=simulator,
        model=ModelConfig(**v["model"]),
        training=training,
        predict=PredictConfig(grid=grid),
        checks=v["checks"],
        check_policy=v["study"]["check_policy"],
        device=v["study"]["device"],
        phases=phases,
        transforms=transforms,
        **optional,
    )


def _check_params(r: _Reader, params: list[dict[str, Any]]) -> None:
    for i, entry in enumerate(params):
        for k, x in entry.items():
            if isinstance(x, bool) or not isinstance(x, int | float):
                raise r.error("params", f"entry {i + 1}: {k} = {x!r}: expected a number.")


def _transforms(
    path: Path, text: str, entries: list[dict[str, Any]], outputs: list[str]
) -> list[TransformConfig]:
    out: list[TransformConfig] = []
    for i, e in enumerate(entries):
        r = _Reader(path, text, {}, "transforms", index=i)
        if e["output"] not in outputs:
            raise r.error(
                "output",
                f"{e['output']!r} is not an output.{did_you_mean(e['output'], outputs)} "
                f"The outputs: {', '.join(outputs)}.",
            )
        if any(t.output == e["output"] for t in out):
            raise r.error("output", f"{e['output']!r} is constrained twice; give one entry.")
        if e["type"] == "bounded":
            lo, hi = e["lower"], e["upper"]
            if lo is None and hi is None:
                raise r.error("type", 'a "bounded" transform needs lower, upper or both.')
            if lo is not None and hi is not None and not lo < hi:
                raise r.error("upper", f"must be above lower = {lo}, got {hi}.")
        out.append(TransformConfig(**e))
    return out


def _check_combinations(
    tables: dict[str, _Reader],
    opt: dict[str, Any],
    simulator: SimulatorConfig | None,
    phases: list[PhaseConfig],
    transforms: list[TransformConfig],
) -> None:
    """Refuse tables that do not go together, naming the table and why."""

    def refuse(name: str, msg: str) -> ConfigError:
        return tables[name].error(None, msg)

    if "early_stopping" in opt:
        for other in ("ensemble", "cross_validation", "finetune"):
            if other in opt:
                raise refuse(
                    "early_stopping",
                    f"cannot be combined with [{other}] (it needs validation data of one fit); "
                    "leave one of them out.",
                )
    if "finetune" in opt:
        if "synthetic" not in opt:
            raise refuse("finetune", "needs a [synthetic] table: the data to pre-train on.")
        for other in ("ensemble", "cross_validation"):
            if other in opt:
                raise refuse("finetune", f"cannot be combined with [{other}]; leave one out.")
    for other in ("ensemble", "cross_validation"):
        if "synthetic" in opt and other in opt:
            raise refuse(
                "synthetic",
                f"cannot be combined with [{other}]: simulated rows would be held out for "
                "calibration or testing as if measured; leave one of them out.",
            )
    if "synthetic" in opt and opt["synthetic"].path is None and simulator is None:
        raise refuse("synthetic", "needs a [simulator] that produces data, or a path.")
    ens = opt.get("ensemble")
    if ens is not None and ens.kind == "batched":
        why = 'a "batched" ensemble trains plain MLPs on the data only'
        for other, present in (
            ("simulator", simulator is not None),
            ("transforms", bool(transforms)),
            ("synthetic", "synthetic" in opt),
        ):
            if present:
                raise refuse("ensemble", f'{why}: [{other}] would be ignored; use kind = "deep".')
        bad = [i for i, p in enumerate(phases) if p.type != "adam"]
        if bad:
            raise refuse(
                "ensemble",
                f'{why} with Adam phases: [[phases]] entry {bad[0] + 1} is "{phases[bad[0]].type}" '
                "(its line search would couple the members).",
            )
    elif ens is not None and ens.weight_decay:
        raise tables["ensemble"].error("weight_decay", 'is for kind = "batched" only.')


def _grid(
    path: Path, text: str, p: _Reader, grid_raw: dict[str, Any], inputs: list[str]
) -> dict[str, list[float]]:
    grid: dict[str, list[float]] = {}
    for k, g in grid_raw.items():
        if not (isinstance(g, list) and len(g) == 3 and all(isinstance(e, int | float) for e in g)):
            raise p.error("grid", f"{k} = {g!r}: expected [start, stop, n].")
        if k not in inputs:
            raise p.error("grid", f"{k!r} is not one of the inputs {inputs}.")
        _check_axis(path, text, k, g)
        grid[k] = [float(e) for e in g]
    total = math.prod(int(n) for _, _, n in grid.values())
    if total > MAX_GRID_POINTS:
        raise p.error(
            "grid",
            f"the grid has {total:,} points (the product of every axis's n), more than "
            f"{MAX_GRID_POINTS:,}; predictions.csv gets one row per point: use fewer points.",
        )
    return grid


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
