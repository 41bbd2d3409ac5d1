"""The CSV files the W&B web UI exports, each turned into one or more runs.

Three layouts are told apart by their header:

- a **history** file (``_step`` or ``Step`` with plain metric columns, or a chart export holding
  one run): one run, named after the file (or the chart's ``<run> - `` prefix);
- a **multi-run chart export** (``Step``, ``"<run> - <metric>"``, ``"<run> - <metric>__MIN"`` …
  for several runs): one run per prefix;
- a **runs-table export** (the project's "Export CSV": one row per run, ``Name`` and ``State``,
  then config columns such as ``model.n_params`` and the runs' summary metrics): one run per row,
  its summary metrics as a one-point history and every column as its config.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmscale._io import read_text
from lmscale.errors import InputError
from lmscale.interop.wandb_csv import STEP_COLUMNS, History, read_config

#: columns of the runs table that are W&B bookkeeping, not config or metrics
RUNS_TABLE_META = ("Name", "State", "Notes", "User", "Tags", "Created", "Runtime", "Sweep", "ID", "Group")
#: run states whose summary is final; other rows are skipped with their state as the reason
FINISHED_STATES = ("finished",)
_MISSING = {"", "nan", "NaN", "null", "None", "none", "-"}


@dataclass(frozen=True)
class ExportedRun:
    """One run found in an export file: its name, history and config."""

    name: str
    history: History
    config: Mapping[str, Any] = field(default_factory=dict)
    #: why the run cannot be imported as it is (a state other than finished), or None
    problem: str | None = None
    #: a history file: the run is its file (a name pattern is matched against the file name)
    by_file: bool = False


def layout(header: list[str]) -> str:
    """``runs-table``, ``chart`` (several ``<run> - metric`` prefixes) or ``history``."""
    if "Name" in header and ("State" in header or not any(c in header for c in STEP_COLUMNS)):
        return "runs-table"
    metrics = [c for c in header if c not in STEP_COLUMNS and not c.endswith(("__MIN", "__MAX"))]
    prefixes = {c.split(" - ", 1)[0] for c in metrics if " - " in c}
    if len(prefixes) > 1 and all(" - " in c for c in metrics if not c.startswith("_")):
        return "chart"
    return "history"


def _number(text: str) -> float | None:
    t = text.strip()
    if t in _MISSING:
        return None
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _value(text: str) -> Any:
    """A runs-table cell: a number where it reads as one, else the text (None when empty)."""
    v = _number(text)
    if v is not None:
        return v
    t = text.strip()
    return None if t in _MISSING else t


def read_export(path: str | Path) -> list[ExportedRun]:
    """Every run of one W&B CSV export, whatever its layout."""
    from lmscale.interop.wandb_csv import read_history

    p = Path(path)
    rows = list(csv.reader(read_text(p, what="W&B CSV export").splitlines()))
    if not rows:
        raise InputError(f"{p}: empty file")
    kind = layout(rows[0])
    if kind == "runs-table":
        return _runs_table(p, rows)
    if kind == "chart":
        return _chart(p, rows)
    hist = read_history(p)
    return [ExportedRun(hist.name, hist, read_config(p), by_file=True)]


def _runs_table(p: Path, rows: list[list[str]]) -> list[ExportedRun]:
    header = rows[0]
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not x.strip() for x in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{p}, line {n}: {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(header, row))
        name = cells["Name"].strip() or f"line {n}"
        config = {k: _value(v) for k, v in cells.items() if k not in RUNS_TABLE_META}
        metrics: dict[str, tuple[tuple[int, float], ...]] = {}
        for k, x in cells.items():
            v = _number(x)
            if k not in RUNS_TABLE_META and not k.startswith("_") and v is not None:
                metrics[k] = ((0, v),)
        state = cells.get("State", "finished").strip().lower() or "finished"
        problem = None if state in FINISHED_STATES else f"state is {state!r}, not finished"
        out.append(ExportedRun(name, History(name, metrics), config, problem))
    return out


def _chart(p: Path, rows: list[list[str]]) -> list[ExportedRun]:
    header = rows[0]
    si = next(header.index(c) for c in STEP_COLUMNS if c in header)
    cols: list[tuple[int, str, str]] = []
    for i, c in enumerate(header):
        if i != si and " - " in c and not c.endswith(("__MIN", "__MAX")):
            run, metric = c.split(" - ", 1)
            cols.append((i, run, metric))
    runs: dict[str, dict[str, dict[int, float]]] = {}
    for _, run, metric in cols:
        runs.setdefault(run, {})[metric] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not x.strip() for x in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{p}, line {n}: {len(row)} fields, the header has {len(header)}")
        step = _number(row[si])
        if step is None:
            continue
        for i, run, metric in cols:
            v = _number(row[i])
            if v is not None:
                runs[run][metric][int(step)] = v  # a step logged again: the later line wins
    return [
        ExportedRun(run, History(run, {m: tuple(sorted(d.items())) for m, d in ms.items() if d}))
        for run, ms in runs.items()
    ]
