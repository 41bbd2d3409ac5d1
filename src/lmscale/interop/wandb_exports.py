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
import functools
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmscale._io import open_regular, read_text
from lmscale.errors import InputError
from lmscale.interop.mapping import ImportReport, MetricMap, NamePattern, finish
from lmscale.interop.wandb_csv import (
    PARAMS_KEYS,
    STEP_COLUMNS,
    TOKENS_KEYS,
    History,
    RowRules,
    _same,
    read_config,
    read_history,
)

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


def read_export(path: str | Path, mapping: MetricMap | None = None) -> list[ExportedRun]:
    """Every run of one W&B CSV export, whatever its layout (told by its header). A history file
    is streamed (:func:`read_history`: memory holds the columns ``mapping`` maps); the runs table
    and chart exports are read whole."""
    p = Path(path)
    if layout(_header(p)) == "history":
        hist = read_history(p, mapping)
        return [ExportedRun(hist.name, hist, read_config(p), by_file=True)]
    rows = list(csv.reader(read_text(p, what="W&B CSV export").lstrip("\ufeff").splitlines()))
    if layout(rows[0]) == "runs-table":
        return _runs_table(p, rows)
    return _chart(p, rows)


def _header(p: Path) -> list[str]:
    """The first CSV row of ``p`` (a regular file; a UTF-8 byte-order mark dropped)."""
    try:
        with io.TextIOWrapper(open_regular(p, "W&B CSV export"), encoding="utf-8-sig", newline="") as fh:
            row = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: W&B CSV export is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InputError(f"{p}, line 1: malformed CSV ({exc})") from None
    if not row:
        raise InputError(f"{p}: empty file")
    return row


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


def import_wandb_csv(
    folder: str | Path,
    mapping: MetricMap,
    *,
    name_pattern: str | None = None,
    step: int | None = None,
    dataset: str | None = None,
    params_keys: Sequence[str] = PARAMS_KEYS,
    tokens_keys: Sequence[str] = TOKENS_KEYS,
    tokens_per_param_unit: float | None = None,
) -> ImportReport:
    """Every run of every ``*.csv`` of ``folder`` (or of one file): per-run history files, chart
    exports holding one or several runs, and the runs-table export (one row per run), told apart
    by their headers (:mod:`lmscale.interop.wandb_exports`). Runs that cannot give a row are skipped
    with the reason."""
    root = Path(folder)
    files = sorted(root.glob("*.csv")) if root.is_dir() else [root]
    if not files:
        raise InputError(f"{root}: no .csv files")
    rules = RowRules(
        mapping,
        NamePattern.parse(name_pattern) if name_pattern else None,
        step,
        dataset,
        params_keys,
        tokens_keys,
        tokens_per_param_unit,
    )
    rows, skipped = [], []
    for f in files:
        try:
            runs = read_export(f, mapping)
        except InputError as exc:
            skipped.append((f.name, str(exc).replace(f"{f}: ", "").replace(f"{f}, ", "")))
            continue
        for run in runs:
            # a history file is one run named by its file; an export of several runs names each
            key, origin = (f.name, f.name) if run.by_file else (run.name, f"{f.name}: {run.name}")
            if run.problem:
                skipped.append((origin, run.problem))
                continue
            history = functools.partial(_same, run.history)
            config: Callable[[], dict[str, Any]] = functools.partial(dict, run.config)
            try:
                rows.append((origin, rules.row(key, history, config)))
            except InputError as exc:
                skipped.append((origin, str(exc)))
    return finish(rows, skipped, str(root))
