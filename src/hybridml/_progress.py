"""Progress bars: tqdm on a terminal and in a notebook, silent otherwise or when asked."""

from __future__ import annotations

import sys
from typing import Any


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (a notebook, JupyterLab, VS Code, Colab).

    The test tqdm.auto uses to pick its notebook bar: IPython is imported and its shell
    runs inside an ``IPKernelApp``. A terminal IPython is not a notebook.
    """
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        shell = get_ipython()
        return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
    except Exception:  # a half-initialised or unusual shell: not a notebook we can tell
        return False


def progress_bar(*, total: int | None, desc: str, enabled: bool | None = None) -> Any:
    """Return a tqdm bar (tqdm.auto: a widget in a notebook, text on a terminal).

    ``enabled=None`` shows it when stderr is a terminal or the code runs in a Jupyter
    notebook (whose stderr is not a terminal), and hides it otherwise (logs, pipes, CI).
    """
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty() or in_notebook()
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)
