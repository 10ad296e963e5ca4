"""Sequential detection of a shift in the mean of standardised prediction errors: CUSUM.

The two-sided CUSUM of Page (1954) accumulates standardised errors ``z`` (mean 0 and
standard deviation 1 while the model is right) in two statistics,

    U_t = max(0, U_{t-1} + z_t - k),    L_t = max(0, L_{t-1} - z_t - k),

and raises an alarm when either reaches the threshold ``h``. The allowance is
``k = shift / 2`` for a shift of ``shift`` standard deviations to detect.

The threshold is set from a stated false-alarm probability, not from tables. For each
start ``s``, ``exp(2k · sum_{i=s..t}(z_i - k))`` is a martingale when the ``z`` are
independent N(0, 1) (``E exp(2k z) = exp(2k²)``), so by Ville's inequality the partial sums
from ``s`` reach ``h`` with probability at most ``exp(-2kh)``. ``U_t >= h`` means some
partial sum reached ``h``; a union bound over the ``horizon`` starts, the two sides and the
``streams`` gives

    P(any alarm within ``horizon`` steps | no drift) <= 2 · horizon · streams · exp(-2kh),

so ``h = ln(2 · horizon · streams / false_alarm) / (2k)`` keeps it at most
``false_alarm``. The bound holds for any errors that are sub-Gaussian with variance at most
1 after standardisation (Gaussian ones included) and is conservative (the rate measured by
simulation is lower). The price of the guarantee is a longer delay: Siegmund's
approximation of the mean number of steps to an alarm after a shift (see
:meth:`CUSUM.expected_delay`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import InvalidArgumentError

__all__ = ["CUSUM"]

#: Siegmund's correction of the threshold for the overshoot of a Gaussian random walk
_OVERSHOOT = 1.166


@dataclass(frozen=True)
class CUSUM:
    """Two-sided CUSUM test for a shift in the mean of standardised errors.

    The settings only; the running statistics live in the :class:`~hybridml.Monitor` (or
    are returned by :meth:`run`). See the module docstring for how the threshold follows
    from the false-alarm probability.

    Args:
        shift: the smallest mean shift to detect quickly, in standard deviations of the
            errors (the allowance is ``k = shift / 2``).
        false_alarm: the most probability of any alarm within ``horizon`` steps when the
            errors do not drift (errors independent, mean 0, standard deviation 1 after
            standardisation).
        horizon: the number of steps the false-alarm probability is stated for.

    Example::

        test = CUSUM(shift=1.0, false_alarm=0.01, horizon=1000)
        test.threshold()          # 12.2: h for one stream
        test.expected_delay(1.0)  # about 25 steps to an alarm after a 1-sigma shift
    """

    shift: float = 1.0
    false_alarm: float = 0.01
    horizon: int = 1000

    def __post_init__(self) -> None:
        if not (isinstance(self.shift, int | float) and 0.0 < float(self.shift) < math.inf):
            raise InvalidArgumentError(f"CUSUM: shift must be a number > 0, got {self.shift!r}.")
        fa = self.false_alarm
        if not (isinstance(fa, int | float) and 0.0 < float(fa) < 1.0):
            raise InvalidArgumentError(f"CUSUM: false_alarm must lie in (0, 1), got {fa!r}.")
        n = self.horizon
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"CUSUM: horizon must be an integer >= 1, got {n!r}.")

    @property
    def allowance(self) -> float:
        """The allowance ``k = shift / 2`` subtracted from each standardised error."""
        return float(self.shift) / 2.0

    def threshold(self, streams: int = 1) -> float:
        """The alarm threshold ``h`` for ``streams`` monitored outputs (union bound)."""
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise InvalidArgumentError(f"CUSUM: streams must be an integer >= 1, got {streams!r}.")
        return math.log(2.0 * self.horizon * streams / float(self.false_alarm)) / float(self.shift)

    def expected_delay(self, shift: float | None = None, streams: int = 1) -> float:
        """Siegmund's approximation of the mean number of steps from a mean shift of
        ``shift`` standard deviations (default: :attr:`shift`) to the alarm.

        ``(exp(-2 d b) + 2 d b - 1) / (2 d²)`` with ``d = shift - k`` and
        ``b = h + 1.166`` (Siegmund 1985, "Sequential analysis", ch. X); for
        ``shift <= k`` the drift is not detected quickly and the value is large.
        """
        delta = float(self.shift if shift is None else shift) - self.allowance
        b = self.threshold(streams) + _OVERSHOOT
        if abs(delta) < 1e-12:
            return b * b
        return (math.exp(-2.0 * delta * b) + 2.0 * delta * b - 1.0) / (2.0 * delta * delta)

    def run(
        self,
        z: Any,
        *,
        streams: int | None = None,
        state: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Run the test over the standardised errors ``z`` from a given state.

        Args:
            z: shape ``(T,)`` or ``(T, m)``: ``T`` steps in order, ``m`` streams (outputs)
                of one model; NaN (not measured) leaves that stream's statistics as
                they are. An alarm on any stream is an alarm of the step; the stream
                whose statistic reached the threshold starts again from 0.
            streams: the number of streams the threshold accounts for (default ``m``).
            state: ``(U, L)`` from a previous call (default: zeros).

        Returns:
            ``(alarms, statistic, state)``: ``alarms[t, j]`` is True when stream ``j``
            raised an alarm at step ``t`` (shape ``(T, m)``); ``statistic[t]`` is
            ``max(U_t, L_t)`` over the streams divided by the threshold (an alarm at 1),
            before any restart; ``state`` is ``(U, L)`` after
            the last step, to pass to the next call.
        """
        zz = np.asarray(z, dtype=float)
        zz = zz[:, None] if zz.ndim == 1 else zz
        if zz.ndim != 2:
            raise InvalidArgumentError(f"CUSUM.run: z must be (T,) or (T, m); got {zz.shape}.")
        m = zz.shape[1]
        h = self.threshold(m if streams is None else streams)
        alarms_per_stream, stat = _cusum(zz, self.allowance, h, state)
        upper, lower = stat
        ratio = np.maximum(upper, lower).max(axis=1) / h if m else np.zeros(zz.shape[0])
        final = _after(upper[-1], lower[-1], alarms_per_stream[-1]) if len(zz) else state
        if final is None:
            final = (np.zeros(m), np.zeros(m))
        return alarms_per_stream, ratio, final

    def first_alarm(self, z: Any) -> np.ndarray:
        """The first alarm step of each of many independent runs (for simulation).

        Args:
            z: shape ``(T, ...)``: every entry of the trailing axes is a separate run of
                ``T`` steps, tested alone (threshold for one stream).

        Returns:
            An integer array of the trailing shape: the step of the first alarm, or -1.
        """
        zz = np.asarray(z, dtype=float)
        flat = zz.reshape(zz.shape[0], -1)
        alarms, _ = _cusum(flat, self.allowance, self.threshold(1), None)
        hit = alarms.any(axis=0)
        first = np.where(hit, alarms.argmax(axis=0), -1)
        return first.reshape(zz.shape[1:])


def _after(
    upper: np.ndarray, lower: np.ndarray, alarmed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The state after a step: a stream that alarmed starts again from 0."""
    return np.where(alarmed, 0.0, upper), np.where(alarmed, 0.0, lower)


def _cusum(
    z: np.ndarray, k: float, h: float, state: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The CUSUM recursion over the rows of ``z`` (T, m): per-stream alarms (T, m) and the
    statistics (U, L) at each step before a restart."""
    t_steps, m = z.shape
    up = np.zeros(m) if state is None else np.asarray(state[0], dtype=float).copy()
    lo = np.zeros(m) if state is None else np.asarray(state[1], dtype=float).copy()
    if up.shape != (m,) or lo.shape != (m,):
        raise InvalidArgumentError(
            f"CUSUM.run: the state has {up.shape[0]} stream(s); z has {m}. Pass the state of "
            "a run on the same outputs, or none."
        )
    alarms = np.zeros((t_steps, m), dtype=bool)
    ups = np.empty((t_steps, m))
    los = np.empty((t_steps, m))
    for t in range(t_steps):
        zt = z[t]
        measured = np.isfinite(zt)
        step = np.where(measured, zt, 0.0)
        up = np.where(measured, np.maximum(0.0, up + step - k), up)
        lo = np.where(measured, np.maximum(0.0, lo - step - k), lo)
        ups[t], los[t] = up, lo
        alarms[t] = (up >= h) | (lo >= h)
        up, lo = _after(up, lo, alarms[t])
    return alarms, (ups, los)
