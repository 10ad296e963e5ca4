"""The study config reaches the whole estimator API: every new table parses to typed
settings, bad values are ConfigErrors naming file, line and key, the reference
docs/config.md is the schema's own rendering, and `hybridml run` runs an ensemble with
cross-validation on the damped-oscillator example."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

import hybridml as hm
from hybridml import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
[study]
name = "demo"

[data]
path = "d.csv"
inputs = ["t [s]"]
outputs = ["x [m]"]
"""


def write(tmp_path: Path, text: str) -> Path:
    rows = "\n".join(
        f"{t},{float(np.cos(t))!r},{i % 3}" for i, t in enumerate(np.linspace(0, 3, 12))
    )
    (tmp_path / "d.csv").write_text(f"t [s],x [m],cell\n{rows}\n", encoding="utf-8")
    p = tmp_path / "study.toml"
    p.write_text(text, encoding="utf-8")
    return p


def line_of(text: str, start: str, nth: int = 1) -> int:
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith(start)]
    return hits[nth - 1]


# ----------------------------------------------------------------------------- parsing

FULL = (
    BASE
    + """
[[phases]]
type = "adam"
steps = 50
lr = 0.002
lr_decay = 0.5

[[phases]]
type = "bfgs"
steps = 7
scaling = "none"

[[transforms]]
output = "x [m]"
type = "bounded"
lower = -1.5
upper = 1.5

[ensemble]
members = 3
bootstrap = false
calibration = false
coverage = 0.8

[cross_validation]
splitter = "leave-one-group-out"
groups = "cell"
"""
)


def test_every_new_table_parses_to_typed_settings(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL))
    assert [(p.type, p.steps) for p in cfg.phases] == [("adam", 50), ("bfgs", 7)]
    assert cfg.phases[0].options["lr_decay"] == 0.5 and cfg.phases[1].options["scaling"] == "none"
    assert cfg.phases[1].options["max_params"] == 10_000  # the default, filled in
    t = cfg.transforms[0]
    assert (t.output, t.type, t.lower, t.upper) == ("x [m]", "bounded", -1.5, 1.5)
    assert cfg.ensemble is not None and cfg.ensemble.members == 3
    assert cfg.ensemble.calibration is None and cfg.ensemble.bootstrap is False
    cv = cfg.cross_validation
    assert cv is not None and (cv.splitter, cv.groups) == ("leave-one-group-out", "cell")
    assert cfg.early_stopping is None and cfg.finetune is None and cfg.synthetic is None


def test_early_stopping_synthetic_and_finetune_parse(tmp_path: Path) -> None:
    text = (
        BASE
        + '[simulator]\nname = "ode"\n'
        + '[training]\nquasi_newton = "bfgs"\nquasi_newton_steps = 3\n'
        + "[synthetic]\nparams = [{ k = 4.0 }, { k = 5.0 }]\nevery = 4\nweight = 0.25\n"
        + '[finetune]\nfreeze = 2\nunfreeze = [1, ["net.layers.4"]]\nadam_steps = 9\n'
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.training.quasi_newton == "bfgs" and cfg.training.lbfgs_steps == 3
    assert cfg.synthetic is not None and cfg.synthetic.params == [{"k": 4.0}, {"k": 5.0}]
    assert (cfg.synthetic.every, cfg.synthetic.weight) == (4, 0.25)
    assert cfg.finetune is not None and cfg.finetune.unfreeze == [1, ["net.layers.4"]]
    assert (cfg.finetune.freeze, cfg.finetune.adam_steps, cfg.finetune.lr) == (2, 9, 1e-4)
    es = load_config(write(tmp_path, BASE + "[early_stopping]\npatience = 3\n")).early_stopping
    assert es is not None and (es.patience, es.every, es.fraction) == (3, 10, 0.2)


def test_config_builds_the_python_api_objects(tmp_path: Path) -> None:
    est = hm.build_estimator(load_config(write(tmp_path, FULL)), [])
    assert isinstance(est, hm.DeepEnsemble) and est.n_members == 3 and est.calibration is None
    reg = est.estimator
    assert reg.phases == (hm.Adam(50, lr=0.002, lr_decay=0.5), hm.BFGS(7, scaling=None))
    # the bounded transform keeps the output inside its bounds whatever the raw output
    import torch

    y = reg.transform(torch.zeros(3, 1), torch.tensor([[-1e3], [0.0], [1e3]]))
    assert float(y.min()) >= -1.5 and float(y.max()) <= 1.5 and abs(float(y[1, 0])) < 1e-12


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("extra", "start", "nth", "key", "why"),
    [
        ('[[phases]]\ntype = "adam"\nsteps = -1\n', "steps", 1, "phases.steps", ">= 0"),
        ('[[phases]]\ntype = "sgd"\nsteps = 1\n', "type", 1, "phases.type", "not one of"),
        (
            '[[phases]]\ntype = "adam"\nsteps = 1\n[[phases]]\ntype = "lbfgs"\nsteps = 2\n'
            "histroy_size = 5\n",
            "histroy_size",
            1,
            "phases.histroy_size",
            "Did you mean 'history_size'",
        ),
        (
            '[[transforms]]\noutput = "y"\ntype = "positive"\n',
            "output =",
            1,
            "transforms.output",
            "not an output",
        ),
        (
            '[[transforms]]\noutput = "x [m]"\ntype = "bounded"\nlower = 2.0\nupper = 1.0\n',
            "upper",
            1,
            "transforms.upper",
            "above lower",
        ),
        ("[ensemble]\nmembers = 0\n", "members", 1, "ensemble.members", ">= 1"),
        ("[ensemble]\ncoverage = 1.0\n", "coverage", 1, "ensemble.coverage", "in (0, 1)"),
        (
            "[ensemble]\ncalibration = true\n",
            "calibration",
            1,
            "ensemble.calibration",
            "number or false",
        ),
        (
            '[cross_validation]\nspliter = "group-kfold"\n',
            "spliter",
            1,
            "cross_validation.spliter",
            "Did you mean 'splitter'",
        ),
        ("[cross_validation]\nn_splits = 1\n", "n_splits", 1, "cross_validation.n_splits", ">= 2"),
        (
            "[early_stopping]\nfraction = 1.5\n",
            "fraction",
            1,
            "early_stopping.fraction",
            "in (0, 1)",
        ),
        ("[finetune]\nfreeze = 1.5\n", "freeze", 1, "finetune.freeze", "integer or list"),
        ("[synthetic]\nweight = -1\n", "weight", 1, "synthetic.weight", ">= 0"),
        ("[trainig]\nadam_steps = 3\n", "[trainig]", 1, "trainig", "Did you mean 'training'"),
    ],
)
def test_bad_values_name_file_line_and_key(
    tmp_path: Path, extra: str, start: str, nth: int, key: str, why: str
) -> None:
    text = BASE + "\n" + extra
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert f"{p}, line {line_of(text, start, nth)}: key `{key}`" in msg, msg
    assert why in msg, msg


def test_the_second_phase_entry_is_pointed_at(tmp_path: Path) -> None:
    text = BASE + '[[phases]]\ntype = "adam"\nsteps = 1\n[[phases]]\ntype = "adam"\nsteps = -4\n'
    with pytest.raises(ConfigError, match=rf"line {line_of(text, 'steps', 2)}: .*\(entry 2\)"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("extra", "table", "why"),
    [
        (
            '[[phases]]\ntype = "adam"\nsteps = 1\n[training]\nlr = 0.1\n',
            "lr =",
            "leave the [training] shortcuts out",
        ),
        (
            "[ensemble]\n[early_stopping]\n",
            "[early_stopping]",
            "cannot be combined with [ensemble]",
        ),
        ("[finetune]\n", "[finetune]", "needs a [synthetic] table"),
        ("[synthetic]\n", "[synthetic]", "needs a [simulator]"),
        (
            '[ensemble]\nkind = "batched"\n[[phases]]\ntype = "lbfgs"\nsteps = 3\n',
            "[ensemble]",
            "would couple the members",
        ),
        ("[ensemble]\nweight_decay = 0.1\n", "weight_decay", 'kind = "batched" only'),
        ("[training]\nlbfgs_steps = 3\nquasi_newton_steps = 4\n", "lbfgs_steps", "disagrees"),
    ],
)
def test_tables_that_do_not_go_together_are_refused(
    tmp_path: Path, extra: str, table: str, why: str
) -> None:
    text = BASE + "\n" + extra
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert f"line {line_of(text, table)}:" in str(info.value) and why in str(info.value)


# ----------------------------------------------------------------------------- the schema


def test_docs_config_md_is_the_schema_rendered() -> None:
    # regenerate with: python -m hybridml.study._schema > docs/config.md
    assert (ROOT / "docs" / "config.md").read_text(encoding="utf-8") == hm.config_reference()


def test_every_table_of_the_schema_is_documented_and_read() -> None:
    text = hm.config_reference()
    for s in hm.config_schema().values():
        assert (f"[[{s.name}]]" if s.array else f"[{s.name}]") in text
        for k in s.keys_for():
            assert f"| `{k.name}` |" in text


def _default(obj: object, name: str) -> object:
    return inspect.signature(obj).parameters[name].default  # type: ignore[arg-type]


def test_schema_defaults_are_the_python_apis() -> None:
    # the schema writes defaults as literals (no torch import); they must be the API's
    keys = {s.name: {k.name: k.default for k in s.keys} for s in hm.config_schema().values()}
    train = keys["training"]
    assert (train["adam_steps"], train["lr"], train["quasi_newton_steps"]) == (
        _default(hm.HybridRegressor, "adam_steps"),
        _default(hm.HybridRegressor, "lr"),
        hm.default_phases()[1].steps,
    )
    assert train["quasi_newton"] == _default(hm.HybridRegressor, "quasi_newton")
    assert keys["model"]["hidden"] == list(_default(hm.HybridRegressor, "hidden"))
    ens = keys["ensemble"]
    for key, param in (
        ("members", "n_members"),
        ("bootstrap", "bootstrap"),
        ("calibration", "calibration"),
        ("coverage", "coverage"),
    ):
        assert ens[key] == _default(hm.DeepEnsemble, param), key
    assert ens["weight_decay"] == _default(hm.BatchedEnsemble, "weight_decay")
    es = keys["early_stopping"]
    for key in ("patience", "min_delta", "every"):
        assert es[key] == _default(hm.EarlyStopping, key), key
    assert keys["synthetic"]["weight"] == _default(hm.HybridRegressor, "synthetic_weight")
    assert keys["cross_validation"]["n_splits"] == _default(hm.GroupKFold, "n_splits")
    for variant, cls in (("adam", hm.Adam), ("lbfgs", hm.LBFGS), ("bfgs", hm.BFGS)):
        phase = cls(1)
        for k in hm.config_schema()["phases"].variants[variant]:
            want = getattr(phase, k.name)
            if k.name == "dtype":
                want = "model" if want is None else str(want).removeprefix("torch.")
            if k.name in ("line_search", "scaling") and want is None:
                want = "none"
            assert k.default == want, (variant, k.name)


# ----------------------------------------------------------------------------- end to end


def test_run_ensemble_and_cross_validation_on_the_ode_example(tmp_path: Path) -> None:
    from hybridml.study import run_study

    config = hm.write_example(tmp_path / "inputs", quick=True)
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"adam_steps = \d+", "adam_steps = 20", text)  # fast: a few steps only
    text = re.sub(r"lbfgs_steps = \d+", "lbfgs_steps = 3", text)
    text = text.replace('check_policy = "warn"', 'check_policy = "record"')
    # v [m/s] is never measured (learned from the physics): no held-out rows can calibrate
    # its interval, so the ensemble's intervals are the uncalibrated mean ± 2 std
    text += "\n[ensemble]\nmembers = 2\ncalibration = false\n\n[cross_validation]\nn_splits = 3\n"
    config.write_text(text, encoding="utf-8")
    run = run_study(config, tmp_path / "run")

    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["ensemble"]["members"] == 2 and metrics["ensemble"]["calibration"] is None
    cv = json.loads((run / "cv.json").read_text(encoding="utf-8"))
    assert len(cv["folds"]) == 3  # 12 rows, each its own group, in 3 folds of 4
    assert sorted(g for f in cv["folds"] for g in f["test_groups"]) == sorted(map(str, range(12)))
    assert all(f["n_test"] == 4 and f["error"] is None for f in cv["folds"])
    assert np.isfinite(metrics["cross_validation"]["rmse"]["mean"])
    head, *rows = (run / "predictions.csv").read_text(encoding="utf-8").splitlines()
    cols = head.split(",")
    assert cols[:2] == ["t [s]", "x [m]"] and "x [m] lower" in cols and "v [m/s] std" in cols
    table = np.array([[float(v) for v in r.split(",")] for r in rows])
    lo, mid, hi = (table[:, cols.index(c)] for c in ("x [m] lower", "x [m]", "x [m] upper"))
    assert len(rows) == 201 and np.all(lo <= mid) and np.all(mid <= hi)
    assert (run / "checkpoint.pt").is_file() and len(list((run / "figures").glob("fit_*.png"))) == 2


def test_calibrating_an_unmeasured_output_is_refused_before_any_work(tmp_path: Path) -> None:
    from hybridml.study import run_study

    config = hm.write_example(tmp_path / "inputs", quick=True)
    text = config.read_text(encoding="utf-8") + "\n[ensemble]\nmembers = 2\n"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key `ensemble.calibration`.*'v \[m/s\]'"):
        run_study(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _example(tmp_path: Path, extra: str, *, drop_training: bool = False) -> Path:

    config = hm.write_example(tmp_path / "inputs", quick=True)
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"adam_steps = \d+", "adam_steps = 10", text)  # fast: a few steps only
    text = re.sub(r"lbfgs_steps = \d+", "lbfgs_steps = 2", text)
    text = text.replace('check_policy = "warn"', 'check_policy = "record"')
    if drop_training:
        text = re.sub(r"adam_steps = \d+\n|lbfgs_steps = \d+\n", "", text)
    config.write_text(text + "\n" + extra, encoding="utf-8")
    return config


@pytest.mark.parametrize(
    ("extra", "drop", "key"),
    [
        (
            "[synthetic]\nparams = [{ k = 4.0 }, { k = 4.5 }]\nevery = 5\n"
            "[finetune]\nfreeze = 2\nunfreeze = [1]\nadam_steps = 5\n",
            False,
            "finetune",
        ),
        ("[synthetic]\nweight = 0.1\nevery = 5\n", False, "synthetic"),
        (
            "[early_stopping]\npatience = 2\nevery = 2\nfraction = 0.25\n"
            '[[transforms]]\noutput = "x [m]"\ntype = "bounded"\nlower = -1.05\nupper = 1.05\n'
            '[[phases]]\ntype = "adam"\nsteps = 10\n[[phases]]\ntype = "bfgs"\nsteps = 2\n',
            True,
            "early_stopping",
        ),
    ],
    ids=["finetune", "synthetic-weight", "early-stopping-transforms-phases"],
)
def test_run_simulated_rows_finetuning_and_early_stopping(
    tmp_path: Path, extra: str, drop: bool, key: str
) -> None:
    from hybridml.study import run_study

    run = run_study(_example(tmp_path, extra, drop_training=drop), tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert key in metrics
    if key == "finetune":  # two stages: 2 layers frozen, then the last of them thawed
        assert [len(f) for f in metrics["finetune"]["frozen"]] == [2, 1]
    if key == "early_stopping":  # 12 rows: 3 held out for validation
        assert (metrics["early_stopping"]["n_fit"], metrics["early_stopping"]["n_validation"]) == (
            9,
            3,
        )
        head, *rows = (run / "predictions.csv").read_text(encoding="utf-8").splitlines()
        x = np.array([float(r.split(",")[head.split(",").index("x [m]")]) for r in rows])
        assert np.all(np.abs(x) <= 1.05)  # the bounded transform holds by construction
    assert np.isfinite(metrics["train"]["rmse x [m]"])


def test_run_batched_ensemble_on_data_only(tmp_path: Path) -> None:
    from hybridml.study import run_study

    text = (
        BASE
        + '[training]\nadam_steps = 30\n[ensemble]\nkind = "batched"\nmembers = 3\n'
        + "calibration = 0.25\ncoverage = 0.5\n"
    )
    run = run_study(write(tmp_path, text), tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    cal = metrics["ensemble"]["calibration"]
    # 12 rows, a quarter held out: 3 calibration points; split conformal's achieved
    # coverage on them is at least the requested 0.5 by construction
    assert cal["n"] == 3 and cal["achieved"]["x [m]"] >= 0.5
    assert (run / "checkpoint.pt").is_file()  # a model file, as for every estimator


def test_the_study_device_is_read_and_a_missing_gpu_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from hybridml.cli import main

    cfg = load_config(
        write(tmp_path, BASE.replace('name = "demo"', 'name = "demo"\ndevice = "cpu"'))
    )
    assert cfg.device == "cpu"
    assert load_config(write(tmp_path, BASE)).device is None  # default: the CPU, as before
    with pytest.raises(ConfigError, match=r"study\.device"):
        load_config(write(tmp_path, BASE.replace('name = "demo"', 'name = "demo"\ndevice = 0')))
    if torch.cuda.is_available():  # pragma: no cover - only where a GPU is
        return
    path = write(tmp_path, BASE)
    out = tmp_path / "runs" / "demo"
    assert main(["run", str(path), "--out", str(out), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "cuda" in err and "not available" in err and err.count("\n") == 1
    assert not out.exists() and not list(out.parent.glob("demo*"))  # nothing was written
