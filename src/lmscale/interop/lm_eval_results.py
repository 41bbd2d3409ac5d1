"""Merge lm-evaluation-harness results into a run table.

The harness writes ``<output_path>/<model_name_sanitized>/results_<date>.json`` with ``results`` →
task → ``"acc,none"``, ``"acc_norm,none"``, their ``_stderr`` companions, and ``config.model_args``
(``pretrained=<path>,…``). Each file is matched to a run by an explicit ``--run-id``, by a run whose
``run_id`` is the model path's last component, or by a run-table column holding the model path.
Per task the metric is ``acc_norm`` where present, else ``acc`` (``--metric task=name`` chooses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lmscale._io import check_regular_file
from lmscale.errors import InputError
from lmscale.interop.mapping import ImportReport
from lmscale.run_table import RunTable

DEFAULT_METRICS = ("acc_norm", "acc")


def results_files(path: str | Path) -> list[Path]:
    """A results JSON, or every ``results*.json`` under a folder (the harness's layout)."""
    p = Path(path)
    if not p.is_dir():
        return [check_regular_file(p, "lm-evaluation-harness results")]
    files = sorted(p.rglob("results*.json"))
    if not files:
        raise InputError(f"{p}: no lm-evaluation-harness results*.json files")
    return files


def model_path(doc: Mapping[str, Any]) -> str | None:
    """The evaluated model's path or name: ``pretrained=`` of ``config.model_args``, else ``model_name``."""
    cfg = doc.get("config") or {}
    args = cfg.get("model_args") if isinstance(cfg, Mapping) else None
    if isinstance(args, Mapping):
        if args.get("pretrained"):
            return str(args["pretrained"])
    elif isinstance(args, str):
        for part in args.split(","):
            k, _, v = part.partition("=")
            if k.strip() == "pretrained" and v.strip():
                return v.strip()
    name = doc.get("model_name")
    return str(name) if name else None


def task_accuracies(
    doc: Mapping[str, Any], metrics: Mapping[str, str] | None = None, source: str = ""
) -> dict[str, float]:
    """``acc_<task>`` → value for every task of a results document."""
    results = doc.get("results")
    if not isinstance(results, Mapping) or not results:
        raise InputError(f"{source}: no 'results' object (is this an lm-evaluation-harness results file?)")
    chosen = dict(metrics or {})
    out: dict[str, float] = {}
    for task, entry in results.items():
        if not isinstance(entry, Mapping):
            continue
        want = [chosen[task]] if task in chosen else list(DEFAULT_METRICS)
        for m in want:
            key = next((k for k in entry if k == m or k.startswith(m + ",")), None)
            if key is None:
                continue
            v = entry[key]
            if (isinstance(v, str) and v.strip().upper() in ("N/A", "NAN", "")) or (
                isinstance(v, float) and math.isnan(v)
            ):
                continue  # the harness writes N/A (or NaN) where a metric does not apply: try the next
            try:
                value = float(v)
            except (TypeError, ValueError):
                raise InputError(f"{source}: task {task!r} metric {key!r} is not a number: {v!r}") from None
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InputError(
                    f"{source}: task {task!r} metric {key!r} = {value!r} is not an accuracy in [0, 1]"
                )
            out["acc_" + task.replace(" ", "_")] = value
            break
        else:
            if task in chosen:
                raise InputError(
                    f"{source}: task {task!r} has no metric {chosen[task]!r} (has: {', '.join(entry)})"
                )
    return out


def _match(runs: RunTable, path: str | None, run_id: str | None, path_column: str | None) -> str | None:
    ids = runs.run_ids
    if run_id is not None:
        return run_id if run_id in ids else None
    if path is None:
        return None
    if path_column is not None:
        col = runs.frame[path_column].astype(str).tolist()
        hits = [rid for rid, v in zip(ids, col) if v.rstrip("/") == path.rstrip("/")]
        return hits[0] if len(hits) == 1 else None
    tail = Path(path.rstrip("/")).name
    return tail if tail in ids else None


def merge_lm_eval(
    runs: RunTable,
    results: str | Path | Sequence[str | Path],
    *,
    metrics: Mapping[str, str] | None = None,
    run_id: str | None = None,
    path_column: str | None = None,
) -> ImportReport:
    """``runs`` with ``acc_<task>`` columns from the results files (a later file overrides an
    earlier one for the same run and task). Files that match no run are skipped with the reason."""
    paths = [
        p for r in ([results] if isinstance(results, (str, Path)) else results) for p in results_files(r)
    ]
    if run_id is not None and len(paths) > 1:
        raise InputError(f"--run-id names one run but {len(paths)} results files were given")
    if run_id is not None and run_id not in runs.run_ids:
        raise InputError(f"--run-id {run_id!r} is not a run of {runs.source}")
    if path_column is not None and path_column not in runs.frame.columns:
        raise InputError(
            f"run table has no column {path_column!r} (columns: {', '.join(runs.frame.columns)})"
        )
    frame = runs.frame.copy()
    skipped: list[tuple[str, str]] = []
    merged = 0
    for p in paths:
        doc = _read_results(p)
        if not isinstance(doc, Mapping):
            skipped.append((str(p), "not a JSON object"))
            continue
        try:
            accs = task_accuracies(doc, metrics, str(p))
        except InputError as exc:
            skipped.append((str(p), str(exc)))
            continue
        mp = model_path(doc)
        rid = _match(runs, mp, run_id, path_column)
        if rid is None:
            skipped.append((str(p), f"model {mp!r} matches no run (use --run-id or --path-column)"))
            continue
        i = runs.run_ids.index(rid)
        for col, v in accs.items():
            if col not in frame.columns:
                frame[col] = float("nan")
            frame.loc[frame.index[i], col] = v
        merged += 1
    if merged == 0:
        raise InputError("no results file matched a run:" + "".join(f"\n  {s}: {w}" for s, w in skipped))
    table = RunTable.from_frame(pd.DataFrame(frame), source=f"{runs.source} + lm-eval results")
    return ImportReport(table, tuple(skipped), (f"merged {merged} results file(s)",))


def _read_results(path: Path) -> Any:
    """A results file as the harness writes it: Python's ``json`` output, where a NaN (a standard
    error of one sample) is a bare ``NaN`` token, which strict JSON readers refuse."""
    from lmscale._io import MAX_JSON_BYTES, parse_json, read_text

    text = read_text(path, max_bytes=MAX_JSON_BYTES, what="lm-evaluation-harness results")
    return parse_json(text, path, allow_nan=True)
