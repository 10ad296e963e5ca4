"""Consistency checks: each passes on good data and fails on bad data, at the right place;
reports and policies."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import hybridml as hm


def _capacity(recovery: float = 0.0) -> hm.Dataset:
    """Two cells' capacity fade over 5 cycles; cell B recovers by ``recovery`` at cycle 3.

    The rows are deliberately not sorted by cycle, and the cells are interleaved.
    """
    return hm.Dataset(
        {
            "cell": ["A", "B", "A", "B", "A", "B", "A", "B", "A", "B"],
            "Cycle": [4, 0, 1, 1, 2, 2, 3, 3, 0, 4],
            "Capacity [A.h]": [
                1.60,  # A, cycle 4
                2.10,  # B, cycle 0
                1.90,  # A, cycle 1
                2.00,  # B, cycle 1
                1.80,  # A, cycle 2
                1.90,  # B, cycle 2
                1.70,  # A, cycle 3
                1.90 + recovery,  # B, cycle 3: recovery after a rest
                2.00,  # A, cycle 0
                1.80,  # B, cycle 4
            ],
        },
        group="cell",
        coordinate="Cycle",
    )


# ------------------------------------------------------------------ Bounds


def test_bounds_pass_and_fail_with_location() -> None:
    ds = _capacity()
    ok = hm.Bounds("Capacity [A.h]", 1.5, 2.2)(ds)
    assert ok.passed and ok.worst_violation == 0.0 and ok.where == {}
    assert ok.n_points == 10 and ok.fraction_violating == 0.0

    bad = hm.Bounds("Capacity [A.h]", lower=1.75, upper=2.05)(ds)
    # below 1.75: A@3 (1.70, by 0.05), A@4 (1.60, by 0.15); above 2.05: B@0 (2.10, by 0.05)
    assert not bad.passed
    assert bad.fraction_violating == pytest.approx(3 / 10)
    assert bad.worst_violation == pytest.approx(0.15)  # in A.h: 1.75 - 1.60
    assert bad.where == {"cell": "A", "Cycle": 4.0, "row": 0}
    assert "1.6 A.h" in bad.message and "by 0.15 A.h" in bad.message
    assert "3 of 10 points" in bad.message


def test_bounds_tolerance_and_one_sided() -> None:
    ds = _capacity()
    # 1.60 is 0.15 below 1.75: within a tolerance of 0.2, outside one of 0.1
    assert hm.Bounds("Capacity [A.h]", lower=1.75, tolerance=0.2)(ds).passed
    res = hm.Bounds("Capacity [A.h]", lower=1.75, tolerance=0.1)(ds)
    assert not res.passed and res.fraction_violating == pytest.approx(1 / 10)
    assert hm.Bounds("Capacity [A.h]", upper=2.1)(ds).passed  # 2.1 itself is allowed


def test_bounds_nan_violates_and_plain_dict_gives_row() -> None:
    data = {"u": np.array([0.5, np.nan, 0.2])}
    res = hm.Bounds("u", 0.0, 1.0)(data)
    assert not res.passed and res.worst_violation == float("inf")
    assert res.where == {"row": 1}  # a dict has no group/coordinate columns


def test_bounds_misspecified() -> None:
    with pytest.raises(ValueError, match="give lower=, upper= or both"):
        hm.Bounds("u")
    with pytest.raises(ValueError, match=r"lower=2\.0 is above upper=1\.0"):
        hm.Bounds("u", 2.0, 1.0)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        hm.Bounds("u", 0.0, tolerance=-1)
    with pytest.raises(KeyError) as info:
        hm.Bounds("capacity [A.h]", 0.0)(_capacity())
    msg = str(info.value)
    assert "'capacity [A.h]'" in msg and "Did you mean 'Capacity [A.h]'" in msg
    with pytest.raises(ValueError, match="no rows"):
        hm.Bounds("u", 0.0)({"u": np.array([])})
    with pytest.raises(ValueError, match="does not hold numbers"):
        hm.Bounds("cell", 0.0)({"cell": np.array(["A"])})


# ------------------------------------------------------------------ Monotone


def test_monotone_per_group_sorted_along() -> None:
    # rows are unsorted and interleaved: the check sorts by cycle within each cell
    res = hm.Monotone("Capacity [A.h]", "Cycle", direction="decreasing")(_capacity())
    assert res.passed and res.worst_violation == 0.0
    assert res.n_points == 8  # 4 steps in each of 2 cells
    assert res.name == "Capacity [A.h] decreasing"


def test_monotone_recovery_within_tolerance_passes() -> None:
    ds = _capacity(recovery=0.03)  # B: 1.90 -> 1.93 from cycle 2 to 3
    # tolerance 0.05 A.h > 0.03 A.h step: passes; without tolerance it fails
    assert hm.Monotone("Capacity [A.h]", "Cycle", tolerance=0.05)(ds).passed
    res = hm.Monotone("Capacity [A.h]", "Cycle")(ds)
    assert not res.passed
    assert res.worst_violation == pytest.approx(0.03)
    assert res.where == {"cell": "B", "Cycle": 3.0, "row": 7}
    assert res.fraction_violating == pytest.approx(1 / 8)
    assert "rises by 0.03 A.h" in res.message and "from Cycle = 2 to 3" in res.message


def test_monotone_without_groups_mixes_cells() -> None:
    ds = _capacity()
    plain = {k: ds[k] for k in ("Cycle", "Capacity [A.h]")}
    # without group labels the two cells are one series sorted by cycle: it is not monotone
    assert not hm.Monotone("Capacity [A.h]", "Cycle")(plain).passed
    # with an explicit group column on a plain dict it passes again
    plain["cell"] = ds["cell"]
    assert hm.Monotone("Capacity [A.h]", "Cycle", group="cell")(plain).passed


def test_monotone_increasing() -> None:
    data = {"t": np.arange(5.0), "soc": np.array([0.1, 0.2, 0.15, 0.3, 0.4])}
    res = hm.Monotone("soc", "t", direction="increasing")(data)
    assert not res.passed and res.worst_violation == pytest.approx(0.05)
    assert res.where == {"t": 2.0, "row": 2}
    assert res.n_points == 4 and res.fraction_violating == pytest.approx(1 / 4)
    assert hm.Monotone("soc", "t", direction="decreasing")(data).fraction_violating == 3 / 4


def test_monotone_misspecified() -> None:
    with pytest.raises(ValueError, match=r"direction must be one of \('increasing', 'decr"):
        hm.Monotone("u", "t", direction="down")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="'Cycles'"):
        hm.Monotone("Capacity [A.h]", "Cycles")(_capacity())
    with pytest.raises(KeyError, match="'cells'"):
        hm.Monotone("Capacity [A.h]", "Cycle", group="cells")(_capacity())


# ------------------------------------------------------------------ Conservation


def _mass(leak: float) -> dict[str, np.ndarray]:
    """Density on a 5-cell grid over 4 time steps; total mass is 1, minus ``leak`` at t=2."""
    t = np.repeat(np.arange(4.0), 5)
    rho = np.full(20, 0.2)
    rho[(t == 2.0)] -= leak / 5
    return {"t": t, "rho": rho}


def _total(data: Mapping[str, np.ndarray]) -> np.ndarray:
    t, rho = np.asarray(data["t"]), np.asarray(data["rho"])
    return np.array([rho[t == k].sum() for k in np.unique(t)])


def test_conservation_pass_and_fail() -> None:
    ok = hm.Conservation(_total)(_mass(leak=0.0))
    assert ok.passed and ok.n_points == 4
    # a leak of 1e-4 is within rtol=1e-3 of the first value (1.0); a leak of 0.01 is not
    assert hm.Conservation(_total)(_mass(leak=1e-4)).passed
    bad = hm.Conservation(_total, name="mass")(_mass(leak=0.01))
    assert not bad.passed and bad.name == "mass"
    assert bad.worst_violation == pytest.approx(0.01)
    assert bad.where == {"index": 2}
    assert bad.fraction_violating == pytest.approx(1 / 4)
    assert "first value 1" in bad.message


def test_conservation_against_expected_value() -> None:
    # with expected=1.05 every step is 0.05 off, far beyond atol=1e-3
    res = hm.Conservation(_total, expected=1.05, rtol=0.0, atol=1e-3)(_mass(0.0))
    assert not res.passed and res.fraction_violating == 1.0
    assert res.worst_violation == pytest.approx(0.05)
    assert hm.Conservation(lambda d: 1.0, expected=1.0)({}).passed  # one scalar value


def test_conservation_per_row_quantity_reports_coordinates() -> None:
    ds = _capacity()
    res = hm.Conservation(lambda d: np.asarray(d["Capacity [A.h]"]), expected=2.0, atol=0.25)(ds)
    # 1.60 (row 0: A, cycle 4) is the only value more than 0.25 from 2.0
    assert not res.passed
    assert res.where == {"index": 0, "cell": "A", "Cycle": 4.0, "row": 0}


def test_conservation_misspecified() -> None:
    with pytest.raises(ValueError, match="pass expected="):
        hm.Conservation(lambda d: 1.0)({})
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        hm.Conservation(lambda d: np.ones((2, 2)))({})
    with pytest.raises(ValueError, match="rtol must be >= 0"):
        hm.Conservation(_total, rtol=-0.1)
    with pytest.raises(KeyError, match="'rho'"):
        hm.Conservation(_total)(hm.Dataset({"t": [0.0]}))


# ------------------------------------------------------------------ ResidualBelow


class _Sampler:
    """Uniform points in [lo, hi] (the BoxSampler interface), from the given generator."""

    names = ("t [s]",)

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.lo + (self.hi - self.lo) * torch.rand(n, 1, generator=generator)


class _Exp(nn.Module):
    """y = exp(-rate * t); with a parameter of the given dtype when ``dtype`` is set."""

    def __init__(self, rate: float, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.rate = rate
        self.p = nn.Parameter(torch.zeros((), dtype=dtype)) if dtype is not None else None

    def forward(self, t: Tensor) -> Tensor:
        return torch.exp(-self.rate * t)


def _decay(model: nn.Module, t: Tensor) -> Tensor:
    """Residual of y' + y = 0, with y' by autograd."""
    y = model(t)
    (dy,) = torch.autograd.grad(y.sum(), t, create_graph=True)
    return dy + y


def test_residual_below_passes_exact_solution_fails_wrong_one() -> None:
    check = hm.ResidualBelow(_decay, _Sampler(0.0, 2.0), threshold=1e-5, n_points=200)
    good = check({}, _Exp(1.0))
    # exp(-t) solves the ODE exactly; autograd differentiates exp exactly, so the only
    # error is float32 rounding (~1e-7), far below the 1e-5 threshold
    assert good.passed and good.n_points == 200 and good.worst_violation < 1e-6

    bad = check({}, _Exp(2.0))
    # exp(-2t): residual -exp(-2t), largest in magnitude at the smallest sampled t
    assert not bad.passed and bad.fraction_violating == 1.0
    pts = _Sampler(0.0, 2.0).sample(200, torch.Generator().manual_seed(0))
    t_min = float(pts.min())
    assert bad.where == {"t [s]": pytest.approx(t_min)}
    assert bad.worst_violation == pytest.approx(np.exp(-2 * t_min), rel=1e-5)
    # the same seed gives the same points: the result is reproducible
    assert check({}, _Exp(2.0)) == bad


def test_residual_below_needs_a_model() -> None:
    check = hm.ResidualBelow(_decay, _Sampler(0.0, 1.0), threshold=1e-5)
    with pytest.raises(ValueError, match=r"'residual'.*no model was given.*model=model"):
        check({})


def test_residual_below_uses_model_dtype_and_leaves_global_state() -> None:
    seen: dict[str, Any] = {}

    def residual(model: nn.Module, t: Tensor) -> Tensor:
        seen["dtype"], seen["grad"], seen["training"] = t.dtype, t.requires_grad, model.training
        return _decay(model, t)

    model = _Exp(1.0, dtype=torch.float64)
    model.train()
    rng_before = torch.random.get_rng_state()
    with torch.no_grad():  # the check enables gradients itself for autograd derivatives
        res = hm.ResidualBelow(residual, _Sampler(0.0, 1.0), 1e-12, n_points=50)({}, model)
    # in float64 exp(-t) satisfies the ODE to ~1e-16, below 1e-12
    assert res.passed
    assert seen == {"dtype": torch.float64, "grad": True, "training": False}
    assert model.training  # mode restored
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # own generator only


def test_residual_below_with_box_sampler() -> None:
    from hybridml.losses import BoxSampler

    sampler = BoxSampler([0.0, -1.0], [1.0, 1.0], names=["t [s]", "x [m]"])

    def residual(model: nn.Module, x: Tensor) -> Tensor:  # u = t * x: u_t - x = 0
        u = model(x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        return du[:, 0] - x[:, 1]

    class Product(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x[:, 0] * x[:, 1] * (1.0 + 0.1 * x[:, 0])  # wrong by 0.2 * t * x in u_t

    res = hm.ResidualBelow(residual, sampler, 1e-3, n_points=100, name="pde")({}, Product())
    assert not res.passed and set(res.where) == {"t [s]", "x [m]"}
    # the residual 0.2 t x is largest near the corners t = 1, |x| = 1
    assert res.where["t [s]"] > 0.8 and abs(res.where["x [m]"]) > 0.8


def test_residual_below_misspecified() -> None:
    with pytest.raises(TypeError, match="sample"):
        hm.ResidualBelow(_decay, object(), 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_points must be >= 1"):
        hm.ResidualBelow(_decay, _Sampler(0, 1), 1.0, n_points=0)
    wrong = hm.ResidualBelow(lambda m, t: t.sum(), _Sampler(0, 1), 1.0, n_points=5)
    with pytest.raises(ValueError, match="one row per point"):
        wrong({}, _Exp(1.0))


# ------------------------------------------------------------------ CustomCheck


def test_custom_check_bool() -> None:
    assert hm.CustomCheck(lambda d, m: True, name="ok")({}).passed
    res = hm.CustomCheck(lambda d, m: np.bool_(False), name="no")({})
    assert not res.passed and res.worst_violation == 1.0 and res.n_points == 1


def test_custom_check_magnitudes() -> None:
    ds = _capacity()

    def over(data: Mapping[str, np.ndarray], model: Any) -> np.ndarray:
        return np.maximum(np.asarray(data["Capacity [A.h]"]) - 2.0, 0.0)

    res = hm.CustomCheck(over, name="over 2 A.h")(ds)
    assert not res.passed and res.worst_violation == pytest.approx(0.1)
    assert res.where == {"cell": "B", "Cycle": 0.0, "row": 1}
    assert res.fraction_violating == pytest.approx(1 / 10)
    # the 0.1 A.h excess is within a threshold of 0.15
    assert hm.CustomCheck(over, name="t", threshold=0.15)(ds).passed
    # an array of another length is located by its index
    short = hm.CustomCheck(lambda d, m: np.array([0.0, 3.0]), name="s")(ds)
    assert short.where == {"index": 1}


def test_custom_check_misspecified() -> None:
    with pytest.raises(TypeError, match="boolean array"):
        hm.CustomCheck(lambda d, m: np.array([True, False]), name="b")({})
    with pytest.raises(ValueError, match="negative magnitudes"):
        hm.CustomCheck(lambda d, m: np.array([-1.0]), name="n")({})
    with pytest.raises(TypeError, match="must be callable"):
        hm.CustomCheck(3, name="x")  # type: ignore[arg-type]


# ------------------------------------------------------------------ reports and policies


def _report() -> hm.ConsistencyReport:
    checks = [
        hm.Bounds("Capacity [A.h]", 1.5, 2.2),
        hm.Monotone("Capacity [A.h]", "Cycle", name="fade"),
    ]
    return hm.run_checks(checks, _capacity(recovery=0.1))


def test_report_summary_and_dict(tmp_path: Path) -> None:
    report = _report()
    assert not report.passed and [r.name for r in report.failures] == ["fade"]
    assert report["fade"].where == {"cell": "B", "Cycle": 3.0, "row": 7}
    text = report.summary()
    assert "Capacity [A.h] bounds" in text and "PASS" in text and "FAIL" in text
    assert "cell=B, Cycle=3, row=7" in text and "1 check(s) failed" in text
    d = report.to_dict()
    assert d["passed"] is False and d["checks"][1]["where"]["cell"] == "B"
    assert json.loads(json.dumps(d)) == d  # JSON-serialisable, numpy types converted
    report.to_json(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text())["checks"][1]["name"] == "fade"
    with pytest.raises(KeyError, match="no check named 'x'"):
        report["x"]


def test_report_is_a_sequence_of_its_results() -> None:
    report = _report()
    names = [r.name for r in report]
    assert len(report) == len(report.results) == len(names) >= 2
    assert names == [r.name for r in report.results]  # in the order the checks were given
    assert all(isinstance(r, hm.CheckResult) for r in report)
    assert [r.name for r in report if not r.passed] == ["fade"]
    empty = hm.run_checks([], _capacity())
    assert len(empty) == 0 and list(empty) == [] and empty.passed


def test_policy_raise_warn_record() -> None:
    report = _report()
    with pytest.raises(hm.ConsistencyError, match="fade") as info:
        report.enforce(hm.Policy.RAISE)
    assert info.value.report is report
    with pytest.warns(hm.ConsistencyWarning, match="fade"):
        report.enforce(hm.Policy.WARN)
    with pytest.warns(hm.ConsistencyWarning):
        report.enforce("warn")  # the policy's value works too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert report.enforce(hm.Policy.RECORD) is report
        passing = hm.run_checks([hm.Bounds("Capacity [A.h]", 0.0)], _capacity())
        assert passing.enforce(hm.Policy.RAISE) is passing
    with pytest.raises(ValueError, match="unknown policy 'loud'"):
        report.enforce("loud")


def test_run_checks_rejects_duplicates_and_non_checks() -> None:
    checks = [hm.Bounds("Capacity [A.h]", 0.0), hm.Bounds("Capacity [A.h]", upper=3.0)]
    with pytest.raises(ValueError, match=r"unique names.*'Capacity \[A\.h\] bounds'.*name="):
        hm.run_checks(checks, _capacity())
    with pytest.raises(TypeError, match=r"not a hybridml\.Check"):
        hm.run_checks([lambda d, m: True], _capacity())  # type: ignore[list-item]


def test_check_repr_shows_settings() -> None:
    assert repr(hm.Bounds("u", 0.0, 1.0)) == (
        "Bounds(column='u', lower=0.0, upper=1.0, tolerance=0.0, name='u bounds')"
    )
