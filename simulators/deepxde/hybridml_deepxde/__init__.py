"""hybridml adapter for PDE problems written the DeepXDE way.

Write the problem as DeepXDE users do (a ``dde.geometry``, ``pde(x, y)`` with ``dde.grad``,
``dde.icbc`` conditions) and train it with hybridml::

    from hybridml_deepxde import DeepXDEAdapter, import_deepxde

    dde = import_deepxde()  # DeepXDE with its PyTorch backend; your torch settings kept
    adapter = DeepXDEAdapter(geomtime, pde, [bc, ic], num_domain=2540, num_boundary=80,
                             num_initial=160)
    model = adapter.default_model()
    hybridml.Trainer().fit(model, adapter.loss_terms())

or let the default recipe choose the network, points, phases and derivatives within a time
budget::

    result = hybridml_deepxde.train(adapter, budget_s=120)
    u = result.predict(x)

Importing this package does not import DeepXDE; :func:`import_deepxde` and the adapter do.
"""

from ._adapter import ConditionCheck, DeepXDEAdapter, ResidualCheck
from ._backend import DeepXDEBackendError, import_deepxde, torch_global_state
from ._recipe import PINNResult, train
from ._taylor import Jet, taylor_jet, taylor_supported
from ._terms import RAD, RAR, ConditionLoss, PDEResidual, Resampling, UniformResampling

__all__ = [
    "RAD",
    "RAR",
    "ConditionCheck",
    "ConditionLoss",
    "DeepXDEAdapter",
    "DeepXDEBackendError",
    "Jet",
    "PDEResidual",
    "PINNResult",
    "Resampling",
    "ResidualCheck",
    "UniformResampling",
    "import_deepxde",
    "taylor_jet",
    "taylor_supported",
    "torch_global_state",
    "train",
]
