"""The bad-input catalogue of the estimator and of ``hybridml run``'s configuration.

One test per case (parametrised where the cases are alike). A refused case asserts that
the error is a :class:`hybridml.HybridMLError`, that the message names the parameter, key
or column, and that it says what to do; a case the library handles asserts the result.
Every refusal here happens before any training: a fit that was refused has no ``model_``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import hybridml as hm
from hybridml.adapters import ProvidesChecks, ProvidesConstraints, ProvidesData
from hybridml.exceptions import (
    ConfigError,
    DataError,
    HybridMLWarning,
    InvalidArgumentError,
    InvalidTypeError,
)
from hybridml.study import load_config, run_study

T = np.linspace(0.0, 2.0, 12)[:, None]
Y = np.exp(-T)
# tiny and short: these tests are about what is refused, not about fitting well
SMALL: dict[str, Any] = {"hidden": (4,), "adam_steps": 3, "lbfgs_steps": 0, "progress": False}


def _refused(exc: BaseException, *patterns: str) -> None:
    """The error is the library's, and its message matches every pattern."""
    assert isinstance(exc, hm.HybridMLError), type(exc).__mro__
    msg = str(exc)
    for pattern in patterns:
        assert re.search(pattern, msg), f"{pattern!r} not in: {msg}"


# ----------------------------------------------------------------------------- adapters


class _TwoStates(ProvidesConstraints):
    """An adapter whose residual needs two outputs, ``a`` and ``b`` (``da/dt = b``)."""

    name = "two-states"

    def loss_terms(self, **options: Any) -> dict[str, hm.LossTerm]:
        def residual(model: nn.Module, t: Tensor) -> Tensor:
            y = model(t)
            dadt = torch.autograd.grad(y[:, 0].sum(), t, create_graph=True)[0]
            return dadt[:, 0] - y[:, 1]

        return {"two_states": hm.ResidualLoss(residual, np.linspace(0.0, 2.0, 8)[:, None])}


class _DataOnly(ProvidesData):
    """An adapter that only simulates: it gives a fit no loss terms and no checks."""

    name = "data-only"

    def simulate(self, params: Any = None) -> hm.Dataset:
        return hm.Dataset({"t [s]": T[:, 0], "y [-]": Y[:, 0]})


class _Empty(ProvidesConstraints, ProvidesChecks):
    """An adapter that declares constraints and checks but gives none."""

    name = "empty"

    def loss_terms(self, **options: Any) -> dict[str, hm.LossTerm]:
        return {}

    def checks(self) -> list[hm.Check]:
        return []


def test_adapter_name_whose_class_needs_settings_is_refused_with_pass_an_instance() -> None:
    est = hm.HybridRegressor(adapters=["ode"], **SMALL)
    with pytest.raises(InvalidArgumentError) as info:
        est.fit(T, Y)
    _refused(info.value, r"adapters\[0\]", "'ode'", r"rhs, y0", r"pass an instance", "ODEAdapter")
    assert not hasattr(est, "model_")


def test_adapter_name_that_is_not_installed_lists_the_installed_ones() -> None:
    with pytest.raises(hm.UnknownSimulatorError) as info:
        hm.HybridRegressor(adapters=["oed"], **SMALL).fit(T, Y)
    _refused(info.value, "'oed'", "Did you mean 'ode'", "Installed:")


def test_adapter_class_is_refused_with_pass_an_instance() -> None:
    ode = hm.load_simulator("ode")
    with pytest.raises(InvalidTypeError) as info:
        hm.HybridRegressor(adapters=[ode], **SMALL).fit(T, Y)
    _refused(info.value, r"adapters\[0\]", r"class ODEAdapter", r"pass an instance, e\.g\. ")
    assert "ODEAdapter(...)" in str(info.value)


@pytest.mark.parametrize(
    ("adapters", "where", "remedy"),
    [
        ([3], r"adapters\[0\] is int 3", r"pass adapter instances"),
        ([_TwoStates(), nn.Linear(1, 1)], r"adapters\[1\] is Linear", r"pass adapter instances"),
        (_TwoStates(), r"adapters must be a list", r"adapters=\[adapter\]"),
        ("ode", r"adapters must be a list", r"adapters=\[adapter\]"),
    ],
    ids=["int", "module", "one-adapter-not-in-a-list", "name-not-in-a-list"],
)
def test_anything_else_as_an_adapter_is_refused(adapters: Any, where: str, remedy: str) -> None:
    with pytest.raises(InvalidTypeError) as info:
        hm.HybridRegressor(adapters=adapters, **SMALL).fit(T, Y)
    _refused(info.value, where, remedy)


_DEFAULT_ADAPTER = '''
import numpy as np
import hybridml as hm
from hybridml.adapters import ProvidesChecks, ProvidesConstraints


class Anchor(ProvidesConstraints, ProvidesChecks):
    """Needs no settings: pins the model to 5 at t = 0, checks y <= 100."""

    name = "anchor"

    def __init__(self, value: float = 5.0) -> None:
        self.value = value

    def loss_terms(self, **options):
        return {"anchor": hm.DataLoss([[0.0]], [[self.value]])}

    def checks(self):
        return [hm.Bounds("y", -100.0, 100.0)]
'''

_FIT_BY_NAME = """
import numpy as np, hybridml as hm
t = np.linspace(0.0, 1.0, 8)[:, None]
est = hm.HybridRegressor(outputs=["y"], adapters=["anchor"], hidden=(4,), adam_steps=3,
                         lbfgs_steps=0, progress=False).fit(t, t)
print(type(est.adapters_[0]).__name__, est.adapters_[0].value, sorted(est.losses_),
      [c.name for c in est.checks_])
"""


def test_adapter_name_whose_class_needs_no_settings_is_built_with_its_defaults(
    tmp_path: Path,
) -> None:
    # a real distribution on tmp_path (a .dist-info that importlib.metadata reads, no mock),
    # in a fresh process: the registry reads the installed entry points once per process
    (tmp_path / "h8_anchor.py").write_text(_DEFAULT_ADAPTER, encoding="utf-8")
    info = tmp_path / "h8_anchor-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: h8-anchor\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[hybridml.simulators]\nanchor = h8_anchor:Anchor\n", encoding="utf-8"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", _FIT_BY_NAME],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    # the adapter's loss term was trained with and its check is run by predict
    assert out.stdout.split() == ["Anchor", "5.0", "['anchor',", "'data']", "['y", "bounds']"]


@pytest.mark.parametrize(
    ("adapter", "what"),
    [(_DataOnly(), r"capabilities: data\)"), (_Empty(), r"capabilities: constraints, checks\)")],
    ids=["no-capability", "empty-terms-and-checks"],
)
def test_adapter_without_loss_terms_or_checks_gets_a_warning(adapter: Any, what: str) -> None:
    est = hm.HybridRegressor(adapters=[adapter], **SMALL)
    with pytest.warns(HybridMLWarning) as record:
        est.fit(T, Y)
    msg = " ".join(str(w.message) for w in record)
    assert type(adapter).__name__ in msg and "no loss terms and no checks" in msg
    assert re.search(what, msg) and len(record) == 1
    assert "leave it out of adapters=" in msg
    assert sorted(est.losses_) == ["data"]  # handled: the fit is the data fit


# ----------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    ("outputs", "y", "term"),
    [
        (["a"], Y, "two_states"),  # the residual reads output 1, which the model lacks
    ],
)
def test_output_the_adapter_lacks_is_refused_before_training(
    outputs: list[str], y: np.ndarray, term: str
) -> None:
    est = hm.HybridRegressor(outputs=outputs, adapters=[_TwoStates()], **SMALL)
    with pytest.raises(InvalidArgumentError) as info:
        est.fit(T, y)
    _refused(info.value, f"'{term}'", "_TwoStates", r"1 output\(s\) are \['a'\]", "IndexError")
    _refused(info.value, r"set outputs= to the adapter's outputs")
    assert not hasattr(est, "model_")


def test_more_outputs_than_the_ode_adapter_has_states_is_refused_before_training() -> None:
    ode = hm.load_simulator("ode")
    from hybridml_ode import exponential_decay

    adapter = ode(exponential_decay, [1.0], (0.0, 2.0), state_names=["y [-]"], params={"k": 1.0})
    est = hm.HybridRegressor(outputs=["y [-]", "z [-]"], adapters=[adapter], **SMALL)
    with pytest.raises(InvalidArgumentError) as info:
        est.fit(T, np.hstack([Y, Y]))
    _refused(info.value, "'initial_condition'", r"\['y \[-\]', 'z \[-\]'\]", "set outputs=")


def test_outputs_that_match_the_adapter_train_as_before() -> None:
    # handled: the check evaluates the terms once and changes nothing, so a fit is the same
    # with the adapter as it was (same seed, same numbers: compared with a second fit)
    a = hm.HybridRegressor(outputs=["a", "b"], adapters=[_TwoStates()], **SMALL)
    b = hm.HybridRegressor(**a.get_params())
    y = np.hstack([Y, np.full_like(Y, np.nan)])
    assert np.array_equal(a.fit(T, y).predict_values(T), b.fit(T, y).predict_values(T))
    assert sorted(a.losses_) == ["data", "two_states"]


# ----------------------------------------------------------------------------- check policy


@pytest.mark.parametrize("policy", ["ignore", "Warn", 1, None])
def test_invalid_check_policy_is_refused_at_fit_listing_the_valid_values(policy: Any) -> None:
    est = hm.HybridRegressor(check_policy=policy, **SMALL)
    with pytest.raises(InvalidArgumentError) as info:
        est.fit(T, Y)
    _refused(info.value, "check_policy=", "'raise', 'warn', 'record'")
    assert not hasattr(est, "model_")


def test_invalid_policy_at_predict_names_the_parameter() -> None:
    est = hm.HybridRegressor(**SMALL).fit(T, Y)
    with pytest.raises(InvalidArgumentError) as info:
        est.predict(T, policy="ignore")
    _refused(info.value, r"predict: policy='ignore'", "'raise', 'warn', 'record'")
    # valid values, as strings or Policy members, are taken
    assert est.predict(T, policy="record").report.passed
    assert est.predict(T, policy=hm.Policy.RAISE).report.passed


# ----------------------------------------------------------------------------- X and y


def _with(value: Any, at: int = 4) -> np.ndarray:
    x = T.astype(object)
    x[at, 0] = value
    return x


@pytest.mark.parametrize(
    ("X", "y", "patterns"),
    [
        (
            _with(np.nan).astype(float),
            Y,
            (r"fit: X has the value nan at row 4, column 0", "drop or fill"),
        ),
        (_with(np.inf).astype(float), Y, (r"X has the value inf at row 4", "drop or fill")),
        (
            _with("abc"),
            Y,
            (r"X holds a value that is not a number, 'abc', at row 4", "pass numbers"),
        ),
        (T, np.where(T > 1, np.inf, Y), (r"y has the value inf", "")),
        (np.zeros((0, 1)), np.zeros((0, 1)), (r"X is empty", "Pass at least one row")),
        ([], [], (r"X is empty", "Pass at least one row")),
        (T, Y[:5], (r"X has 12 rows but y has 5", "one target row per input row")),
        (T, None, (r"pass targets `y`", "")),
        (np.ones((3, 2, 2)), np.ones(3), (r"X must be 1-d or 2-d", "")),
    ],
    ids=["nan", "inf", "string", "inf-target", "empty", "empty-list", "rows", "no-y", "3-d"],
)
def test_bad_training_data_is_refused_naming_the_row_and_column(
    X: Any, y: Any, patterns: tuple[str, ...]
) -> None:
    est = hm.HybridRegressor(**SMALL)
    with pytest.raises(DataError) as info:
        est.fit(X, y)
    _refused(info.value, "HybridRegressor.fit", *patterns)


@pytest.mark.parametrize(
    ("X", "patterns"),
    [
        (np.hstack([T, T]), (r"X has 2 columns; the model was fitted on 1", r"\['x0'\]")),
        (np.array([[np.nan]]), (r"X has the value nan at row 0, column 0", "drop or fill")),
        (np.array([["1.5"], ["x"]]), (r"not a number, 'x', at row 1", "pass numbers")),
        (np.zeros((0, 1)), (r"X is empty", "Pass at least one row")),
        ("abc", (r"must be an array of rows", "")),
    ],
    ids=["columns", "nan", "string", "empty", "scalar"],
)
def test_bad_inputs_at_predict_are_refused(X: Any, patterns: tuple[str, ...]) -> None:
    est = hm.HybridRegressor(**SMALL).fit(T, Y)
    with pytest.raises(DataError) as info:
        est.predict(X)
    _refused(info.value, "HybridRegressor.predict", *patterns)


def test_numbers_as_strings_and_1d_inputs_are_read() -> None:
    # handled: "0.5" is a number, a 1-d X is one input column
    est = hm.HybridRegressor(**SMALL).fit(T, Y)
    as_text = est.predict_values(np.array([["0.5"], ["1.0"]]))
    assert np.array_equal(as_text, est.predict_values(np.array([[0.5], [1.0]])))
    assert est.predict(T[:, 0]).values.shape == (12, 1)


def test_a_dataset_without_the_fitted_input_column_is_refused_by_name() -> None:
    data = hm.Dataset({"t [s]": T[:, 0], "y [-]": Y[:, 0]})
    est = hm.HybridRegressor(inputs=["t [s]"], outputs=["y [-]"], **SMALL).fit(data)
    with pytest.raises(DataError) as info:
        est.predict(hm.Dataset({"time [s]": T[:, 0]}))
    _refused(info.value, "no column 't \\[s\\]'", "Did you mean 'time \\[s\\]'", "spelling")


# ----------------------------------------------------------------------------- other settings


def _sim3(x: Tensor) -> Tensor:
    return x.repeat(1, 3)  # three columns for a one-output model


def _sim_numpy(x: Tensor) -> np.ndarray:
    return x.numpy()  # not a tensor


@pytest.mark.parametrize(
    ("settings", "fit_kw", "error", "patterns"),
    [
        ({"physics": [1]}, {}, InvalidTypeError, ("physics must be a mapping", r"physics=\{")),
        (
            {"checks": hm.Bounds("y0", 0, 1)},
            {},
            InvalidTypeError,
            ("checks must be a list", r"checks=\[check\]"),
        ),
        (
            {"checks": [len]},
            {},
            InvalidTypeError,
            (r"checks\[0\] is builtin_function", "CustomCheck"),
        ),
        (
            {"hidden": 32},
            {},
            InvalidTypeError,
            ("hidden must be a list of layer widths", r"hidden=\(32, 32\)"),
        ),
        ({"seed": "1"}, {}, InvalidTypeError, ("seed must be an integer", "'1'")),
        ({"simulator": 3}, {}, InvalidTypeError, ("simulator must be a callable", "")),
        (
            {"simulator": _sim3},
            {},
            InvalidArgumentError,
            (r"simulator returned shape \(12, 3\)", r"shape \(12, 1\)"),
        ),
        (
            {"simulator": _sim_numpy},
            {},
            InvalidArgumentError,
            (r"simulator returned ndarray", r"must return a tensor of shape \(12, 1\)"),
        ),
        (
            {},
            {"validation": (T,)},
            InvalidArgumentError,
            (r"validation must be a pair \(X_val, y_val\)", "length 1"),
        ),
        (
            {},
            {"validation": (np.hstack([T, T]), Y)},
            DataError,
            ("validation data has 2 input", "same columns"),
        ),
        (
            {"early_stopping": hm.EarlyStopping(patience=2)},
            {},
            InvalidArgumentError,
            ("early_stopping needs validation", r"validation=\(X_val, y_val\)"),
        ),
    ],
    ids=[
        "physics",
        "one-check",
        "not-a-check",
        "hidden-int",
        "seed",
        "simulator",
        "simulator-shape",
        "simulator-numpy",
        "validation-pair",
        "validation-columns",
        "early-stopping",
    ],
)
def test_bad_settings_are_refused_before_training(
    settings: dict[str, Any],
    fit_kw: dict[str, Any],
    error: type[Exception],
    patterns: tuple[str, ...],
) -> None:
    est = hm.HybridRegressor(**{**SMALL, **settings})
    with pytest.raises(error) as info:
        est.fit(T, Y, **fit_kw)
    _refused(info.value, "HybridRegressor.fit", *patterns)
    assert not hasattr(est, "model_")


def test_set_params_with_an_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        hm.HybridRegressor().set_params(check_polciy="warn")
    _refused(info.value, "'check_polciy'", "Did you mean 'check_policy'", "Valid: inputs")


# ----------------------------------------------------------------------------- hybridml run


# a damped oscillator (the shape of `hybridml example`'s study), measured at 5 points
STUDY = """\
[study]
name = "oscillator"
check_policy = "record"   # 3 Adam steps do not pass the residual check

[data]
path = "measurements.csv"
inputs = ["t [s]"]
outputs = ["x [m]", "v [m/s]"]

[simulator]
name = "ode"

[simulator.options]
y0 = [1.0, 0.0]
t_span = [0.0, 10.0]
state_names = ["x [m]", "v [m/s]"]
params = { k = 4.0, c = 0.4 }
residual_threshold = 0.1

[simulator.callables]
rhs = "hybridml_ode:damped_oscillator"

[training]
adam_steps = 3
lbfgs_steps = 0

[predict]
grid = { "t [s]" = [0.0, 10.0, 201] }
"""


@pytest.fixture
def example() -> str:
    return STUDY


def _study(tmp_path: Path, text: str) -> Path:
    rows = "\n".join(f"{t},{float(np.cos(2.0 * t))!r}" for t in np.linspace(0.0, 10.0, 5))
    (tmp_path / "measurements.csv").write_text(f"t [s],x [m]\n{rows}\n", encoding="utf-8")
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_study_without_mistakes_runs(tmp_path: Path) -> None:
    # the configuration the cases below spoil is itself good: it runs to the end
    out = run_study(_study(tmp_path, STUDY), tmp_path / "out")
    assert (out / "metrics.json").exists() and (out / "predictions.csv").exists()
    assert len((out / "predictions.csv").read_text(encoding="utf-8").splitlines()) == 202


def _line(text: str, start: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(start))


@pytest.mark.parametrize(
    ("old", "new", "key", "line_of", "remedy"),
    [
        (
            "residual_threshold = 0.1",
            "residual_treshold = 0.1",
            "simulator.options.residual_treshold",
            "residual_treshold",
            r"Did you mean 'residual_threshold'\? Its settings: rhs, y0",
        ),
        (
            "hybridml_ode:damped",
            "hybridml_oed:damped",
            "simulator.callables.rhs",
            "rhs =",
            r"no module named 'hybridml_oed'; check the spelling, install it",
        ),
        (
            "hybridml_ode:damped_oscillator",
            "hybridml_ode:damped_osillator",
            "simulator.callables.rhs",
            "rhs =",
            r"'hybridml_ode' has no attribute 'damped_osillator'\. Did you mean 'damped_osc",
        ),
        (
            "hybridml_ode:damped_oscillator",
            "hybridml_ode.damped_oscillator",
            "simulator.callables.rhs",
            "rhs =",
            'expected "module:attribute"',
        ),
        (
            'name = "ode"',
            'name = "oed"',
            "simulator.name",
            'name = "oed"',
            r"Did you mean 'ode'\? Installed:",
        ),
        (
            "y0 = [1.0, 0.0]\n",
            "",
            "simulator.options",
            "[simulator.options]",
            r"needs the setting\(s\) y0: add them to \[simulator.options\]",
        ),
        (
            "y0 = [1.0, 0.0]",
            "y0 = [1.0]",
            "simulator.options",
            "[simulator.options]",
            r"refused these settings: y0 has 1 values .* give one initial value per state",
        ),
    ],
    ids=[
        "unknown-option",
        "callable-module",
        "callable-attribute",
        "callable-no-colon",
        "unknown-simulator",
        "missing-setting",
        "refused-setting",
    ],
)
def test_simulator_table_mistakes_are_config_errors_before_any_work(
    tmp_path: Path, example: str, old: str, new: str, key: str, line_of: str, remedy: str
) -> None:
    assert old in example
    text = example.replace(old, new)
    path = _study(tmp_path, text)
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as info:
        run_study(path, out)
    line = _line(text, line_of)
    _refused(info.value, re.escape(f"{path}, line {line}: key `{key}`"), remedy)
    # before any work: no run folder, not even a partial one
    assert not list(tmp_path.glob("out*"))


@pytest.mark.parametrize(
    ("axis", "key", "remedy"),
    [
        (
            "[0.0, 10.0, 0]",
            "predict.grid.t [s]",
            r"n must be an integer >= 1, got 0; e\.g\. \[0\.0, 10\.0, 50\]",
        ),
        ("[0.0, 10.0, -3]", "predict.grid.t [s]", r"n must be an integer >= 1, got -3"),
        ("[0.0, 10.0, 2.5]", "predict.grid.t [s]", r"n must be an integer >= 1, got 2\.5"),
        ("[0.0, inf, 10]", "predict.grid.t [s]", r"start and stop must be finite"),
        ("[0.0, 10.0, 100000000]", "predict.grid", r"100,000,000 points .* use fewer points"),
    ],
    ids=["zero", "negative", "fraction", "infinite", "too-many"],
)
def test_predict_grid_mistakes_are_found_when_the_config_is_loaded(
    tmp_path: Path, example: str, axis: str, key: str, remedy: str
) -> None:
    text = example.replace('"t [s]" = [0.0, 10.0, 201]', f'"t [s]" = {axis}')
    assert text != example
    path = _study(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = _line(text, "grid =")
    _refused(info.value, re.escape(f"{path}, line {line}: key `{key}`"), remedy)


def test_predict_grid_as_its_own_table_points_at_the_axis_line(
    tmp_path: Path, example: str
) -> None:
    text = example.replace(
        'grid = { "t [s]" = [0.0, 10.0, 201] }', '[predict.grid]\n"t [s]" = [0.0, 10.0, 0]'
    )
    path = _study(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = _line(text, '"t [s]" = [0.0, 10.0, 0]')
    _refused(info.value, re.escape(f"line {line}: key `predict.grid.t [s]`"), "integer >= 1")
