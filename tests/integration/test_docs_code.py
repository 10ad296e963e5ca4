"""Every ```python block of the docs (docs/**/*.md and README.md) runs, so the docs cannot rot.

The blocks of one file run in order in one namespace (a later block may use what an earlier
one defined), in a temporary working folder, with warnings as errors like every test. A
traceback points at the Markdown file and the line in it.

Opting out: a block is skipped when its first line, or an HTML comment on the line just
before its opening fence (invisible on the site and on GitHub), is a marker with a reason:

    # doc: skip (fragment: `model` and `terms` stand for the user's own)
    <!-- doc: skip (needs PyBaMM solves of several minutes) -->

Use it only for a block that needs minutes or a GPU, or is a fragment that cannot run on its
own. ``# doc: slow (reason)`` (or the comment form) instead runs the block, and marks the
file's test slow. Set-up code a reader need not see can go in a ```python block inside an
HTML comment (``<!-- ... -->``): it runs here and is not shown.

README.md's first block is run, and its result checked, by tests/integration/test_readme.py.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})python[ \t]*$")
_MARKER = re.compile(
    r"^\s*(?:#|<!--)\s*doc:\s*(?P<kind>skip|slow)\b\s*(?P<reason>.*?)\s*(?:-->)?\s*$"
)
_REASON = re.compile(r"^\((?P<text>.*\S.*)\)$")


@dataclass(frozen=True)
class Block:
    """One ```python block: where it starts, its code, and its marker (if any)."""

    path: Path
    line: int  # 1-based line of the block's first code line
    code: str
    kind: str = "run"  # "run", "skip" or "slow"
    reason: str = ""


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _marker(text: str, path: Path, line: int) -> tuple[str, str] | None:
    m = _MARKER.match(text)
    if m is None:
        return None
    reason = _REASON.match(m["reason"])
    if reason is None:
        raise ValueError(
            f"{_name(path)}:{line}: a `doc: {m['kind']}` marker needs a reason "
            f"in parentheses, e.g. `# doc: {m['kind']} (needs a GPU)`; got {text.strip()!r}"
        )
    return m["kind"], reason["text"]


def extract_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, in order (indented fences included)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = i + 1
        while end < len(lines) and not close.match(lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"{_name(path)}:{i + 1}: unclosed ```python block")
        body = [ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1 : end]]
        marker = None
        if i > 0:
            marker = _marker(lines[i - 1], path, i) if "<!--" in lines[i - 1] else None
        if marker is None and body:
            marker = _marker(body[0], path, i + 2)
        kind, reason = marker if marker is not None else ("run", "")
        blocks.append(Block(path, i + 2, "\n".join(body) + "\n", kind, reason))
        i = end + 1
    return blocks


def _readme_first_block() -> str:
    # exactly what tests/integration/test_readme.py extracts and runs
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S)
    return code.group(1) if code else ""


def _blocks_of(path: Path) -> list[Block]:
    blocks = extract_blocks(path)
    if path.name == "README.md" and path.parent == ROOT and blocks:
        first = blocks[0]
        if first.kind == "run" and first.code == _readme_first_block():
            blocks[0] = Block(
                path, first.line, first.code, "skip", "run by tests/integration/test_readme.py"
            )
    return blocks


def _params() -> list[object]:
    params: list[object] = []
    for path in DOC_FILES:
        blocks = _blocks_of(path)
        if not blocks:
            continue
        marks = [pytest.mark.slow] if any(b.kind == "slow" for b in blocks) else []
        params.append(pytest.param(path, marks=marks, id=str(path.relative_to(ROOT))))
    return params


@pytest.mark.parametrize("path", _params())
def test_doc_code_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import torch

    monkeypatch.chdir(tmp_path)
    # the same start for every run: a block that draws random numbers without a seed of its
    # own still gives the same result each time (the legacy global generator is what such a
    # block, or DeepXDE's sampling, draws from)
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    # the blocks run in a module of their own (dataclasses and pickle look classes up there)
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", _name(path)))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    try:
        for block in _blocks_of(path):
            if block.kind == "skip":
                continue
            # pad with blank lines so tracebacks show the Markdown file's own line numbers
            source = "\n" * (block.line - 1) + block.code
            try:
                exec(compile(source, str(path), "exec"), namespace)
            except Exception as exc:
                raise AssertionError(
                    f"the ```python block at {_name(path)}:{block.line} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def test_every_skipped_block_says_why() -> None:
    """A skip marker without a reason is refused; a skip is counted and named."""
    skipped = [b for p in DOC_FILES for b in _blocks_of(p) if b.kind == "skip"]
    assert all(b.reason for b in skipped)
    with pytest.raises(ValueError, match="needs a reason"):
        _marker("# doc: skip", ROOT / "README.md", 1)
    assert _marker("<!-- doc: skip (needs a GPU) -->", ROOT / "README.md", 1) == (
        "skip",
        "needs a GPU",
    )
    assert _marker("x = 1  # doc: skip (no)", ROOT / "README.md", 1) is None


def test_extract_blocks_reads_indented_and_marked_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n"
        "```python\nx = 1\n```\n"
        "- a list item:\n\n    ```python\n    y = x + 1\n    ```\n"
        "<!-- doc: skip (a fragment) -->\n```python\nundefined_name\n```\n"
        "```bash\necho not python\n```\n"
        "```python\n# doc: slow (trains for a while)\nz = y\n```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(page)
    assert [b.code for b in blocks] == [
        "x = 1\n",
        "y = x + 1\n",
        "undefined_name\n",
        "# doc: slow (trains for a while)\nz = y\n",
    ]
    assert [b.kind for b in blocks] == ["run", "run", "skip", "slow"]
    assert [b.line for b in blocks] == [3, 8, 12, 18]


def test_readme_first_block_is_left_to_test_readme() -> None:
    blocks = _blocks_of(ROOT / "README.md")
    assert blocks and blocks[0].kind == "skip" and blocks[0].code == _readme_first_block()
