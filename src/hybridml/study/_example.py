"""The built-in example: a damped oscillator measured at a few noisy points.

``hybridml example`` writes the measurements and a study configuration, then runs the
study: a network fitted to 12 noisy position measurements and to the oscillator's equation
of motion (the ``ode`` adapter's residual), checked for physical consistency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

K, C = 4.0, 0.4  # stiffness and damping per unit mass [1/s^2], [1/s]
T_END = 10.0

CONFIG = """\
# A damped oscillator x'' = -k x - c x', measured at 12 noisy points.
[study]
name = "damped-oscillator"
seed = 0
check_policy = "warn"

[data]
path = "measurements.csv"
test_path = "held_out.csv"
inputs = ["t [s]"]
outputs = ["x [m]", "v [m/s]"]   # only x is measured; v is learned from the physics

[simulator]
name = "ode"

[simulator.options]
y0 = [1.0, 0.0]
t_span = [0.0, {t_end}]
state_names = ["x [m]", "v [m/s]"]
params = {{ k = {k}, c = {c} }}
bounds = {{ "x [m]" = [-1.05, 1.05] }}   # the oscillator never exceeds its initial amplitude
residual_threshold = 0.1                # |dx/dt - v|, |dv/dt + k x + c v| at fresh times

[simulator.callables]
rhs = "hybridml_ode:damped_oscillator"

[model]
hidden = [32, 32, 32]

[training]
adam_steps = {adam}
lbfgs_steps = {lbfgs}
weights = {{ data = 1.0, ode_residual = 1.0 }}

[predict]
grid = {{ "t [s]" = [0.0, {t_end}, 201] }}

[[checks]]                              # |v| <= sqrt(k) x0 = 2 m/s by energy conservation
type = "bounds"
column = "v [m/s]"
lower = -2.05
upper = 2.05
"""


def _truth(t: np.ndarray) -> np.ndarray:
    sol = solve_ivp(
        lambda _t, y: [y[1], -K * y[0] - C * y[1]],
        (0.0, T_END),
        [1.0, 0.0],
        t_eval=t,
        rtol=1e-10,
        atol=1e-12,
    )
    return np.asarray(sol.y[0])


def write_example(folder: str | Path, *, quick: bool = False, seed: int = 0) -> Path:
    """Write the example's measurements, held-out data and configuration into ``folder``.

    ``quick`` trains with fewer Adam steps (the float64 L-BFGS phase does most of the work
    on this problem). Returns the path of the configuration file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t_meas = np.sort(rng.uniform(0.0, T_END, 12))
    x_meas = _truth(t_meas) + rng.normal(0.0, 0.02, t_meas.size)
    t_test = np.linspace(0.0, T_END, 101)
    x_test = _truth(t_test)
    for name, t, x in (("measurements.csv", t_meas, x_meas), ("held_out.csv", t_test, x_test)):
        rows = "\n".join(f"{a!r},{b!r}" for a, b in zip(t.tolist(), x.tolist(), strict=True))
        (folder / name).write_text(f"t [s],x [m]\n{rows}\n", encoding="utf-8")
    config = folder / "study.toml"
    config.write_text(
        CONFIG.format(
            t_end=T_END,
            k=K,
            c=C,
            adam=2000 if quick else 4000,
            lbfgs=1000,
        ),
        encoding="utf-8",
    )
    return config
