"""The schema of a study configuration: every table and key ``hybridml run`` reads.

One table, :data:`SECTIONS`, is read by :func:`hybridml.load_config` (types, choices,
ranges, defaults, unknown keys) and rendered by :func:`config_reference` into the reference
``docs/config.md``, so the documentation and the reader cannot drift (a test compares the
two). Regenerate the reference with::

    python -m hybridml.study._schema > docs/config.md

The defaults written here are those of the Python API (a test compares them with the
signatures of :class:`~hybridml.HybridRegressor`, :class:`~hybridml.DeepEnsemble`, the
phases and :class:`~hybridml.EarlyStopping`). This module imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SECTIONS",
    "Key",
    "Section",
    "check_value",
    "config_reference",
    "config_schema",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a key that must be given."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


#: type name (as documented) -> test of a TOML value
TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "number": _is_num,
    "boolean": lambda v: isinstance(v, bool),
    "list of strings": lambda v: isinstance(v, list) and all(isinstance(e, str) for e in v),
    "list of integers": lambda v: isinstance(v, list) and all(_is_int(e) for e in v),
    "table": lambda v: isinstance(v, dict),
    "array of tables": lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
    "number or false": lambda v: v is False or _is_num(v),
    "integer or list of strings": lambda v: (
        _is_int(v) or (isinstance(v, list) and all(isinstance(e, str) for e in v))
    ),
    "list of (integer or list of strings)": lambda v: (
        isinstance(v, list)
        and all(
            _is_int(e) or (isinstance(e, list) and all(isinstance(s, str) for s in e)) for e in v
        )
    ),
}


@dataclass(frozen=True)
class Key:
    """One key of a table: its type (a name in :data:`TYPES`), default, allowed values."""

    name: str
    type: str
    doc: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def range_text(self) -> str:
        """The allowed range as text, e.g. ``">= 0"`` or ``"in (0, 1)"``."""
        if self.low is not None and self.high is not None:
            a, b = "(" if self.open_low else "[", ")" if self.open_high else "]"
            return f"in {a}{_num(self.low)}, {_num(self.high)}{b}"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.open_high else '<='} {_num(self.high)}"
        return ""


@dataclass(frozen=True)
class Section:
    """A ``[table]`` (or, with ``array``, an ``[[array of tables]]``) of the config.

    With ``variants``, each entry has a ``type`` key that picks the further keys it takes.
    """

    name: str
    doc: str
    keys: tuple[Key, ...] = ()
    array: bool = False
    variants: Mapping[str, tuple[Key, ...]] = field(default_factory=dict)
    example: str = ""

    def keys_for(self, variant: str | None = None) -> tuple[Key, ...]:
        """The keys an entry takes (with ``variants``: the common ones and the variant's)."""
        return self.keys + tuple(self.variants.get(variant or "", ()))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def check_value(key: Key, value: Any) -> str | None:
    """Why ``value`` is not allowed for ``key`` (None: allowed). Types, choices and range."""
    if not TYPES[key.type](value):
        return f"expected {_article(key.type)}, got {type(value).__name__} {value!r}."
    if key.choices and value not in key.choices:
        return f"{value!r} is not one of {', '.join(map(repr, key.choices))}."
    if _is_num(value) and (key.low is not None or key.high is not None):
        v = float(value)
        bad = not math.isfinite(v)
        if key.low is not None:
            bad = bad or (v <= key.low if key.open_low else v < key.low)
        if key.high is not None:
            bad = bad or (v >= key.high if key.open_high else v > key.high)
        if bad:
            return f"must be {key.range_text()}, got {value!r}."
    return None


def _article(type_name: str) -> str:
    return {"integer": "an integer", "array of tables": "an array of tables"}.get(
        type_name,
        type_name if type_name.startswith(("list", "number", "boolean")) else f"a {type_name}",
    )


_PHASE_COMMON = (
    Key("type", "string", "the optimiser", choices=("adam", "lbfgs", "bfgs")),
    Key("steps", "integer", "the most steps (iterations) of the phase", low=0),
)
_DTYPE = Key(
    "dtype",
    "string",
    'the dtype the phase runs in ("model": keep the model\'s)',
    "float64",
    choices=("float64", "float32", "model"),
)
_QN = (
    Key("lr", "number", "initial step length of each line search", 1.0, low=0, open_low=True),
    _DTYPE,
    Key("tolerance_grad", "number", "convergence tolerance on the largest gradient", 1e-12, low=0),
    Key("tolerance_change", "number", "convergence tolerance on a step's change", 1e-15, low=0),
)

SECTIONS: tuple[Section, ...] = (
    Section(
        "study",
        "What the study is called and what failed checks do.",
        (
            Key("name", "string", "the run folder's name (default: the file's stem)", None),
            Key("seed", "integer", "seeds the networks, splits and resamples", 0),
            Key(
                "device",
                "string",
                "where training runs: `auto` (a GPU when there is one), `cpu`, `cuda` or "
                "`cuda:N` (default: the CPU; `hybridml run --device` overrides it)",
                None,
            ),
            Key(
                "check_policy",
                "string",
                "what a failed consistency check does",
                "warn",
                choices=("raise", "warn", "record"),
            ),
        ),
    ),
    Section(
        "data",
        "The measurements (CSV or NumPy `.npz`, paths relative to the config file).",
        (
            Key("path", "string", "the training data"),
            Key("inputs", "list of strings", "input column names"),
            Key("outputs", "list of strings", "output names; unmeasured ones learn physics"),
            Key("group", "string", "the group column (a cell, an experiment)", None),
            Key("coordinate", "string", "the coordinate column (time, cycle)", None),
            Key("test_path", "string", "held-out data, reported as test errors", None),
        ),
    ),
    Section(
        "simulator",
        "An installed adapter (`hybridml simulators` lists them); its settings go in "
        '`[simulator.options]` (values) and `[simulator.callables]` (`"module:attribute"`).',
        (
            Key("name", "string", "the adapter's registry name"),
            Key("options", "table", "keyword arguments of the adapter", {}),
            Key("callables", "table", 'arguments that are Python objects, "module:attr"', {}),
        ),
    ),
    Section(
        "model",
        "The network.",
        (
            Key("hidden", "list of integers", "hidden layer widths", [32, 32, 32], low=1),
            Key(
                "activation",
                "string",
                "activation function",
                "tanh",
                choices=("tanh", "silu", "gelu", "relu", "softplus"),
            ),
        ),
    ),
    Section(
        "training",
        "The default phases (Adam, then a quasi-Newton method in float64) and the loss "
        "weights. `[[phases]]` replaces `adam_steps`, `lr`, `quasi_newton` and "
        "`quasi_newton_steps`.",
        (
            Key("adam_steps", "integer", "Adam steps", 2000, low=0),
            Key("lr", "number", "Adam learning rate", 1e-3, low=0, open_low=True),
            Key(
                "quasi_newton",
                "string",
                "the method after Adam",
                "lbfgs",
                choices=("lbfgs", "bfgs"),
            ),
            Key("quasi_newton_steps", "integer", "its iterations (0: none)", 200, low=0),
            Key("lbfgs_steps", "integer", "older name of `quasi_newton_steps`", None, low=0),
            Key(
                "balancer",
                "string",
                "loss balancing",
                "fixed",
                choices=("fixed", "lr-annealing", "relobralo"),
            ),
            Key("weights", "table", "fixed loss weights by term name (`data`, ...)", {}),
        ),
    ),
    Section(
        "phases",
        "The optimiser phases in order (instead of the `[training]` shortcuts).",
        _PHASE_COMMON,
        array=True,
        variants={
            "adam": (
                Key("lr", "number", "learning rate", 1e-3, low=0, open_low=True),
                Key("resample_every", "integer", "redraw collocation points every n", None, low=1),
                Key(
                    "lr_decay",
                    "number",
                    "final lr as a fraction of lr",
                    None,
                    low=0,
                    high=1,
                    open_low=True,
                ),
                Key(
                    "dtype",
                    "string",
                    "the dtype the phase runs in",
                    "model",
                    choices=("float64", "float32", "model"),
                ),
            ),
            "lbfgs": (
                *_QN,
                Key("history_size", "integer", "correction pairs kept", 50, low=1),
                Key(
                    "line_search",
                    "string",
                    "line search",
                    "strong_wolfe",
                    choices=("strong_wolfe", "none"),
                ),
            ),
            "bfgs": (
                *_QN,
                Key("scaling", "string", "self-scaling", "al-baali", choices=("al-baali", "none")),
                Key("max_params", "integer", "most trainable parameters allowed", 10_000, low=1),
            ),
        },
        example='[[phases]]\ntype = "adam"\nsteps = 3000\nlr = 2e-3\n\n'
        '[[phases]]\ntype = "bfgs"\nsteps = 500',
    ),
    Section(
        "transforms",
        "Hard output constraints, one entry per constrained output (the others are left "
        "as they are; with any transform the outputs are not rescaled to the data).",
        (
            Key("output", "string", "the output it constrains"),
            Key("type", "string", "the constraint", choices=("bounded", "positive")),
        ),
        array=True,
        variants={
            "bounded": (
                Key("lower", "number", "lower bound (give lower, upper or both)", None),
                Key("upper", "number", "upper bound", None),
            ),
            "positive": (Key("minimum", "number", "the floor", 0.0),),
        },
        example='[[transforms]]\noutput = "x [m]"\ntype = "bounded"\nlower = -1.05\nupper = 1.05',
    ),
    Section(
        "early_stopping",
        "Stop when the validation loss stops improving and keep the best weights. The "
        "validation rows come from `path`, else `fraction` of the training rows (of the "
        "groups) is held out. Not with `[ensemble]`, `[cross_validation]` or `[finetune]`.",
        (
            Key(
                "patience", "integer", "evaluations without improvement before stopping", 20, low=1
            ),
            Key("min_delta", "number", "smallest decrease that counts", 0.0, low=0),
            Key("every", "integer", "evaluate every this many steps", 10, low=1),
            Key(
                "fraction",
                "number",
                "share of the rows held out",
                0.2,
                low=0,
                high=1,
                open_low=True,
                open_high=True,
            ),
            Key("path", "string", "validation data file (instead of `fraction`)", None),
        ),
    ),
    Section(
        "synthetic",
        "Simulated rows from the `[simulator]` adapter (it must produce data) or a file, "
        "marked as not measured. They are mixed into the training data with `weight` (an "
        "output that some rows lack is then left out of the data loss), or, with "
        "`[finetune]`, used for pre-training. Not with `[ensemble]` or `[cross_validation]`.",
        (
            Key(
                "params",
                "array of tables",
                "one simulation per table of parameters (default: one with the adapter's defaults)",
                [],
            ),
            Key("path", "string", "a file of simulated rows (instead of the simulator)", None),
            Key("every", "integer", "keep every n-th simulated row", 1, low=1),
            Key(
                "weight",
                "number",
                "data-loss weight of a simulated row (a measured row: 1)",
                1.0,
                low=0,
            ),
        ),
    ),
    Section(
        "finetune",
        "Pre-train on the `[synthetic]` rows with the training phases, then fine-tune on "
        "the measurements with layers frozen, unfreezing them stage by stage.",
        (
            Key(
                "freeze",
                "integer or list of strings",
                'layers frozen first: the first n from the input, or names such as "net.layers.0"',
                0,
            ),
            Key(
                "unfreeze",
                "list of (integer or list of strings)",
                "one entry per further stage: the last n still-frozen layers, or names",
                [],
            ),
            Key("adam_steps", "integer", "Adam steps of each fine-tuning stage", 500, low=0),
            Key("lr", "number", "their learning rate", 1e-4, low=0, open_low=True),
            Key("quasi_newton_steps", "integer", "quasi-Newton iterations per stage", 0, low=0),
        ),
    ),
    Section(
        "ensemble",
        "Fit several members and give calibrated prediction intervals (`predictions.csv` "
        'gets `lower`/`upper`/`std` columns, `metrics.json` the calibration). "deep": '
        'HybridRegressor members (physics and checks); "batched": small MLPs trained in '
        "one pass on the data only (Adam phases).",
        (
            Key("kind", "string", "the ensemble", "deep", choices=("deep", "batched")),
            Key("members", "integer", "number of members", 5, low=1),
            Key("bootstrap", "boolean", "fit each member on a bootstrap resample", True),
            Key(
                "calibration",
                "number or false",
                "share of rows (groups) held out to calibrate; false: uncalibrated mean ± 2 std",
                0.2,
                low=0,
                high=1,
                open_low=True,
                open_high=True,
            ),
            Key(
                "coverage",
                "number",
                "the intervals' target coverage",
                0.9,
                low=0,
                high=1,
                open_low=True,
                open_high=True,
            ),
            Key("weight_decay", "number", "batched only: L2 penalty on the weights", 0.0, low=0),
        ),
    ),
    Section(
        "cross_validation",
        "Cross-validate the configured estimator (the ensemble, if any) over groups: "
        "`cv.json` holds every fold, `metrics.json` the summary. Without a groups column "
        "every row is its own group.",
        (
            Key(
                "splitter",
                "string",
                "how to split",
                "group-kfold",
                choices=("group-kfold", "leave-one-group-out"),
            ),
            Key("n_splits", "integer", "folds of group-kfold", 5, low=2),
            Key("groups", "string", "the groups column (default: `data.group`)", None),
            Key("raise_on_error", "boolean", "a failed fold stops the run", True),
        ),
    ),
    Section(
        "predict",
        "Where `predictions.csv` predicts: `[start, stop, n]` per input (other inputs: "
        "their training values).",
        (Key("grid", "table", "input name -> [start, stop, n]", {}),),
    ),
    Section(
        "checks",
        "Extra consistency checks run on every prediction; the other keys are the "
        "check's settings (`column`, `lower`, `upper`, ...).",
        (Key("type", "string", "the check", choices=("bounds", "monotone")),),
        array=True,
        example='[[checks]]\ntype = "bounds"\ncolumn = "v [m/s]"\nlower = -2.05\nupper = 2.05',
    ),
)


def section(name: str) -> Section:
    """The section named ``name``."""
    return next(s for s in SECTIONS if s.name == name)


def config_schema() -> dict[str, Section]:
    """The tables a study config may have, by name: each :class:`Section` lists its keys
    (name, type, default, allowed values, meaning). The config reader validates against
    this schema, and :func:`config_reference` renders it, so the two cannot drift."""
    return {s.name: s for s in SECTIONS}


def config_reference() -> str:
    """The configuration reference as Markdown (what ``docs/config.md`` holds; printed by
    ``hybridml config-reference``)."""
    from ._schema_docs import render_markdown

    return render_markdown()


if __name__ == "__main__":  # pragma: no cover - python -m hybridml.study._schema
    import sys

    sys.stdout.write(config_reference())
