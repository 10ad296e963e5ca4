"""PyBaMM as a torch operation: values from the IDAKLU solver, gradients from its forward
sensitivities; and a degradation model whose physical parameters are learnable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from hybridml import PhysicalParameter
from hybridml.exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from ._adapter import PyBaMMAdapter

__all__ = ["DegradationModel", "SensitivityFunction"]


class SensitivityFunction(torch.autograd.Function):
    """``y = adapter.forward(p)``; backward is ``grad_y @ J`` with ``J`` from sensitivities.

    One solve with ``calculate_sensitivities=True`` gives the outputs and the whole
    Jacobian, so the backward pass needs no further solve.
    """

    @staticmethod
    def forward(ctx: Any, params: Tensor, adapter: PyBaMMAdapter) -> Tensor:
        values = params.detach().to("cpu", torch.float64).numpy()
        y, jac = adapter._forward_numpy(np.asarray(values, dtype=float))
        ctx.save_for_backward(torch.as_tensor(jac, dtype=params.dtype, device=params.device))
        return torch.as_tensor(y, dtype=params.dtype, device=params.device)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:
        (jac,) = ctx.saved_tensors
        return grad_out @ jac, None


class DegradationModel(nn.Module):
    """A PyBaMM ageing simulation with learnable degradation parameters.

    ``model(x)`` returns the adapter's ``forward_variable`` (e.g. capacity lost to side
    reactions) at the cycles in ``x`` (cycle numbers ``1 .. cycles``, shape ``(n,)`` or
    ``(n, 1)``), as a column ``(n, 1)``; with ``initial_capacity`` it returns
    ``initial_capacity - lost`` instead, the capacity of each cycle. Gradients reach the
    parameters through :meth:`PyBaMMAdapter.forward`. Combine it with a network with
    :class:`hybridml.ResidualModel` to learn what the physics misses.

    Args:
        adapter: a :class:`PyBaMMAdapter` created with ``parameter_names`` and a
            fixed-time experiment.
        init: starting values of the parameters (physical values); default: the
            parameter set's values.
        bounds: optional ``name -> (lower, upper)`` for some parameters.
        initial_capacity: capacity before ageing [A.h]; ``None`` returns the lost
            capacity itself.
    """

    def __init__(
        self,
        adapter: PyBaMMAdapter,
        init: Mapping[str, float] | None = None,
        *,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        initial_capacity: float | None = None,
    ) -> None:
        super().__init__()
        from ._adapter import Scale
        from ._pybamm import pybamm

        if not adapter.parameter_names:
            raise InvalidArgumentError("DegradationModel: the adapter has no parameter_names.")
        if adapter.forward_scale is not Scale.LINEAR:
            raise InvalidArgumentError(
                "DegradationModel: use an adapter with forward_scale=Scale.LINEAR."
            )
        init = dict(init or {})
        unknown = set(init) - set(adapter.parameter_names)
        if unknown:
            raise InvalidArgumentError(
                f"DegradationModel: init names {sorted(unknown)} are not among the adapter's "
                f"parameter_names {adapter.parameter_names}."
            )
        missing = [n for n in adapter.parameter_names if n not in init]
        if missing:
            pv = pybamm().ParameterValues(adapter.parameter_set)
            pv.update(adapter.parameters)
            for n in missing:
                init[n] = float(pv[n])
        bounds = dict(bounds or {})
        self.adapter = adapter
        self.names: tuple[str, ...] = adapter.parameter_names
        self.params = nn.ModuleList(
            PhysicalParameter(
                init[n],
                lower=bounds[n][0] if n in bounds else None,
                upper=bounds[n][1] if n in bounds else None,
                name=n,
            )
            for n in self.names
        )
        self.initial_capacity = initial_capacity

    def values(self) -> dict[str, float]:
        """The current parameter values, name -> float."""
        return {n: float(p) for n, p in zip(self.names, self._parameters_list(), strict=True)}

    def _parameters_list(self) -> list[PhysicalParameter]:
        return [p for p in self.params if isinstance(p, PhysicalParameter)]

    def trajectory(self) -> Tensor:
        """The output at the end of every cycle, shape ``(cycles,)`` (float64)."""
        p = torch.stack([q.value.to(torch.float64) for q in self._parameters_list()])
        out = self.adapter.forward(p)
        if self.initial_capacity is not None:
            out = self.initial_capacity - out
        return out

    def forward(self, x: Tensor | Sequence[float]) -> Tensor:
        """The output at cycle numbers ``x``, shape ``(n, 1)`` in ``x``'s float dtype."""
        xt = torch.as_tensor(x)
        dtype = xt.dtype if xt.is_floating_point() else torch.get_default_dtype()
        idx = torch.round(xt.detach().reshape(-1)).long() - 1
        n = self.adapter.cycles
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise InvalidArgumentError(f"DegradationModel: cycle numbers must lie in 1..{n}.")
        return self.trajectory()[idx].to(dtype)[:, None]
