"""Progress bars: on by default on a terminal and in a Jupyter notebook, off elsewhere."""

from __future__ import annotations

import io
import sys
import types

import pytest
import torch

import hybridml as hm


def _fit(progress: bool | None = None) -> None:
    """A tiny real fit through the public Trainer (its progress bar is the library's)."""
    x = torch.linspace(0.0, 1.0, 8)[:, None]
    net = hm.MLP(1, 1, hidden=(4,))
    hm.Trainer(phases=(hm.Adam(3, lr=1e-2),), progress=progress).fit(
        net, {"data": hm.DataLoss(x, x**2)}
    )


class _Shell:
    """What IPython's ``get_ipython()`` returns: a shell with its application ``config``.

    IPython is not a dependency (and not installed in the test environment), so a Jupyter
    kernel cannot be started here; this stands for the shell a kernel or a terminal IPython
    gives, which is all the decision reads.
    """

    def __init__(self, config: dict[str, object]) -> None:
        self.config = config


def _ipython(monkeypatch: pytest.MonkeyPatch, app: str | None) -> None:
    import tqdm.auto  # noqa: F401  (chosen before the stand-in exists, as in a real session)

    module = types.ModuleType("IPython")
    shell = None if app is None else _Shell({app: {"connection_file": "kernel.json"}})
    module.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", module)


def _log_stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """A stderr that is not a terminal (a log file, a pipe, a notebook's output stream).

    Set in the test itself: pytest's output capture sets ``sys.stderr`` again after the
    fixtures have run.
    """
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_hidden_by_default_in_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = _log_stderr(monkeypatch)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    _fit()
    assert stderr.getvalue() == ""


def test_shown_by_default_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = _log_stderr(monkeypatch)
    _ipython(monkeypatch, "IPKernelApp")
    _fit()
    assert "3/3" in stderr.getvalue()  # the bar drew itself, to the end
    # asked for silence, it stays silent in a notebook too
    stderr.truncate(0)
    stderr.seek(0)
    _fit(progress=False)
    assert stderr.getvalue() == ""


@pytest.mark.parametrize("app", ["TerminalIPythonApp", None])
def test_a_terminal_ipython_or_no_shell_is_not_a_notebook(
    monkeypatch: pytest.MonkeyPatch, app: str | None
) -> None:
    stderr = _log_stderr(monkeypatch)
    _ipython(monkeypatch, app)
    _fit()
    assert stderr.getvalue() == ""  # stderr is not a terminal either
