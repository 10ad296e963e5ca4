"""The compiled Taylor-mode jet: the jet as plain tensor operations, through torch.compile.

Used by :meth:`hybridml.MLP.jet` with ``compiled=True``. Each network structure, point
count and dtype compiles once per process (seconds); :mod:`._precompile` can do that ahead
of time in a background process. If compiling fails (no C++ compiler, an inductor error),
a one-time ``RuntimeWarning`` is issued and the uncompiled jet is used from then on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import _precompile
from ._precompile import JetSpec

Pair = tuple[int, int]


def _jet_function(
    n: int, d: int, pairs: tuple[Pair, ...], kinds: tuple[str, ...]
) -> Callable[..., tuple[Tensor, ...]]:
    """The jet of :class:`~._jet_taylor._MLPJetFn` as plain differentiable tensor operations.

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
            "hybridml: torch.compile of the Taylor-mode jet failed "
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
    # one compiled function per device too: a GPU's kernels are not the CPU's
    key = (n, x.shape[1], pairs, kinds, x.dtype, x.device)
    fn = _COMPILED.get(key)
    if fn is None and x.device.type == "cpu":  # a background compilation (CPU) writes the
        # cache: wait for it
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
