"""Taylor-mode derivatives for the residual terms: the core's network jets.

The value and the input derivatives a ``pde`` asks for are computed by the network's own
public :meth:`hybridml.MLP.jet` / :meth:`hybridml.Constrained.jet` (Taylor mode: one
forward pass, optionally compiled); this module only decides which models take that path
and keeps the adapter's earlier function names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from hybridml import MLP, Constrained, Jet
from hybridml.exceptions import InvalidTypeError

__all__ = ["Jet", "taylor_jet", "taylor_supported"]

Pair = tuple[int, int]


def taylor_supported(model: nn.Module) -> bool:
    """Whether ``model`` computes its jet in Taylor mode (:attr:`hybridml.MLP.taylor_mode`,
    :attr:`hybridml.Constrained.taylor_mode`); other models take autograd derivatives."""
    return isinstance(model, MLP | Constrained) and model.taylor_mode


def taylor_jet(
    model: nn.Module,
    x: Tensor,
    pairs: Sequence[Pair] = (),
    *,
    cache: dict[Any, Any] | None = None,
    points_key: Any = None,
    extra: Tensor | None = None,
    compiled: bool = False,
) -> Jet:
    """Value, first derivatives and the second derivatives ``pairs`` of ``model`` at ``x``.

    ``model.jet(x, pairs, extra=extra, compiled=compiled, cache=...)`` for a model
    :func:`taylor_supported` accepts (see :meth:`hybridml.MLP.jet`). ``cache`` is used only
    with a ``points_key`` naming the points ``x`` (a hashable), under which the
    :class:`~hybridml.HardBoundary` functions' jets are kept.
    """
    if not isinstance(model, MLP | Constrained):
        raise InvalidTypeError(
            f"taylor_jet: model must be a hybridml.MLP or hybridml.Constrained, got "
            f"{type(model).__name__}."
        )
    kept = None
    if cache is not None and points_key is not None:
        kept = cache.setdefault(("points", points_key), {})
    return model.jet(x, pairs, extra=extra, compiled=compiled, cache=kept)
