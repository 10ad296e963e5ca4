""":class:`BatchedMLP`: ``n_members`` independent MLPs evaluated in one batched pass.

The weights of layer ``l`` are one tensor of shape ``(n_members, in, out)`` and every layer
is one ``torch.baddbmm``, so an ensemble of small networks costs a few large operations
instead of ``n_members`` times as many small ones. The members share nothing but the
tensors that hold them: member ``m``'s output depends only on member ``m``'s slices, so
the gradient of a sum of per-member losses with respect to member ``m``'s weights is the
gradient of member ``m``'s own loss, and an optimiser whose update is elementwise (Adam,
SGD) trains every member exactly as if it were trained alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..exceptions import InvalidArgumentError, InvalidIndexError, InvalidTypeError
from ._mlp import MLP
from ._util import _layer_sizes, _register_input_box

__all__ = ["BatchedMLP"]


class BatchedMLP(nn.Module):
    """``n_members`` fully connected networks of the same shape, evaluated in one pass.

    Member ``m`` is initialised exactly as ``MLP(in_features, out_features, hidden,
    activation, generator=torch.Generator().manual_seed(seeds[m]))`` (Xavier uniform
    weights, zero biases), and :meth:`member` returns it as that :class:`~hybridml.MLP`,
    so a member can be checked against, or exported as, a network trained on its own.
    The input scaling to ``[-1, 1]`` (``input_lower``/``input_upper``) is shared.

    Args:
        in_features: number of input features.
        out_features: number of outputs.
        hidden: widths of the hidden layers (the same for every member).
        activation: a module class (or zero-argument factory) of an *elementwise*
            activation, e.g. ``nn.Tanh``.
        seeds: one seed per member (their number is the number of members).
        input_lower: lower end of the input box (a number or one per feature), or None.
        input_upper: upper end of the input box, or None.

    Inputs: ``(n, in_features)`` (every member sees the same rows) or
    ``(n_members, n, in_features)`` (member ``m`` sees ``x[m]``). Output:
    ``(n_members, n, out_features)``. The parameters are ``weights[l]`` of shape
    ``(n_members, in, out)`` and ``biases[l]`` of shape ``(n_members, 1, out)``.
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
        seeds: Sequence[int],
        input_lower: float | Sequence[float] | None = None,
        input_upper: float | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        sizes = _layer_sizes("BatchedMLP", in_features, out_features, hidden)
        seeds = list(seeds)
        if not seeds:
            raise InvalidArgumentError("BatchedMLP: seeds is empty; give one seed per member.")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int):
                raise InvalidTypeError(f"BatchedMLP: seeds must be ints, got {s!r}.")
        if not callable(activation):
            raise InvalidTypeError(
                f"BatchedMLP: activation must be a module class such as nn.Tanh, got "
                f"{activation!r}."
            )
        act = activation()
        if not isinstance(act, nn.Module):
            raise InvalidTypeError(
                f"BatchedMLP: activation() must return an nn.Module, got {type(act).__name__}."
            )
        self.in_features = in_features
        self.out_features = out_features
        self.hidden = tuple(sizes[1:-1])
        self.activation = activation
        self.seeds = tuple(int(s) for s in seeds)
        self.act = act
        dtype = torch.get_default_dtype()
        # the draws of MLP(..., generator=Generator().manual_seed(seed)), layer by layer
        per_layer: list[list[Tensor]] = [[] for _ in range(len(sizes) - 1)]
        for seed in self.seeds:
            gen = torch.Generator().manual_seed(seed)
            for i in range(len(sizes) - 1):
                w = torch.empty(sizes[i + 1], sizes[i], dtype=dtype)
                nn.init.xavier_uniform_(w, generator=gen)
                per_layer[i].append(w.T)
        n = len(self.seeds)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack(ws).contiguous()) for ws in per_layer]
        )
        self.biases = nn.ParameterList(
            [
                nn.Parameter(torch.zeros(n, 1, sizes[i + 1], dtype=dtype))
                for i in range(len(sizes) - 1)
            ]
        )
        _register_input_box(self, "BatchedMLP", in_features, input_lower, input_upper)

    @property
    def n_members(self) -> int:
        """Number of members."""
        return len(self.seeds)

    def forward(self, x: Tensor) -> Tensor:
        """Every member's output: ``(n_members, n, out_features)``."""
        m = self.n_members
        if x.ndim == 2 and x.shape[-1] == self.in_features:
            h = x.unsqueeze(0).expand(m, -1, -1)
        elif x.ndim == 3 and x.shape[0] == m and x.shape[-1] == self.in_features:
            h = x
        else:
            raise InvalidArgumentError(
                f"BatchedMLP: expected inputs of shape (n, {self.in_features}) or "
                f"({m}, n, {self.in_features}), got {tuple(x.shape)}."
            )
        lo, hi = self.input_lower, self.input_upper
        if lo is not None and hi is not None:
            scale = 2.0 / (hi - lo)
            h = torch.addcmul(-1.0 - lo * scale, h, scale)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = self.act(h)
        return h

    def member(self, index: int) -> MLP:
        """Member ``index`` as a standalone :class:`~hybridml.MLP` (a copy of its weights,
        in this module's dtype and device)."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise InvalidTypeError(f"BatchedMLP.member: index must be an int, got {index!r}.")
        if not -self.n_members <= index < self.n_members:
            raise InvalidIndexError(
                f"BatchedMLP.member: index {index} is out of range for {self.n_members} members."
            )
        lo = None if self.input_lower is None else self.input_lower.tolist()
        hi = None if self.input_upper is None else self.input_upper.tolist()
        ref = self.weights[0]
        with torch.random.fork_rng(devices=[]):  # nn.Linear's default init draws globally
            net = MLP(
                self.in_features,
                self.out_features,
                self.hidden,
                self.activation,
                input_lower=lo,
                input_upper=hi,
                generator=torch.Generator().manual_seed(0),
            )
        net = net.to(dtype=ref.dtype, device=ref.device)
        linears = [layer for layer in net.layers if isinstance(layer, nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, self.weights, self.biases, strict=True):
                lin.weight.copy_(w[index].T)
                lin.bias.copy_(b[index, 0])
            if self.input_lower is not None and net.input_lower is not None:
                net.input_lower.copy_(self.input_lower)
            if self.input_upper is not None and net.input_upper is not None:
                net.input_upper.copy_(self.input_upper)
        return net

    def extra_repr(self) -> str:
        return (
            f"n_members={self.n_members}, in_features={self.in_features}, "
            f"out_features={self.out_features}, hidden={self.hidden}, "
            f"input_scaling={self.input_lower is not None}"
        )
