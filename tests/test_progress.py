"""Progress bars: on by default on a terminal and in a Jupyter notebook, off elsewhere."""

from __future__ import annotations

import io
import sys
import types

import pytest

from hybridml._progress import in_notebook, progress_bar


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
    assert not in_notebook()
    bar = progress_bar(total=3, desc="fit")
    bar.update(1)
    bar.close()
    assert bar.disable
    assert stderr.getvalue() == ""


def test_shown_by_default_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = _log_stderr(monkeypatch)
    _ipython(monkeypatch, "IPKernelApp")
    assert in_notebook()
    bar = progress_bar(total=3, desc="ensemble")
    bar.update(1)
    bar.refresh()
    assert not bar.disable
    assert "ensemble" in stderr.getvalue()  # it drew itself
    bar.close()
    # asked for silence, it stays silent in a notebook too
    assert progress_bar(total=3, desc="fit", enabled=False).disable


@pytest.mark.parametrize("app", ["TerminalIPythonApp", None])
def test_a_terminal_ipython_or_no_shell_is_not_a_notebook(
    monkeypatch: pytest.MonkeyPatch, app: str | None
) -> None:
    _log_stderr(monkeypatch)
    _ipython(monkeypatch, app)
    assert not in_notebook()
    assert progress_bar(total=3, desc="fit").disable  # stderr is not a terminal either
