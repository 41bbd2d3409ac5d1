"""Plausibility checks run on every import and every fit: numbers that are valid but almost
certainly a unit mistake (tokens given in Chinchilla multiples read as tokens per parameter, a
parameter count in millions read as a count). Each check returns warnings as text; nothing is
refused, since an unusual ladder can be right."""

from __future__ import annotations

import math
import re

import numpy as np

from lmscale.run_table import RunTable

#: a size in a run name: 150M, 1.4B, 20m (a number and a k/M/B/T suffix between separators)
_NAME_SIZE = re.compile(r"(?:^|[^0-9A-Za-z.])([0-9]+(?:\.[0-9]+)?)([kKmMbBtT])(?=$|[^0-9A-Za-z])")
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
#: compute-optimal multipliers the paper's and Chinchilla's fits give are 10–40; outside this range
#: a fitted M* points at a unit mistake in D or N
M_STAR_RANGE = (1.0, 1000.0)
#: how far (a factor) N may sit from the size written in its run name before a warning
NAME_FACTOR = 10.0


def name_sizes(name: str) -> list[float]:
    """Every size written in a run name (``olmo-150M-1xC`` → [1.5e8])."""
    return [float(m.group(1)) * _SCALE[m.group(2).lower()] for m in _NAME_SIZE.finditer(name)]


def _runs(ids: list[str], limit: int = 3) -> str:
    return ", ".join(ids[:limit]) + (f", … ({len(ids)} in all)" if len(ids) > limit else "")


def table_warnings(table: RunTable) -> list[str]:
    """Warnings about a run table: M = D/N below 1, and N or D orders of magnitude away from every
    size written in the run's name."""
    out = []
    ids = table.run_ids
    n = table.column("n_params").astype(float)
    d = table.column("n_tokens").astype(float)
    m = d / n
    low = [ids[i] for i in np.flatnonzero(m < 1)]
    if low:
        out.append(
            f"{len(low)} run(s) have fewer tokens than parameters (M = D/N < 1: {_runs(low)}); "
            "were tokens given in Chinchilla multiples (1xC = 20 tokens per parameter)? "
            "See --tokens-per-param-unit or a {k}xC name field"
        )
    return out + name_warnings(ids, n, d)


def name_warnings(ids, n: np.ndarray, d: np.ndarray) -> list[str]:
    """Runs whose N and D are both more than :data:`NAME_FACTOR` from every size in their name."""
    off = []
    for i, rid in enumerate(ids):
        sizes = name_sizes(str(rid))
        if sizes and not any(1 / NAME_FACTOR <= v / s <= NAME_FACTOR for s in sizes for v in (n[i], d[i])):
            off.append(f"{rid} (N = {n[i]:.3g}, D = {d[i]:.3g})")
    if not off:
        return []
    return [
        f"{len(off)} run(s) have N and D more than {NAME_FACTOR:g}× from every size in their name: "
        f"{_runs(off)}; check the units of the parameter and token counts"
    ]


def fit_warnings(fit) -> list[str]:
    """Warnings about a fitted law: an overtrain-law M* outside :data:`M_STAR_RANGE`, and the
    warnings of the runs it was fitted on (M < 1)."""
    out = []
    if fit.law == "overtrain":
        from lmscale.laws.overtrain import optimal_multiplier

        mstar = optimal_multiplier(fit.params)
        lo, hi = M_STAR_RANGE
        if not (math.isfinite(mstar) and lo <= mstar <= hi):
            out.append(
                f"the fitted compute-optimal multiplier M* = {mstar:.3g} is outside [{lo:g}, {hi:g}] "
                "tokens per parameter: check the units of N and D (Chinchilla multiples?)"
            )
    x = fit.x_arrays
    if "n_params" in x and ("multiplier" in x or "n_tokens" in x):
        n = x["n_params"]
        d = x["n_tokens"] if "n_tokens" in x else x["multiplier"] * n
        low = int(np.sum(d < n))
        if low:
            out.append(
                f"{low} of the {len(fit.y)} fitted runs have M = D/N < 1 (fewer tokens than parameters)"
            )
        if len(fit.run_ids) == len(n):
            out += name_warnings(list(fit.run_ids), n, d)
    return out
