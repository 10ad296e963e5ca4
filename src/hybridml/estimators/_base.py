"""What every estimator shares: settings (``get_params``/``set_params``), ``clone`` and the
input helpers that read rows, inputs and targets from arrays or a :class:`~hybridml.Dataset`.
"""

from __future__ import annotations

import abc
import inspect
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import DataError, InvalidArgumentError, InvalidTypeError, did_you_mean

if TYPE_CHECKING:
    from ..data._input import InputData

__all__ = ["clone"]


# ----------------------------------------------------------------------------- input helpers


def _is_dataset(X: Any) -> bool:
    from ..data._dataset import Dataset

    return isinstance(X, Dataset)


def _is_frame(X: Any) -> bool:
    """A pandas DataFrame (duck-typed: pandas is not imported)."""
    return hasattr(X, "columns") and hasattr(X, "iloc") and hasattr(X, "dtypes")


def _n_rows(X: Any, what: str = "X") -> int:
    if _is_dataset(X):
        return int(X.n_rows)
    if _is_frame(X):
        return len(X)
    arr = np.asarray(X)
    if arr.ndim == 0:
        raise DataError(f"{what} must be an array of rows, shape (n, d); got a scalar.")
    return int(arr.shape[0])


def _as_2d(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what} must be 1-d or 2-d (n, d); got shape {arr.shape}.")
    return arr


def _take(X: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of an array, a Dataset or a DataFrame."""
    if _is_dataset(X):
        return X.select(idx)
    if _is_frame(X):
        return X.iloc[idx]
    return np.asarray(X)[idx]


def _param(estimator: Any, name: str) -> Any:
    params = estimator.get_params() if hasattr(estimator, "get_params") else {}
    if name in params:
        return params[name]
    inner = params.get("estimator")
    return _param(inner, name) if inner is not None else None


def _read(estimator: Any, X: Any, y: Any = None, *, groups: Any = None, what: str) -> InputData:
    """``X``/``y`` through :func:`~hybridml.as_inputs`, by the estimator's ``inputs`` and
    ``outputs`` names (a wrapper's inner estimator's): targets required."""
    from ..data._input import as_inputs

    return as_inputs(
        X,
        y,
        inputs=_param(estimator, "inputs"),
        outputs=_param(estimator, "outputs"),
        groups=groups,
        what=what,
        require_y=True,
    )


def _targets(estimator: Any, X: Any, y: Any) -> np.ndarray:
    """Targets as (n, k) floats; NaN marks a value that was not measured.

    With a Dataset or DataFrame ``X`` and no ``y``, the estimator's ``outputs`` columns are
    read from it (a column it does not have is all NaN).
    """
    data = _read(estimator, X, y, what=type(estimator).__name__)
    assert data.y is not None
    return data.y


def _predict_array(estimator: Any, X: Any) -> tuple[np.ndarray, Any]:
    """``estimator.predict(X)`` as a float (n, k) array, and the raw prediction."""
    raw = estimator.predict(X)
    return _as_2d(np.asarray(raw, dtype=float), "the prediction"), raw


def clone(estimator: Any, **overrides: Any) -> Any:
    """A new, unfitted estimator with the same settings:
    ``type(est)(**est.get_params(deep=False))``.

    Args:
        estimator: any object with ``get_params()`` whose ``__init__`` accepts those settings.
        **overrides: settings to change in the copy (e.g. ``seed=3``).

    Returns:
        The new estimator.
    """
    if not (hasattr(estimator, "get_params") and hasattr(estimator, "fit")):
        raise InvalidTypeError(
            "clone: expected an estimator with fit/predict/get_params, got "
            f"{type(estimator).__name__}."
        )
    params = dict(estimator.get_params(deep=False))
    unknown = set(overrides) - set(params)
    if unknown:
        raise InvalidArgumentError(
            f"clone: {type(estimator).__name__} has no setting(s) {sorted(unknown)}; its "
            f"settings are {sorted(params)}."
        )
    params.update(overrides)
    return type(estimator)(**params)


# ----------------------------------------------------------------------------- settings


class _ParamsMixin:
    """``get_params``/``set_params`` from the ``__init__`` signature (scikit-learn style)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the estimator's settings as a dict.

        With ``deep`` (scikit-learn's convention), a setting that is itself an estimator
        (a :class:`~hybridml.DeepEnsemble`'s ``estimator``) also gives its settings as
        ``"<setting>__<name>"`` entries, which :meth:`set_params` accepts.
        """
        out = {name: getattr(self, name) for name in self._param_names()}
        if deep:
            for name, value in list(out.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
        return out

    def set_params(self, **params: Any) -> Any:
        """Set settings by name and return ``self``; ``"<setting>__<name>"`` sets a setting
        of an inner estimator. An unknown name raises
        :class:`~hybridml.exceptions.InvalidArgumentError` (a ``ValueError``)."""
        valid = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key in [k for k in params if "__" in k and k.split("__", 1)[0] in valid]:
            outer, inner = key.split("__", 1)
            nested.setdefault(outer, {})[inner] = params.pop(key)
        for name, value in params.items():
            if name not in valid:
                raise InvalidArgumentError(
                    f"{type(self).__name__}.set_params: no parameter {name!r}."
                    f"{did_you_mean(name, valid)} Valid: {', '.join(valid)}."
                )
            setattr(self, name, value)
        for outer, inner_params in nested.items():
            getattr(self, outer).set_params(**inner_params)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = [
            f"{n}={getattr(self, n)!r}"
            for n, p in sig.parameters.items()
            if n != "self" and getattr(self, n) is not p.default and getattr(self, n) != p.default
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


class _RegressorTags:
    """What scikit-learn reads to treat an estimator as a regressor (its tags), without
    importing scikit-learn unless scikit-learn asks."""

    _estimator_type = "regressor"

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type="regressor",
            target_tags=TargetTags(required=True, multi_output=True, single_output=True),
            # not a transformer: ``transform`` is a setting (the output transform), which
            # scikit-learn's checks take for a method (they test hasattr(est, "transform"))
            transformer_tags=TransformerTags(preserves_dtype=[]),
            classifier_tags=None,
            regressor_tags=RegressorTags(),
            input_tags=InputTags(allow_nan=False),
        )


class _ChecksPredictions(abc.ABC):
    """Capability: an estimator whose predictions are checked for physics consistency.

    Wrappers (:class:`~hybridml.DeepEnsemble`, :func:`~hybridml.cross_validate`, the
    active learner) use it to run the checks of the underlying estimator once, on the
    combined (e.g. ensemble-mean) prediction, under that estimator's check policy.
    """

    @abc.abstractmethod
    def predict_values(self, X: Any) -> np.ndarray:
        """The predicted values at ``X``, shape ``(n, n_outputs)``, without running checks."""

    @abc.abstractmethod
    def prediction_model(self) -> Any:
        """The fitted model that checks evaluating the model (e.g. residuals) should use."""

    @abc.abstractmethod
    def check_prediction(
        self,
        X: Any,
        values: np.ndarray,
        *,
        model: Any = None,
        policy: Any = None,
        extra: Any = None,
    ) -> Any:
        """Run the estimator's checks on ``values`` predicted at ``X``, apply the policy
        (the estimator's ``check_policy`` unless ``policy`` is given) and return the
        :class:`~hybridml.Prediction` with its report; ``model`` replaces the estimator's
        own model for checks that evaluate it."""


# ----------------------------------------------------------------------------- checked settings


def _policy(value: Any, what: str, param: str = "check_policy") -> Any:
    """``value`` as a :class:`~hybridml.Policy`; anything else is an InvalidArgumentError
    that names ``param`` and lists the valid values."""
    from ..checks import Policy

    if isinstance(value, Policy):
        return value
    valid = [p.value for p in Policy]
    if isinstance(value, str) and value in valid:
        return Policy(value)
    raise InvalidArgumentError(
        f"{what}: {param}={value!r} is not a policy; use one of "
        f"{', '.join(repr(v) for v in valid)} (or hybridml.Policy.RAISE/WARN/RECORD)."
    )


def _adapter(item: Any, i: int, what: str) -> Any:
    """One entry of ``adapters=``: an adapter instance, or a registry name whose adapter
    class can be built without arguments (it is built with its default settings)."""
    from ..adapters._contract import SimulatorAdapter
    from ..adapters._registry import load_simulator

    if isinstance(item, SimulatorAdapter):
        return item
    if isinstance(item, str):
        cls = load_simulator(item)  # an unknown name: UnknownSimulatorError listing them
        try:
            inspect.signature(cls).bind()
        except TypeError:
            needed = [
                p.name
                for p in inspect.signature(cls).parameters.values()
                if p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            raise InvalidArgumentError(
                f"{what}: adapters[{i}] is the name {item!r}, but {cls.__name__} needs "
                f"settings ({', '.join(needed)}), so it cannot be built from its name; pass an "
                f"instance, e.g. adapters=[{cls.__name__}(...)] "
                f"(hybridml.load_simulator({item!r}) returns the class)."
            ) from None
        return cls()
    if isinstance(item, type) and issubclass(item, SimulatorAdapter):
        raise InvalidTypeError(
            f"{what}: adapters[{i}] is the class {item.__name__}, not an adapter; pass an "
            f"instance, e.g. {item.__name__}(...)."
        )
    raise InvalidTypeError(
        f"{what}: adapters[{i}] is {type(item).__name__} {item!r:.60}, not a simulator "
        "adapter; pass adapter instances (e.g. hybridml.load_simulator('ode')(...)) or the "
        "registry names of adapters that need no settings."
    )


def _adapters(adapters: Any, what: str) -> list[Any]:
    """The ``adapters=`` setting as a list of adapter instances (see :func:`_adapter`).

    Raises InvalidTypeError for anything that is not a list of adapters or names, and
    warns (:class:`~hybridml.exceptions.HybridMLWarning`) about an adapter that gives the
    model neither loss terms nor checks, since it then changes nothing.
    """

    from ..adapters._contract import ProvidesChecks, ProvidesConstraints, SimulatorAdapter

    if adapters is None:
        return []
    if isinstance(adapters, SimulatorAdapter | str | type) or not isinstance(
        adapters, list | tuple
    ):
        raise InvalidTypeError(
            f"{what}: adapters must be a list of adapters, got {type(adapters).__name__} "
            f"{adapters!r:.60}; wrap one adapter in a list: adapters=[adapter]."
        )
    out = [_adapter(item, i, what) for i, item in enumerate(adapters)]
    for adapter in out:
        if not isinstance(adapter, ProvidesConstraints | ProvidesChecks):
            _warn_idle(adapter, what, stacklevel=5)  # the caller of fit
    return out


def _warn_idle(adapter: Any, what: str, stacklevel: int) -> None:
    """Warn that ``adapter`` gives the model neither loss terms nor checks."""
    import warnings

    from ..exceptions import HybridMLWarning

    warnings.warn(
        f"{what}: the adapter {type(adapter).__name__} gives no loss terms and no checks "
        f"(its capabilities: {', '.join(adapter.capabilities()) or 'none'}), so it does not "
        "change the model; check its settings, use its simulate() data as measurements, or "
        "leave it out of adapters=.",
        HybridMLWarning,
        stacklevel=stacklevel,
    )


def _checked_regressor_settings(est: Any, validation: Any, what: str) -> list[Any]:
    """Refuse, before any training, the settings of a
    :class:`~hybridml.HybridRegressor` and the ``fit`` arguments that would otherwise fail
    late or be dropped without a word; returns the adapters as instances."""
    from collections.abc import Mapping

    from ..checks import Check

    _policy(est.check_policy, what)
    adapters = _adapters(est.adapters, what)
    if est.physics is not None and not isinstance(est.physics, Mapping):
        raise InvalidTypeError(
            f"{what}: physics must be a mapping name -> LossTerm, e.g. "
            f"physics={{'pde': ResidualLoss(...)}}; got {type(est.physics).__name__}."
        )
    if not isinstance(est.checks, list | tuple):
        raise InvalidTypeError(
            f"{what}: checks must be a list of checks, got {type(est.checks).__name__}; "
            "wrap one check in a list: checks=[check]."
        )
    for i, c in enumerate(est.checks):
        if not isinstance(c, Check):
            raise InvalidTypeError(
                f"{what}: checks[{i}] is {type(c).__name__} {c!r:.60}, not a hybridml.Check; "
                "wrap a function in CustomCheck(fn, name=...)."
            )
    if isinstance(est.hidden, str) or not isinstance(est.hidden, list | tuple):
        raise InvalidTypeError(
            f"{what}: hidden must be a list of layer widths, e.g. hidden=(32, 32); got "
            f"{type(est.hidden).__name__} {est.hidden!r:.60}."
        )
    if isinstance(est.seed, bool) or not isinstance(est.seed, int | np.integer):
        raise InvalidTypeError(f"{what}: seed must be an integer, got {est.seed!r:.60}.")
    if est.simulator is not None and not callable(est.simulator):
        raise InvalidTypeError(
            f"{what}: simulator must be a callable x -> simulated outputs (or None), got "
            f"{type(est.simulator).__name__}."
        )
    if validation is not None and not (
        isinstance(validation, tuple | list) and len(validation) == 2
    ):
        raise InvalidArgumentError(
            f"{what}: validation must be a pair (X_val, y_val), got {type(validation).__name__}"
            + (f" of length {len(validation)}" if isinstance(validation, tuple | list) else "")
            + "."
        )
    if est.early_stopping is not None and validation is None:
        raise InvalidArgumentError(
            f"{what}: early_stopping needs validation data; pass "
            "fit(X, y, validation=(X_val, y_val)) or early_stopping=None."
        )
    return adapters


def _preflight(
    model: Any, sources: list[tuple[Any, dict[str, Any]]], outputs: Any, what: str
) -> None:
    """Evaluate every adapter loss term once on the untrained model, so that an adapter
    that expects other outputs than the model has is reported before training, naming
    the term, the adapter and the model's outputs (the evaluation changes nothing: no
    optimiser step, no random draw)."""

    outs = list(outputs)
    for adapter, terms in sources:
        for name, term in terms.items():
            try:
                term(model)
            except (LookupError, ValueError, RuntimeError) as exc:
                raise InvalidArgumentError(
                    f"{what}: the loss term {name!r} of the adapter {type(adapter).__name__} "
                    f"does not fit this model, whose {len(outs)} output(s) are {outs} "
                    f"({type(exc).__name__}: {exc}). An adapter's loss terms expect the "
                    "outputs it simulates, in its order: set outputs= to the adapter's "
                    "outputs (for an ODE adapter, its state_names)."
                ) from exc


def _check_simulated(sim: Any, y: np.ndarray, what: str) -> None:
    """A residual model's simulator must return a tensor shaped like the targets ``y``
    (a one-output model also takes shape ``(n,)``)."""
    import torch

    shape = tuple(sim.shape) if isinstance(sim, torch.Tensor) else None
    if shape != y.shape and not (shape == y.shape[:1] and y.shape[1] == 1):
        raise InvalidArgumentError(
            f"{what}: simulator returned {f'shape {shape}' if shape else type(sim).__name__} "
            f"for {y.shape[0]} rows; it must return a tensor of shape {y.shape}, one column "
            "per output."
        )


def _check_validation(val: InputData, data: InputData, what: str) -> None:
    """The validation data has the columns of the training data."""
    assert val.y is not None and data.y is not None
    if val.X.shape[1] != data.X.shape[1] or val.y.shape[1] != data.y.shape[1]:
        raise DataError(
            f"{what}: the validation data has {val.X.shape[1]} input and {val.y.shape[1]} "
            f"output column(s); X and y have {data.X.shape[1]} and {data.y.shape[1]}; pass "
            "validation=(X_val, y_val) with the same columns."
        )


def check_ensemble_settings(owner: str, n_members: Any, coverage: Any, calibration: Any) -> None:
    """The settings every ensemble shares: a positive number of members, a coverage in
    (0, 1) and a held-out calibration fraction in (0, 1) or None."""
    if isinstance(n_members, bool) or not isinstance(n_members, int) or n_members < 1:
        raise InvalidArgumentError(
            f"{owner}: n_members must be a positive integer, got {n_members!r}."
        )
    if not (isinstance(coverage, float | int) and 0.0 < float(coverage) < 1.0):
        raise InvalidArgumentError(f"{owner}: coverage must lie in (0, 1), got {coverage!r}.")
    if calibration is not None and not 0.0 < float(calibration) < 1.0:
        raise InvalidArgumentError(
            f"{owner}: calibration is the fraction of rows held out, in (0, 1), or "
            f"None; got {calibration!r}."
        )
