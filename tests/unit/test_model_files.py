"""Model files: a fitted HybridRegressor or DeepEnsemble saved and loaded predicts bitwise
the same; the file holds data only (weights_only), loads on the CPU, and a file of another
format, version or class, or a load without the objects the model was fitted with, is
refused with a message that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hybridml as hm
from hybridml import DeepEnsemble, HybridRegressor, ModelFileError
from hybridml.adapters import ProvidesConstraints

SMALL = {"hidden": (8, 8), "adam_steps": 60, "lr": 1e-2, "lbfgs_steps": 5, "progress": False}


def data(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2.0, (n, 1))
    return x, np.exp(-x) + 0.01 * rng.standard_normal((n, 1))


def decay_adapter() -> object:
    from hybridml_ode import exponential_decay

    ode = hm.load_simulator("ode")
    return ode(exponential_decay, [1.0], (0.0, 2.0), state_names=["y [-]"], params={"k": 1.0})


def test_a_saved_regressor_loads_and_predicts_bitwise_the_same(tmp_path: Path) -> None:
    x, y = data()
    check = hm.Bounds("y [-]", lower=-0.5, upper=1.5, name="range")
    est = HybridRegressor(
        inputs=["t [s]"], outputs=["y [-]"], checks=[check], check_policy="record", **SMALL
    ).fit(x, y)
    path = tmp_path / "model.pt"
    est.save(path)
    # data only: torch's safe loader reads it, with the JSON metadata inside
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == "hybridml.model" and raw["version"] == 1
    meta = json.loads(raw["meta"])
    assert meta["fitted"]["units"] == {"t [s]": "s", "y [-]": "-"}
    assert meta["objects"]["checks"] == [
        {"name": "range", "class": "hybridml.checks._builtin.Bounds"}
    ]

    back = HybridRegressor.load(path, checks=[check])
    grid = np.linspace(-0.5, 3.0, 57)[:, None]  # outside the training range too
    np.testing.assert_array_equal(back.predict_values(grid), est.predict_values(grid))
    pred, again = est.predict(grid), back.predict(grid)
    assert pred.columns == again.columns == ("y [-]",)
    assert dict(again.units) == dict(pred.units)
    assert [r.name for r in again.report.results] == ["range"]
    assert back.get_params(deep=False)["hidden"] == (8, 8)
    assert back.history_.loss == est.history_.loss
    assert back.score(x, y) == est.score(x, y)


def test_a_regressor_with_an_adapter_needs_it_again_and_the_same_class(tmp_path: Path) -> None:
    x, y = data()
    adapter = decay_adapter()
    est = HybridRegressor(outputs=["y [-]"], adapters=[adapter], **SMALL).fit(x, y)
    path = tmp_path / "m.pt"
    est.save(path)
    with pytest.raises(
        ModelFileError,
        match=r"adapter instances that cannot be re-created.*ODEAdapter.*adapters=\[\.\.\.\]",
    ):
        HybridRegressor.load(path)

    class Other(ProvidesConstraints):
        name = "other"

        def loss_terms(self, **options: object) -> dict:
            return {}

    with pytest.raises(ModelFileError, match=r"fitted with the adapters \['hybridml_ode.*Other"):
        HybridRegressor.load(path, adapters=[Other()])
    back = HybridRegressor.load(path, adapters=[decay_adapter()])
    np.testing.assert_array_equal(back.predict_values(x), est.predict_values(x))
    assert [c.name for c in back.checks_] == [c.name for c in est.checks_]


def test_objects_that_change_a_prediction_must_be_given_again(tmp_path: Path) -> None:
    x, y = data()

    def sim(t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-t)

    est = HybridRegressor(simulator=sim, checks=[hm.Bounds("y0", lower=-1.0)], **SMALL).fit(x, y)
    path = tmp_path / "residual.pt"
    est.save(path)
    with pytest.raises(ModelFileError, match=r"checks \['y0 bounds'\]; pass them again"):
        HybridRegressor.load(path, simulator=sim)
    with pytest.raises(ModelFileError, match=r"simulator=.*pass it again"):
        HybridRegressor.load(path, checks=est.checks)
    with pytest.raises(ModelFileError, match=r"checks= gives \['other'\]"):
        HybridRegressor.load(path, simulator=sim, checks=[hm.Bounds("y0", lower=0.0, name="other")])
    with pytest.raises(ModelFileError, match=r"no setting\(s\) \['simulater'\]"):
        HybridRegressor.load(path, simulater=sim, checks=est.checks)
    back = HybridRegressor.load(path, simulator=sim, checks=est.checks)
    np.testing.assert_array_equal(back.predict_values(x), est.predict_values(x))


def test_files_of_another_kind_version_or_class_are_refused(tmp_path: Path) -> None:
    x, y = data()
    est = HybridRegressor(**SMALL).fit(x, y)
    path = tmp_path / "m.pt"
    est.save(path)
    with pytest.raises(
        ModelFileError, match=r"holds a HybridRegressor, not a DeepEnsemble.*HybridRegressor\.load"
    ):
        DeepEnsemble.load(path)

    bare = tmp_path / "checkpoint.pt"  # what a run folder held before: the weights alone
    torch.save(est.model_.state_dict(), bare)
    with pytest.raises(ModelFileError, match="bare state dict"):
        HybridRegressor.load(bare)

    raw = torch.load(path, weights_only=True)
    raw["version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(raw, newer)
    with pytest.raises(ModelFileError, match=r"version 99; this hybridml reads version 1; upgrade"):
        HybridRegressor.load(newer)

    code = tmp_path / "code.pt"  # pickled code is never run: weights_only refuses it
    torch.save({"format": "hybridml.model", "f": HybridRegressor}, code)
    with pytest.raises(ModelFileError, match="weights_only=True refused it"):
        HybridRegressor.load(code)

    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match="not a hybridml model file"):
        HybridRegressor.load(text)
    with pytest.raises(FileNotFoundError):
        HybridRegressor.load(tmp_path / "missing.pt")


def test_save_is_atomic_and_an_unfitted_model_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        HybridRegressor(**SMALL).save(tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []  # nothing, not even a temporary file, is left


def test_a_saved_ensemble_loads_with_its_calibration_and_members(tmp_path: Path) -> None:
    x, y = data(40)
    ens = DeepEnsemble(HybridRegressor(**SMALL), n_members=3, calibration=0.5, seed=2).fit(x, y)
    path = tmp_path / "ens.pt"
    ens.save(path)
    back = DeepEnsemble.load(path)
    grid = np.linspace(0.0, 2.0, 11)[:, None]
    a, b = ens.predict(grid), back.predict(grid)
    for name in ("mean", "std", "lower", "upper", "members"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name))
    assert b.coverage == a.coverage == 0.9
    assert back.member_seeds_ == [2, 3, 4]
    np.testing.assert_array_equal(back.calibration_index_, ens.calibration_index_)
    assert back.get_params(deep=False)["n_members"] == 3
    with pytest.raises(ModelFileError, match="holds a DeepEnsemble"):
        HybridRegressor.load(path)


def test_the_run_folder_checkpoint_is_a_model_file(tmp_path: Path) -> None:
    from hybridml.study import run_study

    x, y = data(12)
    rows = "\n".join(
        f"{a!r},{b!r}" for a, b in zip(x[:, 0].tolist(), y[:, 0].tolist(), strict=True)
    )
    (tmp_path / "d.csv").write_text(f"t [s],y [-]\n{rows}\n", encoding="utf-8")
    (tmp_path / "s.toml").write_text(
        '[study]\nname = "decay"\n[data]\npath = "d.csv"\ninputs = ["t [s]"]\n'
        'outputs = ["y [-]"]\n[model]\nhidden = [8]\n'
        "[training]\nadam_steps = 30\nlbfgs_steps = 0\n"
        '[predict]\ngrid = { "t [s]" = [0.0, 2.0, 5] }\n',
        encoding="utf-8",
    )
    run = run_study(tmp_path / "s.toml", tmp_path / "run")
    model = HybridRegressor.load(run / "checkpoint.pt")
    assert model.input_names_ == ["t [s]"] and model.output_names_ == ["y [-]"]
    # the loaded model gives the run's predictions (written with full precision)
    lines = (run / "predictions.csv").read_text().splitlines()
    written = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
    np.testing.assert_array_equal(model.predict_values(written[:, :1])[:, 0], written[:, 1])


def _rewrite_meta(src: Path, dst: Path, change: object) -> None:
    """A copy of a model file whose JSON metadata ``change(meta)`` edited (as another
    installation would have written it)."""
    raw = torch.load(src, weights_only=True)
    meta = json.loads(raw["meta"])
    change(meta)  # type: ignore[operator]
    raw["meta"] = json.dumps(meta)
    torch.save(raw, dst)


def test_the_file_records_versions_and_the_training_data_hash(tmp_path: Path) -> None:
    import platform

    x, y = data()
    est = HybridRegressor(outputs=["y [-]"], adapters=[decay_adapter()], **SMALL).fit(x, y)
    assert len(est.data_hash_) == 64
    # the hash is of the training rows: the same rows give it again, one changed value not
    assert est.data_hash_ == hm.data_hash(x, y)
    y2 = y.copy()
    y2[3, 0] += 1e-12
    assert hm.data_hash(x, y2) != est.data_hash_
    path = tmp_path / "m.pt"
    est.save(path)
    meta = json.loads(torch.load(path, weights_only=True)["meta"])
    v = meta["versions"]
    assert v["python"] == platform.python_version()
    assert v["torch"] == torch.__version__.split("+")[0] or v["torch"] == torch.__version__
    assert v["numpy"] == np.__version__ and v["hybridml"] == hm.__version__
    (entry,) = v["adapters"]
    assert entry["name"] == "ode" and entry["package"] == "hybridml-ode"
    assert entry["versions"] == hm.simulator_versions(est.adapters_[0])
    assert "hybridml-ode" in entry["versions"]
    assert meta["fitted"]["data_hash"] == est.data_hash_
    back = HybridRegressor.load(path, adapters=[decay_adapter()])
    assert back.data_hash_ == est.data_hash_

    ens = DeepEnsemble(HybridRegressor(**SMALL), n_members=2, calibration=None, seed=1).fit(x, y)
    assert ens.data_hash_ == est.data_hash_  # the ensemble's training rows, before resampling
    ens.save(tmp_path / "ens.pt")
    assert DeepEnsemble.load(tmp_path / "ens.pt").data_hash_ == ens.data_hash_


def test_a_file_of_another_hybridml_version_or_without_its_adapters_is_refused(
    tmp_path: Path,
) -> None:
    x, y = data()
    est = HybridRegressor(outputs=["y [-]"], adapters=[decay_adapter()], **SMALL).fit(x, y)
    path = tmp_path / "m.pt"
    est.save(path)

    def older(meta: dict) -> None:
        meta["versions"]["hybridml"] = "0.0.1"

    _rewrite_meta(path, tmp_path / "older.pt", older)
    with pytest.raises(
        ModelFileError,
        match=rf"saved by hybridml 0\.0\.1; this is hybridml {hm.__version__}.*hybridml==0\.0\.1",
    ):
        hm.load_model(tmp_path / "older.pt", adapters=[decay_adapter()])

    def not_installed(meta: dict) -> None:
        (entry,) = meta["versions"]["adapters"]
        entry["package"] = "hybridml-nosuchsim"
        entry["versions"] = {"hybridml-nosuchsim": "2.1.0"}

    _rewrite_meta(path, tmp_path / "missing.pt", not_installed)
    with pytest.raises(
        ModelFileError,
        match=r"adapter 'ode' \(hybridml_ode.*\) from hybridml-nosuchsim 2\.1\.0, which is not "
        r"installed.*pip install hybridml-nosuchsim==2\.1\.0",
    ):
        HybridRegressor.load(tmp_path / "missing.pt", adapters=[decay_adapter()])

    def other_version(meta: dict) -> None:
        meta["versions"]["adapters"][0]["versions"]["hybridml-ode"] = "0.0.0.dev1"

    _rewrite_meta(path, tmp_path / "other.pt", other_version)
    with pytest.warns(hm.ModelFileWarning, match=r"saved with 0\.0\.0\.dev1, installed"):
        back = HybridRegressor.load(tmp_path / "other.pt", adapters=[decay_adapter()])
    np.testing.assert_array_equal(back.predict_values(x), est.predict_values(x))


def test_load_model_reads_either_class(tmp_path: Path) -> None:
    x, y = data()
    HybridRegressor(**SMALL).fit(x, y).save(tmp_path / "r.pt")
    DeepEnsemble(HybridRegressor(**SMALL), n_members=2, calibration=None).fit(x, y).save(
        tmp_path / "e.pt"
    )
    assert type(hm.load_model(tmp_path / "r.pt")) is HybridRegressor
    assert type(hm.load_model(tmp_path / "e.pt")) is DeepEnsemble
    (tmp_path / "bad.pt").write_text("no")
    with pytest.raises(ModelFileError, match=r"'.*bad\.pt' is not a hybridml model file"):
        hm.load_model(tmp_path / "bad.pt")


def test_a_saved_batched_ensemble_loads_and_predicts_bitwise_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0.0, 2.0, (200, 1))
    y = np.exp(-x) + 0.02 * rng.standard_normal((200, 1))
    groups = np.array([f"cell{i}" for i in np.repeat(np.arange(20), 10)])  # labels: strings
    check = hm.Bounds("y [-]", lower=-0.5, name="range")
    ens = hm.BatchedEnsemble(
        inputs=["t [s]"],
        outputs=["y [-]"],
        hidden=(8,),
        n_members=3,
        phases=(hm.Adam(40, lr=1e-2),),
        calibration=0.5,
        coverage=0.8,
        dtype=torch.float64,
        seed=7,
        progress=False,
        checks=[check],
        check_policy="record",
    ).fit(x, y, groups=groups)
    path = tmp_path / "batched.pt"
    ens.save(path)
    with pytest.raises(ModelFileError, match=r"checks \['range'\]; checks= gives \[\]"):
        hm.BatchedEnsemble.load(path)
    back = hm.load_model(path, checks=[check])
    assert type(back) is hm.BatchedEnsemble
    grid = np.linspace(-0.5, 3.0, 29)[:, None]
    a, b = ens.predict(grid), back.predict(grid)
    for name in ("mean", "std", "lower", "upper", "members"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name))
    # another coverage is recalibrated from the stored scores over the same groups
    np.testing.assert_array_equal(
        back.predict(grid, coverage=0.6).upper, ens.predict(grid, coverage=0.6).upper
    )
    assert [c.n_groups for c in back.conformal_] == [c.n_groups for c in ens.conformal_]
    assert [r.name for r in b.report.results] == ["range"]
    assert back.data_hash_ == ens.data_hash_ == hm.data_hash(x, y)
    np.testing.assert_array_equal(back.member_weights_, ens.member_weights_)
    assert back.history_.loss == ens.history_.loss
    assert back.get_params(deep=False)["dtype"] is torch.float64


def test_a_plug_in_writes_and_reads_its_own_model_file_format(tmp_path: Path) -> None:
    """write_model_file / read_model_file: the envelope hybridml's own files use, for a
    plug-in's model: data only, round trip, and every wrong file refused by name."""
    path = tmp_path / "mine.pt"
    meta = {"settings": {"width": 3, "names": ["a", "b"]}, "fitted": {"score": 0.5}}
    tensors = {"w": np.arange(6.0).reshape(2, 3), "ids": torch.tensor([1, 2], dtype=torch.int64)}
    hm.write_model_file(path, "mypkg.Model", 2, meta, tensors, extra={"note": ["x", 1]})
    assert [p.name for p in tmp_path.iterdir()] == ["mine.pt"]  # no temporary file left
    raw = torch.load(path, weights_only=True)  # data only
    assert raw["format"] == "mypkg.Model" and isinstance(raw["meta"], str)
    back = hm.read_model_file(path, "mypkg.Model", 2, what="Model.load", writer="Model.save")
    assert back["meta"] == meta and back["note"] == ["x", 1]
    np.testing.assert_array_equal(back["tensors"]["w"].numpy(), tensors["w"])
    assert back["tensors"]["ids"].dtype == torch.int64

    def read(p: Path, version: int = 2) -> object:
        return hm.read_model_file(p, "mypkg.Model", version, what="Model.load", writer="Model.save")

    # another version: older files are to be saved again, newer ones need an upgrade
    with pytest.raises(
        ModelFileError,
        match=r"Model.load: '.*mine.pt' has format version 2; "
        r"this hybridml reads version 3; save the model again",
    ):
        read(path, 3)
    with pytest.raises(ModelFileError, match="reads version 1; upgrade hybridml"):
        read(path, 1)
    # hybridml's own model file, a bare state dict, another format: each said as such
    est = HybridRegressor(**SMALL).fit(*data())
    est.save(tmp_path / "reg.pt")
    with pytest.raises(
        ModelFileError,
        match=r"not a 'mypkg.Model' model file but a hybridml "
        r"HybridRegressor model file \(read it with hybridml.load_model\)",
    ):
        read(tmp_path / "reg.pt")
    torch.save(est.model_.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ModelFileError, match="bare state dict"):
        read(tmp_path / "bare.pt")
    hm.write_model_file(tmp_path / "other.pt", "other.Thing", 2, {}, {})
    with pytest.raises(ModelFileError, match=r"but a 'other.Thing' file\. Write it with Model"):
        read(tmp_path / "other.pt")
    # damaged metadata, pickled code, no file
    torch.save({**raw, "meta": "{not json"}, tmp_path / "damaged.pt")
    with pytest.raises(ModelFileError, match="is damaged"):
        read(tmp_path / "damaged.pt")
    torch.save({"format": "mypkg.Model", "f": HybridRegressor}, tmp_path / "code.pt")
    with pytest.raises(ModelFileError, match="weights_only=True refused it"):
        read(tmp_path / "code.pt")
    with pytest.raises(FileNotFoundError, match=r"Model\.load: no file"):
        read(tmp_path / "missing.pt")
    # what cannot be written is refused before anything is written
    with pytest.raises(TypeError, match="meta must be JSON"):
        hm.write_model_file(tmp_path / "x.pt", "mypkg.Model", 2, {"f": object()}, {})
    with pytest.raises(TypeError, match=r"extra may not set \['version'\] \(the envelope\)"):
        hm.write_model_file(tmp_path / "x.pt", "mypkg.Model", 2, {}, {}, extra={"version": 3})
    assert not (tmp_path / "x.pt").exists()
