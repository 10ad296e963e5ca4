"""Compiling the Taylor-mode jet ahead of time, in a background process.

A compiled jet (:meth:`hybridml.MLP.jet` with ``compiled=True``) is compiled once per
network structure, point count and dtype, which takes seconds (10-25 s for the Burgers
benchmark's network on one core). When the shapes of a later training phase are known in
advance (a float64 quasi-Newton phase on more points after an Adam phase, say),
:meth:`hybridml.MLP.precompile_jet` starts that compilation in a separate Python process
while training goes on. The process writes inductor's on-disk caches (the FX graph and
AOTAutograd caches); when the jet is first needed for those shapes in this process,
:meth:`~hybridml.MLP.jet` waits for the process (if still running) and then compiles from
the warm cache in a few seconds.

The compiled code is the same either way, so the results do not depend on whether (or how
fast) the background compilation ran; only the wall time does. If the process fails (no C++
compiler, say), the jet is compiled in process as it would have been without it.

The child process runs :func:`_main` with a JSON :class:`JetSpec` on stdin (what
:func:`start` does).
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import types
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..exceptions import InvalidArgumentError

__all__ = ["Precompilation"]

Pair = tuple[int, int]

# how long a jet waits for a background compilation before compiling itself
WAIT_S = 600.0


@dataclass(frozen=True)
class JetSpec:
    """What the compiled jet is specialised on: the call's shapes, dtype and activations.

    ``n`` points of dimension ``d``; ``extra``: rows of value-only points (None: none);
    ``scaled``: the network scales its inputs (``input_lower``/``input_upper``);
    ``pairs``: the second derivatives; ``kinds``: the activations; ``shapes`` and
    ``trainable``: the parameters (weights and biases in order) and which require a
    gradient; ``dtype``: e.g. ``"float64"``; ``threads``: torch's intra-op threads.
    """

    n: int
    d: int
    extra: int | None
    scaled: bool
    pairs: tuple[Pair, ...]
    kinds: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    trainable: tuple[bool, ...]
    dtype: str
    threads: int
    # where pickle finds ``torch.contiguous_format`` in this process (see _lookup_module)
    lookup_module: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JetSpec:
        raw = json.loads(text)
        return cls(
            n=int(raw["n"]),
            d=int(raw["d"]),
            extra=None if raw["extra"] is None else int(raw["extra"]),
            scaled=bool(raw["scaled"]),
            pairs=tuple((int(i), int(j)) for i, j in raw["pairs"]),
            kinds=tuple(str(k) for k in raw["kinds"]),
            shapes=tuple(tuple(int(s) for s in shape) for shape in raw["shapes"]),
            trainable=tuple(bool(t) for t in raw["trainable"]),
            dtype=str(raw["dtype"]),
            threads=int(raw["threads"]),
            lookup_module=str(raw.get("lookup_module", "")),
        )

    @property
    def torch_dtype(self) -> torch.dtype:
        dtype = getattr(torch, self.dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise InvalidArgumentError(f"JetSpec.dtype: {self.dtype!r} is not a torch dtype.")
        return dtype


class Precompilation:
    """A compilation of the jet running in a background process.

    Returned by :meth:`hybridml.MLP.precompile_jet` (and the adapters' precompile methods
    built on it). Training does not need to touch it: :meth:`hybridml.MLP.jet` waits for it
    by itself. It is there to ask how it went.

    Attributes:
        spec: what is being compiled.
        log: file with the process's output (kept if it failed).
    """

    def __init__(self, spec: JetSpec) -> None:
        self.spec = spec
        fd, name = tempfile.mkstemp(prefix="hybridml_precompile_", suffix=".log")
        self.log = Path(name)
        self._t0 = time.perf_counter()
        self._t1: float | None = None
        env = os.environ.copy()
        # the child finds hybridml where this process found it (also when it was put on
        # sys.path at run time rather than installed)
        roots = [str(Path(__file__).resolve().parents[2])]
        env["PYTHONPATH"] = os.pathsep.join(
            [*roots, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
        with os.fdopen(fd, "w") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                text=True,
            )
        assert self._process.stdin is not None
        self._process.stdin.write(spec.to_json())
        self._process.stdin.close()

    def done(self) -> bool:
        """Whether the process has ended (successfully or not)."""
        return self._process.poll() is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the process (at most ``timeout`` seconds); True if it compiled the jet.

        After a timeout the process is stopped (and False returned).
        """
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
            return False
        return self.succeeded

    def cancel(self) -> None:
        """Stop the process if it is still running."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    @property
    def returncode(self) -> int | None:
        """The process's exit status (None while it runs)."""
        return self._process.poll()

    @property
    def succeeded(self) -> bool:
        """Whether the process has ended having compiled the jet."""
        return self._process.poll() == 0

    @property
    def seconds(self) -> float | None:
        """Wall time of the process, once it has ended (as first seen ended from here)."""
        if self._t1 is None and self.done():
            self._t1 = time.perf_counter()
        return None if self._t1 is None else self._t1 - self._t0

    def output(self) -> str:
        """The process's output so far (the traceback if it failed)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def __repr__(self) -> str:
        state = "running" if not self.done() else f"exit {self.returncode}"
        return f"Precompilation(n={self.spec.n}, dtype={self.spec.dtype}, {state})"


_CHILD = "from hybridml.nn._precompile import _main; raise SystemExit(_main())"
_RUNNING: dict[JetSpec, Precompilation] = {}


def start(spec: JetSpec) -> Precompilation:
    """Start compiling the jet of ``spec`` in a background process (once per spec)."""
    job = _RUNNING.get(spec)
    if job is None or (job.done() and not job.succeeded):
        job = _RUNNING[spec] = Precompilation(spec)
    return job


def wait_for(spec: JetSpec) -> None:
    """Before compiling ``spec`` here: wait for a background compilation of it, if any."""
    job = _RUNNING.get(spec)
    if job is not None and not job.done():
        job.wait(WAIT_S)


@atexit.register
def _stop_all() -> None:  # pragma: no cover - at interpreter exit
    for job in _RUNNING.values():
        job.cancel()
        if job.succeeded:
            job.log.unlink(missing_ok=True)


def lookup_module() -> str:
    """The module in which pickle finds ``torch.contiguous_format`` in this process.

    Inductor's cache keys pickle the inputs' tensor metadata. A memory format has no
    ``__module__``, so pickle names it after the first module in ``sys.modules`` (in import
    order) that has an attribute ``torch``: the first module of the process that imported
    torch, which differs between processes (a test module, a user's package, one of
    torch's own). The child process makes its lookup land on the same name
    (:func:`_match_lookup_module`), so that its cache entries have the parent's keys.
    """
    name: str = pickle.whichmodule(  # type: ignore[attr-defined]  # (undocumented)
        torch.contiguous_format, "torch.contiguous_format"
    )
    return name


def _match_lookup_module(name: str) -> None:
    """In the child: make pickle find ``torch.contiguous_format`` under module ``name``.

    Puts ``name`` first in ``sys.modules`` (a stand-in module holding ``torch`` if the child
    has no module of that name); only the order of the entries changes.
    """
    if not name or lookup_module() == name:
        return
    first = sys.modules.get(name)
    if first is None or getattr(first, "torch", None) is not torch:
        first = types.ModuleType(name)
        first.torch = torch  # type: ignore[attr-defined]
    rest = dict(sys.modules)
    rest.pop(name, None)
    sys.modules.clear()
    sys.modules[name] = first
    sys.modules.update(rest)


def compile_spec(spec: JetSpec) -> None:
    """Compile the jet of ``spec`` in this process: one forward and backward pass."""
    from ._jet_compiled import _jet_function

    torch.set_num_threads(spec.threads)
    dtype = spec.torch_dtype
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=dtype)

    x = rand(spec.n, spec.d)
    extra = None if spec.extra is None else rand(spec.extra, spec.d)
    lo = hi = None
    if spec.scaled:
        lo, hi = -torch.ones(spec.d, dtype=dtype), torch.ones(spec.d, dtype=dtype)
    params = [
        torch.nn.Parameter(rand(*shape), requires_grad=t)
        for shape, t in zip(spec.shapes, spec.trainable, strict=True)
    ]
    fn = torch.compile(
        _jet_function(spec.n, spec.d, spec.pairs, spec.kinds), dynamic=False, fullgraph=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        with torch.enable_grad():
            out = fn(x, extra, lo, hi, *params)
            outs = [o for o in out if o.requires_grad]
            if outs:
                torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])


def _main() -> int:  # pragma: no cover - runs in the child process
    if hasattr(os, "nice"):
        os.nice(10)  # training in the parent process goes first
    spec = JetSpec.from_json(sys.stdin.read())
    _match_lookup_module(spec.lookup_module)
    t0 = time.perf_counter()
    compile_spec(spec)
    print(f"compiled {spec} in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0
