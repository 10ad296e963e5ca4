"""What every estimator shares: settings (``get_params``/``set_params``), ``clone`` and the
input helpers that read rows, inputs and targets from arrays or a :class:`~hybridml.Dataset`.
"""

from __future__ import annotations

import abc
import inspect
from typing import TYPE_CHECKING, Any

import numpy as np

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
        raise ValueError(f"{what} must be an array of rows, shape (n, d); got a scalar.")
    return int(arr.shape[0])


def _as_2d(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 1-d or 2-d (n, d); got shape {arr.shape}.")
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
    """A new, unfitted estimator with the same settings: ``type(est)(**est.get_params())``.

    Args:
        estimator: any object with ``get_params()`` whose ``__init__`` accepts those settings.
        **overrides: settings to change in the copy (e.g. ``seed=3``).

    Returns:
        The new estimator.
    """
    if not (hasattr(estimator, "get_params") and hasattr(estimator, "fit")):
        raise TypeError(
            f"expected an estimator with fit/predict/get_params, got {type(estimator).__name__}."
        )
    params = dict(estimator.get_params())
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(
            f"{type(estimator).__name__} has no setting(s) {sorted(unknown)}; its settings are "
            f"{sorted(params)}."
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
        """Return the estimator's settings as a dict (``deep`` is accepted for compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set settings by name and return ``self``; unknown names raise ``ValueError``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; valid: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = [
            f"{n}={getattr(self, n)!r}"
            for n, p in sig.parameters.items()
            if n != "self" and getattr(self, n) is not p.default and getattr(self, n) != p.default
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


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
