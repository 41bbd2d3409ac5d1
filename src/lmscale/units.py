"""Sizes as people write them: ``150M`` parameters, ``3B`` or ``20b`` tokens, ``500k``, ``1.4e9``.
One parser for the importers' name patterns, the selection language and every command-line option
that takes a number of parameters, tokens or FLOPs."""

from __future__ import annotations

import math
import re
from typing import Any

from lmscale.errors import InputError

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*$", re.I)


def parse_size(text: Any, what: str = "size") -> float:
    """150M → 1.5e8, 3B → 3e9, 20b → 2e10, 1.4e9 → 1.4e9, 500k → 5e5 (k, M, B/G, T); positive and
    finite, else an :class:`InputError` naming ``what``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _SIZE.match(str(text))
        if not m:
            raise InputError(
                f"{what} {text!r} is not a number with an optional k/M/B/T suffix (e.g. 150M, 3B)"
            )
        value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{what} {text!r} must be a positive finite number")
    return value


def number_or_size(text: Any) -> float | None:
    """A plain number (any sign) or a size with a suffix; None when ``text`` is neither."""
    try:
        return float(text)
    except (TypeError, ValueError):
        pass
    m = _SIZE.match(str(text)) if isinstance(text, str) else None
    return float(m.group(1)) * _SUFFIX[m.group(2).lower()] if m else None
