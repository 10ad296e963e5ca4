"""Monitoring a fitted model in use: inputs outside the training domain, ensemble
disagreement, consistency-check failures and drift of the prediction errors."""

from ._drift import CUSUM
from ._monitor import Monitor
from ._report import MonitorReport

__all__ = ["CUSUM", "Monitor", "MonitorReport"]
