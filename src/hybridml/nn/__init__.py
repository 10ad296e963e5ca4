"""Networks and hybrid models: MLPs, output constraints, physical parameters, UDEs."""

from ._models import (
    MLP,
    UDE,
    Bounded,
    Constrained,
    HardBoundary,
    LinearForcingUDE,
    OutputTransform,
    PhysicalParameter,
    Positive,
    ResidualModel,
)

__all__ = [
    "MLP",
    "UDE",
    "Bounded",
    "Constrained",
    "HardBoundary",
    "LinearForcingUDE",
    "OutputTransform",
    "PhysicalParameter",
    "Positive",
    "ResidualModel",
]
