"""The README's Python example runs as written and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None, "README.md has no ```python block"
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(code.group(1), str(README), "exec"), namespace)
    pred, truth = namespace["pred"], namespace["truth"]
    assert pred.report.passed  # type: ignore[attr-defined]
    # 12 noisy points (sd 0.02 m) + the equation of motion recover x over the whole 10 s:
    # the error against the simulator's own solution stays well below the amplitude 1 m
    t_truth = truth["t [s]"]  # type: ignore[index]
    x_pred = np.interp(t_truth, pred["t [s]"], pred["x [m]"])  # type: ignore[index]
    rmse = float(np.sqrt(np.mean((x_pred - truth["x [m]"]) ** 2)))  # type: ignore[index]
    assert rmse < 0.05, rmse
