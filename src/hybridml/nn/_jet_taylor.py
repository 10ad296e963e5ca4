"""The uncompiled Taylor-mode jet of a dense tanh/sigmoid network, as one autograd node.

The value, the first derivatives (all input directions) and the requested second
derivatives are pushed through the layers together in one forward pass:

* ``z = W a + b``:  ``z_k = W a_k``,  ``z_ij = W a_ij``;
* ``a = s(z)``:     ``a_k = s'(z) z_k``,  ``a_ij = s''(z) z_i z_j + s'(z) z_ij``.

:class:`_MLPJetFn` stacks all streams as rows of one matrix per layer and writes its
backward pass out by hand. Used by :meth:`hybridml.MLP.jet`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

Pair = tuple[int, int]


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
