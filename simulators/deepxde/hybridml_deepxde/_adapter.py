"""The DeepXDE adapter: a PDE problem written the DeepXDE way, as hybridml loss terms."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import Tensor, nn

from hybridml import (
    MLP,
    CausalWeighting,
    Check,
    CheckResult,
    Constrained,
    DataLoss,
    LossTerm,
    OutputTransform,
    ProvidesChecks,
    ProvidesConstraints,
)
from hybridml.exceptions import InvalidArgumentError, InvalidTypeError

from ._backend import import_deepxde
from ._terms import (
    _DERIVATIVES,
    ConditionLoss,
    PDEResidual,
    Resampling,
    _seed_from,
    seeded_numpy,
)

__all__ = ["ConditionCheck", "DeepXDEAdapter", "ResidualCheck"]

_KIND_NAMES = (
    ("IC", "ic"),
    ("DirichletBC", "dirichlet"),
    ("NeumannBC", "neumann"),
    ("RobinBC", "robin"),
    ("PeriodicBC", "periodic"),
    ("OperatorBC", "operator"),
    ("PointSetBC", "points"),
)


def _rows(mask: np.ndarray | np.bool_, limit: int = 10) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    more = f" and {idx.size - limit} more" if idx.size > limit else ""
    return f"{shown}{more}"


class DeepXDEAdapter(ProvidesConstraints, ProvidesChecks):
    """A PDE problem described as in DeepXDE, trained with hybridml.

    The description is DeepXDE's: a ``dde.geometry`` (a ``GeometryXTime`` for
    time-dependent problems), a residual ``pde(x, y)`` written with ``dde.grad.jacobian`` /
    ``dde.grad.hessian``, and conditions from ``dde.icbc``. Collocation points are drawn as
    ``dde.data.PDE``/``TimePDE`` draw them (``num_domain`` inside, ``num_boundary`` on the
    boundary, ``num_initial`` at the initial time, all of them residual points; each
    condition uses the points that satisfy its ``on_boundary``/``on_initial``).

    Args:
        geometry: the ``dde.geometry`` object.
        pde: ``pde(x, y)``; returns the residual, ``(n, 1)`` or a list of such tensors.
        conditions: the ``dde.icbc`` conditions, a sequence or a mapping name ->
            condition. A sequence's conditions are named by kind (``"ic"``,
            ``"dirichlet"``, ``"neumann"``, ``"robin"``, ``"periodic"``, ``"operator"``,
            ``"points"``) and, when the network has several outputs or ``output_names`` is
            given, the output component they constrain (``"dirichlet_u"``, ``"ic_v"``;
            ``"points_u_v"`` for several), with ``_2``, ``_3`` appended for repeats of the
            same name (``"dirichlet_u_2"``). Leave out conditions imposed exactly by the
            model (see :meth:`default_model`).
        num_domain: residual points inside the domain.
        num_boundary: residual points on the (spatial) boundary.
        num_initial: residual points at the initial time.
        num_outputs: number of network outputs (components of ``y``).
        output_names: a name for each output component, used in the condition names
            (default: ``"y0"``, ``"y1"``, ... when there are several outputs; a single
            output unnamed, so its conditions are ``"dirichlet"``, ``"ic"``, ...).
        train_distribution: DeepXDE's sampler for the initial points: ``"Hammersley"`` (as
            DeepXDE's default), ``"pseudo"``, ``"LHS"``, ``"Halton"``, ``"Sobol"`` or
            ``"uniform"``.
        anchors: extra residual points, ``(m, d)``.
        parameters: unknown PDE coefficients, name -> :class:`hybridml.PhysicalParameter`,
            which ``pde`` uses as ``p.value``; they are trained with the network.
        observations: ``(x, y)`` measured values for an inverse problem, ``x`` of shape
            ``(m, d)`` inside the geometry, ``y`` of shape ``(m,)`` or ``(m, k)``; a loss term
            ``"data"``.
        observed_components: the output components ``y`` holds (default: the first ``k``).
        derivatives: how the residual gets the input derivatives of the network.
            ``"autograd"`` (default): DeepXDE's reverse-over-reverse autograd.
            ``"auto"``/``"taylor"``: forward Taylor propagation through the network in one
            pass (for :class:`hybridml.MLP` networks with tanh/sigmoid activations,
            optionally inside :class:`hybridml.Constrained` with a
            :class:`hybridml.HardBoundary`); value conditions (Dirichlet, IC, point sets)
            are evaluated in the same pass. ``"compiled"``: the same, compiled with
            :func:`torch.compile` once a residual term has been evaluated for training 50
            times (seconds per network structure, point count and dtype; at once, and
            from a warm cache, for shapes given to ``PDEResidual.precompile`` beforehand;
            if compiling fails, a one-time warning and the uncompiled jet). Not with
            ``LRAnnealing``, which backpropagates each term separately (torch runs a
            compiled backward only once): ``Trainer.fit`` refuses that combination before
            training, naming the fix. Any other model, or a
            derivative the jet does not hold, uses autograd in every mode. All give the same
            residual to rounding (docs/simulators/deepxde.md has the speeds).
        resampling: how the residual term's ``resample`` moves its points
            (:class:`~hybridml_deepxde.RAD`, :class:`~hybridml_deepxde.RAR`,
            :class:`~hybridml_deepxde.UniformResampling`); ``None`` keeps them. The trainer
            calls it every ``Adam(resample_every=...)`` steps.
        causal: a :class:`hybridml.CausalWeighting` of the residual in time (time is the
            last input column of a DeepXDE time-dependent problem: ``time_column=-1``);
            ``None``: the plain mean.
        residual_threshold: root-mean-square residual the ``"pde residual"`` check allows.
        condition_threshold: largest condition violation the condition checks allow.
        num_check_points: fresh points used by the checks.
        seed: seed of the random draws made here (``train_distribution="pseudo"`` and the
            check points); NumPy's global random state is left unchanged.
    """

    name: ClassVar[str] = "deepxde"
    description: ClassVar[str] = (
        "PDE problems written the DeepXDE way (geometry, pde(x, y), dde.icbc) as PINN losses"
    )

    def __init__(
        self,
        geometry: Any,
        pde: Callable[[Tensor, Tensor], Any],
        conditions: Sequence[Any] | Mapping[str, Any] = (),
        *,
        num_domain: int = 1000,
        num_boundary: int = 0,
        num_initial: int = 0,
        num_outputs: int = 1,
        output_names: Sequence[str] | None = None,
        train_distribution: str = "Hammersley",
        anchors: Any = None,
        parameters: Mapping[str, nn.Module] | None = None,
        observations: tuple[Any, Any] | None = None,
        observed_components: Sequence[int] | None = None,
        derivatives: str = "autograd",
        resampling: Resampling | None = None,
        causal: CausalWeighting | None = None,
        residual_threshold: float = 1e-2,
        condition_threshold: float = 1e-2,
        num_check_points: int = 2000,
        seed: int = 0,
    ) -> None:
        # the arguments, for replace()
        self._arguments: dict[str, Any] = {
            k: v for k, v in locals().items() if k not in ("self", "__class__")
        }
        self.dde = dde = import_deepxde()
        self.geometry = geometry
        self.is_time = isinstance(geometry, dde.geometry.GeometryXTime)
        if not hasattr(geometry, "random_points") or not hasattr(geometry, "dim"):
            raise InvalidTypeError(
                f"geometry must be a dde.geometry object (e.g. dde.geometry.Interval(-1, 1)), "
                f"got {type(geometry).__name__}."
            )
        if not callable(pde):
            raise InvalidTypeError(f"pde must be a function pde(x, y) -> residual, got {pde!r}.")
        for what, v, lo in (
            ("num_domain", num_domain, 0),
            ("num_boundary", num_boundary, 0),
            ("num_initial", num_initial, 0),
            ("num_outputs", num_outputs, 1),
            ("num_check_points", num_check_points, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InvalidArgumentError(f"{what} must be an integer >= {lo}, got {v!r}.")
        if num_initial and not self.is_time:
            raise InvalidArgumentError(
                "num_initial > 0 needs a time-dependent geometry, "
                "dde.geometry.GeometryXTime(space, dde.geometry.TimeDomain(t0, t1))."
            )
        if derivatives not in _DERIVATIVES:
            raise InvalidArgumentError(
                f"derivatives must be one of {', '.join(map(repr, _DERIVATIVES))}, got "
                f"{derivatives!r}."
            )
        if resampling is not None and not isinstance(resampling, Resampling):
            raise InvalidTypeError(
                "resampling must be RAD(...), RAR(...), UniformResampling() or None, got "
                f"{resampling!r}."
            )
        self.pde = pde
        self.dim = int(geometry.dim)
        self.num_domain, self.num_boundary, self.num_initial = num_domain, num_boundary, num_initial
        self.num_outputs = num_outputs
        if output_names is not None:
            names = [str(n) for n in output_names] if not isinstance(output_names, str) else []
            if len(names) != num_outputs or len(set(names)) != len(names) or "" in names:
                raise InvalidArgumentError(
                    f"output_names must be {num_outputs} distinct non-empty names (one per "
                    f"output), got {output_names!r}."
                )
        self.output_names: tuple[str, ...] | None = (
            tuple(names)
            if output_names is not None
            else (tuple(f"y{i}" for i in range(num_outputs)) if num_outputs > 1 else None)
        )
        self.train_distribution = train_distribution
        self.derivatives = derivatives
        self.resampling = resampling
        if causal is not None and not isinstance(causal, CausalWeighting):
            raise InvalidTypeError(
                f"causal must be a hybridml.CausalWeighting or None, got {causal!r}."
            )
        self.causal = causal
        self.residual_threshold = float(residual_threshold)
        self.condition_threshold = float(condition_threshold)
        self.num_check_points = num_check_points
        self.seed = int(seed)
        self.parameters: dict[str, nn.Module] = dict(parameters or {})
        for key, p in self.parameters.items():
            if not isinstance(p, nn.Module):
                raise InvalidTypeError(
                    f"parameters[{key!r}] must be a hybridml.PhysicalParameter (an nn.Module), "
                    f"got {type(p).__name__}."
                )
        self.conditions = self._named_conditions(conditions)
        self.anchors = None if anchors is None else self._points(anchors, "anchors")
        self.train_x_all = self._train_points()
        if self.train_x_all.shape[0] == 0:
            raise InvalidArgumentError(
                "no residual points: set num_domain (and num_boundary/num_initial)."
            )
        self.condition_points = {}
        for key, cond in self.conditions.items():
            pts = np.asarray(cond.collocation_points(self.train_x_all))
            if pts.shape[0] == 0:
                raise InvalidArgumentError(
                    f"condition {key!r} ({type(cond).__name__}) selects none of the training "
                    "points; raise num_boundary (boundary conditions) or num_initial (initial "
                    "conditions), or check its on_boundary/on_initial function."
                )
            self.condition_points[key] = pts
        self.observations = (
            None
            if observations is None
            else self._check_observations(observations, observed_components)
        )

    # ------------------------------------------------------------------ set-up helpers

    def _named_conditions(self, conditions: Any) -> dict[str, Any]:
        icbc = self.dde.icbc
        if isinstance(conditions, Mapping):
            items = list(conditions.items())
        else:
            items = []
            counts: dict[str, int] = {}
            for cond in conditions:
                base = next(
                    (label for cls, label in _KIND_NAMES if isinstance(cond, getattr(icbc, cls))),
                    "condition",
                )
                base += self._component_suffix(cond)
                counts[base] = counts.get(base, 0) + 1
                items.append((base if counts[base] == 1 else f"{base}_{counts[base]}", cond))
        out: dict[str, Any] = {}
        for key, cond in items:
            if not isinstance(key, str) or not key or key in ("pde", "data"):
                raise InvalidArgumentError(
                    f"condition name {key!r} is not allowed (a non-empty string other than "
                    "'pde' and 'data')."
                )
            if not hasattr(cond, "collocation_points") or not hasattr(cond, "error"):
                raise InvalidTypeError(
                    f"condition {key!r} must be a dde.icbc condition (DirichletBC, IC, ...), "
                    f"got {type(cond).__name__}."
                )
            out[key] = cond
        return out

    def _component_suffix(self, cond: Any) -> str:
        """``"_u"`` (``"_u_v"``) for a condition on output component(s) ``u`` (``v``), with
        output names; ``""`` without them or for a condition of no single component."""
        names = self.output_names
        comp = getattr(cond, "component", None)
        if names is None or comp is None:
            return ""
        comps = comp if isinstance(comp, list | tuple | np.ndarray) else [comp]
        try:
            return "".join(f"_{names[int(c)]}" for c in comps)
        except (IndexError, TypeError, ValueError):
            return ""

    def replace(self, **changes: Any) -> DeepXDEAdapter:
        """A new adapter with the same problem and some constructor arguments changed.

        E.g. ``adapter.replace(num_domain=6000, derivatives="taylor", resampling=RAD())``:
        the geometry, ``pde``, conditions (by their names here), learnable ``parameters``
        (the same objects) and observations are kept; points are drawn afresh.

        Args:
            **changes: constructor arguments (see :class:`DeepXDEAdapter`).

        Returns:
            The new adapter.
        """
        unknown = sorted(set(changes) - set(self._arguments))
        if unknown:
            raise InvalidTypeError(
                f"DeepXDEAdapter.replace: no argument {', '.join(map(repr, unknown))}; the "
                f"arguments are {', '.join(sorted(self._arguments))}."
            )
        arguments = {**self._arguments, "conditions": dict(self.conditions), **changes}
        geometry, pde = arguments.pop("geometry"), arguments.pop("pde")
        conditions = arguments.pop("conditions")
        return DeepXDEAdapter(geometry, pde, conditions, **arguments)

    def _points(self, value: Any, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 1 and self.dim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise InvalidArgumentError(
                f"{what} must have shape (m, {self.dim}) (one column per input of the "
                f"geometry), got {arr.shape}."
            )
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise InvalidArgumentError(
                f"{what} contain NaN or inf in rows {_rows(bad)}; remove them."
            )
        return arr

    def inside(self, x: np.ndarray) -> np.ndarray:
        """Whether each row of ``x`` lies in the geometry (boundary included)."""
        if self.is_time:
            g = self.geometry
            return np.asarray(g.geometry.inside(x[:, :-1])) & np.asarray(
                g.timedomain.inside(x[:, -1:])
            )
        return np.asarray(self.geometry.inside(x))

    def _check_observations(
        self, observations: tuple[Any, Any], components: Sequence[int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        try:
            x_obs, y_obs = observations
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError("observations must be a pair (x, y) of arrays.") from exc
        x = np.asarray(x_obs, dtype=np.float64)
        y = np.asarray(y_obs, dtype=np.float64)
        if x.ndim == 1 and self.dim == 1:
            x = x[:, None]
        if y.ndim == 1:
            y = y[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InvalidArgumentError(
                f"observations: x must have shape (m, {self.dim}), got {x.shape}."
            )
        if y.ndim != 2 or y.shape[0] != x.shape[0]:
            raise InvalidArgumentError(
                f"observations: y has shape {y.shape} but x has {x.shape[0]} rows; give one "
                "row of y per row of x."
            )
        for what, arr in (("x", x), ("y", y)):
            bad = ~np.isfinite(arr).all(axis=1)
            if bad.any():
                raise InvalidArgumentError(
                    f"observations: {what} has NaN or inf values in rows {_rows(bad)}; remove "
                    "those rows (or the unobserved components, with observed_components)."
                )
        outside = ~self.inside(x)
        if outside.any():
            raise InvalidArgumentError(
                f"observations: rows {_rows(outside)} of x lie outside the geometry (e.g. row "
                f"{int(np.flatnonzero(outside)[0])}: {x[outside][0].tolist()}); observations "
                "must be inside the domain the PDE is solved on."
            )
        comps = list(range(y.shape[1])) if components is None else [int(c) for c in components]
        if len(comps) != y.shape[1] or any(not 0 <= c < self.num_outputs for c in comps):
            raise InvalidArgumentError(
                f"observations: observed_components={components!r} must list {y.shape[1]} "
                f"distinct output indices in [0, {self.num_outputs})."
            )
        full = np.full((x.shape[0], self.num_outputs), np.nan)
        full[:, comps] = y
        return x, full

    def _draw(self, n_domain: int, n_boundary: int, n_initial: int, how: str) -> np.ndarray:
        g = self.geometry
        parts = []
        if n_initial:
            parts.append(
                g.uniform_initial_points(n_initial)
                if how == "uniform"
                else g.random_initial_points(n_initial, random=how)
            )
        if n_boundary:
            parts.append(
                g.uniform_boundary_points(n_boundary)
                if how == "uniform"
                else g.random_boundary_points(n_boundary, random=how)
            )
        if n_domain:
            parts.append(
                g.uniform_points(n_domain, boundary=False)
                if how == "uniform"
                else g.random_points(n_domain, random=how)
            )
        if not parts:
            return np.empty((0, self.dim))
        return np.vstack([np.asarray(p, dtype=np.float64) for p in parts])

    def _train_points(self) -> np.ndarray:
        with seeded_numpy(self.seed):
            x = self._draw(
                self.num_domain, self.num_boundary, self.num_initial, self.train_distribution
            )
        if self.anchors is not None:
            x = np.vstack([self.anchors, x])
        return x

    def sample(self, n: int, generator: torch.Generator) -> np.ndarray:
        """``n`` uniform random residual points, split like the initial ones.

        Args:
            n: number of points.
            generator: the only source of randomness.

        Returns:
            float64 array ``(n, d)``.
        """
        total = self.num_domain + self.num_boundary + self.num_initial
        nb = round(n * self.num_boundary / total) if total else 0
        ni = round(n * self.num_initial / total) if total else 0
        with seeded_numpy(_seed_from(generator)):
            return self._draw(n - nb - ni, nb, ni, "pseudo")

    @property
    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        """The bounding box ``(lower, upper)`` of the geometry (time last)."""
        g = self.geometry
        if self.is_time:
            lo = np.append(np.asarray(g.geometry.bbox[0], dtype=np.float64), g.timedomain.t0)
            hi = np.append(np.asarray(g.geometry.bbox[1], dtype=np.float64), g.timedomain.t1)
            return lo, hi
        return (
            np.asarray(g.bbox[0], dtype=np.float64).reshape(-1),
            np.asarray(g.bbox[1], dtype=np.float64).reshape(-1),
        )

    # ------------------------------------------------------------------ models

    def default_model(
        self,
        hidden: Sequence[int] = (20, 20, 20),
        *,
        transform: OutputTransform | None = None,
        generator: torch.Generator | None = None,
    ) -> nn.Module:
        """hybridml's PINN network for this problem.

        A tanh :class:`hybridml.MLP` with inputs scaled from the geometry's bounding box to
        ``[-1, 1]``; with ``transform`` (e.g. a :class:`hybridml.HardBoundary` that imposes
        Dirichlet and initial values exactly) it is wrapped in :class:`hybridml.Constrained`.
        Both are supported by the fast Taylor-mode derivatives.

        Args:
            hidden: hidden layer widths.
            transform: optional hard constraint on the output.
            generator: generator for the initial weights (default: seeded with ``seed``).

        Returns:
            The model (default dtype).
        """
        lo, hi = self.bbox
        gen = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        net = MLP(
            self.dim,
            self.num_outputs,
            tuple(hidden),
            nn.Tanh,
            input_lower=lo.tolist(),
            input_upper=hi.tolist(),
            generator=gen,
        )
        return net if transform is None else Constrained(net, transform)

    # ------------------------------------------------------------------ capabilities

    def loss_terms(self, **options: Any) -> dict[str, LossTerm]:
        """The named loss terms: ``"pde"``, one per condition, and ``"data"`` if observed.

        Each call returns new terms (with the same learnable ``parameters``).
        """
        if options:
            raise InvalidTypeError(
                f"DeepXDEAdapter.loss_terms takes no options, got {sorted(options)}; set them "
                "when constructing the adapter."
            )
        terms: dict[str, LossTerm] = {
            "pde": PDEResidual(
                self.dde,
                self.pde,
                self.train_x_all,
                sample=self.sample,
                parameters=self.parameters,
                derivatives=self.derivatives,
                resampling=self.resampling,
                causal=self.causal,
            )
        }
        conditions = []
        for key, cond in self.conditions.items():
            terms[key] = conditions_term = ConditionLoss(
                self.dde, _rowwise(self.dde, cond), self.condition_points[key]
            )
            conditions.append(conditions_term)
        if self.derivatives != "autograd":  # Taylor mode: one network pass for all points
            cast(PDEResidual, terms["pde"]).share_value_points(conditions)
        if self.observations is not None:
            terms["data"] = DataLoss(*self.observations)
        return terms

    def residual(self, model: nn.Module, x: Any) -> Tensor:
        """The PDE residual of ``model`` at points ``x`` (``(n, d)``), detached, ``(n, k)``."""
        term = PDEResidual(
            self.dde,
            self.pde,
            self._points(x, "x"),
            sample=self.sample,
            parameters=self.parameters,
            derivatives=self.derivatives,
        )
        dtype = next((p.dtype for p in model.parameters()), torch.get_default_dtype())
        term.to(dtype)
        pts = term.points.detach().clone().requires_grad_(True)
        return term.residual(model, pts).detach()

    def checks(self) -> list[Check]:
        """A residual check on fresh points and one violation check per condition."""
        checks: list[Check] = [ResidualCheck(self, self.residual_threshold)]
        for key in self.conditions:
            checks.append(ConditionCheck(self, key, self.condition_threshold))
        return checks

    def __repr__(self) -> str:
        return (
            f"DeepXDEAdapter(geometry={type(self.geometry).__name__}, pde={self.pde!r}, "
            f"conditions={list(self.conditions)}, num_domain={self.num_domain}, "
            f"num_boundary={self.num_boundary}, num_initial={self.num_initial})"
        )


class _PeriodicRows:
    """A ``dde.icbc.PeriodicBC`` whose error has one row per collocation point.

    DeepXDE's ``PeriodicBC`` takes its points in pairs (``x`` and its periodic image, the
    images in the second half) and returns one row per pair, ``left - right``; the
    condition terms expect one row per point. This returns ``[left - right; right - left]``:
    the same mean square, and the same maximum violation, as DeepXDE's.
    """

    def __init__(self, condition: Any) -> None:
        self.condition = condition
        self.component = condition.component

    def collocation_points(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.condition.collocation_points(x))

    def error(self, x: Any, inputs: Tensor, outputs: Tensor, beg: int, end: int) -> Tensor:
        e = self.condition.error(x, inputs, outputs, beg, end)
        return torch.cat([e, -e], 0)

    def __repr__(self) -> str:
        return f"{type(self.condition).__name__}(component_x={self.condition.component_x})"


def _rowwise(dde: Any, condition: Any) -> Any:
    """The condition as the loss terms take it (a ``PeriodicBC`` by :class:`_PeriodicRows`)."""
    return _PeriodicRows(condition) if isinstance(condition, dde.icbc.PeriodicBC) else condition


def _model_dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters()), torch.get_default_dtype())


class ResidualCheck(Check):
    """The PDE residual of a fitted model at fresh random points is small.

    Passes when the root-mean-square residual at ``adapter.num_check_points`` points drawn
    (with a seed of their own) independently of the training points is at most
    ``threshold``; ``worst_violation`` is the largest absolute residual and
    ``fraction_violating`` the share of points whose residual exceeds ``threshold``.
    """

    def __init__(self, adapter: DeepXDEAdapter, threshold: float, name: str = "pde residual"):
        self.adapter, self.threshold, self.name = adapter, float(threshold), name

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        if not isinstance(model, nn.Module):
            raise InvalidArgumentError(
                f"check {self.name!r} evaluates a model: pass model=the fitted model."
            )
        gen = torch.Generator().manual_seed(self.adapter.seed + 7919)
        x = self.adapter.sample(self.adapter.num_check_points, gen)
        r = self.adapter.residual(model, x).abs().amax(dim=1).to(torch.float64)
        rms = float(r.pow(2).mean().sqrt())
        worst = int(r.argmax())
        names = [f"x{i}" for i in range(x.shape[1] - self.adapter.is_time)]
        names += ["t"] if self.adapter.is_time else []
        return CheckResult(
            name=self.name,
            passed=rms <= self.threshold,
            worst_violation=float(r[worst]),
            where=dict(zip(names, x[worst].tolist(), strict=True)),
            fraction_violating=float((r > self.threshold).double().mean()),
            n_points=int(r.numel()),
            message=(
                f"RMS residual {rms:.3g} at {r.numel()} fresh points "
                f"({'<=' if rms <= self.threshold else '>'} {self.threshold:g}); "
                f"largest {float(r[worst]):.3g}."
            ),
        )


class ConditionCheck(Check):
    """A fitted model satisfies one initial/boundary condition at fresh points.

    Passes when the largest absolute violation at fresh points of the condition's boundary
    (or initial time) is at most ``threshold``.
    """

    def __init__(self, adapter: DeepXDEAdapter, condition: str, threshold: float) -> None:
        self.adapter, self.condition, self.threshold = adapter, condition, float(threshold)
        self.name = f"{condition} condition"

    def _fresh_points(self) -> np.ndarray:
        a = self.adapter
        cond = a.conditions[self.condition]
        n = a.num_check_points
        with seeded_numpy(a.seed + 104729):
            pool = a._draw(0, n, n if a.is_time else 0, "pseudo")
        pts = np.asarray(cond.collocation_points(pool), dtype=np.float64)
        return pts if pts.shape[0] else a.condition_points[self.condition]

    def __call__(self, data: Mapping[str, Any], model: Any = None) -> CheckResult:
        if not isinstance(model, nn.Module):
            raise InvalidArgumentError(
                f"check {self.name!r} evaluates a model: pass model=the fitted model."
            )
        a = self.adapter
        x = self._fresh_points()
        term = ConditionLoss(a.dde, _rowwise(a.dde, a.conditions[self.condition]), x)
        term.to(_model_dtype(model))
        err = term.errors(model).detach().abs().amax(dim=1).to(torch.float64)
        worst = int(err.argmax())
        value = float(err[worst])
        names = [f"x{i}" for i in range(x.shape[1] - a.is_time)] + (["t"] if a.is_time else [])
        return CheckResult(
            name=self.name,
            passed=value <= self.threshold,
            worst_violation=value,
            where=dict(zip(names, x[worst].tolist(), strict=True)),
            fraction_violating=float((err > self.threshold).double().mean()),
            n_points=int(err.numel()),
            message=f"largest violation {value:.3g} at {err.numel()} points "
            f"(threshold {self.threshold:g}).",
        )
