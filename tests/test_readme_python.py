"""The "From Python" section of the user documentation runs as written: every ```python block
under a heading containing "From Python" in README.md or docs/*.md is executed, in a scratch folder
that sees the repository's examples/ (blocks that read ../shared skip when the data is absent)."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of the sections whose heading contains "From Python" (a section ends
    at the next heading of the same or a higher level)."""
    blocks, level, fence, buf = [], None, False, []
    for line in text.splitlines():
        if fence:
            if line.strip().startswith("```"):
                blocks.append("\n".join(buf))
                fence, buf = False, []
            else:
                buf.append(line)
            continue
        m = _HEADING.match(line)
        if m:
            depth = len(m.group(1))
            if "from python" in m.group(2).lower():
                level = depth
            elif level is not None and depth <= level:
                level = None
        elif level is not None and line.strip().startswith("```python"):
            fence = True
    return blocks


def _documents() -> list[Path]:
    return [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if p.is_file()]


def _cases():
    out = []
    for doc in _documents():
        for i, block in enumerate(python_blocks(doc.read_text(encoding="utf-8"))):
            out.append(pytest.param(block, id=f"{doc.relative_to(ROOT)}#{i + 1}"))
    return out


def test_the_documentation_has_a_from_python_section():
    assert _cases(), "no ```python block under a 'From Python' heading in README.md or docs/*.md"


def test_block_extraction():
    text = "# T\n## From Python\n```python\nx = 1\n```\n### sub\n```python\ny = 2\n```\n## Next\n```python\nz\n```\n"
    assert python_blocks(text) == ["x = 1", "y = 2"]


@pytest.mark.parametrize("block", _cases())
def test_from_python_block_runs(block, tmp_path, monkeypatch):
    shared = Path(os.environ.get("LMSCALE_SHARED", ROOT.parent / "shared"))
    if "../shared" in block or "shared/" in block:
        if not shared.is_dir():
            pytest.skip("the block reads ../shared (set LMSCALE_SHARED)")
        (tmp_path.parent / "shared").exists() or (tmp_path.parent / "shared").symlink_to(shared)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    import matplotlib

    matplotlib.use("Agg")
    exec(compile(block, "<From Python>", "exec"), {"__name__": "__readme__"})
