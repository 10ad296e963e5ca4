"""The configuration reference (``docs/config.md``) rendered from the schema."""

from __future__ import annotations

from ._schema import REQUIRED, SECTIONS, Key

__all__ = ["render_markdown"]


def _default_text(key: Key) -> str:
    if key.default is REQUIRED:
        return "required"
    if key.default is None:
        return "—"
    if isinstance(key.default, bool):
        return f"`{str(key.default).lower()}`"
    if isinstance(key.default, str):
        return f'`"{key.default}"`'
    if isinstance(key.default, float):
        return f"`{key.default:g}`"
    return f"`{key.default!r}`".replace("{}", "{ }")


def _rows(keys: tuple[Key, ...]) -> list[str]:
    out = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for k in keys:
        allowed = " \\| ".join(f'`"{c}"`' for c in k.choices) or k.range_text()
        out.append(f"| `{k.name}` | {k.type} | {_default_text(k)} | {allowed} | {k.doc} |")
    return out


def render_markdown() -> str:
    """The configuration reference (``docs/config.md``), generated from :data:`SECTIONS`."""
    lines = [
        "# Study configuration reference",
        "",
        "<!-- Generated from src/hybridml/study/_schema.py; do not edit by hand.",
        "     Regenerate: hybridml config-reference > docs/config.md -->",
        "",
        "`hybridml run STUDY.toml` reads these tables. A mistake (a wrong type, a value",
        "out of range, an unknown key) is an error naming the file, the line and the key;",
        "an unknown key also names the closest valid ones. Only `[data]` is required.",
    ]
    for s in SECTIONS:
        header = f"[[{s.name}]]" if s.array else f"[{s.name}]"
        lines += ["", f"## `{header}`", "", s.doc, "", *_rows(s.keys)]
        for variant, keys in s.variants.items():
            lines += ["", f'With `type = "{variant}"`:', "", *_rows(keys)]
        if s.example:
            lines += ["", "```toml", s.example, "```"]
    return "\n".join(lines) + "\n"
