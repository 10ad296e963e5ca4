"""Early stopping on a validation loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..exceptions import InvalidArgumentError
from ._phase import _check_int

__all__ = ["EarlyStopping"]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the validation loss stops improving, and restore the best weights.

    The validation loss is the unweighted sum of the ``val_losses`` terms, evaluated every
    ``every`` global steps (before that step's update) and once at the end. Training stops
    after ``patience`` evaluations in a row without an improvement larger than
    ``min_delta`` (later phases are skipped); the weights with the lowest validation loss
    seen are restored at the end of the fit, whether or not it stopped early.

    Args:
        patience: evaluations without improvement before stopping.
        min_delta: smallest decrease of the validation loss that counts as improvement.
        every: evaluate the validation loss every this many steps.
    """

    patience: int = 20
    min_delta: float = 0.0
    every: int = 10

    def __post_init__(self) -> None:
        _check_int("EarlyStopping", "patience", self.patience, 1)
        _check_int("EarlyStopping", "every", self.every, 1)
        if (
            isinstance(self.min_delta, bool)
            or not isinstance(self.min_delta, (int, float))
            or not math.isfinite(self.min_delta)
            or self.min_delta < 0
        ):
            raise InvalidArgumentError(
                f"EarlyStopping: min_delta must be a finite number >= 0, got {self.min_delta!r}."
            )
