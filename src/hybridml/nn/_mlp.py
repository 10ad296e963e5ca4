"""The fully connected network :class:`MLP`, with optional input scaling to ``[-1, 1]``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ._util import _check_bounds, _per_feature

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
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MLP: {what} must be a positive integer, got {v!r}.")
        widths = list(hidden)
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ValueError(
                    f"MLP: hidden must be a sequence of positive integers, got {tuple(hidden)!r}."
                )
        if not callable(activation):
            raise TypeError(
                f"MLP: activation must be a module class such as nn.Tanh, got {activation!r}."
            )
        self.in_features = in_features
        self.out_features = out_features

        layers: list[nn.Module] = []
        sizes = [in_features, *widths, out_features]
        for i in range(len(sizes) - 1):
            linear = nn.Linear(sizes[i], sizes[i + 1])
            nn.init.xavier_uniform_(linear.weight, generator=generator)
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if i < len(sizes) - 2:
                act = activation()
                if not isinstance(act, nn.Module):
                    raise TypeError(
                        f"MLP: activation() must return an nn.Module, got {type(act).__name__}."
                    )
                layers.append(act)
        self.layers = nn.Sequential(*layers)

        if (input_lower is None) != (input_upper is None):
            raise ValueError(
                "MLP: give both input_lower and input_upper (to scale inputs to [-1, 1]) "
                "or neither."
            )
        dtype = torch.get_default_dtype()
        if input_lower is not None and input_upper is not None:
            lo = _per_feature(input_lower, in_features, "input_lower", "MLP")
            hi = _per_feature(input_upper, in_features, "input_upper", "MLP")
            _check_bounds(lo, hi, "MLP", "input_lower/input_upper")
            self.register_buffer("input_lower", lo.to(dtype))
            self.register_buffer("input_upper", hi.to(dtype))
        else:
            self.register_buffer("input_lower", None)
            self.register_buffer("input_upper", None)

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the network on ``x`` of shape ``(..., in_features)``."""
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
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

    def extra_repr(self) -> str:
        scaled = self.input_lower is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, " + (
            f"input_scaling={scaled}"
        )
