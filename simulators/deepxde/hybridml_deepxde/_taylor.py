"""Forward-mode Taylor propagation of input derivatives through a PINN network.

For a residual such as Burgers' ``u_t + u u_x - nu u_xx`` a PINN needs, at every collocation
point, the network's value and its first and some second derivatives with respect to the
inputs. Reverse-over-reverse autograd gets them with two extra backward sweeps whose graphs
are differentiated once more for the parameter gradient. Here the value, the first
derivatives (all input directions) and the requested second derivatives are pushed through
the layers together in one forward pass:

* ``z = W a + b``:  ``z_k = W a_k``,  ``z_ij = W a_ij``;
* ``a = s(z)``:     ``a_k = s'(z) z_k``,  ``a_ij = s''(z) z_i z_j + s'(z) z_ij``.

The result is an ordinary first-order autograd graph in the parameters. Supported networks
are :class:`hybridml.MLP` with ``nn.Tanh`` or ``nn.Sigmoid`` activations, optionally inside
:class:`hybridml.Constrained` with a :class:`hybridml.HardBoundary` transform; for anything
else :func:`taylor_supported` is False and callers fall back to autograd.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from . import _precompile
from ._precompile import JetSpec, Precompilation

if TYPE_CHECKING:
    from hybridml import MLP, HardBoundary

__all__ = ["Jet", "compile_available", "taylor_jet", "taylor_supported"]

Pair = tuple[int, int]


@dataclass
class Jet:
    """Value and input derivatives of a network at ``n`` points.

    Attributes:
        value: outputs, shape ``(n, k)``.
        grad: first derivatives, shape ``(d, n, k)``: ``grad[j][:, i]`` is ``dy_i/dx_j``.
        hess: second derivatives per input pair ``(i, j)`` with ``i <= j``, each ``(n, k)``.
        extra: outputs at the value-only ``extra`` points of :func:`taylor_jet`, if any.
        grads: the first derivatives apart, ``grads[j]`` of shape ``(n, k)`` (the same
            values as ``grad[j]``), where the jet was computed that way (the compiled jet);
            answering a derivative from them needs no view of ``grad`` and its backward.
    """

    value: Tensor
    grad: Tensor
    hess: dict[Pair, Tensor]
    extra: Tensor | None = None
    grads: tuple[Tensor, ...] | None = None


def _mlp_of(model: nn.Module) -> MLP | None:
    from hybridml import MLP

    return model if isinstance(model, MLP) else None


def taylor_supported(model: nn.Module) -> bool:
    """Whether :func:`taylor_jet` can propagate derivatives through ``model``."""
    from hybridml import Constrained, HardBoundary

    if isinstance(model, Constrained):
        if not isinstance(model.transform, HardBoundary):
            return False
        model = model.net
    mlp = _mlp_of(model)
    if mlp is None:
        return False
    layers = list(mlp.layers)
    for i, layer in enumerate(layers):
        if i % 2 == 0:  # Linear, activation, Linear, ..., Linear
            if not isinstance(layer, nn.Linear) or layer.bias is None:
                return False
        elif not isinstance(layer, nn.Tanh | nn.Sigmoid):
            return False
    return len(layers) % 2 == 1


def _act_derivs(kind: str, z: Tensor) -> tuple[Tensor, Tensor]:
    """``s(z)`` and ``s'(z)`` (all rows)."""
    if kind == "tanh":
        # 2 sigmoid(2z) - 1: tanh to float rounding (absolute error ~1e-7 in float32), and
        # several times faster than torch.tanh on CPU
        a = torch.sigmoid(2.0 * z).mul_(2.0).sub_(1.0)
        s1 = torch.addcmul(torch.ones_like(a), a, a, value=-1.0)
    else:
        a = torch.sigmoid(z)
        s1 = a - a * a
    return a, s1


def _act_higher(kind: str, a: Tensor, s1: Tensor) -> tuple[Tensor, Tensor]:
    """``s''(z)`` and ``s'''(z)`` from ``a = s(z)`` and ``s1 = s'(z)``."""
    if kind == "tanh":
        s2 = -2.0 * a * s1  # s'' = -2 s s'
        s3 = 2.0 * s1 * (3.0 * a * a - 1.0)  # s''' = 2 s' (3 s^2 - 1)
    else:
        u = 1.0 - 2.0 * a
        s2 = s1 * u  # s'' = s' (1 - 2 s)
        s3 = s1 * (u * u - 2.0 * s1)  # s''' = s' ((1 - 2 s)^2 - 2 s')
    return s2, s3


class _MLPJetFn(torch.autograd.Function):
    """Value, first and selected second input derivatives of a dense MLP, stacked.

    Rows of the output (``R = n + m + (d + P) n``, ``k`` columns): the value at the ``n``
    points and at ``m`` value-only extra points, then ``d`` blocks of ``n`` rows of first
    derivatives (input direction ``0 .. d-1``), then one block of ``n`` rows per pair.
    Every layer is one matrix product over all rows; the backward pass is written out by
    hand (one matrix product per layer for the weights, one for the activations), so the
    autograd graph is a single node. Not differentiable twice.
    """

    @staticmethod
    def forward(
        ctx: Any,
        xs: Tensor,
        scale: Tensor,
        n: int,
        pairs: tuple[Pair, ...],
        kinds: tuple[str, ...],
        *params: Tensor,
    ) -> Tensor:
        ws, bs = params[0::2], params[1::2]
        nv, d = xs.shape
        n_layers = len(ws)
        # layer 0: the derivative rows of its pre-activation do not depend on the point
        z = torch.addmm(bs[0], xs, ws[0].t())
        cd = scale[:, None] * ws[0].t()  # (d, w): dz/dx_k
        saved: list[tuple[Tensor | None, ...]] = []
        if n_layers == 1:
            k = z.shape[1]
            out = z.new_zeros(nv + (d + len(pairs)) * n, k)
            out[:nv] = z
            out[nv : nv + d * n].view(d, n, k).copy_(cd[:, None, :].expand(d, n, k))
            ctx.meta = (n, pairs, kinds, d, nv)
            ctx.save_for_backward(xs, scale, *params)
            ctx.saved = saved
            return out
        w = z.shape[1]
        rows = nv + (d + len(pairs)) * n
        a, s1 = _act_derivs(kinds[0], z)
        an, s1n = a[:n], s1[:n]
        s2, s3 = _act_higher(kinds[0], an, s1n)
        act = torch.empty(rows, w, dtype=z.dtype, device=z.device)
        act[:nv] = a
        torch.mul(s1n, cd[:, None, :], out=act[nv : nv + d * n].view(d, n, w))
        for q, (i, j) in enumerate(pairs):
            torch.mul(s2, cd[i] * cd[j], out=act[nv + (d + q) * n : nv + (d + q + 1) * n])
        saved.append((s1, s2, s3, cd[:, None, :], None))
        acts = [act]
        for layer in range(1, n_layers):
            z = act @ ws[layer].t()
            z[:nv] += bs[layer]
            if layer == n_layers - 1:
                break
            w = z.shape[1]
            zd = z[nv : nv + d * n].view(d, n, w)
            zh = z[nv + d * n :].view(len(pairs), n, w)
            a, s1 = _act_derivs(kinds[layer], z[:nv])
            an, s1n = a[:n], s1[:n]
            s2, s3 = _act_higher(kinds[layer], an, s1n)
            act = torch.empty_like(z)
            act[:nv] = a
            torch.mul(zd, s1n, out=act[nv : nv + d * n].view(d, n, w))
            for q, (i, j) in enumerate(pairs):
                ah = act[nv + (d + q) * n : nv + (d + q + 1) * n]
                torch.mul(zd[i], zd[j], out=ah)
                ah.mul_(s2).addcmul_(s1n, zh[q])
            saved.append((s1, s2, s3, zd, zh))
            acts.append(act)
        ctx.meta = (n, pairs, kinds, d, nv)
        ctx.save_for_backward(xs, scale, *params)
        ctx.saved = saved
        ctx.acts = acts
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        n, pairs, _, d, nv = ctx.meta
        xs, scale, *params = ctx.saved_tensors
        ws = params[0::2]
        n_layers = len(ws)
        grads: list[Tensor | None] = [None] * (2 * n_layers)
        g = g.contiguous()
        if n_layers == 1:
            gv = g[:nv]
            grads[0] = (xs.t() @ gv).t() + g[nv : nv + d * n].view(d, n, -1).sum(1).t() * scale
            grads[1] = gv.sum(0)
            gx = gv @ ws[0] if ctx.needs_input_grad[0] else None
            return (gx, None, None, None, None, *grads)
        acts, saved = ctx.acts, ctx.saved
        npairs = len(pairs)
        for layer in range(n_layers - 1, 0, -1):
            grads[2 * layer] = g.t() @ acts[layer - 1]
            grads[2 * layer + 1] = g[:nv].sum(0)
            ga = g @ ws[layer]
            s1, s2, s3, zd, zh = saved[layer - 1]
            w = ga.shape[1]
            s1n = s1[:n]
            gav = ga[:nv]
            gad = ga[nv : nv + d * n].view(d, n, w)
            gah = ga[nv + d * n :].view(npairs, n, w)
            gz = torch.empty_like(ga)
            gzv = gz[:nv]
            torch.mul(gav, s1, out=gzv)
            # value rows: d/dz of (s' z_k) and of (s'' z_i z_j + s' z_ij)
            extra = (gad * zd).sum(0).mul_(s2)  # zd is (d, 1, w) for layer 0: broadcast
            gzd = gz[nv : nv + d * n].view(d, n, w)
            torch.mul(gad, s1n, out=gzd)
            for q, (i, j) in enumerate(pairs):
                gq = gah[q]
                zz = zd[i] * zd[j]
                if zh is not None:
                    extra.addcmul_(gq, zz.mul_(s3).addcmul_(s2, zh[q]))
                else:
                    extra.addcmul_(gq, zz * s3)
                t = gq * s2
                gzd[i].addcmul_(t, zd[j])
                gzd[j].addcmul_(t, zd[i])
            gzv[:n] += extra
            if zh is not None:  # (layer 0 has no second-derivative pre-activations)
                torch.mul(gah, s1n, out=gz[nv + d * n :].view(npairs, n, w))
            g = gz
        # layer 0: z_v = xs W0^T + b0, z_k = scale_k W0[:, k], z_ij = 0
        gv = g[:nv]
        grads[0] = (xs.t() @ gv).t() + g[nv : nv + d * n].view(d, n, -1).sum(1).t() * scale
        grads[1] = gv.sum(0)
        gx = gv @ ws[0] if ctx.needs_input_grad[0] else None
        return (gx, None, None, None, None, *grads)


def _jet_function(
    n: int, d: int, pairs: tuple[Pair, ...], kinds: tuple[str, ...]
) -> Callable[..., tuple[Tensor, ...]]:
    """The jet of :class:`_MLPJetFn` as plain differentiable tensor operations.

    ``f(x, extra, lo, hi, *params)`` (``extra``, ``lo`` and ``hi`` may be None: no extra
    points, no input scaling) returns the rows of :class:`_MLPJetFn` as separate pieces,
    ``(value, extra value, grad (d, n, k), *grad[j] for each input j, *hess)``, with the
    input scaling and the joining of the points inside; written for :func:`torch.compile`
    (fixed ``n``, ``pairs`` and activations), whose AOTAutograd derives the backward pass
    and whose inductor fuses each layer's elementwise chain (the activation and its
    derivatives, the products of the derivative streams) into a few loops around the
    matrix products.

    The activations are kept transposed, features by points, with the streams side by
    side: ``[value | extra value | d first derivatives | second derivatives]``, each a
    block of columns. Each layer is then one matrix product ``W @ A`` over all streams,
    and its backward two (``W^T @ G`` and ``G @ A^T``), in place of one per stream and
    direction (the Burgers benchmark's 3x20 net: 10 matrix products per step instead of
    30; for these shapes MKL runs one product over the joined streams 20-35 % faster
    than one per stream). The blocks are joined by ``torch.cat`` and parted by
    ``torch.split``, whose backward is a ``cat`` again: inductor writes each block's
    kernel straight into its place in the joined buffer (a plain slice's backward would
    instead zero-pad every block and add them up, with a masked load per element).
    """
    npairs = len(pairs)

    def act(kind: str, z: Tensor) -> Tensor:
        if kind == "tanh":
            return 2.0 * torch.sigmoid(2.0 * z) - 1.0  # as _act_derivs: cheaper than tanh
        return torch.sigmoid(z)

    def f(
        x: Tensor, extra: Tensor | None, lo: Tensor | None, hi: Tensor | None, *params: Tensor
    ) -> tuple[Tensor, ...]:
        ws, bs = params[0::2], params[1::2]
        if extra is not None and extra.shape[0] == 0:
            extra = None
        m = 0 if extra is None else extra.shape[0]
        if lo is not None and hi is not None:  # the network's input scaling onto [-1, 1]
            scale = 2.0 / (hi - lo)
            xs = (x - lo) * scale - 1.0
            es = None if extra is None else (extra - lo) * scale - 1.0
        else:
            scale = torch.ones(d, dtype=x.dtype, device=x.device)
            xs, es = x, extra
        b0 = bs[0][:, None]
        z = torch.addmm(b0, ws[0], xs.t())  # (w, n)
        ze = None if es is None else torch.addmm(b0, ws[0], es.t())  # (w, m)
        cd = ws[0] * scale  # (w, d): dz/dx_k of layer 0, the same at every point
        zd: list[Tensor] = [cd[:, k : k + 1] for k in range(d)]
        zh: list[Tensor] | None = None  # layer 0's second derivatives are zero
        sizes = [n] + ([m] if m else []) + [n] * (d + npairs)
        first = 2 if m else 1  # the first derivative block's index
        for layer in range(1, len(ws)):
            kind = kinds[layer - 1]
            a = act(kind, z)
            if kind == "tanh":
                s1 = 1.0 - a * a
                s2 = -2.0 * a * s1
            else:
                s1 = a - a * a
                s2 = s1 * (1.0 - 2.0 * a)
            ad = [s1 * zd[k] for k in range(d)]
            ah = []
            for q, (i, j) in enumerate(pairs):
                h = s2 * (zd[i] * zd[j])
                ah.append(h if zh is None else h + s1 * zh[q])
            ae = [] if ze is None else [act(kind, ze)]
            blocks = torch.split(ws[layer] @ torch.cat([a, *ae, *ad, *ah], 1), sizes, 1)
            b = bs[layer][:, None]
            z = blocks[0] + b
            ze = None if ze is None else blocks[1] + b
            zd = list(blocks[first : first + d])
            zh = list(blocks[first + d :])
        grads = [t.t() for t in zd]
        value_extra = z[:, :0].t() if ze is None else ze.t()
        return (z.t(), value_extra, torch.stack(grads, 0), *grads, *(t.t() for t in zh or []))

    # a code object of its own for each jet: dynamo counts the compilations of one code
    # object against its recompile limit (8), and each network structure, point count
    # and dtype (RAR's growing point sets, tests) is another compilation
    f.__code__ = f.__code__.replace()
    return f


_COMPILED: dict[Any, Callable[..., tuple[Tensor, ...]]] = {}
_COMPILE_BROKEN: list[str] = []  # the reason, once torch.compile has failed here


def _compile_failed(exc: BaseException) -> None:
    if not _COMPILE_BROKEN:
        _COMPILE_BROKEN.append(" ".join(f"{type(exc).__name__}: {exc}".split())[:300])
        warnings.warn(
            "hybridml_deepxde: torch.compile of the Taylor-mode jet failed "
            f"({_COMPILE_BROKEN[0]}); using the uncompiled jet from now on (same results, "
            "slower).",
            RuntimeWarning,
            stacklevel=4,
        )


def compile_available() -> bool:
    """Whether the compiled jet is usable (False after a failed compilation here)."""
    return not _COMPILE_BROKEN


def _compiled_jet(
    x: Tensor,
    extra: Tensor | None,
    lo: Tensor | None,
    hi: Tensor | None,
    pairs: tuple[Pair, ...],
    kinds: tuple[str, ...],
    params: Sequence[Tensor],
) -> tuple[Tensor, ...] | None:
    """The jet's pieces by the compiled :func:`_jet_function`, or None if compiling fails."""
    if _COMPILE_BROKEN:
        return None
    n = x.shape[0]
    key = (n, x.shape[1], pairs, kinds, x.dtype)
    fn = _COMPILED.get(key)
    if fn is None:  # a background compilation of it writes the cache: wait for it
        rows = None if extra is None else extra.shape[0]
        _precompile.wait_for(_jet_spec(n, x.shape[1], rows, lo is not None, pairs, kinds, params))
    try:
        with warnings.catch_warnings():
            # torch's own deprecation warnings while compiling are not the caller's concern
            # (and, turned into errors by a warnings filter, would stop the compilation).
            # Note: the compiled backward cannot run twice with retain_graph=True (torch:
            # "donated buffers"), hence derivatives="compiled" is opt-in.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            if fn is None:
                fn = _COMPILED[key] = torch.compile(
                    _jet_function(n, x.shape[1], pairs, kinds), dynamic=False, fullgraph=True
                )
            return fn(x, extra, lo, hi, *params)
    except Exception as exc:  # no C++ compiler, an inductor error, ...: run uncompiled
        _compile_failed(exc)
        return None


def _jet_spec(
    n: int,
    d: int,
    extra_rows: int | None,
    scaled: bool,
    pairs: tuple[Pair, ...],
    kinds: tuple[str, ...],
    params: Sequence[Tensor],
) -> JetSpec:
    """What :func:`_compiled_jet` specialises on, for a background compilation."""
    return JetSpec(
        n=n,
        d=d,
        extra=extra_rows,
        scaled=scaled,
        pairs=tuple(pairs),
        kinds=tuple(kinds),
        shapes=tuple(tuple(p.shape) for p in params),
        trainable=tuple(p.requires_grad for p in params),
        dtype=str(params[0].dtype).removeprefix("torch."),
        threads=torch.get_num_threads(),
        lookup_module=_precompile.lookup_module(),
    )


def _mlp_parts(mlp: MLP) -> tuple[list[Tensor], list[str]]:
    """The parameters (weight, bias per layer) and the activations of an MLP."""
    params: list[Tensor] = []
    kinds: list[str] = []
    for layer in mlp.layers:
        if isinstance(layer, nn.Linear):
            params += [layer.weight, layer.bias]
        else:
            kinds.append("tanh" if isinstance(layer, nn.Tanh) else "sigmoid")
    return params, kinds


def precompile_jet(
    model: nn.Module,
    n: int,
    pairs: Sequence[Pair],
    *,
    extra_rows: int | None = None,
    dtype: torch.dtype | None = None,
) -> Precompilation | None:
    """Start compiling the jet of ``model`` at ``n`` points in a background process.

    ``model`` as for :func:`taylor_jet` (its MLP's structure is what counts, not its
    values); ``pairs`` the second derivatives; ``extra_rows`` the number of value-only
    points passed along (None: none); ``dtype`` the dtype the jet will run in (default:
    the model's). Returns None where nothing would be compiled (no activations, or
    compiling failed here earlier). See :mod:`hybridml_deepxde._precompile`.
    """
    from hybridml import Constrained

    mlp = cast("MLP", model.net if isinstance(model, Constrained) else model)
    params, kinds = _mlp_parts(mlp)
    if not kinds or _COMPILE_BROKEN:
        return None
    dtype = dtype or params[0].dtype
    spec = _jet_spec(
        int(n),
        int(params[0].shape[1]),
        extra_rows,
        mlp.input_lower is not None,
        tuple(sorted({(min(p), max(p)) for p in pairs})),
        tuple(kinds),
        [torch.empty(p.shape, dtype=dtype).requires_grad_(p.requires_grad) for p in params],
    )
    try:
        return _precompile.start(spec)
    except OSError as exc:  # no Python executable to start, no temporary directory, ...
        warnings.warn(
            f"hybridml_deepxde: could not start the background compilation ({exc}); the jet "
            "will be compiled in process when first needed.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _mlp_jet(
    mlp: MLP,
    x: Tensor,
    pairs: Sequence[Pair],
    extra: Tensor | None = None,
    compiled: bool = False,
) -> tuple[Jet, Tensor | None]:
    """Jet of a plain :class:`hybridml.MLP` at ``x``, and its value at ``extra`` points."""
    n, d = x.shape
    lo, hi = mlp.input_lower, mlp.input_upper
    params, kinds = _mlp_parts(mlp)
    pairs = tuple(pairs)
    if extra is not None:
        extra = extra.to(x.dtype)
    if compiled and len(kinds) > 0:
        # the input derivative of the points is not needed in training: keep it out of the
        # compiled backward
        parts = _compiled_jet(x.detach(), extra, lo, hi, pairs, tuple(kinds), params)
        if parts is not None:
            value, value_extra, grad = parts[:3]
            grads = tuple(parts[3 : 3 + d])
            hess = dict(zip(pairs, parts[3 + d :], strict=True))
            jet = Jet(value, grad, hess, grads=grads)
            return jet, (value_extra if extra is not None else None)
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
    return Jet(value, grad, hess), (out[n:nv] if extra is not None else None)


def _function_jet(
    fn: Callable[[Tensor], Tensor], what: str, x: Tensor, pairs: Sequence[Pair]
) -> Jet:
    """Jet of a small pointwise function of ``x`` (a boundary function) by autograd."""
    xv = x.detach().requires_grad_(True)
    with torch.enable_grad():
        v = fn(xv)
        if not isinstance(v, Tensor):
            raise TypeError(f"HardBoundary: {what} must return a tensor, got {type(v).__name__}.")
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


def _has_trainable(fn: object) -> bool:
    return isinstance(fn, nn.Module) and any(p.requires_grad for p in fn.parameters())


def _cached_jet(
    fn: Callable[[Tensor], Tensor],
    what: str,
    x: Tensor,
    pairs: Sequence[Pair],
    cache: dict[Any, Jet] | None,
    points_key: Any,
) -> Jet:
    # without a key naming the points nothing is cached: a tensor's storage address and
    # version are reused by later tensors holding other points
    if cache is None or points_key is None or _has_trainable(fn):
        return _function_jet(fn, what, x, pairs)
    key = (what, id(fn), points_key, tuple(x.shape), x.dtype, tuple(pairs))
    jet = cache.get(key)
    if jet is None:
        if len(cache) > 8:
            cache.clear()
        jet = _function_jet(fn, what, x, pairs)
        jet = Jet(
            jet.value.detach(), jet.grad.detach(), {p: h.detach() for p, h in jet.hess.items()}
        )
        cache[key] = jet
    return jet


def taylor_jet(
    model: nn.Module,
    x: Tensor,
    pairs: Sequence[Pair] = (),
    *,
    cache: dict[Any, Jet] | None = None,
    points_key: Any = None,
    extra: Tensor | None = None,
    compiled: bool = False,
) -> Jet:
    """Value, first derivatives and the second derivatives ``pairs`` of ``model`` at ``x``.

    Args:
        model: a network for which :func:`taylor_supported` is True.
        x: points, shape ``(n, d)``.
        pairs: input index pairs ``(i, j)`` with ``i <= j`` whose second derivatives
            ``d2y/dx_i dx_j`` are wanted.
        cache: optional dict in which the derivatives of a :class:`~hybridml.HardBoundary`'s
            (parameter-free) ``g`` and ``distance`` are kept between calls at the same points.
        points_key: a hashable identifying the points ``x`` for the cache; without it
            nothing is cached.
        extra: optional further points ``(m, d)`` at which only the value is wanted
            (evaluated in the same pass); it is returned as the jet's ``extra``.
        compiled: run the network's jet through :func:`torch.compile` (inductor): the
            first call for a network structure, point count and dtype compiles (seconds),
            later ones are faster. If compiling fails, a one-time ``RuntimeWarning`` is
            issued and the uncompiled jet is used. The compiled jet is differentiable with
            respect to the parameters only, not ``x``.

    Returns:
        A :class:`Jet`; differentiable (once) with respect to the model's parameters and
        (unless ``compiled``) ``x``.
    """
    from hybridml import Constrained

    pairs = sorted({(min(p), max(p)) for p in pairs})
    if isinstance(model, Constrained):
        # taylor_supported(model) (this function's precondition): a HardBoundary around an MLP
        transform = cast("HardBoundary", model.transform)
        raw, raw_extra = _mlp_jet(cast("MLP", model.net), x, pairs, extra, compiled)
        g = _cached_jet(transform.g, "g", x, pairs, cache, points_key)
        dist = _cached_jet(transform.distance, "distance", x, pairs, cache, points_key)
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
        if extra is not None and raw_extra is not None:
            y_extra = transform(extra, raw_extra)
        return Jet(y, grad, hess, y_extra)
    jet, y_extra = _mlp_jet(cast("MLP", model), x, pairs, extra, compiled)
    jet.extra = y_extra
    return jet
