"""Dense self-scaled BFGS: a quasi-Newton optimiser for small networks (PINNs).

L-BFGS keeps a few correction pairs; on the ill-conditioned losses of physics-informed
networks it plateaus. With a few thousand parameters the full inverse-Hessian
approximation fits in memory (``n**2`` numbers: 3300 parameters are 87 MB in float64), and
BFGS with Al-Baali's self-scaling (Urbán, Stefanou & Pons 2025, J. Comput. Phys. 523,
113656; Kiyani et al. 2025, CMAME 446, 118308) converges much further in the same number of
iterations.

The update, in inverse form, with ``s`` the step, ``y`` the change of the gradient,
``rho = 1 / s'y`` and ``h = H y``::

    H+ = (H - rho (s h' + h s') + rho**2 (y'H y) s s') / tau + rho s s'

``tau = 1`` is plain BFGS; Al-Baali's choice is ``tau = min(1, 1 / b)`` with
``b = s'B s / s'y`` the ratio of the model's curvature along ``s`` to the measured one
(``B s = -t g`` for a step ``s = t d``, ``d = -H g``, so ``s'B s`` needs no inverse). The
update is one ``(n, 2) @ (2, n)`` product added to ``H`` in place, and ``H g`` is the one
matrix-vector product (``H y = H g + d_prev``, the last direction being ``-H g_prev``), so an
iteration costs two passes over ``H`` besides the loss evaluations of its strong-Wolfe line
search (torch's, as :class:`torch.optim.LBFGS` uses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor

from ..exceptions import InvalidArgumentError, TrainingError

try:  # torch's strong-Wolfe line search (private, but present since torch 1.4)
    from torch.optim.lbfgs import _strong_wolfe
except ImportError:  # pragma: no cover - only a future torch could lack it
    _strong_wolfe = None  # type: ignore[assignment]

__all__ = ["SelfScaledBFGS"]

_CURVATURE_EPS = 1e-10  # s'y at or below this: the pair is skipped (as torch's L-BFGS does)


class SelfScaledBFGS(torch.optim.LBFGS):
    """Dense BFGS with Al-Baali self-scaling and a strong-Wolfe line search.

    The interface is :class:`torch.optim.LBFGS`'s (``step(closure)``, one parameter
    group, the state of the first parameter holding ``n_iter`` and ``func_evals``), so it
    can replace it where a closure is evaluated; ``history_size`` is not used.

    Args:
        params: parameters to optimise.
        lr: initial step length of each line search (1.0 is right for BFGS).
        max_iter: BFGS iterations per :meth:`step`.
        max_eval: most loss evaluations per :meth:`step` (default ``25 * max_iter + 1``).
        tolerance_grad: stop when the largest gradient entry is at most this.
        tolerance_change: stop when the directional derivative is above ``-tolerance_change``.
        scaling: ``"al-baali"`` (self-scaled BFGS, the default) or ``None`` (plain BFGS).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1.0,
        max_iter: int = 1,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-12,
        tolerance_change: float = 1e-15,
        scaling: Literal["al-baali"] | None = "al-baali",
    ) -> None:
        if scaling not in ("al-baali", None):
            raise InvalidArgumentError(
                f"SelfScaledBFGS: scaling must be 'al-baali' or None, got {scaling!r}."
            )
        if _strong_wolfe is None:  # pragma: no cover
            raise TrainingError(
                "SelfScaledBFGS needs torch.optim.lbfgs._strong_wolfe, which this torch "
                f"version ({torch.__version__}) lacks; use LBFGS instead."
            )
        super().__init__(
            params,
            lr=lr,
            max_iter=max_iter,
            # (torch's L-BFGS default, max_iter * 5 // 4, leaves a one-iteration step no
            # line search at all)
            max_eval=max_eval if max_eval is not None else 25 * max_iter + 1,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            line_search_fn="strong_wolfe",
        )
        self.scaling = scaling

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` BFGS iterations; returns the loss at the start."""
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        g = self._gather_flat_grad()
        if g.abs().max() <= tol_grad:
            return orig_loss
        for _ in range(max_iter):
            state["n_iter"] += 1
            d = self._direction(state, g)
            g_prev = state.get("g_prev")
            if g_prev is None:
                state["g_prev"] = g.clone()
            else:
                g_prev.copy_(g)
            gtd = g.dot(d)
            if gtd > -tol_change:
                if state.get("H") is None:
                    break  # even the steepest descent direction is flat: converged
                state["H"] = None  # not a descent direction any more: restart
                d = g.neg()
                gtd = g.dot(d)
            if state.get("H") is None:
                t = min(1.0, 1.0 / float(g.abs().sum())) * lr
            else:
                t = lr
            x0 = self._clone_param()

            def obj(x: list[Tensor], t: float, d: Tensor) -> tuple[float, Tensor]:
                return self._directional_evaluate(closure, x, t, d)

            assert _strong_wolfe is not None
            loss, g, t, ls_evals = _strong_wolfe(
                obj, x0, t, d, loss, g, gtd, max_ls=max_eval - evals
            )
            self._add_grad(t, d)
            state["d"], state["t"] = d, t
            evals += ls_evals
            state["func_evals"] += ls_evals
            if g.abs().max() <= tol_grad or evals >= max_eval:
                break
            if (d.abs().max() * abs(t)) <= tol_change:
                break
        return orig_loss

    def _direction(self, state: dict[str, Any], g: Tensor) -> Tensor:
        """``-H g`` after updating ``H`` with the last step (the gradient on the first)."""
        d_prev, t, g_prev = state.get("d"), state.get("t"), state.get("g_prev")
        H: Tensor | None = state.get("H")
        if d_prev is None or t is None or g_prev is None:
            return g.neg()
        s = d_prev.mul(t)
        y = g.sub(g_prev)
        sy = float(y.dot(s))
        if sy <= _CURVATURE_EPS:
            return g.neg() if H is None else (H @ g).neg_()
        if H is None:
            # first pair: H0 = (s'y / y'y) I (Nocedal & Wright, eq. 6.20), then the update
            gamma = sy / float(y.dot(y))
            H = torch.eye(g.numel(), dtype=g.dtype, device=g.device).mul_(gamma)
            state["H"] = H
            h, hg = y.mul(gamma), g.mul(gamma)
            s_b_s = float(s.dot(s)) / gamma  # s'B s with B = I / gamma
        else:
            # one pass over H: d_prev = -H g_prev, so H y = H g - H g_prev = H g + d_prev
            hg = torch.mv(H, g)
            h = hg.add(d_prev)
            s_b_s = -t * float(s.dot(g_prev))  # s'B s: B s = -t g_prev for s = -t H g_prev
        y_h_y = float(y.dot(h))
        rho = 1.0 / sy
        tau = 1.0
        if self.scaling == "al-baali" and s_b_s > 0:
            tau = min(1.0, sy / s_b_s)
        a = y_h_y * rho * rho / tau + rho
        c = rho / tau
        sg, hgd = float(s.dot(g)), float(h.dot(g))
        # -H+ g from the old H's products (before H changes)
        d = hg.mul(-1.0 / tau).add_(s, alpha=c * hgd - a * sg).add_(h, alpha=c * sg)
        u = torch.stack((s, h), 1)
        v = torch.stack((s.mul(a).add_(h, alpha=-c), s.mul(-c)), 0)
        H.addmm_(u, v, beta=1.0 / tau)
        return d
