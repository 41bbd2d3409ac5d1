"""Which files a corpus is made of: ``lmscale data prepare``'s sources (files, folders, glob
patterns) resolved into the text, JSONL and Parquet files it reads, and what identifies them."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

from lmscale._io import check_regular_file
from lmscale.errors import InputError


def file_kind(path: Path) -> str:
    """ "jsonl", "parquet" or "text": how a corpus file is read, by its name (compression aside)."""
    stem = path.name.lower()
    for comp in (".gz", ".zst", ".zstd"):
        stem = stem.removesuffix(comp)
    if stem.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if stem.endswith((".parquet", ".pq")):
        return "parquet"
    return "text"


#: bytes read from the start of a plain-text corpus file to tell it from a binary one
SNIFF_BYTES = 8192


def looks_binary(path: Path) -> bool:
    """A plain-text corpus file (not compressed, not Parquet) holding NUL bytes near its start: a
    compiled, image or archive file, not text."""
    if file_kind(path) != "text" or path.name.lower().endswith((".gz", ".zst", ".zstd")):
        return False
    try:
        with open(path, "rb") as fh:
            return b"\x00" in fh.read(SNIFF_BYTES)
    except OSError:
        return False


def _walk(folder: Path) -> list[Path]:
    """The corpus files under ``folder``: every regular file but hidden ones (a name starting with
    "."), those under a hidden folder or ``__pycache__``, and binary ones (:func:`looks_binary`)."""
    out = []
    for q in sorted(folder.rglob("*")):
        rel = q.relative_to(folder).parts
        if any(part.startswith(".") or part == "__pycache__" for part in rel):
            continue
        if q.is_file() and not looks_binary(q):
            out.append(q)
    return out


_MAGIC = re.compile(r"[*?[]")


def _segment(seg: str) -> str:
    """A regular expression for one path segment of a glob pattern (``*``, ``?``, ``[…]``); like
    glob, a wildcard never matches a name starting with "." unless the pattern's does."""
    out = "" if seg.startswith(".") else r"(?!\.)"
    i = 0
    while i < len(seg):
        c = seg[i]
        end = seg.find("]", i + 2) if c == "[" else -1
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif end > 0:
            body = seg[i + 1 : end]
            neg, body = (body.startswith("!"), body[1:] if body.startswith("!") else body)
            out += "[" + "^" * neg + "".join(ch if ch == "-" else re.escape(ch) for ch in body) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return out


def _glob_tree(pattern: str) -> list[str]:
    """Matches of a pattern with a ``**`` segment, found by walking the tree below its fixed part
    without entering linked folders: glob's own ``**`` follows them, so a link back up the tree
    (``up -> ..``) repeats the same files under ever longer paths."""
    parts = Path(pattern).parts
    k = next(i for i, part in enumerate(parts) if _MAGIC.search(part))
    rest = list(parts[k:]) + (["*"] if parts[-1] == "**" else [])  # a last ** : everything below
    rx = ""
    for i, seg in enumerate(rest):
        rx += r"(?:(?!\.)[^/]+/)*" if seg == "**" else _segment(seg) + ("/" if i < len(rest) - 1 else "")
    match = re.compile(rx, re.DOTALL).fullmatch
    base = Path(*parts[:k]) if k else Path()
    hits = []
    for root, dirs, files in os.walk(base):  # never follows a linked folder
        rel = Path(root).relative_to(base)
        names = [d for d in dirs if not os.path.islink(os.path.join(root, d))] + files
        hits += [str(base / rel / n) for n in names if match((rel / n).as_posix())]
    return sorted(hits)


def expand(pattern: str) -> list[str]:
    """The paths a glob pattern matches, sorted; a ``**`` segment matches any depth of folders but
    never enters a linked one (:func:`_glob_tree`)."""
    return _glob_tree(pattern) if "**" in Path(pattern).parts else sorted(glob.glob(pattern))


def resolve(sources: Sequence[str]) -> list[Path]:
    """Files of ``sources`` (paths or glob patterns), sorted, each once. A folder contributes its
    text files (:func:`_walk`); a binary file named on its own is refused."""
    out: list[Path] = []
    for s in sources:
        hits = expand(s) if _MAGIC.search(s) else [s]
        for h in hits:
            p = Path(h)
            if p.is_dir():
                out += _walk(p)
            elif p.is_file():
                if looks_binary(p):
                    if h != s:  # matched by a pattern: skip it, like a folder's binary files
                        continue
                    raise InputError(
                        f"corpus source {s!r}: a binary file (NUL bytes in its first {SNIFF_BYTES} "
                        "bytes), not text, JSONL, Parquet or a compressed one of these"
                    )
                out.append(p)
            elif h != s:  # matched by a pattern: a dangling link or a FIFO is skipped, as in a folder
                continue
            else:  # a FIFO, a device, a socket: say which (missing: no such file)
                check_regular_file(p, "corpus source")
                raise InputError(f"corpus source {s!r}: no such file")
    if not out:
        raise InputError(f"corpus sources {list(sources)} match no files")
    return list(dict.fromkeys(out))


def manifest(paths: Sequence[Path]) -> list[dict]:
    """What identifies the input without reading it: path, size and modification time per file."""
    rows = []
    for p in paths:
        st = p.stat()
        rows.append({"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return rows
