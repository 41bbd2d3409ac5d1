"""How a fraction reads as a percentage, written once for the report's tables (:mod:`lmscale.analyses`)
and the command line (:mod:`lmscale.cli`). No imports beyond the standard library, so the CLI stays
light."""

from __future__ import annotations

import math

#: what a missing number (None, NaN, ±inf) prints as, in tables and on the command line
MISSING = "—"


def pct(x, digits: int = 2) -> str:
    """``x`` (a fraction) as a percentage with ``digits`` decimals: ``pct(0.0123)`` is ``1.23%``;
    :data:`MISSING` for None, NaN or an infinite value."""
    if x is None or not math.isfinite(x):
        return MISSING
    return f"{100 * x:.{digits}f}%"
