"""Validation of a run table as read: one function per rule, each adding the problems it finds
(with file, row and run) to one list, so a user sees every problem of a file at once."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lmscale.compute import flops
from lmscale.errors import InputError

REQUIRED_COLUMNS = ("run_id", "dataset", "model", "n_params", "n_tokens")
STRING_COLUMNS = ("run_id", "dataset", "model")
LOSS_PREFIX = "loss_"
LOWER_PREFIX = "loss_lower_"
UPPER_PREFIX = "loss_upper_"
ACC_PREFIX = "acc_"
#: a given multiplier or flops column may differ from D/N or 6·N·D by this relative amount
CONSISTENCY_RTOL = 1e-2
_MAX_LISTED = 20


def is_measure(col: str) -> bool:
    return col.startswith((LOSS_PREFIX, ACC_PREFIX))


@dataclass
class _Check:
    frame: pd.DataFrame
    source: str
    labels: tuple[str, ...]
    #: (row, column) → what a reader already found wrong there (e.g. a literal NaN)
    bad: dict
    problems: list[str] = field(default_factory=list)

    def where(self, i: int) -> str:
        rid = self.frame["run_id"].iloc[i] if "run_id" in self.frame.columns else None
        run = f" (run {rid!r})" if isinstance(rid, str) and rid else ""
        return f"{self.source}, {self.labels[i]}{run}"

    def add(self, i: int, message: str) -> None:
        self.problems.append(f"{self.where(i)}: {message}")


def _columns(c: _Check) -> None:
    """Required columns present, names are strings, at least one run (fatal at once)."""
    missing = [col for col in REQUIRED_COLUMNS if col not in c.frame.columns]
    if missing:
        raise InputError(
            f"{c.source}: missing required column(s) {', '.join(missing)}; "
            f"found: {', '.join(map(str, c.frame.columns)) or 'none'}"
        )
    if len(c.frame) == 0:
        raise InputError(f"{c.source}: no runs in the table")
    for name in c.frame.columns:
        if not isinstance(name, str):
            raise InputError(f"{c.source}: column names must be strings, found {name!r}")


def _reader_findings(c: _Check) -> None:
    for (i, col), msg in sorted(c.bad.items()):
        c.add(i, f"field {col!r} {msg}")


def _strings(c: _Check) -> None:
    for col in STRING_COLUMNS:
        for i, v in enumerate(c.frame[col]):
            if not isinstance(v, str) or not v.strip():
                c.add(i, f"field {col!r} must be a non-empty string, found {v!r}")


def _numbers(c: _Check) -> None:
    """N, D, M, C and every measure column as floats; a cell that is not a number is named."""
    numeric = [
        col
        for col in c.frame.columns
        if col in ("n_params", "n_tokens", "multiplier", "flops") or is_measure(col)
    ]
    for col in numeric:
        try:
            c.frame[col] = pd.to_numeric(c.frame[col], errors="raise").astype(float)
        except (ValueError, TypeError):
            for i, v in enumerate(c.frame[col]):
                try:
                    float(v)
                except (TypeError, ValueError):
                    if v is not None:
                        c.add(i, f"field {col!r} is not a number: {v!r}")
            c.frame[col] = pd.to_numeric(c.frame[col], errors="coerce").astype(float)


def _sizes(c: _Check) -> None:
    for col in ("n_params", "n_tokens"):
        for i, v in enumerate(c.frame[col].tolist()):
            if (i, col) not in c.bad and not (math.isfinite(v) and v > 0):
                c.add(i, f"field {col!r} must be a positive finite number, found {v!r}")


def _derived(c: _Check) -> None:
    """M = D/N and C = 6·N·D: filled in where absent, checked where given."""
    n, d = c.frame["n_params"].to_numpy(), c.frame["n_tokens"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        m_derived, c_derived = d / n, flops(n, d)
    for i in range(len(c.frame)):
        sizes_ok = math.isfinite(n[i]) and math.isfinite(d[i]) and n[i] > 0 and d[i] > 0
        derived_ok = all(math.isfinite(v) and v > 0 for v in (c_derived[i], m_derived[i]))
        if sizes_ok and not derived_ok:
            c.add(
                i,
                f"n_params={float(n[i])!r} and n_tokens={float(d[i])!r} give compute 6·N·D = "
                f"{float(c_derived[i])!r} or D/N = {float(m_derived[i])!r}, out of floating-point range",
            )
    for col, derived, rule in (("multiplier", m_derived, "D/N"), ("flops", c_derived, "6·N·D")):
        if col not in c.frame.columns:
            c.frame[col] = derived
            continue
        given = c.frame[col].to_numpy()
        for i in range(len(c.frame)):
            if (i, col) in c.bad or not math.isfinite(derived[i]):
                continue
            if math.isnan(given[i]):
                c.frame.loc[i, col] = derived[i]
            elif not (math.isfinite(given[i]) and given[i] > 0):
                c.add(i, f"field {col!r} must be a positive finite number, found {float(given[i])!r}")
            elif abs(given[i] - derived[i]) > CONSISTENCY_RTOL * derived[i]:
                c.add(
                    i,
                    f"inconsistent {col}: {given[i]:.6g} given, but {rule} = {derived[i]:.6g} "
                    f"(n_params={n[i]:.6g}, n_tokens={d[i]:.6g})",
                )


def _measures(c: _Check) -> None:
    """Losses positive and finite, accuracies in [0, 1]; empty cells are missing, not wrong."""
    for col in c.frame.columns:
        if not is_measure(col):
            continue
        is_acc = col.startswith(ACC_PREFIX)
        for i, v in enumerate(c.frame[col].tolist()):
            if (i, col) in c.bad or math.isnan(v):
                continue
            if not math.isfinite(v):
                c.add(i, f"field {col!r} must be finite, found {v!r}")
            elif is_acc and not 0.0 <= v <= 1.0:
                c.add(i, f"field {col!r} is an accuracy and must lie in [0, 1], found {v!r}")
            elif not is_acc and v <= 0:
                c.add(i, f"field {col!r} is a loss and must be positive, found {v!r}")


def _bounds(c: _Check) -> None:
    for col in c.frame.columns:
        upper = UPPER_PREFIX + col[len(LOWER_PREFIX) :]
        if col.startswith(LOWER_PREFIX) and upper in c.frame.columns:
            lo, hi = c.frame[col].to_numpy(), c.frame[upper].to_numpy()
            for i in np.flatnonzero(lo > hi):
                c.add(int(i), f"{col} = {float(lo[i])!r} exceeds {upper} = {float(hi[i])!r}")


def _unique_ids(c: _Check) -> None:
    seen: dict[str, int] = {}
    for i, rid in enumerate(c.frame["run_id"]):
        if isinstance(rid, str) and rid in seen:
            c.add(i, f"duplicate run_id {rid!r} (first at {c.labels[seen[rid]]})")
        elif isinstance(rid, str):
            seen[rid] = i


#: the rules, in the order their problems are listed
RULES = (_reader_findings, _strings, _numbers, _sizes, _derived, _measures, _bounds, _unique_ids)


def validate(frame: pd.DataFrame, source: str, labels: tuple[str, ...], bad: dict) -> pd.DataFrame:
    """The frame with M and C filled in and the standard columns first; an :class:`InputError`
    listing every problem (up to 20) when there is any."""
    c = _Check(frame, source, labels, bad)
    _columns(c)
    for rule in RULES:
        rule(c)
    if c.problems:
        shown = c.problems[:_MAX_LISTED]
        n = len(c.problems)
        more = f"\n  ... and {n - _MAX_LISTED} more" if n > _MAX_LISTED else ""
        head = f"{n} problem{'s' if n > 1 else ''} in the run table:"
        raise InputError(head + "\n  " + "\n  ".join(shown) + more)
    lead = ["run_id", "dataset", "model", "n_params", "n_tokens", "multiplier", "flops"]
    return c.frame[lead + [col for col in c.frame.columns if col not in lead]]
