"""Input derivatives of a network at many points at once: the :class:`Jet`.

A physics residual such as Burgers' ``u_t + u u_x - nu u_xx`` needs, at every collocation
point, the network's value and some of its first and second derivatives with respect to the
inputs. Reverse-over-reverse autograd gets them with extra backward sweeps whose graphs are
differentiated once more for the parameter gradient. :meth:`hybridml.MLP.jet` instead
pushes the value, all first derivatives and the requested second derivatives through the
layers together in one forward pass (Taylor mode, :mod:`._jet_taylor`), optionally through
``torch.compile`` (:mod:`._jet_compiled`); the result is an ordinary first-order autograd
graph in the parameters. :meth:`hybridml.Constrained.jet` adds a
:class:`~hybridml.HardBoundary` by the product rule. Networks the Taylor mode does not
cover get the same :class:`Jet` by autograd.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError, InvalidIndexError, InvalidTypeError
from . import _jet_compiled, _precompile
from ._jet_taylor import _MLPJetFn
from ._precompile import Precompilation

if TYPE_CHECKING:
    from ._constraints import HardBoundary
    from ._mlp import MLP

__all__ = ["Jet"]

Pair = tuple[int, int]


@dataclass
class Jet:
    """Value and input derivatives of a network at ``n`` points (from ``model.jet(x, ...)``).

    With ``x`` of shape ``(n, d)`` and ``k`` outputs:

    Attributes:
        value: outputs, shape ``(n, k)``.
        grad: all first derivatives, shape ``(d, n, k)``: ``grad[j][:, i]`` is
            ``dy_i/dx_j``.
        hess: the requested second derivatives, one ``(n, k)`` tensor per input pair
            ``(i, j)`` with ``i <= j``: ``hess[(i, j)][:, c]`` is ``d2y_c/dx_i dx_j``.
        extra: outputs at the value-only ``extra`` points, shape ``(m, k)``, or None.
        grads: the first derivatives apart, ``grads[j]`` of shape ``(n, k)`` (the values
            of ``grad[j]``), where the jet was computed that way (the compiled jet);
            answering a derivative from them needs no view of ``grad``.
        compiled: whether the compiled jet computed it.

    :meth:`derivative` answers one derivative of one output column without the layout.
    """

    value: Tensor
    grad: Tensor
    hess: dict[Pair, Tensor]
    extra: Tensor | None = None
    grads: tuple[Tensor, ...] | None = None
    compiled: bool = False

    def derivative(self, *wrt: int, out: int = 0) -> Tensor:
        """Output column ``out`` differentiated with respect to the inputs ``wrt``.

        ``jet.derivative(out=c)`` is the value of column ``c``, ``jet.derivative(j)`` its
        first derivative ``dy_c/dx_j``, ``jet.derivative(i, j)`` its second derivative
        ``d2y_c/dx_i dx_j`` (the pair must have been requested). Returns shape ``(n, 1)``,
        like :func:`hybridml.partial`.
        """
        k = self.value.shape[1]
        if not -k <= out < k:
            raise InvalidIndexError(f"Jet.derivative: out={out} is out of range for {k} outputs.")
        c = slice(out, out + 1) if out != -1 else slice(out, None)
        d = self.grad.shape[0]
        if any(not 0 <= j < d for j in wrt):
            raise InvalidIndexError(f"Jet.derivative: inputs {wrt} out of range for {d} inputs.")
        if not wrt:
            return self.value[:, c]
        if len(wrt) == 1:
            g = self.grads[wrt[0]] if self.grads is not None else self.grad[wrt[0]]
            return g[:, c]
        if len(wrt) == 2:
            pair = (min(wrt), max(wrt))
            if pair not in self.hess:
                raise InvalidArgumentError(
                    f"Jet.derivative: the second derivative {pair} was not computed; pass it "
                    f"in pairs (computed: {sorted(self.hess)})."
                )
            return self.hess[pair][:, c]
        raise InvalidArgumentError(
            f"Jet.derivative: a jet holds derivatives up to order 2, got wrt={wrt} (order "
            f"{len(wrt)})."
        )


def normalise_pairs(pairs: Iterable[Sequence[int]], d: int, owner: str) -> list[Pair]:
    """``pairs`` as sorted unique ``(i, j)`` with ``i <= j``, checked against ``d`` inputs."""
    out = set()
    for p in pairs:
        try:
            i, j = (int(v) for v in p)
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(
                f"{owner}: pairs must be input index pairs such as (0, 0) or (0, 1), got {p!r}."
            ) from exc
        if not (0 <= i < d and 0 <= j < d):
            raise InvalidIndexError(f"{owner}: pair {p!r} is out of range for {d} inputs.")
        out.add((min(i, j), max(i, j)))
    return sorted(out)


def check_points(x: Tensor, d: int, owner: str, what: str = "x") -> None:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != d:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InvalidArgumentError(f"{owner}: {what} must have shape (n, {d}), got {got}.")


def mlp_parts(mlp: MLP) -> tuple[list[Tensor], list[str]]:
    """The parameters (weight, bias per layer) and the activations of an MLP."""
    params: list[Tensor] = []
    kinds: list[str] = []
    for layer in mlp.layers:
        if isinstance(layer, nn.Linear):
            params += [layer.weight, layer.bias]
        else:
            kinds.append("tanh" if isinstance(layer, nn.Tanh) else "sigmoid")
    return params, kinds


def taylor_mode(mlp: MLP) -> bool:
    """Whether the Taylor-mode jet covers ``mlp``: Linear layers with biases and tanh or
    sigmoid activations, alternating."""
    layers = list(mlp.layers)
    for i, layer in enumerate(layers):
        if i % 2 == 0:  # Linear, activation, Linear, ..., Linear
            if not isinstance(layer, nn.Linear) or layer.bias is None:
                return False
        elif not isinstance(layer, nn.Tanh | nn.Sigmoid):
            return False
    return len(layers) % 2 == 1


def mlp_jet(
    mlp: MLP,
    x: Tensor,
    pairs: Sequence[Pair],
    extra: Tensor | None = None,
    compiled: bool = False,
) -> Jet:
    """Taylor-mode jet of an MLP (:func:`taylor_mode` true) at ``x``, value at ``extra``."""
    n, d = x.shape
    lo, hi = mlp.input_lower, mlp.input_upper
    params, kinds = mlp_parts(mlp)
    pairs = tuple(pairs)
    if extra is not None:
        extra = extra.to(x.dtype)
    if compiled and len(kinds) > 0:
        # the input derivative of the points is not needed in training: keep it out of the
        # compiled backward
        parts = _jet_compiled._compiled_jet(x.detach(), extra, lo, hi, pairs, tuple(kinds), params)
        if parts is not None:
            value, value_extra, grad = parts[:3]
            grads = tuple(parts[3 : 3 + d])
            hess = dict(zip(pairs, parts[3 + d :], strict=True))
            return Jet(
                value,
                grad,
                hess,
                value_extra if extra is not None else None,
                grads=grads,
                compiled=True,
            )
    xin = x if extra is None else torch.cat([x, extra], dim=0)
    if lo is not None and hi is not None:
        scale = 2.0 / (hi - lo)
        xs = (xin - lo) * scale - 1.0
    else:
        scale = torch.ones(d, dtype=x.dtype, device=x.device)
        xs = xin
    out = _MLPJetFn.apply(xs, scale, n, pairs, tuple(kinds), *params)
    nv = xin.shape[0]
    k = out.shape[1]
    value = out[:n]
    grad = out[nv : nv + d * n].view(d, n, k)
    hess = {p: out[nv + (d + q) * n : nv + (d + q + 1) * n] for q, p in enumerate(pairs)}
    return Jet(value, grad, hess, out[n:nv] if extra is not None else None)


def function_jet(
    fn: Callable[[Tensor], Tensor],
    what: str,
    x: Tensor,
    pairs: Sequence[Pair],
    *,
    keep_x: bool = False,
) -> Jet:
    """Jet of a pointwise function of ``x`` by autograd (twice differentiable).

    ``keep_x``: if ``x`` requires grad, differentiate at ``x`` itself, so that the jet
    stays differentiable with respect to it (otherwise at a detached copy).
    """
    xv = x if keep_x and x.requires_grad else x.detach().requires_grad_(True)
    with torch.enable_grad():
        v = fn(xv)
        if not isinstance(v, Tensor):
            raise InvalidTypeError(f"{what} must return a tensor, got {type(v).__name__}.")
        if v.ndim == 0:
            v = v.expand(x.shape[0])
        if v.ndim == 1:
            v = v[:, None]
        v = v.expand(x.shape[0], v.shape[-1])
        grads = []
        hess: dict[Pair, list[Tensor]] = {p: [] for p in pairs}
        zero = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for c in range(v.shape[-1]):
            g = torch.zeros_like(xv)
            if v.requires_grad:
                (g,) = torch.autograd.grad(
                    v[:, c].sum(), xv, create_graph=True, allow_unused=True, materialize_grads=True
                )
            grads.append(g)
            for p in pairs:
                h = zero
                if g.requires_grad:
                    (hh,) = torch.autograd.grad(
                        g[:, p[0]].sum(),
                        xv,
                        create_graph=True,
                        allow_unused=True,
                        materialize_grads=True,
                    )
                    h = hh[:, p[1]]
                hess[p].append(h)
    grad = torch.stack(grads, dim=-1).permute(1, 0, 2)  # (d, n, cols)
    return Jet(v, grad, {p: torch.stack(hs, dim=-1) for p, hs in hess.items()})


def autograd_jet(
    model: nn.Module, x: Tensor, pairs: Sequence[Pair], extra: Tensor | None = None
) -> Jet:
    """The jet of any pointwise network by autograd (networks Taylor mode does not cover)."""
    jet = function_jet(model, "the network", x, pairs, keep_x=True)
    if extra is not None:
        jet.extra = model(extra.to(x.dtype))
    return jet


def _has_trainable(fn: object) -> bool:
    return isinstance(fn, nn.Module) and any(p.requires_grad for p in fn.parameters())


def cached_jet(
    fn: Callable[[Tensor], Tensor],
    what: str,
    x: Tensor,
    pairs: Sequence[Pair],
    cache: dict[Any, Jet] | None,
) -> Jet:
    """:func:`function_jet`, kept in ``cache`` (the caller's, for these points ``x``) when
    ``fn`` has no trainable parameters."""
    if cache is None or _has_trainable(fn):
        return function_jet(fn, what, x, pairs)
    key = (what, id(fn), tuple(x.shape), x.dtype, tuple(pairs))
    jet = cache.get(key)
    if jet is None:
        if len(cache) > 8:
            cache.clear()
        jet = function_jet(fn, what, x, pairs)
        jet = Jet(
            jet.value.detach(), jet.grad.detach(), {p: h.detach() for p, h in jet.hess.items()}
        )
        cache[key] = jet
    return jet


def hard_boundary_jet(
    transform: HardBoundary,
    raw: Jet,
    x: Tensor,
    pairs: Sequence[Pair],
    extra: Tensor | None,
    cache: dict[Any, Jet] | None,
) -> Jet:
    """The jet of ``g(x) + distance(x) * raw(x)`` from the jet ``raw`` of the network."""
    g = cached_jet(transform.g, "HardBoundary: g", x, pairs, cache)
    dist = cached_jet(transform.distance, "HardBoundary: distance", x, pairs, cache)
    y = g.value + dist.value * raw.value
    grad = g.grad + dist.grad * raw.value + dist.value * raw.grad
    hess = {}
    for p in pairs:
        i, j = p
        hess[p] = (
            g.hess[p]
            + dist.hess[p] * raw.value
            + dist.grad[i] * raw.grad[j]
            + dist.grad[j] * raw.grad[i]
            + dist.value * raw.hess[p]
        )
    y_extra = None
    if extra is not None and raw.extra is not None:
        y_extra = transform(extra, raw.extra)
    return Jet(y, grad, hess, y_extra, compiled=raw.compiled)


def precompile_mlp_jet(
    mlp: MLP,
    n: int,
    pairs: Sequence[Pair],
    extra_rows: int | None,
    dtype: torch.dtype | None,
) -> Precompilation | None:
    """Start compiling the jet of ``mlp`` at ``n`` points in a background process."""
    params, kinds = mlp_parts(mlp)
    if not kinds or _jet_compiled._COMPILE_BROKEN or params[0].device.type != "cpu":
        return None  # (the background process compiles CPU kernels: a GPU's compile here)
    dtype = dtype or params[0].dtype
    spec = _jet_compiled._jet_spec(
        int(n),
        int(params[0].shape[1]),
        extra_rows,
        mlp.input_lower is not None,
        tuple(pairs),
        tuple(kinds),
        [torch.empty(p.shape, dtype=dtype).requires_grad_(p.requires_grad) for p in params],
    )
    try:
        return _precompile.start(spec)
    except OSError as exc:  # no Python executable to start, no temporary directory, ...
        warnings.warn(
            f"hybridml: could not start the background compilation of the jet ({exc}); it "
            "will be compiled in process when first needed.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
