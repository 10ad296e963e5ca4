"""Loss terms built from a DeepXDE problem: the PDE residual and the initial/boundary conditions.

The residual term evaluates the user's DeepXDE-style ``pde(x, y)``. When the model is one
:func:`~hybridml_deepxde.taylor_supported` accepts, the input derivatives are pushed through
the network in one forward pass (the network's :meth:`hybridml.MLP.jet`) and the
``dde.grad.jacobian``/``dde.grad.hessian`` calls the ``pde`` makes are answered from them for the
duration of the call; any other derivative falls back to DeepXDE's own autograd. The first
evaluation learns which derivatives the ``pde`` asks for.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hybridml import (
    MLP,
    RAD,
    RAR,
    CausalWeighting,
    CollocationTerm,
    Constrained,
    Jet,
    LossTerm,
    Precompilation,
    Resampling,
    UniformResampling,
)
from hybridml.exceptions import InvalidArgumentError, InvalidTypeError

from ._taylor import Pair, taylor_supported

__all__ = ["RAD", "RAR", "ConditionLoss", "PDEResidual", "Resampling", "UniformResampling"]

_SERVE_LOCK = threading.RLock()
_DERIVATIVES = ("auto", "compiled", "taylor", "autograd")
#: Taylor-mode training evaluations of a residual term before its jet is compiled
#: (``derivatives="compiled"``): short runs (tests, a few steps) do not pay
#: the compilation
_COMPILE_AFTER = 50
#: points per evaluation in PDEResidual.residual_at (RAD/RAR candidates)
_CHUNK = 8192


def _name_of(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)


@contextlib.contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """Seed NumPy's legacy global RNG (which DeepXDE's samplers use) and restore it after."""
    state = np.random.get_state()  # noqa: NPY002 - DeepXDE draws from the legacy global RNG
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _seed_from(generator: torch.Generator) -> int:
    """A NumPy seed drawn from ``generator`` (on its own device: a CPU or a GPU one)."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))


@contextlib.contextmanager
def serve_derivatives(
    dde: ModuleType, y: Tensor, x: Tensor, jet: Jet | None, misses: set[Any]
) -> Iterator[None]:
    """Answer ``dde.grad.jacobian/hessian(y, x, ...)`` from ``jet`` while the block runs.

    Requests about other tensors, or derivatives ``jet`` lacks, go to DeepXDE's own
    reverse-mode implementation; the missing ones are added to ``misses`` (``"grad"`` or an
    input pair ``(i, j)``; ``"fallback"`` for any autograd request while ``jet`` is served).
    DeepXDE's derivative caches are cleared afterwards.
    """
    reverse = dde.gradients.gradients_reverse
    orig_jac, orig_hess = reverse.jacobian, reverse.hessian
    rows: dict[int, Tensor] = {}

    def jacobian(ys: Any, xs: Any, i: int | None = None, j: int | None = None) -> Any:
        if jet is not None and not (ys is y and xs is x):
            misses.add("fallback")
        if ys is y and xs is x:
            ii = 0 if i is None and y.shape[1] == 1 else i
            if jet is not None and ii is not None and 0 <= ii < y.shape[1]:
                jj = 0 if x.shape[1] == 1 else j
                if jet.grads is not None and jj is not None and 0 <= jj < x.shape[1]:
                    g = jet.grads[jj]  # the compiled jet's own output: no views to undo
                    return g if g.shape[1] == 1 else g[:, ii : ii + 1]
                if ii not in rows:
                    rows[ii] = jet.grad[:, :, ii].t()
                row = rows[ii]
                if j is None or x.shape[1] == 1:
                    return row
                if 0 <= j < x.shape[1]:
                    return row[:, j : j + 1]
            elif jet is None:
                misses.add("grad")
            else:
                misses.add("fallback")
        return orig_jac(ys, xs, i=i, j=j)

    def hessian(ys: Any, xs: Any, component: int = 0, i: int = 0, j: int = 0) -> Any:
        if jet is not None and not (ys is y and xs is x):
            misses.add("fallback")
        if ys is y and xs is x and 0 <= i < x.shape[1] and 0 <= j < x.shape[1]:
            pair = (min(i, j), max(i, j))
            if jet is not None and pair in jet.hess and 0 <= component < y.shape[1]:
                h = jet.hess[pair]
                return h if h.shape[1] == 1 else h[:, component : component + 1]
            misses.add("grad")
            misses.add(pair)
        return orig_hess(ys, xs, component=component, i=i, j=j)

    # DeepXDE's functions find their caches as attributes of the module-level functions
    jacobian._Jacobians = orig_jac._Jacobians  # type: ignore[attr-defined]
    hessian._Hessians = orig_hess._Hessians  # type: ignore[attr-defined]
    with _SERVE_LOCK:
        reverse.jacobian, reverse.hessian = jacobian, hessian
        try:
            yield
        finally:
            reverse.jacobian, reverse.hessian = orig_jac, orig_hess
            dde.grad.clear()


def as_columns(value: Any, n: int, fn: Any, what: str, x_shape: tuple[int, ...]) -> Tensor:
    """A ``pde``/condition output as an ``(n, k)`` tensor, or an error naming ``fn``."""
    parts = list(value) if isinstance(value, list | tuple) else [value]
    if not parts:
        raise InvalidArgumentError(
            f"{what} {_name_of(fn)} returned an empty list; return the residual."
        )
    cols = []
    for k, part in enumerate(parts):
        label = f" (item {k} of the list it returned)" if len(parts) > 1 else ""
        if not isinstance(part, Tensor):
            raise InvalidTypeError(
                f"{what} {_name_of(fn)} returned {type(part).__name__}{label}; it must return "
                "a torch tensor (use dde.grad and torch functions on x and y)."
            )
        shape = tuple(part.shape)
        if part.ndim == 1 and shape[0] == n:
            part = part[:, None]
        if part.ndim != 2 or part.shape[0] != n:
            raise InvalidArgumentError(
                f"{what} {_name_of(fn)} returned shape {shape}{label} for inputs x of shape "
                f"{x_shape}; it must return one row per point, shape ({n}, 1) (or a list of "
                "such tensors, one per equation). Do not reduce over the points."
            )
        cols.append(part)
    return cols[0] if len(cols) == 1 else torch.cat(cols, dim=1)


class PDEResidual(CollocationTerm):
    """Mean squared residual of a DeepXDE-style ``pde(x, y)`` at collocation points.

    Made by :meth:`~hybridml_deepxde.DeepXDEAdapter.loss_terms`; see there.

    Args:
        dde: the DeepXDE module.
        pde: ``pde(x, y)`` returning the residual ``(n, 1)`` (or a list, one per equation).
        points: initial collocation points, ``(n, d)``.
        sample: ``sample(n, generator) -> (n, d)`` float64 points for resampling.
        parameters: learnable coefficients the ``pde`` uses (registered, so trained).
        derivatives: ``"auto"``/``"taylor"`` (forward Taylor propagation where the model
            allows it), ``"compiled"`` (the same, compiled after 50 training evaluations,
            or at once for shapes given to :meth:`precompile`) or ``"autograd"``; see
            :class:`~hybridml_deepxde.DeepXDEAdapter`.
        resampling: what :meth:`resample` does (``None``: keep the points); a
            :class:`hybridml.Resampling` such as :class:`hybridml.RAD`.
        causal: a :class:`hybridml.CausalWeighting` for a time-dependent ``pde``: the loss
            weights time chunks by how well the earlier ones are solved (for a
            ``GeometryXTime`` the time is the last input column:
            ``CausalWeighting(time_column=-1, ...)``). Also settable later as
            ``term.causal``.

    Attributes:
        causal_weights: with ``causal``, the chunks' weights of the last evaluation
            (``(n_chunks,)``, detached); otherwise ``None``.
    """

    points: Tensor

    def __init__(
        self,
        dde: ModuleType,
        pde: Callable[[Tensor, Tensor], Any],
        points: np.ndarray,
        *,
        sample: Callable[[int, torch.Generator], np.ndarray],
        parameters: Mapping[str, nn.Module] | None = None,
        derivatives: str = "auto",
        resampling: Resampling | None = None,
        causal: CausalWeighting | None = None,
    ) -> None:
        super().__init__()
        if causal is not None and not isinstance(causal, CausalWeighting):
            raise InvalidTypeError(f"causal must be a CausalWeighting or None, got {causal!r}.")
        if derivatives not in _DERIVATIVES:
            raise InvalidArgumentError(
                f"derivatives must be one of {', '.join(map(repr, _DERIVATIVES))}, got "
                f"{derivatives!r}."
            )
        self._dde = dde
        self.pde = pde
        self._sample = sample
        self.coefficients = nn.ModuleDict(dict(parameters or {}))
        self.derivatives = derivatives
        self.resampling = resampling
        self.causal = causal
        self.causal_weights: Tensor | None = None
        self.n_points = self.n_initial = int(points.shape[0])
        self.register_buffer("points", torch.as_tensor(points, dtype=torch.get_default_dtype()))
        self._wanted: set[Any] | None = None  # derivatives the pde asks for; None = unknown
        self._taylor_off = False  # set when the pde needs more than the jet can give
        self._jet_key: Any = None  # the points the cached boundary-function jets belong to
        self._jet_cache: dict[Any, Jet] = {}
        self._train_calls = 0  # training evaluations at the term's points (Taylor mode)
        # (point count, dtype) of the jets precompiled in the background: compiled at once
        self._precompiled: set[tuple[int, torch.dtype]] = set()
        # value conditions whose points ride along in the residual's Taylor-mode pass
        self._shared: list[ConditionLoss] = []

    def share_value_points(self, conditions: Sequence[ConditionLoss]) -> None:
        """Evaluate these conditions' model values in the residual's own network pass.

        In Taylor mode each training evaluation of the residual at its points also
        evaluates the network at the points of these (value-type: Dirichlet, IC, point
        set) conditions, as value-only rows of the same pass; the condition term, evaluated
        next with the same model and unchanged parameters, uses those values instead of a
        network pass of its own (the same numbers: the same network at the same points). A
        condition that does not take up a value so shared is not shared again.
        """
        self._shared = [c for c in conditions if c.kind == "value"]

    def residual(self, model: nn.Module, x: Tensor, *, at_points: bool = False) -> Tensor:
        """The residual ``(n, k)`` of ``model`` at points ``x`` (``requires_grad=True``).

        ``at_points``: ``x`` holds the term's own collocation points (a copy of
        ``self.points``), so what depends on the points alone may be reused between calls.
        """
        use_taylor = (
            self.derivatives != "autograd" and not self._taylor_off and taylor_supported(model)
        )
        if use_taylor and self._wanted is not None:
            pairs: list[Pair] = [p for p in self._wanted if isinstance(p, tuple)]
            key = None
            if at_points:
                key = (self.points.data_ptr(), self.points._version, self.points.dtype)
                if key != self._jet_key:  # other points now: drop what was kept for the old
                    self._jet_cache.clear()
                    self._jet_key = key
            compiled = False
            if at_points and self.derivatives == "compiled" and torch.is_grad_enabled():
                # training evaluations only (always the same shapes): compile once they
                # are many enough to repay the compilation
                self._train_calls += 1
                compiled = (
                    self._train_calls > _COMPILE_AFTER or (x.shape[0], x.dtype) in self._precompiled
                )
            shared = [c for c in self._shared if c._share] if at_points else []
            for c in shared:  # a value left from the last call was not used: stop sharing
                if c._pending is not None:
                    c._pending, c._share = None, False
            shared = [c for c in shared if c._share]
            extra = None
            if shared:
                extra = torch.cat([c.points.to(x.dtype) for c in shared], 0)
            assert isinstance(model, MLP | Constrained)  # taylor_supported(model)
            jet = model.jet(
                x,
                pairs,
                extra=extra,
                compiled=compiled,
                cache=self._jet_cache if key is not None else None,
            )
            misses: set[Any] = set()
            out = self._evaluate(jet.value, x, jet, misses)
            if not misses:
                if shared and jet.extra is not None:
                    params = tuple(model.parameters())
                    values = _flat_values(params)
                    start = 0
                    for c in shared:
                        m = c.points.shape[0]
                        c._pending = (model, params, values, jet.extra[start : start + m])
                        start += m
                return out
            # the pde differentiated something the jet does not hold (a slice of y, a
            # derivative of a derivative): the jet is differentiable only once, so this
            # term uses autograd from now on
            self._taylor_off = True
            use_taylor = False
        misses = set()
        out = self._evaluate(model(x), x, None, misses)
        if use_taylor:
            self._wanted = (self._wanted or set()) | misses
        return out

    def precompile(
        self,
        model: nn.Module,
        *,
        num_points: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> Precompilation | None:
        """Compile the residual's jet for a later phase in a background process, now.

        With ``derivatives="compiled"`` the jet is compiled (10-25 s on one core for a 4x32
        network) the first time the term is trained at a new point count or dtype, and
        training waits for it. When that count and dtype are known in advance, e.g. a
        float64 quasi-Newton phase on 6000 RAD points after an Adam phase on 2000, this
        starts that compilation in a separate Python process (at a lower priority) while
        training goes on. The process fills inductor's on-disk cache; when the term is
        first trained at ``num_points`` points in ``dtype`` (with
        ``derivatives="compiled"`` by then) it waits for the process if it is still
        running, compiles from the warm cache in seconds, and uses the compiled jet at
        once (without the usual 50 uncompiled evaluations first). Results are the same
        with or without it (the same compiled code); only the wall time differs. If the
        process fails, the term compiles in process as usual.

        Args:
            model: the network that will be trained (its structure counts, not its
                values): a :func:`~hybridml_deepxde.taylor_supported` network.
            num_points: the number of collocation points then (default: the current
                ``n_points``).
            dtype: the dtype then (default: the model's).

        Returns:
            The :class:`hybridml.Precompilation` (to inspect; nothing
            needs to be done with it), or None where there is nothing to compile: the
            model is not supported by the jet, the term uses ``"autograd"``, or its pde
            needs derivatives the jet does not hold.
        """
        if num_points is not None and (
            isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1
        ):
            raise InvalidArgumentError(
                f"PDEResidual.precompile: num_points must be a positive integer, got "
                f"{num_points!r}."
            )
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InvalidArgumentError(
                f"PDEResidual.precompile: dtype must be a floating torch dtype, got {dtype!r}."
            )
        if self.derivatives == "autograd" or not taylor_supported(model):
            return None
        if self._wanted is None:  # which derivatives the pde takes: one call on a few points
            mdtype = next(model.parameters()).dtype
            x = self.points[:4].detach().to(mdtype).requires_grad_(True)
            self.residual(model, x)
        if self._taylor_off or self._wanted is None:
            return None
        pairs = [p for p in self._wanted if isinstance(p, tuple)]
        shared = [c for c in self._shared if c._share]
        rows = sum(int(c.points.shape[0]) for c in shared) if shared else None
        n = int(num_points or self.n_points)
        assert isinstance(model, MLP | Constrained)  # taylor_supported(model)
        job = model.precompile_jet(n, pairs, extra_rows=rows, dtype=dtype)
        if job is not None:
            self._precompiled.add((n, job.spec.torch_dtype))
        return job

    def _evaluate(self, y: Any, x: Tensor, jet: Jet | None, misses: set[Any]) -> Tensor:
        if not isinstance(y, Tensor) or y.ndim != 2 or y.shape[0] != x.shape[0]:
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise InvalidArgumentError(
                f"the model returned {got} for inputs of shape {tuple(x.shape)}; a PINN "
                f"network must return shape ({x.shape[0]}, number of outputs)."
            )
        with serve_derivatives(self._dde, y, x, jet, misses):
            r = self.pde(x, y)
            return as_columns(r, x.shape[0], self.pde, "pde function", tuple(x.shape))

    def forward(self, model: nn.Module) -> Tensor:
        """Mean squared residual at the current collocation points (with ``causal``: the
        causally weighted mean over time chunks)."""
        self.remember_model(model)
        x = self.points.detach().clone().requires_grad_(True)
        r = self.residual(model, x, at_points=True)
        if self.causal is None:
            return (r**2).mean()
        loss, self.causal_weights = self.causal.loss(x, r)
        return loss

    def sample(self, n: int, generator: torch.Generator) -> np.ndarray:
        """``n`` fresh float64 points distributed as the initial draw (the adapter's)."""
        return self._sample(n, generator)

    def residual_at(self, points: Tensor | np.ndarray) -> Tensor | None:
        """Residual (detached) of the model last evaluated, or None if there was none.

        ``points`` (an array or a tensor) are evaluated on the term's device.

        Evaluated in chunks of ``_CHUNK`` points: each evaluation builds (and drops) an
        autograd graph, whose size for RAD's many candidates would otherwise set the
        process's peak memory.
        """
        model = self.last_model()
        if model is None:
            return None
        x = torch.as_tensor(points, dtype=self.points.dtype, device=self.points.device)
        parts = [
            self.residual(model, x[i : i + _CHUNK].clone().requires_grad_(True)).detach()
            for i in range(0, x.shape[0], _CHUNK)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 0)

    def _points_changed(self) -> None:
        self._jet_cache.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_jet_cache"] = {}
        state["_shared"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_taylor_off", False)
        self.__dict__.setdefault("_jet_key", None)
        self.__dict__.setdefault("_train_calls", 0)
        self.__dict__.setdefault("_precompiled", set())
        self.__dict__.setdefault("_shared", [])
        self.__dict__.setdefault("causal", None)
        self.__dict__.setdefault("causal_weights", None)
        if "sample" in self.__dict__:  # pickled when the sampler was an attribute
            self._sample = self.__dict__.pop("sample")
        self._model_ref = None

    def extra_repr(self) -> str:
        return (
            f"pde={_name_of(self.pde)}, n_points={self.points.shape[0]}, "
            f"derivatives={self.derivatives!r}, resampling={self.resampling!r}"
            + (f", causal={self.causal!r}" if self.causal is not None else "")
        )


class ConditionLoss(LossTerm):
    """Mean squared violation of one DeepXDE initial/boundary condition at its points.

    ``DirichletBC``, ``IC`` and ``PointSetBC`` targets and ``NeumannBC`` normals are
    evaluated once, in float64, and kept as buffers; other conditions (``RobinBC``,
    ``PeriodicBC``, ``OperatorBC``) are evaluated with the condition's own ``error``.

    Args:
        dde: the DeepXDE module.
        condition: the ``dde.icbc`` object.
        points: its collocation points (``condition.collocation_points(...)``).
    """

    points: Tensor

    def __init__(self, dde: ModuleType, condition: Any, points: np.ndarray) -> None:
        super().__init__()
        import inspect

        self._dde = dde
        self.condition = condition
        icbc = dde.icbc
        dtype = torch.get_default_dtype()
        self._x_np = np.asarray(points)  # one fixed array: DeepXDE caches values by its id
        self.register_buffer("points", torch.as_tensor(points, dtype=dtype))
        self.register_buffer("target", None)
        self.register_buffer("normal", None)
        comp = getattr(condition, "component", 0)
        self.component: list[int] = list(comp) if isinstance(comp, list) else [int(comp)]
        x64 = np.asarray(points, dtype=np.float64)
        if isinstance(condition, icbc.DirichletBC | icbc.IC | icbc.NeumannBC):
            fn = inspect.unwrap(condition.func)
            values = np.asarray(fn(x64), dtype=np.float64)
            values = np.broadcast_to(
                values.reshape(-1, 1) if values.ndim < 2 else values, (x64.shape[0], 1)
            )
            self.target = torch.as_tensor(np.array(values, dtype=np.float64), dtype=dtype)
            self.kind = "value" if not isinstance(condition, icbc.NeumannBC) else "neumann"
            if self.kind == "neumann":
                normal = condition.geom.boundary_normal(x64)
                self.normal = torch.as_tensor(np.asarray(normal, dtype=np.float64), dtype=dtype)
        elif isinstance(condition, icbc.PointSetBC):
            values = condition.values.detach().cpu().numpy().astype(np.float64)
            self.target = torch.as_tensor(values.reshape(x64.shape[0], -1), dtype=dtype)
            self.kind = "value"
        else:
            self.kind = "generic"
        # (model, its parameters, their values, the model's values at the points) from a
        # residual's pass (PDEResidual.share_value_points); used once, if the model and its
        # parameter values are the same then and now
        self._pending: tuple[nn.Module, tuple[Tensor, ...], Tensor, Tensor] | None
        self._pending = None
        self._share = True
        c0 = self.component[0]
        contiguous = self.component == list(range(c0, c0 + len(self.component)))
        self._columns: slice | list[int] = (
            slice(c0, c0 + len(self.component)) if contiguous else self.component
        )

    def errors(self, model: nn.Module) -> Tensor:
        """The condition's violation at its points, ``(n, k)``."""
        if self.kind == "value":
            assert self.target is not None
            pending, self._pending = self._pending, None
            if pending is not None:
                owner, params, values, y = pending
                # (compared by value: a fused optimiser step does not advance the
                # parameters' version counters)
                if (
                    owner is model
                    and y.dtype == self.points.dtype
                    and torch.equal(_flat_values(params), values)
                ):
                    return self._selected(y) - self.target
                self._share = False  # evaluated out of step with the residual: stop sharing
            y = model(self.points)
            return self._selected(y) - self.target
        x = self.points.detach().clone().requires_grad_(True)
        y = model(x)
        if self.kind == "neumann":
            assert self.target is not None and self.normal is not None
            (g,) = torch.autograd.grad(
                y[:, self.component[0]].sum(), x, create_graph=True, materialize_grads=True
            )
            return (g * self.normal).sum(dim=1, keepdim=True) - self.target
        with serve_derivatives(self._dde, y, x, None, set()):
            err = self.condition.error(self._x_np, x, y, 0, x.shape[0])
        return as_columns(err, x.shape[0], type(self.condition), "condition", tuple(x.shape))

    def _selected(self, y: Tensor) -> Tensor:
        """The condition's output columns of ``y`` (``y`` itself if that is all of them)."""
        cols = self._columns
        if isinstance(cols, slice) and cols.start == 0 and cols.stop == y.shape[1]:
            return y
        return y[:, cols]

    def forward(self, model: nn.Module) -> Tensor:
        """Mean squared violation."""
        return (self.errors(model) ** 2).mean()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pending"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_pending", None)
        self.__dict__.setdefault("_share", True)
        self.__dict__.setdefault("_columns", self.component)

    def extra_repr(self) -> str:
        return f"condition={type(self.condition).__name__}, n_points={self.points.shape[0]}"


def _flat_values(params: Sequence[Tensor]) -> Tensor:
    """The parameters' values as one flat vector (a copy)."""
    if not params:
        return torch.empty(0)
    return torch.cat([p.detach().reshape(-1) for p in params])
