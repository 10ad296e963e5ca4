"""The estimator facade: a hybrid model in the scikit-learn convention.

``HybridRegressor(...)`` stores settings; ``fit`` builds the network, collects the loss terms
(measurements + the adapters' physics + the user's), trains with :class:`~hybridml.Trainer`
and returns ``self``; learned state ends in ``_``. ``predict`` returns a :class:`Prediction`
that carries the consistency report of the checks (the adapters' plus the user's).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..adapters._contract import ProvidesChecks, ProvidesConstraints, SimulatorAdapter
from ..checks import Check, Policy, run_checks
from ..data._input import InputData, as_inputs
from ..exceptions import DataError, InvalidArgumentError, NotFittedError
from ..losses._base import DataLoss, LossTerm
from ..training._phases import DEFAULT_ADAM_STEPS, DEFAULT_LR
from ._base import (
    _check_simulated,
    _check_validation,
    _checked_regressor_settings,
    _ChecksPredictions,
    _is_dataset,
    _is_frame,
    _ParamsMixin,
    _policy,
    _preflight,
    _RegressorTags,
    _warn_idle,
)
from ._model_meta import data_hash
from ._network import _assemble, _masked_stats
from ._prediction import Prediction

if TYPE_CHECKING:
    from ..nn import OutputTransform
    from ..training import EarlyStopping, History, Phase
    from ..training._balancing import Balancer

__all__ = ["HybridRegressor", "Prediction"]


class HybridRegressor(_ParamsMixin, _RegressorTags, _ChecksPredictions):
    """A hybrid (physics + neural network) regressor in the scikit-learn convention.

    The network maps ``inputs`` to ``outputs``. It is fitted to the measurements and, at the
    same time, to the physics: the loss terms of every adapter in ``adapters`` that declares
    the *constraints* capability, plus the terms in ``physics``. With ``simulator`` it is a
    residual (discrepancy) model: ``simulator(x) + network(x)``.

    Args:
        inputs: names of the input columns (when fitting a :class:`~hybridml.Dataset`).
        outputs: names of the model's outputs. A dataset may measure only some of them;
            the others are learned from the physics alone.
        hidden: widths of the hidden layers.
        activation: activation module class.
        adapters: simulator adapters whose loss terms and checks are used: instances, or
            the registry names (:func:`~hybridml.available_simulators`) of adapters that
            need no settings (built with their defaults). A class is refused (pass an
            instance); an adapter with neither loss terms nor checks gets a warning.
        physics: extra named loss terms (e.g. a :class:`~hybridml.ResidualLoss`).
        weights: fixed loss weights by term name (``"data"`` is the measurement term), or a
            :class:`~hybridml.Balancer` for adaptive balancing.
        simulator: a callable ``x -> simulated outputs`` for a residual model.
        transform: an output transform for hard constraints.
        checks: extra consistency checks run by ``predict``.
        check_policy: what a failed check does in ``predict``: ``"raise"``, ``"warn"``
            or ``"record"`` (or a :class:`~hybridml.Policy`); checked by ``fit``.
        synthetic_weight: the data-loss weight of a row a :class:`~hybridml.Dataset` marks
            as not measured (``measured=False``: simulated, synthetic) relative to a
            measured row's 1 (the data term stays a weighted mean; 0 leaves those rows out).
            The default 1 weighs every row the same.
        adam_steps: Adam iterations (default 2000).
        lr: Adam learning rate (default 1e-3).
        quasi_newton_steps: quasi-Newton iterations after Adam (in float64; 0 to skip;
            ``None``: the default, 200). The phases are
            :func:`~hybridml.default_phases` ``(adam_steps, quasi_newton_steps, lr=lr,
            quasi_newton=quasi_newton)``, the trainer's and the study config's defaults.
        lbfgs_steps: the older name of ``quasi_newton_steps`` (also for BFGS); giving both
            with different values is an error.
        quasi_newton: the method of those iterations: ``"lbfgs"`` (:class:`~hybridml.LBFGS`)
            or ``"bfgs"`` (:class:`~hybridml.BFGS`, dense self-scaled BFGS: much stronger
            on physics losses, for networks up to 10,000 parameters).
        phases: the optimiser phases (:class:`~hybridml.Phase` objects, e.g.
            ``(hm.Adam(3000, lr=2e-3), hm.BFGS(500))`` or your own); when given, it wins
            over ``adam_steps``, ``lr``, ``quasi_newton_steps`` and ``quasi_newton``.
        early_stopping: early stopping on the validation data passed to ``fit``.
        seed: seeds the network's initialisation and the trainer (same seed, same numbers).
        progress: show a progress bar (``None``: on a terminal or in a notebook).
        checkpoint: path of a checkpoint file; training resumes from it if it exists and
            was written by the same fit (same data, settings, architecture and seed: the
            checkpoint holds their fingerprint). A checkpoint of another fit raises
            :class:`~hybridml.exceptions.CheckpointMismatchError`; delete it or pass
            another path to start fresh. A :class:`~hybridml.DeepEnsemble` gives each
            member its own path.
        device: where to train: ``"auto"`` (a CUDA GPU when one is available), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device`; ``None`` (the default)
            trains on the CPU as before (``"cpu"`` gives bitwise the same numbers). The
            fitted ``model_`` stays on that device and ``predict`` sends the inputs
            there. A ``simulator`` must accept inputs on that device. Model files are
            device-free: :meth:`save` writes CPU tensors, :meth:`load` reads them onto
            the CPU, and the setting is not stored (a loaded model has ``device=None``).

    Attributes:
        model_: the fitted torch model.
        history_: the training :class:`~hybridml.History`.
        losses_: the loss terms the model was trained with.
        checks_: the checks ``predict`` runs.
        n_features_in_: number of inputs.
    """

    def __init__(
        self,
        *,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        hidden: Sequence[int] = (32, 32, 32),
        activation: type[nn.Module] = nn.Tanh,
        adapters: Sequence[SimulatorAdapter | str] = (),
        physics: Mapping[str, LossTerm] | None = None,
        weights: Mapping[str, float] | Balancer | None = None,
        simulator: Callable[[Tensor], Tensor] | None = None,
        transform: OutputTransform | None = None,
        checks: Sequence[Check] = (),
        check_policy: Policy | str = Policy.WARN,
        synthetic_weight: float = 1.0,
        adam_steps: int = DEFAULT_ADAM_STEPS,
        lr: float = DEFAULT_LR,
        quasi_newton_steps: int | None = None,
        lbfgs_steps: int | None = None,
        quasi_newton: str = "lbfgs",
        phases: Sequence[Phase] | None = None,
        early_stopping: EarlyStopping | None = None,
        seed: int = 0,
        progress: bool | None = None,
        checkpoint: str | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.hidden = hidden
        self.activation = activation
        self.adapters = adapters
        self.physics = physics
        self.weights = weights
        self.simulator = simulator
        self.transform = transform
        self.checks = checks
        self.check_policy = check_policy
        self.synthetic_weight = synthetic_weight
        self.adam_steps = adam_steps
        self.lr = lr
        self.quasi_newton_steps = quasi_newton_steps
        self.lbfgs_steps = lbfgs_steps
        self.quasi_newton = quasi_newton
        self.phases = phases
        self.early_stopping = early_stopping
        self.seed = seed
        self.progress = progress
        self.checkpoint = checkpoint
        self.device = device

    # ------------------------------------------------------------------ data handling
    def _read(self, X: Any, y: Any, what: str) -> InputData:
        """Inputs and targets through :func:`~hybridml.as_inputs` (targets required)."""
        return as_inputs(X, y, inputs=self.inputs, outputs=self.outputs, what=what, require_y=True)

    def _read_inputs(self, X: Any, what: str) -> InputData:
        """The inputs of ``X`` for a fitted model: by the fitted input names when they were
        given or read from the data, else by position; the column count must match."""
        by_name = getattr(self, "named_inputs_", False) and (_is_dataset(X) or _is_frame(X))
        data = as_inputs(X, inputs=self.input_names_ if by_name else None, what=what)
        if data.X.shape[1] != self.n_features_in_:
            raise DataError(
                f"{what}: X has {data.X.shape[1]} columns; the model was fitted on "
                f"{self.n_features_in_} ({self.input_names_}) (X has {data.X.shape[1]} "
                f"features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input)."
            )
        return data

    def _row_weights(self, measured: np.ndarray) -> np.ndarray | None:
        """Per-row data-loss weights: 1 for measured rows, ``synthetic_weight`` for the
        others; None when every row weighs the same (the loss is then exactly unweighted)."""
        w = self.synthetic_weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0.0 <= w < np.inf:
            raise InvalidArgumentError(
                f"HybridRegressor: synthetic_weight must be a finite number >= 0, got {w!r}."
            )
        if measured.all() or float(w) == 1.0:
            return None
        if float(w) == 0.0 and not measured.any():
            raise DataError(
                "HybridRegressor.fit: every row is marked not measured and synthetic_weight=0 "
                "leaves nothing to fit; raise synthetic_weight or add measured rows."
            )
        return np.where(measured, 1.0, float(w))

    # ------------------------------------------------------------------ fit / predict
    def _build_model(self, x: np.ndarray, y: np.ndarray) -> nn.Module:
        lo, hi = x.min(axis=0), x.max(axis=0)
        hi = np.where(hi > lo, hi, lo + 1.0)
        target, mean, std = y, None, None
        if self.simulator is not None:
            # the network learns the simulator's error: scale it to that error's spread
            with torch.no_grad():
                sim = self.simulator(torch.as_tensor(x, dtype=torch.get_default_dtype()))
            _check_simulated(sim, y, "HybridRegressor.fit")
            target = y - sim.detach().cpu().numpy().reshape(y.shape)
        if self.transform is None:
            mean, std = _masked_stats(target)
        return _assemble(self, x.shape[1], y.shape[1], lo, hi, mean, std)

    def _loss_terms(
        self, x: np.ndarray, y: np.ndarray, measured: np.ndarray
    ) -> tuple[dict[str, LossTerm], list[tuple[Any, dict[str, LossTerm]]]]:
        """The loss terms, and each constraining adapter with the terms it gave."""
        losses: dict[str, LossTerm] = {"data": DataLoss(x, y, self._row_weights(measured))}
        sources = [
            (a, dict(a.loss_terms())) for a in self.adapters_ if isinstance(a, ProvidesConstraints)
        ]
        for terms in [*(t for _, t in sources), dict(self.physics or {})]:
            for name, term in terms.items():  # the trainer checks that each is a LossTerm
                if name in losses:
                    raise InvalidArgumentError(
                        f"HybridRegressor: two loss terms are named {name!r}."
                    )
                losses[name] = term
        return losses, sources

    def _all_checks(self, sources: list[tuple[SimulatorAdapter, Any]]) -> list[Check]:
        checks: list[Check] = []
        gave_terms = {id(a) for a, terms in sources if terms}
        for adapter in self.adapters_:
            own = list(adapter.checks()) if isinstance(adapter, ProvidesChecks) else []
            declares = isinstance(adapter, ProvidesConstraints | ProvidesChecks)
            if declares and not own and id(adapter) not in gave_terms:  # others: warned
                _warn_idle(adapter, "HybridRegressor.fit", stacklevel=4)
            checks.extend(own)
        checks.extend(self.checks)
        return checks

    def fit(self, X: Any, y: Any = None, *, validation: tuple[Any, Any] | None = None) -> Any:
        """Fit the model to measurements ``(X, y)`` (or a Dataset ``X``) and the physics.

        Args:
            X: inputs, shape ``(n, d_in)`` (arrays, lists, tensors), or a
                :class:`~hybridml.Dataset` or pandas DataFrame read by the ``inputs`` and
                ``outputs`` column names (see :func:`~hybridml.as_inputs`). A Dataset's
                units are kept for the predictions, and its rows marked not measured are
                weighted by ``synthetic_weight``.
            y: targets, shape ``(n, d_out)``; NaN marks a value that was not measured.
            validation: optional ``(X_val, y_val)`` for early stopping.

        Returns:
            ``self``.

        Raises:
            InvalidArgumentError, InvalidTypeError: before any training, for a setting it
                cannot use (naming it): an adapter given as a class or as the name of one
                that needs settings, ``check_policy``, ``physics``, ``checks``, ``hidden``,
                ``seed``, ``simulator``, ``validation``, early stopping without validation
                data, or an adapter loss term that does not fit the model's outputs.
            UnknownSimulatorError: an adapter name that is not installed.
            DataError: for inputs or targets it cannot read (see :func:`~hybridml.as_inputs`).
            DeviceError: a ``device`` this machine cannot use (e.g. ``"cuda"`` without
                CUDA), before any training.
        """
        from .._device import resolve_device
        from ..training import Trainer
        from ..training._balancing import Balancer
        from ..training._phases import phases_from_settings

        phases = phases_from_settings(
            "HybridRegressor",
            phases=self.phases,
            adam_steps=self.adam_steps,
            lr=self.lr,
            quasi_newton_steps=self.quasi_newton_steps,
            lbfgs_steps=self.lbfgs_steps,
            quasi_newton=self.quasi_newton,
        )
        self.adapters_ = _checked_regressor_settings(self, validation, "HybridRegressor.fit")
        device = resolve_device(self.device, what="HybridRegressor: device")
        data = self._read(X, y, "HybridRegressor.fit")
        x, yy = data.X, data.y
        assert yy is not None
        ins, outs = list(data.input_names), list(data.output_names)
        model = self._build_model(x, yy)
        losses, sources = self._loss_terms(x, yy, data.measured)
        _preflight(model, sources, outs, "HybridRegressor.fit")
        val_losses = None
        if validation is not None:
            val = self._read(validation[0], validation[1], "HybridRegressor.fit (validation)")
            assert val.y is not None
            _check_validation(val, data, "HybridRegressor.fit")
            val_losses = {"data": DataLoss(val.X, val.y)}
        balancer = self.weights if isinstance(self.weights, Balancer) else None
        fixed = None if isinstance(self.weights, Balancer) else self.weights
        trainer = Trainer(
            phases,
            balancer=balancer if balancer is not None else fixed,
            early_stopping=self.early_stopping,
            checkpoint=self.checkpoint,
            seed=self.seed,
            progress=self.progress,
            device=device,
        )
        resume = self.checkpoint is not None and os.path.exists(self.checkpoint)
        self.history_: History = trainer.fit(model, losses, val_losses=val_losses, resume=resume)
        self.model_ = model
        self.losses_ = losses
        self.checks_ = self._all_checks(sources)
        self.input_names_ = ins
        self.output_names_ = outs
        self.named_inputs_ = data.named
        self.units_ = {name: data.units.get(name, "") for name in (*ins, *outs)}
        self.n_features_in_ = x.shape[1]
        self.data_hash_ = data_hash(x, yy)  # recorded in the model file
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X, y) first."
            )

    def predict(
        self, X: Any, *, policy: Policy | str | None = None, extra: Mapping[str, Any] | None = None
    ) -> Prediction:
        """Predict the outputs at ``X`` and run the consistency checks on the prediction.

        Args:
            X: inputs, shape ``(n, d_in)``, or a Dataset or DataFrame with the input columns.
            policy: overrides ``check_policy`` for this call.
            extra: extra columns (e.g. group labels) the checks may need, each of length n.

        Returns:
            A :class:`Prediction` with the values (named by the outputs, with their units)
            and the consistency report.
        """
        if policy is not None:
            _policy(policy, "HybridRegressor.predict", "policy")
        values = self.predict_values(X)
        return self.check_prediction(X, values, policy=policy, extra=extra)

    def prediction_model(self) -> nn.Module:
        """The fitted torch model (what checks that evaluate the model use)."""
        self._check_fitted()
        return self.model_

    def predict_values(self, X: Any) -> np.ndarray:
        """The predicted outputs at ``X``, shape ``(n, n_outputs)``, without running checks
        (what :meth:`predict` returns as ``values``)."""
        self._check_fitted()
        x = self._read_inputs(X, "HybridRegressor.predict").X
        param = next(iter(self.model_.parameters()), None)
        dtype = param.dtype if param is not None else torch.get_default_dtype()
        device = param.device if param is not None else None  # where the model was fitted
        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=dtype, device=device)
            values: np.ndarray = self.model_(xt).detach().cpu().numpy()
        return values

    def check_prediction(
        self,
        X: Any,
        values: Any,
        *,
        model: Any = None,
        policy: Policy | str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Prediction:
        """Run this model's checks on ``values`` predicted at ``X`` and apply the policy.

        :meth:`predict` is ``check_prediction(X, predict_values(X))``; an ensemble calls it
        with its mean prediction and a model of the members' mean.

        Args:
            X: the inputs the values were predicted at (as for :meth:`predict`).
            values: predicted outputs, shape ``(n, n_outputs)``.
            model: the model checks that evaluate the model use (default: ``model_``).
            policy: overrides ``check_policy`` for this call.
            extra: extra columns (e.g. group labels) the checks may need, each of length n.

        Returns:
            A :class:`Prediction` of ``values`` with the consistency report.
        """
        self._check_fitted()
        x = self._read_inputs(X, "HybridRegressor.predict").X
        values = np.asarray(values)
        values = values[:, None] if values.ndim == 1 else values
        if values.shape != (x.shape[0], len(self.output_names_)):
            raise DataError(
                f"HybridRegressor.check_prediction: values have shape {values.shape}; expected "
                f"({x.shape[0]}, {len(self.output_names_)}) for {x.shape[0]} rows and the "
                f"outputs {self.output_names_}."
            )
        data: dict[str, np.ndarray] = {n: x[:, i] for i, n in enumerate(self.input_names_)}
        data.update({n: values[:, j] for j, n in enumerate(self.output_names_)})
        from ..data._dataset import Dataset

        group = coordinate = None
        if isinstance(X, Dataset):
            group, coordinate = X.group, X.coordinate
            for name in (group, coordinate):
                if name is not None and name not in data:
                    data[name] = np.asarray(X[name])
        for name, col in (extra or {}).items():
            data[name] = np.asarray(col)
        if coordinate is None and len(self.input_names_) == 1:
            coordinate = self.input_names_[0]
        # a Dataset lets the checks say where a violation is (group, coordinate); a
        # prediction with NaN/inf cannot be one, and the checks report those as violations
        checked: Mapping[str, Any] = data
        if np.isfinite(values).all():
            checked = Dataset(data, group=group, coordinate=coordinate, source="prediction")
        report = run_checks(self.checks_, checked, self.model_ if model is None else model)
        what = "HybridRegressor.predict"
        report.enforce(
            _policy(self.check_policy, what) if policy is None else _policy(policy, what, "policy")
        )
        units = getattr(self, "units_", {})
        return Prediction(values, tuple(self.output_names_), report, data, dict(units))

    def score(self, X: Any, y: Any = None) -> float:
        """Coefficient of determination R² of the prediction (over measured targets)."""
        yy = self._read(X, y, "HybridRegressor.score").y
        assert yy is not None
        pred = np.asarray(self.predict(X, policy=Policy.RECORD))
        mask = np.isfinite(yy)
        resid = ((pred - yy)[mask] ** 2).sum()
        total = ((yy[mask] - yy[mask].mean()) ** 2).sum()
        return float(1.0 - resid / total) if total > 0 else float("nan")

    # ------------------------------------------------------------------ model files
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted model to a model file that :meth:`load` reads back.

        The file (written atomically) holds data only, readable with
        ``torch.load(..., weights_only=True)``: the settings that are data, the input and
        output names and units, the history, the weights with the input and output
        scaling, and the package versions. Settings that are objects (adapters, checks,
        simulator, transform, physics, a balancer, phases, early stopping) are described
        (class, name), not stored: see :meth:`load`.
        """
        from ._persist import save_regressor

        save_regressor(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **settings: Any) -> HybridRegressor:
        """Read a model file written by :meth:`save`, on the CPU; it predicts bitwise the same.

        Args:
            path: the model file.
            **settings: settings to give the loaded model. Give again the objects it was
                fitted with: ``adapters=`` (unless they were registry names, or instances
                that equal their class built without settings: those are re-created from
                the registry), ``checks=``, ``simulator=``, ``transform=``, and an
                ``activation=`` outside ``torch.nn``. ``physics``, a balancer ``weights``,
                ``phases`` and ``early_stopping`` serve only training: ``None`` unless given.

        Raises:
            ModelFileError: a file that is not a hybridml model file (e.g. a bare state
                dict), of another format version or class, or objects that are missing or
                differ from the saved ones (another adapter class, other check names).
            FileNotFoundError: no such file.
        """
        from ._persist import load_regressor

        out: HybridRegressor = load_regressor(cls, path, settings)
        return out
