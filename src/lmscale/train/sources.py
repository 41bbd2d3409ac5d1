"""Which files a corpus is made of: ``lmscale data prepare``'s sources (files, folders, glob
patterns) resolved into the text, JSONL and Parquet files it reads, and what identifies them."""

from __future__ import annotations

import glob
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


def resolve(sources: Sequence[str]) -> list[Path]:
    """Files of ``sources`` (paths or glob patterns), sorted, each once. A folder contributes its
    text files (:func:`_walk`); a binary file named on its own is refused."""
    out: list[Path] = []
    for s in sources:
        hits = sorted(glob.glob(s, recursive=True)) if any(c in s for c in "*?[") else [s]
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
