"""The grids candidate ladders are drawn from: the evidence tables (each with its own sizes and
multipliers, kept apart when several are combined) and the windows of each grid (the k smallest
sizes × a contiguous range of multipliers)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from lmscale.errors import InputError
from lmscale.laws import OVERTRAIN
from lmscale.predict import ScalePoint
from lmscale.run_table import RunTable

#: run-table column that :func:`combine` adds: which evidence table a run came from (each table's
#: own grid of sizes and multipliers is planned over separately)
EVIDENCE_COLUMN = "evidence_table"


def ladder_grid(n_sizes: int, n_mults: int, single_m_from: int | None = None) -> Iterator[tuple[int, slice]]:
    """The candidate ladders of a grid of sorted sizes and multipliers, as (k, window): the k
    smallest sizes (k ≥ 2) × a contiguous window of the multipliers, at least two of them (one is
    enough from ``single_m_from`` sizes on). In order of k, then of the window's start and end. The
    planner and the compute sweep of the report enumerate their ladders here."""
    for k in range(2, n_sizes + 1):
        for i, j in itertools.combinations(range(n_mults + 1), 2):
            if j - i >= 2 or (single_m_from is not None and k >= single_m_from):
                yield k, slice(i, j)


def combine(tables: Sequence[RunTable]) -> RunTable:
    """Several evidence tables (the paper testbed, your own runs) as one; training sets keep their
    names, and each run records its table (:data:`EVIDENCE_COLUMN`) so that candidate ladders are
    drawn from one table's grid at a time, never from the union of two unrelated grids."""
    import pandas as pd

    if not tables:
        raise InputError("give at least one evidence table")
    if len(tables) == 1:
        return tables[0]
    names = [ts for t in tables for ts in t.datasets]
    if len(set(names)) != len(names):
        raise InputError(
            f"evidence tables share training-set names ({', '.join(sorted({n for n in names if names.count(n) > 1}))}); "
            "each training set must come from one table"
        )
    frames = [t.frame.assign(**{EVIDENCE_COLUMN: f"{i + 1}: {t.source}"}) for i, t in enumerate(tables)]
    return RunTable.from_frame(pd.concat(frames, ignore_index=True), " + ".join(t.source for t in tables))


def grids(runs: RunTable) -> list[RunTable]:
    """The evidence split by table (one grid each); a single table is one grid."""
    if EVIDENCE_COLUMN not in runs.frame.columns:
        return [runs]
    col = runs.column(EVIDENCE_COLUMN).astype(str)
    return [runs.subset(col == g) for g in dict.fromkeys(col.tolist())]


def windows(
    runs: RunTable, target: ScalePoint, allowed_sizes
) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """Every (k smallest sizes, contiguous window of multipliers) of one grid."""
    n_all = runs.column("n_params").astype(float)
    m_all = runs.column("multiplier").astype(float)
    sizes = np.unique(n_all[n_all < target.n_params / 2])
    if allowed_sizes is not None:
        allowed = np.asarray(list(allowed_sizes), dtype=float)
        sizes = (
            sizes[[bool(np.any(np.abs(s / allowed - 1) <= 0.01)) for s in sizes]]
            if allowed.size
            else sizes[:0]
        )
    mults = np.unique(np.round(m_all, 6))
    return [
        (tuple(float(s) for s in sizes[:k]), tuple(float(m) for m in mults[window]))
        for k, window in ladder_grid(len(sizes), len(mults), single_m_from=3)
    ]


def nothing_to_propose(runs: RunTable, total: int, why: dict[str, int]) -> str:
    """Why no candidate survived, by cause, with what would fix each."""
    parts = []
    if why["budget"]:
        parts.append(f"{why['budget']} cost more than the budget (raise --budget)")
    if why["max_runs"]:
        parts.append(f"{why['max_runs']} have more runs than --max-runs (raise it)")
    if why["diverged"]:
        parts.append(
            f"{why['diverged']} have a backtest fit on the evidence whose prediction is not finite "
            "(a law that blows up outside its runs: add sizes or multipliers to the allowed grid)"
        )
    if why["evidence"]:
        parts.append(
            f"{why['evidence']} could not be backtested: each needs at least 3 backtest errors, one per "
            f"evidence training set × validation loss with at least {OVERTRAIN.n_fit_params + 1} of the "
            "candidate's runs and an evidence run more than 1.5× larger than its largest size to predict "
            f"(the evidence has {len(runs.datasets)} training set(s) and {len(runs.val_sets)} validation "
            "loss(es): add larger runs, more validation losses, or the paper testbed as --evidence)"
        )
    return f"no candidate ladder fits the budget and the evidence: of {total} candidates, " + "; ".join(parts)
