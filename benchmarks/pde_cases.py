"""The cases of the PDE suite (``benchmarks/pde_suite.py``).

Each case is one PDE problem written the DeepXDE way (a ``dde.geometry``, ``pde(x, y)``,
``dde.icbc`` conditions), its reference solution, and the settings of DeepXDE's own example
for it (or PINNacle's vanilla PINN). The same :class:`Problem` feeds both methods:
:meth:`Case.adapter` wraps it in a :class:`hybridml_deepxde.DeepXDEAdapter` for hybridml's
recipe, :meth:`Case.deepxde_data` in a ``dde.data.PDE``/``TimePDE`` for ``dde.Model``.

Reference data live in ``benchmarks/data/pde/`` (provenance in its README). Two of them are
computed here with fine-grid solvers (:func:`solve_allen_cahn`, :func:`solve_reaction`);
``python benchmarks/pde_cases.py --make-data SHARED_DIR`` rebuilds every file (the three
converted ones from the original files in ``SHARED_DIR``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "data" / "pde"

#: coefficient getters handed to a problem: name -> () -> the current value (a tensor)
Coefficients = Mapping[str, Callable[[], Any]]


@dataclass(frozen=True)
class Baseline:
    """DeepXDE's own settings for a case, trained by ``dde.Model.train``.

    Attributes:
        source: where the settings come from (file of DeepXDE's or PINNacle's repository).
        hidden: hidden layer widths of ``dde.nn.FNN`` (tanh).
        initializer: its initializer.
        adam_iterations: Adam iterations of the example.
        lr: Adam's learning rate.
        lbfgs: whether the example runs DeepXDE's L-BFGS after Adam.
        num_domain, num_boundary, num_initial: the example's collocation points.
        hard: whether the example imposes the conditions with an output transform.
    """

    source: str
    hidden: tuple[int, ...]
    initializer: str
    adam_iterations: int
    num_domain: int
    num_boundary: int
    num_initial: int = 0
    lr: float = 1e-3
    lbfgs: bool = False
    hard: bool = False


@dataclass
class Problem:
    """Geometry, residual and conditions of a case, as DeepXDE takes them.

    Attributes:
        geometry: ``dde.geometry`` (a ``GeometryXTime`` for time-dependent problems).
        pde: ``pde(x, y)``.
        conditions: ``dde.icbc`` conditions (without the observations), a name for each;
            left out of the training when an output transform imposes them.
        num_outputs: components of ``y``.
        observations: ``(x, y)`` measurements of an inverse problem (all components).
        dde_transform: DeepXDE output transform ``(x, y) -> y`` that imposes the conditions
            exactly (DeepXDE's own example uses it), or None.
        transform: the same transform for hybridml, a factory of
            :class:`hybridml.HardBoundary`, or None.
    """

    geometry: Any
    pde: Callable[[Any, Any], Any]
    conditions: dict[str, Any]
    num_outputs: int = 1
    observations: tuple[np.ndarray, np.ndarray] | None = None
    dde_transform: Callable[[Any, Any], Any] | None = None
    transform: Callable[[], Any] | None = None


@dataclass(frozen=True)
class Case:
    """One case of the suite.

    Attributes:
        name: short name (``--cases``).
        title: one line: the equation and domain.
        build: ``build(dde, coefficients) -> Problem``; ``coefficients`` maps each unknown
            coefficient of an inverse problem to a getter of its current value.
        reference: ``() -> (x, y)``: reference points ``(n, d)`` and values ``(n, k)``.
        baseline: DeepXDE's settings.
        true_parameters: the coefficients an inverse problem must recover.
        initial_parameters: their initial guesses (DeepXDE's example's).
        notes: provenance, published figures, caveats.
    """

    name: str
    title: str
    build: Callable[[Any, Coefficients], Problem]
    reference: Callable[[], tuple[np.ndarray, np.ndarray]]
    baseline: Baseline
    true_parameters: dict[str, float] = field(default_factory=dict)
    initial_parameters: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    @property
    def inverse(self) -> bool:
        """Whether the case learns unknown coefficients."""
        return bool(self.true_parameters)

    def adapter(self, hard: bool = False, **options: Any) -> Any:
        """The problem as a :class:`hybridml_deepxde.DeepXDEAdapter` (points of the baseline).

        Unknown coefficients become :class:`hybridml.PhysicalParameter` (positive,
        starting at ``initial_parameters``), registered as the adapter's ``parameters``.

        Args:
            hard: where the problem has an output transform, impose the conditions with it
                (they are then left out of the adapter) instead of as loss terms.
            **options: passed on to the adapter (override the point counts, ``seed`` ...).

        Returns:
            ``(adapter, transform)``: the adapter, and the hybridml output transform
            (:class:`hybridml.HardBoundary`) with ``hard`` where the problem has one, else
            None.
        """
        from hybridml_deepxde import DeepXDEAdapter, import_deepxde

        import hybridml

        dde = import_deepxde()
        params = {
            k: hybridml.PhysicalParameter(v, name=k) for k, v in self.initial_parameters.items()
        }
        prob = self.build(dde, {k: _getter(p, "value") for k, p in params.items()})
        b = self.baseline
        settings: dict[str, Any] = {
            "num_domain": b.num_domain,
            "num_boundary": b.num_boundary,
            "num_initial": b.num_initial,
            "num_outputs": prob.num_outputs,
        }
        if params:
            settings["parameters"] = params
        if prob.observations is not None:
            settings["observations"] = prob.observations
        settings.update(options)
        hard = hard and prob.transform is not None
        conditions = {} if hard else prob.conditions
        adapter = DeepXDEAdapter(prob.geometry, prob.pde, conditions, **settings)
        return adapter, (prob.transform() if hard and prob.transform is not None else None)

    def deepxde_data(self, dde: Any, scale: float = 1.0) -> tuple[Any, Any, dict[str, Any]]:
        """DeepXDE's data, network and unknown variables, as the example sets them up.

        Args:
            dde: the ``deepxde`` module.
            scale: multiplies the point counts (``--quick`` uses fewer).

        Returns:
            ``(data, net, variables)``: ``dde.data.PDE``/``TimePDE``, ``dde.nn.FNN`` (with
            the output transform where the example has one) and name -> ``dde.Variable``.
        """
        variables = {k: dde.Variable(v) for k, v in self.initial_parameters.items()}
        prob = self.build(dde, {k: _getter(v) for k, v in variables.items()})
        # the example's output transform imposes the conditions: they are left out
        conditions = [] if prob.dde_transform is not None else list(prob.conditions.values())
        anchors = None
        if prob.observations is not None:
            x_obs, y_obs = prob.observations
            anchors = x_obs  # as DeepXDE's example: the observation points are residual points
            for c in range(y_obs.shape[1]):
                conditions.append(dde.icbc.PointSetBC(x_obs, y_obs[:, c : c + 1], component=c))
        b = self.baseline

        def n(v: int) -> int:
            return 0 if v == 0 else max(8, round(v * scale))

        kw: dict[str, Any] = {
            "num_domain": n(b.num_domain),
            "num_boundary": n(b.num_boundary),
            "anchors": anchors,
        }
        if isinstance(prob.geometry, dde.geometry.GeometryXTime):
            data = dde.data.TimePDE(
                prob.geometry, prob.pde, conditions, num_initial=n(b.num_initial), **kw
            )
        else:
            data = dde.data.PDE(prob.geometry, prob.pde, conditions, **kw)
        # DeepXDE's Polygon draws float64 boundary points (its edge lengths are float64),
        # which its float32 network then refuses: cast the drawn points to DeepXDE's dtype
        real = dde.config.real(np)
        for attr in ("train_x_all", "train_x", "train_x_bc", "test_x"):
            value = getattr(data, attr, None)
            if isinstance(value, np.ndarray) and value.dtype != real:
                setattr(data, attr, value.astype(real))
        dim = int(prob.geometry.dim)
        net = dde.nn.FNN([dim, *b.hidden, prob.num_outputs], "tanh", b.initializer)
        if prob.dde_transform is not None:
            net.apply_output_transform(prob.dde_transform)
        return data, net, variables


def _getter(obj: Any, attribute: str | None = None) -> Callable[[], Any]:
    """``() -> obj`` (or ``obj.attribute``, read at each call)."""
    return (lambda: obj) if attribute is None else (lambda: getattr(obj, attribute))


# ---------------------------------------------------------------------------- data files


def _load(name: str) -> dict[str, np.ndarray]:
    path = DATA / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: it ships with the repository (benchmarks/data/pde/); "
            "rebuild it with `python benchmarks/pde_cases.py --make-data SHARED_DIR`."
        )
    with np.load(path) as f:
        return {k: np.asarray(f[k], dtype=np.float64) for k in f.files}


def _grid(x: np.ndarray, t: np.ndarray, *fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(x, t)`` of a ``(nt, nx)`` grid and the fields stacked as columns."""
    xx, tt = np.meshgrid(x, t)
    pts = np.column_stack([xx.ravel(), tt.ravel()])
    return pts, np.column_stack([f.reshape(-1) for f in fields])


# ---------------------------------------------------------------------------- Burgers


def _burgers(dde: Any, coefficients: Coefficients) -> Problem:
    from hybridml_deepxde.examples import burgers

    a = burgers()  # DeepXDE's Burgers example, as hybridml_deepxde.examples writes it
    return Problem(a.geometry, a.pde, dict(a.conditions))


def _burgers_reference() -> tuple[np.ndarray, np.ndarray]:
    from hybridml_deepxde.examples import burgers_reference

    return burgers_reference()


# ---------------------------------------------------------------------------- L-shaped Poisson


def _poisson_lshape(dde: Any, coefficients: Coefficients) -> Problem:
    def pde(x: Any, y: Any) -> Any:
        dy_xx = dde.grad.hessian(y, x, i=0, j=0)
        dy_yy = dde.grad.hessian(y, x, i=1, j=1)
        return -dy_xx - dy_yy - 1

    geom = dde.geometry.Polygon([[0, 0], [1, 0], [1, -1], [-1, -1], [-1, 1], [0, 1]])
    bc = dde.icbc.DirichletBC(geom, lambda x: 0, lambda _, on_boundary: on_boundary)
    return Problem(geom, pde, {"dirichlet": bc})


def _poisson_lshape_reference() -> tuple[np.ndarray, np.ndarray]:
    d = _load("poisson_lshape.npz")
    return d["x"], d["u"]


# ---------------------------------------------------------------------------- lid-driven cavity

LID_A, LID_NU = 4.0, 1.0 / 100


def _lid_driven(dde: Any, coefficients: Coefficients) -> Problem:
    def pde(x: Any, u: Any) -> Any:
        u_vel, v_vel = u[:, 0:1], u[:, 1:2]
        u_x = dde.grad.jacobian(u, x, i=0, j=0)
        u_y = dde.grad.jacobian(u, x, i=0, j=1)
        u_xx = dde.grad.hessian(u, x, component=0, i=0, j=0)
        u_yy = dde.grad.hessian(u, x, component=0, i=1, j=1)
        v_x = dde.grad.jacobian(u, x, i=1, j=0)
        v_y = dde.grad.jacobian(u, x, i=1, j=1)
        v_xx = dde.grad.hessian(u, x, component=1, i=0, j=0)
        v_yy = dde.grad.hessian(u, x, component=1, i=1, j=1)
        p_x = dde.grad.jacobian(u, x, i=2, j=0)
        p_y = dde.grad.jacobian(u, x, i=2, j=1)
        momentum_x = u_vel * u_x + v_vel * u_y + p_x - LID_NU * (u_xx + u_yy)
        momentum_y = u_vel * v_x + v_vel * v_y + p_y - LID_NU * (v_xx + v_yy)
        return [momentum_x, momentum_y, u_x + v_y]

    geom = dde.geometry.Rectangle(xmin=[0, 0], xmax=[1, 1])

    def top(x: np.ndarray, on_boundary: bool) -> bool:
        return bool(on_boundary and np.isclose(x[1], 1))

    def not_top(x: np.ndarray, on_boundary: bool) -> bool:
        return bool(on_boundary and not np.isclose(x[1], 1))

    icbc = dde.icbc
    conditions = {
        "lid_u": icbc.DirichletBC(
            geom, lambda x: LID_A * x[:, 0:1] * (1 - x[:, 0:1]), top, component=0
        ),
        "lid_v": icbc.DirichletBC(geom, lambda x: 0, top, component=1),
        "wall_u": icbc.DirichletBC(geom, lambda x: 0, not_top, component=0),
        "wall_v": icbc.DirichletBC(geom, lambda x: 0, not_top, component=1),
        "p_origin": icbc.PointSetBC(np.array([[0.0, 0.0]]), np.array([[0.0]]), component=2),
    }
    return Problem(geom, pde, conditions, num_outputs=3)


def _lid_driven_reference() -> tuple[np.ndarray, np.ndarray]:
    d = _load("lid_driven_a4.npz")
    return d["x"], d["uvp"]


# ---------------------------------------------------------------------------- Poisson-Boltzmann

PB_K, PB_MU, PB_A = 8.0, (1.0, 4.0), 10.0
PB_DISKS = ((0.5, 0.5, 0.2), (0.4, -0.4, 0.4), (-0.2, -0.7, 0.1), (-0.6, 0.5, 0.3))


def _poisson_boltzmann(dde: Any, coefficients: Coefficients) -> Problem:
    geom = dde.geometry.Rectangle(xmin=[-1, -1], xmax=[1, 1])
    for cx, cy, r in PB_DISKS:
        geom = dde.geometry.csg.CSGDifference(geom, dde.geometry.Disk([cx, cy], r))

    def pde(x: Any, u: Any) -> Any:
        u_xx = dde.grad.hessian(u, x, i=0, j=0)
        u_yy = dde.grad.hessian(u, x, i=1, j=1)
        xs, ys = x[:, 0:1], x[:, 1:2]
        mu1, mu2 = PB_MU
        f = (
            PB_A
            * (mu1**2 + xs**2 + mu2**2 + ys**2)
            * torch.sin(mu1 * math.pi * xs)
            * torch.sin(mu2 * math.pi * ys)
        )
        return -(u_xx + u_yy) + PB_K**2 * u - f

    def on_rect(x: np.ndarray) -> bool:
        return bool(np.isclose(x[0], -1) or np.isclose(x[0], 1)) or bool(
            np.isclose(x[1], -1) or np.isclose(x[1], 1)
        )

    conditions = {
        "rectangle": dde.icbc.DirichletBC(
            geom, lambda x: 0.2, lambda x, on_b: bool(on_b and on_rect(x))
        ),
        "circles": dde.icbc.DirichletBC(
            geom, lambda x: 1, lambda x, on_b: bool(on_b and not on_rect(x))
        ),
    }
    return Problem(geom, pde, conditions)


def _poisson_boltzmann_reference() -> tuple[np.ndarray, np.ndarray]:
    d = _load("poisson_boltzmann2d.npz")
    return d["x"], d["u"]


# ---------------------------------------------------------------------------- reaction (inverse)

REACTION_TRUE = {"kf": 0.1, "D": 2.0}  # D in units of 1e-3, as DeepXDE's example writes it


def _reaction(dde: Any, coefficients: Coefficients) -> Problem:
    kf, diff = coefficients["kf"], coefficients["D"]

    def pde(x: Any, y: Any) -> Any:
        ca, cb = y[:, 0:1], y[:, 1:2]
        dca_t = dde.grad.jacobian(y, x, i=0, j=1)
        dca_xx = dde.grad.hessian(y, x, component=0, i=0, j=0)
        dcb_t = dde.grad.jacobian(y, x, i=1, j=1)
        dcb_xx = dde.grad.hessian(y, x, component=1, i=0, j=0)
        k, d = kf(), diff()
        eq_a = dca_t - 1e-3 * d * dca_xx + k * ca * cb**2
        eq_b = dcb_t - 1e-3 * d * dcb_xx + 2 * k * ca * cb**2
        return [eq_a, eq_b]

    geomtime = dde.geometry.GeometryXTime(
        dde.geometry.Interval(0, 1), dde.geometry.TimeDomain(0, 10)
    )
    icbc = dde.icbc

    def bc(x: np.ndarray) -> np.ndarray:
        return 1 - x[:, 0:1]

    def init(x: np.ndarray) -> np.ndarray:
        return np.exp(-20 * x[:, 0:1])

    conditions = {
        "bc_a": icbc.DirichletBC(geomtime, bc, lambda _, on_b: on_b, component=0),
        "bc_b": icbc.DirichletBC(geomtime, bc, lambda _, on_b: on_b, component=1),
        "ic_a": icbc.IC(geomtime, init, lambda _, on_i: on_i, component=0),
        "ic_b": icbc.IC(geomtime, init, lambda _, on_i: on_i, component=1),
    }
    d = _load("reaction.npz")
    # observations: every 5th point in x and every 5th time of the reference grid
    # (21 x 41 = 861 points, noise-free, as DeepXDE's example's grid data)
    xo, to = d["x"][::5], d["t"][::5]
    obs_x, obs_y = _grid(xo, to, d["ca"][::5, ::5], d["cb"][::5, ::5])
    return Problem(geomtime, pde, conditions, num_outputs=2, observations=(obs_x, obs_y))


def _reaction_reference() -> tuple[np.ndarray, np.ndarray]:
    d = _load("reaction.npz")
    return _grid(d["x"], d["t"], d["ca"], d["cb"])


# ---------------------------------------------------------------------------- Allen-Cahn

AC_D = 1e-3


def _allen_cahn(dde: Any, coefficients: Coefficients) -> Problem:
    def pde(x: Any, y: Any) -> Any:
        dy_t = dde.grad.jacobian(y, x, i=0, j=1)
        dy_xx = dde.grad.hessian(y, x, i=0, j=0)
        return dy_t - AC_D * dy_xx - 5 * (y - y**3)

    geomtime = dde.geometry.GeometryXTime(
        dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 1)
    )

    def dde_transform(x: Any, y: Any) -> Any:  # DeepXDE's example, PyTorch version
        xs, ts = x[:, 0:1], x[:, 1:2]
        return xs**2 * torch.cos(math.pi * xs) + ts * (1 - xs**2) * y

    def transform() -> Any:
        from hybridml import HardBoundary

        return HardBoundary(
            lambda x: x[:, 0:1] ** 2 * torch.cos(math.pi * x[:, 0:1]),
            lambda x: x[:, 1:2] * (1 - x[:, 0:1] ** 2),
        )

    conditions = {
        "dirichlet": dde.icbc.DirichletBC(geomtime, lambda x: -1, lambda _, on_b: on_b),
        "ic": dde.icbc.IC(
            geomtime, lambda x: x[:, 0:1] ** 2 * np.cos(np.pi * x[:, 0:1]), lambda _, on_i: on_i
        ),
    }
    return Problem(geomtime, pde, conditions, dde_transform=dde_transform, transform=transform)


def _allen_cahn_reference() -> tuple[np.ndarray, np.ndarray]:
    d = _load("allen_cahn.npz")
    return _grid(d["x"], d["t"], d["u"])


# ---------------------------------------------------------------------------- the cases

_PINNACLE = "PINNacle (i207M/PINNacle) benchmark.py vanilla PINN: 5x100 tanh, Adam 1e-3, 20000 its"

CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "burgers",
            "Burgers u_t + u u_x = (0.01/pi) u_xx, x in [-1, 1], t in [0, 0.99] (shock at x=0)",
            _burgers,
            _burgers_reference,
            Baseline(
                "DeepXDE examples/pinn_forward/Burgers.py",
                (20, 20, 20),
                "Glorot normal",
                15000,
                2540,
                80,
                160,
                lbfgs=True,
            ),
            notes="Published: Raissi et al. 2019 6.7e-4; PINNacle vanilla 1.45e-2.",
        ),
        Case(
            "poisson_lshape",
            "Poisson -lap u = 1 on the L-shape [-1,1]^2 minus [0,1]^2, u = 0 on the boundary",
            _poisson_lshape,
            _poisson_lshape_reference,
            Baseline(
                "DeepXDE examples/pinn_forward/Poisson_Lshape.py",
                (50, 50, 50, 50),
                "Glorot uniform",
                50000,
                1200,
                120,
                lbfgs=True,
            ),
            notes="Re-entrant corner at the origin: u ~ r^(2/3) sin(2 theta/3), gradient infinite.",
        ),
        Case(
            "ns2d_c",
            "Lid-driven cavity NS2d-C (PINNacle): steady Navier-Stokes, Re=100, lid u = 4x(1-x)",
            _lid_driven,
            _lid_driven_reference,
            Baseline(_PINNACLE, (100,) * 5, "Glorot normal", 20000, 8192, 2048),
            notes="Error over (u, v, p) together; pressure pinned to 0 at the origin.",
        ),
        Case(
            "poisson_boltzmann2d",
            "Poisson-Boltzmann 2-d (PINNacle Poisson2d-CG): -lap u + 64 u = f, square minus disks",
            _poisson_boltzmann,
            _poisson_boltzmann_reference,
            Baseline(_PINNACLE, (100,) * 5, "Glorot normal", 20000, 8192, 2048),
        ),
        Case(
            "reaction_inverse",
            "Inverse diffusion-reaction (DeepXDE reaction_inverse): learn kf and D from C_A, C_B",
            _reaction,
            _reaction_reference,
            Baseline(
                "DeepXDE examples/pinn_inverse/reaction_inverse.py",
                (20, 20, 20),
                "Glorot uniform",
                80000,
                2000,
                100,
                100,
            ),
            true_parameters=dict(REACTION_TRUE),
            initial_parameters={"kf": 0.05, "D": 1.0},
            notes="Synthetic observations from solve_reaction (kf = 0.1, D = 2e-3), noise-free.",
        ),
        Case(
            "allen_cahn",
            "Allen-Cahn u_t = 1e-3 u_xx + 5(u - u^3), x in [-1, 1], t in [0, 1] (causality)",
            _allen_cahn,
            _allen_cahn_reference,
            Baseline(
                "DeepXDE examples/pinn_forward/Allen_Cahn.py",
                (20, 20, 20),
                "Glorot normal",
                40000,
                8000,
                400,
                800,
                lbfgs=True,
                hard=True,
            ),
            notes="Conditions imposed by the example's output transform (both methods).",
        ),
    )
}


def select(names: Sequence[str] | None) -> list[Case]:
    """The cases named (all when ``names`` is None or empty), in the suite's order."""
    if not names:
        return list(CASES.values())
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    return [CASES[n] for n in names]


# ---------------------------------------------------------------------------- fine-grid solvers


def _laplacian(n: int, h: float) -> Any:
    """Second derivative on the ``n - 2`` interior nodes of a uniform grid (Dirichlet).

    Fourth-order central differences, second order on the two nodes next to the boundary.
    Returns the sparse matrix and the coefficient of each boundary value per row
    (``(n - 2, 2)``: left, right).
    """
    from scipy import sparse

    m = n - 2
    bands = [np.full(m - abs(k), c) for k, c in ((-2, -1.0), (-1, 16.0), (0, -30.0))]
    bands += [bands[1], bands[0]]
    lap = sparse.diags(
        bands,
        [-2, -1, 0, 1, 2],
        format="lil",
    ) / (12 * h * h)
    bnd = np.zeros((m, 2))
    for r in (0, m - 1):
        lap[r, :] = 0
        lap[r, r] = -2 / h**2
        if r > 0:
            lap[r, r - 1] = 1 / h**2
        if r < m - 1:
            lap[r, r + 1] = 1 / h**2
    bnd[0, 0] = bnd[m - 1, 1] = 1 / h**2
    bnd[1, 0] = bnd[m - 2, 1] = -1 / (12 * h * h)
    return lap.tocsr(), bnd


def solve_allen_cahn(t_out: np.ndarray, x_out: np.ndarray, n: int = 4001) -> np.ndarray:
    """Allen-Cahn ``u_t = 1e-3 u_xx + 5 (u - u^3)``, ``u(x, 0) = x^2 cos(pi x)``, ``u(+-1) = -1``.

    Method of lines: fourth-order finite differences on ``n`` nodes, BDF (scipy) with
    ``rtol=1e-10``; 2001 against 4001 nodes differ by 1e-8 (relative L2).

    Returns:
        ``u`` on the grid, ``(len(t_out), len(x_out))``.
    """
    from scipy import sparse
    from scipy.integrate import solve_ivp

    x = np.linspace(-1, 1, n)
    lap, bnd = _laplacian(n, x[1] - x[0])
    edge = bnd @ np.array([-1.0, -1.0])

    def rhs(t: float, u: np.ndarray) -> np.ndarray:
        return AC_D * (lap @ u + edge) + 5 * (u - u**3)

    def jac(t: float, u: np.ndarray) -> Any:
        return AC_D * lap + sparse.diags(5 * (1 - 3 * u**2))

    u0 = (x**2 * np.cos(np.pi * x))[1:-1]
    sol = solve_ivp(
        rhs, (0, float(t_out[-1])), u0, "BDF", t_eval=t_out, jac=jac, rtol=1e-10, atol=1e-12
    )
    full = np.vstack([-np.ones(len(t_out)), sol.y, -np.ones(len(t_out))])
    return np.array([np.interp(x_out, x, full[:, k]) for k in range(len(t_out))])


def solve_reaction(
    t_out: np.ndarray, x_out: np.ndarray, kf: float = 0.1, d: float = 2e-3, n: int = 2001
) -> tuple[np.ndarray, np.ndarray]:
    """DeepXDE's diffusion-reaction system, ``C_A(0) = C_B(0) = 1``, ``C(1) = 0``, ``e^{-20x}``.

    ``C_A,t = d C_A,xx - kf C_A C_B^2``, ``C_B,t = d C_B,xx - 2 kf C_A C_B^2`` on
    ``[0, 1] x [0, 10]``; method of lines as :func:`solve_allen_cahn` (1001 against 2001
    nodes differ by 4e-9).

    Returns:
        ``(ca, cb)`` on the grid, each ``(len(t_out), len(x_out))``.
    """
    from scipy import sparse
    from scipy.integrate import solve_ivp

    x = np.linspace(0, 1, n)
    m = n - 2
    lap, bnd = _laplacian(n, x[1] - x[0])
    edge = bnd @ np.array([1.0, 0.0])

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        a, b = y[:m], y[m:]
        r = kf * a * b**2
        return np.concatenate([d * (lap @ a + edge) - r, d * (lap @ b + edge) - 2 * r])

    def jac(t: float, y: np.ndarray) -> Any:
        a, b = y[:m], y[m:]
        ra, rb = sparse.diags(kf * b**2), sparse.diags(2 * kf * a * b)
        return sparse.bmat([[d * lap - ra, -rb], [-2 * ra, d * lap - 2 * rb]]).tocsc()

    c0 = np.exp(-20 * x[1:-1])
    sol = solve_ivp(
        rhs,
        (0, float(t_out[-1])),
        np.concatenate([c0, c0]),
        "BDF",
        t_eval=t_out,
        jac=jac,
        rtol=1e-10,
        atol=1e-12,
    )
    ones, zeros = np.ones(len(t_out)), np.zeros(len(t_out))
    out = []
    for part in (sol.y[:m], sol.y[m:]):
        full = np.vstack([ones, part, zeros])
        out.append(np.array([np.interp(x_out, x, full[:, k]) for k in range(len(t_out))]))
    return out[0], out[1]


def solve_poisson_lshape(points: np.ndarray, n: int = 641) -> np.ndarray:
    """``-lap u = 1`` on ``[-1, 1]^2`` minus ``[0, 1]^2``, ``u = 0`` on the boundary.

    Five-point finite differences on an ``n x n`` grid of the square (sparse direct solve),
    bilinear interpolation to ``points``. The re-entrant corner limits the convergence to
    about order 1.5: the maximum is 0.149291, 0.149368, 0.149395 on 161, 321, 641 nodes, so
    the 641-node solution is within about 1e-4 (relative) of the limit.

    Returns:
        ``u`` at ``points``, ``(m, 1)``.
    """
    from scipy import sparse
    from scipy.interpolate import RegularGridInterpolator
    from scipy.sparse.linalg import spsolve

    g = np.linspace(-1, 1, n)
    h = g[1] - g[0]
    xx, yy = np.meshgrid(g, g, indexing="ij")
    edge = 1 - 1e-12
    inside = ~((xx >= 0) & (yy >= 0)) & (np.abs(xx) < edge) & (np.abs(yy) < edge)
    index = -np.ones(xx.shape, dtype=np.int64)
    index[inside] = np.arange(int(inside.sum()))
    i, j = np.nonzero(inside)
    k = index[i, j]
    rows, cols, vals = [k], [k], [np.full(k.size, 4 / h**2)]
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        a, b = i + di, j + dj
        m = inside[a, b]
        rows.append(k[m])
        cols.append(index[a[m], b[m]])
        vals.append(np.full(int(m.sum()), -1 / h**2))
    mat = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))))
    u = np.zeros(xx.shape)
    u[inside] = spsolve(mat, np.ones(mat.shape[0]))
    return RegularGridInterpolator((g, g), u)(points)[:, None]


def make_data(shared: Path, out: Path = DATA) -> None:
    """Write every reference file of ``benchmarks/data/pde/`` (float32, compressed).

    Args:
        shared: folder with the original files (``Poisson_Lshape.npz``,
            ``lid_driven_a4.dat``, ``poisson_boltzmann2d.dat``).
        out: destination folder.
    """
    out.mkdir(parents=True, exist_ok=True)
    f32 = np.float32
    with np.load(shared / "Poisson_Lshape.npz") as f:
        keep = np.isfinite(f["y_ref"][:, 0])  # the grid covers [-1, 1]^2; NaN outside the L
        x_l = f["X_test"][keep]
        # the file's own y_ref is about 0.908 times the solution (1.1 % off after that
        # scaling; max 0.1339 against 0.1494): the reference is solved here instead, at its
        # points (README)
        np.savez_compressed(
            out / "poisson_lshape.npz",
            x=x_l.astype(f32),
            u=solve_poisson_lshape(x_l).astype(f32),
        )
    lid = np.loadtxt(shared / "lid_driven_a4.dat", comments="%")
    np.savez_compressed(
        out / "lid_driven_a4.npz", x=lid[:, :2].astype(f32), uvp=lid[:, 2:].astype(f32)
    )
    pb = np.loadtxt(shared / "poisson_boltzmann2d.dat", comments="%")
    np.savez_compressed(
        out / "poisson_boltzmann2d.npz", x=pb[:, :2].astype(f32), u=pb[:, 2:3].astype(f32)
    )
    t, x = np.linspace(0, 1, 101), np.linspace(-1, 1, 201)
    np.savez_compressed(
        out / "allen_cahn.npz",
        x=x.astype(f32),
        t=t.astype(f32),
        u=solve_allen_cahn(t, x).astype(f32),
    )
    t, x = np.linspace(0, 10, 201), np.linspace(0, 1, 101)
    ca, cb = solve_reaction(t, x)
    np.savez_compressed(
        out / "reaction.npz", x=x.astype(f32), t=t.astype(f32), ca=ca.astype(f32), cb=cb.astype(f32)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Rebuild the reference data of the PDE suite.")
    parser.add_argument("--make-data", metavar="SHARED_DIR", type=Path, required=True)
    make_data(parser.parse_args().make_data)
