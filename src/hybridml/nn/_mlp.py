"""The fully connected network :class:`MLP`: input scaling to ``[-1, 1]``, input derivatives."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError, InvalidTypeError
from ._jet import (
    Jet,
    autograd_jet,
    check_points,
    mlp_jet,
    normalise_pairs,
    precompile_mlp_jet,
    taylor_mode,
)
from ._precompile import Precompilation
from ._util import _layer_sizes, _register_input_box

__all__ = ["MLP"]


class MLP(nn.Module):
    """Fully connected network with optional input scaling to ``[-1, 1]``.

    Weights are Xavier (Glorot) uniform, biases zero. When ``input_lower`` and
    ``input_upper`` are given, inputs are mapped affinely from that box to ``[-1, 1]``
    before the first layer, which keeps tanh units out of saturation for inputs such as
    ``t`` in ``[0, 3600]`` s.

    Args:
        in_features: number of input features (size of the last input dimension).
        out_features: number of outputs.
        hidden: widths of the hidden layers; ``()`` gives a linear model.
        activation: a class (or zero-argument factory) returning the activation module.
        input_lower: lower end of the input box, a number or one per input feature.
        input_upper: upper end of the input box, a number or one per input feature.
        generator: optional ``torch.Generator`` for the initial weights (the global
            generator is used otherwise).

    Inputs have shape ``(..., in_features)``; outputs ``(..., out_features)``.
    :meth:`jet` gives the outputs with their first and second input derivatives at many
    points in one pass (for physics residuals).
    """

    input_lower: Tensor | None
    input_upper: Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (32, 32, 32),
        activation: Callable[[], nn.Module] = nn.Tanh,
        *,
        input_lower: float | Sequence[float] | None = None,
        input_upper: float | Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = _layer_sizes("MLP", in_features, out_features, hidden)
        if not callable(activation):
            raise InvalidTypeError(
                f"MLP: activation must be a module class such as nn.Tanh, got {activation!r}."
            )
        self.in_features = in_features
        self.out_features = out_features

        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            linear = nn.Linear(sizes[i], sizes[i + 1])
            nn.init.xavier_uniform_(linear.weight, generator=generator)
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if i < len(sizes) - 2:
                act = activation()
                if not isinstance(act, nn.Module):
                    raise InvalidTypeError(
                        f"MLP: activation() must return an nn.Module, got {type(act).__name__}."
                    )
                layers.append(act)
        self.layers = nn.Sequential(*layers)

        _register_input_box(self, "MLP", in_features, input_lower, input_upper)

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the network on ``x`` of shape ``(..., in_features)``."""
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise InvalidArgumentError(
                f"MLP: expected inputs of shape (n, {self.in_features}), got "
                f"{tuple(x.shape)}; reshape 1-d inputs with x[:, None]."
            )
        lo, hi = self.input_lower, self.input_upper
        if lo is not None and hi is not None:
            # 2 (x - lo) / (hi - lo) - 1 as one differentiable op (cheaper in PINN residuals)
            scale = 2.0 / (hi - lo)
            x = torch.addcmul(-1.0 - lo * scale, x, scale)
        out: Tensor = self.layers(x)
        return out

    @property
    def taylor_mode(self) -> bool:
        """Whether :meth:`jet` runs in Taylor mode (one forward pass; otherwise autograd).

        True when every activation is ``nn.Tanh`` or ``nn.Sigmoid`` (or there is none).
        """
        return taylor_mode(self)

    def jet(
        self,
        x: Tensor,
        pairs: Iterable[Sequence[int]] = (),
        *,
        extra: Tensor | None = None,
        compiled: bool = False,
        cache: dict[Any, Jet] | None = None,
    ) -> Jet:
        """The network's value and input derivatives at the points ``x``, in one pass.

        Computes, at each of the ``n`` points, the output, *all* first derivatives and the
        second derivatives of the requested input pairs (mixed ones included), for every
        output column. In Taylor mode (:attr:`taylor_mode`: tanh or sigmoid activations)
        they are pushed through the layers together in one forward pass, with a
        hand-written backward pass, which is several times cheaper for a PINN residual
        than taking them by autograd and differentiating those graphs again; otherwise the
        same :class:`~hybridml.Jet` is computed by autograd. The input scaling
        (``input_lower``/``input_upper``) is included: derivatives are with respect to
        the unscaled ``x``.

        Args:
            x: points, shape ``(n, in_features)``, in the network's dtype.
            pairs: input index pairs ``(i, j)`` whose second derivatives
                ``d2y/dx_i dx_j`` are wanted, e.g. ``[(0, 0)]`` for ``u_xx`` or
                ``[(0, 1)]`` for a mixed one; ``(i, j)`` and ``(j, i)`` are the same.
                Default: none (value and first derivatives only). Third and higher
                derivatives are not available.
            extra: optional further points ``(m, in_features)`` at which only the value
                is wanted, evaluated in the same pass (returned as ``jet.extra``).
            compiled: run the Taylor-mode jet through :func:`torch.compile` (inductor).
                The first call for a network structure, point count and dtype compiles
                (seconds; :meth:`precompile_jet` can do that in the background), later
                ones are faster. Same values as uncompiled up to rounding (a different
                summation order). If compiling fails, a one-time ``RuntimeWarning`` is
                issued and the uncompiled jet is used. ``jet.compiled`` tells which ran.
                No effect outside Taylor mode.
            cache: accepted for a uniform call with :meth:`hybridml.Constrained.jet`; a
                bare MLP has nothing to cache.

        Returns:
            A :class:`~hybridml.Jet` with ``value`` ``(n, k)``, ``grad`` ``(d, n, k)``
            (``grad[j][:, c] = dy_c/dx_j``), ``hess[(i, j)]`` ``(n, k)`` with ``i <= j``
            for the requested pairs, and ``extra`` ``(m, k)`` or None; use
            ``jet.derivative(...)`` for single columns. In Taylor mode it is
            differentiable once (enough for training: the parameter gradient of a loss
            of it) with respect to the parameters and, uncompiled, ``x``; the compiled
            jet is differentiable with respect to the parameters only. By autograd it is
            differentiable again.
        """
        d = self.in_features
        check_points(x, d, "MLP.jet")
        if extra is not None:
            check_points(extra, d, "MLP.jet", "extra")
        wanted = normalise_pairs(pairs, d, "MLP.jet")
        if not self.taylor_mode:
            return autograd_jet(self, x, wanted, extra)
        return mlp_jet(self, x, wanted, extra, compiled)

    def precompile_jet(
        self,
        n: int,
        pairs: Iterable[Sequence[int]] = (),
        *,
        extra_rows: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> Precompilation | None:
        """Start compiling the jet for ``n`` points in a background process, now.

        ``jet(x, pairs, compiled=True)`` compiles (10-25 s on one core for a 4x32 network)
        the first time it meets a new point count or dtype. When those are known in
        advance (a float64 quasi-Newton phase on more points after an Adam phase, say),
        this compiles them in a separate Python process (at a lower priority) while
        training goes on, filling inductor's on-disk cache; the first such
        ``jet(..., compiled=True)`` then waits for the process if it is still running and
        compiles from the warm cache in seconds. Results are the same either way.

        Args:
            n: the number of points of the later calls.
            pairs: the second derivatives they will request.
            extra_rows: the number of value-only ``extra`` points they will pass (None:
                no ``extra``).
            dtype: their dtype (default: the network's). The structure of the network
                counts, not its values.

        Returns:
            The :class:`~hybridml.Precompilation` (to inspect; nothing needs to be done
            with it), or None where there is nothing to compile (not Taylor mode, no
            hidden layer, a network on a GPU: the background process compiles for the
            CPU, so a GPU's jet compiles in this process when first used; or compiling
            has already failed in this process).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(
                f"MLP.precompile_jet: n must be a positive integer, got {n!r}."
            )
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InvalidArgumentError(
                f"MLP.precompile_jet: dtype must be a floating torch dtype, got {dtype!r}."
            )
        if not self.taylor_mode:
            return None
        wanted = normalise_pairs(pairs, self.in_features, "MLP.precompile_jet")
        return precompile_mlp_jet(self, n, wanted, extra_rows, dtype)

    def extra_repr(self) -> str:
        scaled = self.input_lower is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, " + (
            f"input_scaling={scaled}"
        )
