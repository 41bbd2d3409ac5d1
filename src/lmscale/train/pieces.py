"""Bounded pieces of one document, so that tokenising a huge document (a 9 MB file, a 72 MB file of
short lines without a blank one) holds one piece at a time, not the whole document's encoding.

A document no longer than :data:`PIECE_CHARS` is one piece: ordinary documents are tokenised exactly
as before. A longer one is cut where a byte-level BPE pre-tokenizer (GPT-2's split pattern, lmscale's own
tokenizer and GPT-NeoX's) splits anyway, so its tokens do not change: where whitespace follows a
non-space character. Only text without such a point in half a piece (half a megabyte without
whitespace) is cut at the limit; a tokenizer of another kind (e.g. Llama's) may tokenise the
characters at a cut differently, in documents over a megabyte only."""

from __future__ import annotations

from collections.abc import Iterator

#: the longest piece of a document tokenised at once (characters)
PIECE_CHARS = 1 << 20


def _cut(text: str, limit: int) -> int:
    """Where to end the first piece of ``text`` (longer than ``limit``): 0 < cut <= limit, the
    start of a whitespace run that follows a non-space character if there is one in the second
    half of the reach (no pre-token of the split pattern spans such a point: its patterns take
    either whitespace or a run that may start with one space, never a run that ends in one)."""
    lo = max(limit // 2, 1)
    i = limit
    while i >= lo:
        if text[i].isspace() and not text[i - 1].isspace():
            return i
        i -= 1
    return limit


def split_text(text: str, limit: int | None = None) -> Iterator[str]:
    """``text`` in pieces of at most ``limit`` characters (default :data:`PIECE_CHARS`; one piece
    when it is not longer)."""
    limit = limit or PIECE_CHARS
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit + 1]
        cut = _cut(window, limit)
        yield window[:cut]
        start += cut
    if start < len(text) or not text:
        yield text[start:]
