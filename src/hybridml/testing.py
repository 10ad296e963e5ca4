"""The adapter contract test suite.

Every simulator adapter's tests subclass :class:`AdapterContractTests`; pytest runs the
inherited tests against the adapter. A test of a capability the adapter does not declare
is skipped with the reason "adapter does not declare the X capability"::

    from hybridml.testing import AdapterContractTests
    from hybridml_ode import ODEAdapter, exponential_decay


    class TestODEAdapter(AdapterContractTests):
        adapter_name = "ode"  # its entry-point name

        def make_adapter(self):
            return ODEAdapter(exponential_decay, [1.0], (0.0, 1.0), ...)

        def example_params(self):
            return {"k": 2.0}

This module needs pytest (a development dependency); the rest of hybridml does not.
``covered_adapters()`` lists the adapter names that some subclass tests, so a meta-test
can require that every installed adapter is covered.
"""

from __future__ import annotations

import inspect
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from .adapters import (
    ProvidesChecks,
    ProvidesConstraints,
    ProvidesData,
    ProvidesForward,
    SimulatorAdapter,
    available_simulators,
    capabilities,
    load_simulator,
)

__all__ = ["AdapterContractTests", "covered_adapters"]

# adapter name -> qualified names of the test classes that cover it
_COVERED: dict[str, list[str]] = {}

_CAPABILITY_BASES: dict[str, type[SimulatorAdapter]] = {
    "data": ProvidesData,
    "constraints": ProvidesConstraints,
    "checks": ProvidesChecks,
    "forward": ProvidesForward,
}


def covered_adapters() -> dict[str, list[str]]:
    """Adapter names covered by a subclass of :class:`AdapterContractTests` imported so far.

    Returns:
        A new dict: adapter name -> ``"module.TestClass"`` names of the classes testing it.
    """
    return {name: list(classes) for name, classes in _COVERED.items()}


def _require(adapter: SimulatorAdapter, capability: str) -> None:
    if not isinstance(adapter, _CAPABILITY_BASES[capability]):
        pytest.skip(f"adapter does not declare the {capability} capability")


def _datasets_equal(a: Any, b: Any, rtol: float) -> None:
    assert list(a.columns) == list(b.columns), "the two runs returned different columns"
    for col in a.columns:
        x, y = np.asarray(a[col]), np.asarray(b[col])
        if x.dtype.kind in "fc":
            np.testing.assert_allclose(x, y, rtol=rtol, atol=0.0, err_msg=f"column {col!r}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"column {col!r}")


class AdapterContractTests:
    """Tests every simulator adapter must pass; subclass it as ``Test<Adapter>``.

    A subclass sets :attr:`adapter_name` and implements :meth:`make_adapter`; the other
    hooks have defaults or are needed only for the capabilities the adapter declares:

    ==============================  ============================================
    hook                            needed for
    ==============================  ============================================
    :meth:`example_params`          data (default ``{}``: the adapter's defaults)
    :meth:`sweep_param_sets`        data (default: three copies of example_params)
    :meth:`failing_params`          data (default ``None``: that test is skipped)
    :meth:`example_model`           constraints (and checks that use a model)
    :meth:`forward_params`          forward
    ==============================  ============================================

    Tolerances (class attributes, override with a reason in a comment):
    :attr:`sweep_rtol`, :attr:`dtype_rtol`, :attr:`fd_step`, :attr:`fd_rtol`,
    :attr:`fd_atol`.
    """

    #: the adapter's entry-point name (``hybridml.simulators`` group)
    adapter_name: ClassVar[str]

    #: relative tolerance between serial and threaded sweep results. The same code runs on
    #: the same inputs, so results should agree to rounding; 1e-12 allows for a different
    #: summation order in threaded linear algebra.
    sweep_rtol: ClassVar[float] = 1e-12

    #: relative tolerance between a loss term's value in float32 and float64. float32 has
    #: about 7 significant digits; autograd derivatives inside a residual lose one or two.
    dtype_rtol: ClassVar[float] = 1e-3

    #: finite-difference step, relative to ``max(|p|, 1)`` for each parameter. Central
    #: differences have O(step²) truncation error and O(solver tolerance / step) noise.
    fd_step: ClassVar[float] = 1e-4
    #: tolerances between ``forward``'s autograd gradient and central finite differences
    fd_rtol: ClassVar[float] = 1e-3
    fd_atol: ClassVar[float] = 1e-6

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = getattr(cls, "adapter_name", None)
        if isinstance(name, str):
            _COVERED.setdefault(name, []).append(f"{cls.__module__}.{cls.__qualname__}")

    # ---------------------------------------------------------------- hooks

    def make_adapter(self) -> SimulatorAdapter:
        """Return a fresh, small (fast to simulate) instance of the adapter under test."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement make_adapter() returning the adapter."
        )

    def example_params(self) -> dict[str, float]:
        """Valid physical parameters for ``simulate`` (default: the adapter's defaults)."""
        return {}

    def sweep_param_sets(self) -> list[dict[str, float]]:
        """Three valid parameter sets for the sweep tests; override with distinct ones."""
        return [self.example_params() for _ in range(3)]

    def failing_params(self) -> dict[str, float] | None:
        """Parameters whose simulation fails (raises), or None to skip that test."""
        return None

    def example_model(self) -> nn.Module:
        """A small model on which the adapter's loss terms (and model checks) evaluate."""
        raise NotImplementedError(
            f"{type(self).__name__} tests an adapter with the constraints capability; "
            "implement example_model() returning a small model its loss terms accept."
        )

    def forward_params(self) -> Tensor:
        """Parameter values (shape ``(len(parameter_names),)``) for testing ``forward``."""
        raise NotImplementedError(
            f"{type(self).__name__} tests an adapter with the forward capability; "
            "implement forward_params() returning a tensor of parameter values."
        )

    # ---------------------------------------------------------------- registry

    def test_registered_under_its_name(self) -> None:
        adapter = self.make_adapter()
        installed = available_simulators()
        assert self.adapter_name in installed, (
            f"no adapter is registered as {self.adapter_name!r} (installed: {installed}); "
            "add it to the 'hybridml.simulators' entry points and `pip install -e` it."
        )
        assert load_simulator(self.adapter_name) is type(adapter)

    def test_name_and_description(self) -> None:
        cls = type(self.make_adapter())
        assert cls.name == self.adapter_name, "the class's `name` must be its entry-point name"
        assert isinstance(cls.description, str) and cls.description.strip(), (
            "set a one-line `description` (shown by `hybridml simulators`)"
        )

    def test_capabilities_consistent(self) -> None:
        adapter = self.make_adapter()
        cls = type(adapter)
        declared = adapter.capabilities()
        assert declared, "an adapter must declare at least one capability base"
        assert declared == capabilities(cls) == capabilities(adapter)
        for cap in declared:
            assert isinstance(adapter, _CAPABILITY_BASES[cap])
        assert not inspect.isabstract(cls), (
            f"abstract methods not implemented: {sorted(cls.__abstractmethods__)}"
        )

    # ---------------------------------------------------------------- data

    def _data_adapter(self) -> ProvidesData:
        adapter = self.make_adapter()
        _require(adapter, "data")
        assert isinstance(adapter, ProvidesData)
        return adapter

    def test_simulate_returns_dataset(self) -> None:
        from .data._dataset import Dataset

        ds = self._data_adapter().simulate(self.example_params())
        assert isinstance(ds, Dataset)
        assert ds.n_rows > 0 and len(ds.columns) > 0, "simulate returned no data"
        for col in ds.columns:
            if col == ds.group:
                continue  # group labels are strings without a unit
            assert ds.units.get(col), f"column {col!r} has no unit; name it like 'x [m]'"
            values = np.asarray(ds[col])
            assert np.isfinite(values).all(), f"column {col!r} has non-finite values"

    def test_sweep_threaded_matches_serial(self) -> None:
        adapter = self._data_adapter()
        param_sets = self.sweep_param_sets()
        serial = adapter.sweep(param_sets, progress=False)
        with ThreadPoolExecutor(2) as pool:
            threaded = adapter.sweep(param_sets, executor=pool, progress=False)
        assert serial.n_failed == 0 and threaded.n_failed == 0, [
            f.message for f in serial.failures + threaded.failures
        ]
        assert len(threaded.results) == len(param_sets)
        for one, other in zip(serial.results, threaded.results, strict=True):
            _datasets_equal(one, other, self.sweep_rtol)

    def test_sweep_records_failure(self) -> None:
        adapter = self._data_adapter()
        bad = self.failing_params()
        if bad is None:
            pytest.skip("the test class defines no failing_params()")
        good = self.example_params()
        with ThreadPoolExecutor(2) as pool:
            result = adapter.sweep([good, bad, good], executor=pool, progress=False)
        assert result.n_failed == 1
        failure = result.failures[0]
        assert failure.index == 1 and failure.message.strip()
        assert result.results[1] is None
        assert result.results[0] is not None and result.results[2] is not None

    def test_sweep_cache_resumes(self, tmp_path: Path) -> None:
        adapter = self._data_adapter()
        param_sets = self.sweep_param_sets()
        first = adapter.sweep(param_sets, cache_dir=tmp_path, progress=False)
        assert first.n_cached == 0
        second = adapter.sweep(param_sets, cache_dir=tmp_path, progress=False)
        assert second.n_cached == len(param_sets), "the second sweep recomputed cached runs"
        for one, other in zip(first.results, second.results, strict=True):
            _datasets_equal(one, other, rtol=0.0)  # saved and loaded exactly

    # ---------------------------------------------------------------- constraints

    def _loss_terms(self) -> dict[str, Any]:
        from .losses._base import LossTerm

        adapter = self.make_adapter()
        _require(adapter, "constraints")
        assert isinstance(adapter, ProvidesConstraints)
        terms = adapter.loss_terms()
        assert isinstance(terms, dict) and terms, "loss_terms() returned no terms"
        for key, term in terms.items():
            assert isinstance(key, str) and key, f"loss term name {key!r} is not a string"
            assert isinstance(term, LossTerm), f"loss term {key!r} is not a LossTerm"
        return terms

    def test_loss_terms_differentiable(self) -> None:
        terms = self._loss_terms()
        model = self.example_model()
        params = [p for p in model.parameters() if p.requires_grad]
        assert params, "example_model() has no trainable parameters"
        for key, term in terms.items():
            value = term(model)
            assert isinstance(value, Tensor) and value.ndim == 0, f"{key}: not a 0-d tensor"
            assert torch.isfinite(value), f"{key}: loss is {value.item()}"
            grads = torch.autograd.grad(value, params, allow_unused=True)
            present = [g for g in grads if g is not None]
            assert present, f"{key}: the loss does not depend on the model's parameters"
            assert all(torch.isfinite(g).all() for g in present), f"{key}: non-finite gradient"
            assert any(bool((g != 0).any()) for g in present), f"{key}: gradient is all zero"

    def test_loss_terms_float64(self) -> None:
        terms = self._loss_terms()
        model = self.example_model()
        values = {key: term(model).item() for key, term in terms.items()}
        model.to(torch.float64)  # the trainer's L-BFGS phase converts model and terms so
        for key, term in terms.items():
            for module in term.modules():  # .to() converts buffers, not plain attributes
                plain = [k for k, v in vars(module).items() if isinstance(v, Tensor)]
                assert not plain, (
                    f"{key}: {type(module).__name__} keeps tensors {plain} as plain attributes;"
                    " register them with register_buffer so .to(dtype) converts them"
                )
            term.to(torch.float64)
            value = term(model).detach()
            assert value.dtype == torch.float64, f"{key}: float64 model gave {value.dtype}"
            assert torch.isfinite(value)
            # see dtype_rtol; atol covers terms that are ~0 at the example model
            assert math.isclose(value.item(), values[key], rel_tol=self.dtype_rtol, abs_tol=1e-6)

    def test_loss_terms_resample(self) -> None:
        terms = self._loss_terms()
        model = self.example_model()
        for key, term in terms.items():
            term.resample(torch.Generator().manual_seed(0))
            assert torch.isfinite(term(model)), f"{key}: non-finite after resample()"

    # ---------------------------------------------------------------- checks

    def _checks(self, adapter: SimulatorAdapter) -> list[Any]:
        from .checks import Check

        _require(adapter, "checks")
        assert isinstance(adapter, ProvidesChecks)
        checks = adapter.checks()
        assert isinstance(checks, list)
        for check in checks:
            assert isinstance(check, Check), f"{check!r} is not a hybridml Check"
            assert isinstance(check.name, str) and check.name, f"{check!r} has no name"
        names = [c.name for c in checks]
        assert len(set(names)) == len(names), f"check names are not unique: {names}"
        return checks

    def test_checks_unique_names(self) -> None:
        self._checks(self.make_adapter())

    def test_own_data_passes_own_checks(self) -> None:
        from .checks import run_checks

        adapter = self.make_adapter()
        checks = self._checks(adapter)
        _require(adapter, "data")
        assert isinstance(adapter, ProvidesData)
        report = run_checks(checks, adapter.simulate(self.example_params()))
        assert report.passed, f"the simulator's own data fails its checks:\n{report.summary()}"

    def test_checks_accept_a_model(self) -> None:
        from .checks import CheckResult, run_checks

        adapter = self.make_adapter()
        checks = self._checks(adapter)
        _require(adapter, "data")
        _require(adapter, "constraints")
        assert isinstance(adapter, ProvidesData)
        data = adapter.simulate(self.example_params())
        report = run_checks(checks, data, self.example_model())
        assert all(isinstance(r, CheckResult) for r in report.results)

    # ---------------------------------------------------------------- forward

    def test_forward_matches_finite_differences(self) -> None:
        adapter = self.make_adapter()
        _require(adapter, "forward")
        assert isinstance(adapter, ProvidesForward)
        p0 = torch.as_tensor(self.forward_params(), dtype=torch.float64).detach()
        assert p0.shape == (len(adapter.parameter_names),), (
            f"forward_params() has shape {tuple(p0.shape)}; parameter_names is "
            f"{adapter.parameter_names}"
        )
        p = p0.clone().requires_grad_(True)
        out = adapter.forward(p)
        assert torch.isfinite(out).all(), "forward returned non-finite values"
        # Check the gradient of a random projection <v, forward(p)>: one backward pass and
        # two forward runs per parameter, whatever the output's size.
        v = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype)
        (grad,) = torch.autograd.grad((out * v).sum(), p)
        fd = torch.empty_like(p0)
        with torch.no_grad():
            for i in range(p0.numel()):
                h = self.fd_step * max(abs(float(p0[i])), 1.0)
                up, down = p0.clone(), p0.clone()
                up[i] += h
                down[i] -= h
                f_up = (adapter.forward(up) * v).sum()
                f_down = (adapter.forward(down) * v).sum()
                fd[i] = (f_up - f_down) / (2 * h)
        torch.testing.assert_close(
            grad.to(torch.float64),
            fd,
            rtol=self.fd_rtol,
            atol=self.fd_atol,
            msg=lambda m: f"forward's gradient disagrees with finite differences\n{m}",
        )
