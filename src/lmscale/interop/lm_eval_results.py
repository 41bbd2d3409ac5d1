"""Merge lm-evaluation-harness results into a run table.

The harness writes ``<output_path>/<model_name_sanitized>/results_<date>.json`` with ``results`` →
task → ``"acc,none"``, ``"acc_norm,none"``, their ``_stderr`` companions, and ``config.model_args``
(``pretrained=<path>,…``). Each file is matched to a run by an explicit ``--run-id``, by a
run-table column holding the model path, by a pattern over the path's last components
(``'{run}/step{step}-unsharded-hf'``), or by any component of the path that is a run id.
Per task the metric is ``acc_norm`` where present, else ``acc`` (``--metric task=name`` chooses);
a k-shot score (k > 0) becomes ``acc_<task>_<k>shot``, kept apart from the 0-shot one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lmscale._io import check_regular_file, read_text
from lmscale.errors import InputError
from lmscale.interop.mapping import ImportReport, NamePattern, grouped_reasons
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


def n_shot(doc: Mapping[str, Any], task: str) -> int:
    """The number of in-context examples a task was scored with (``n-shot``, else the task
    config's ``num_fewshot``; 0 when the file does not say)."""
    for got in (
        (doc.get("n-shot") or {}).get(task) if isinstance(doc.get("n-shot"), Mapping) else None,
        ((doc.get("configs") or {}).get(task) or {}).get("num_fewshot")
        if isinstance(doc.get("configs"), Mapping)
        and isinstance((doc.get("configs") or {}).get(task), Mapping)
        else None,
    ):
        if isinstance(got, (int, float)) and not isinstance(got, bool) and got >= 0:
            return int(got)
    return 0


def limited(doc: Mapping[str, Any]) -> str | None:
    """How a results file was cut short by ``--limit`` (a description), or None: the run config's
    ``limit``, or a task whose effective sample count is below its original one."""
    cfg = doc.get("config")
    lim = cfg.get("limit") if isinstance(cfg, Mapping) else None
    if lim not in (None, 0, ""):
        return f"--limit {lim}"
    ns = doc.get("n-samples")
    if isinstance(ns, Mapping):
        cut = [
            f"{t} {v.get('effective')}/{v.get('original')}"
            for t, v in ns.items()
            if isinstance(v, Mapping)
            and isinstance(v.get("effective"), (int, float))
            and isinstance(v.get("original"), (int, float))
            and v["effective"] < v["original"]
        ]
        if cut:
            return "samples " + ", ".join(cut[:3])
    return None


def task_scores(
    doc: Mapping[str, Any], metrics: Mapping[str, str] | None = None, source: str = ""
) -> dict[str, tuple[float, str]]:
    """``acc_<task>`` (``acc_<task>_<k>shot`` for a k-shot score, k > 0, so that it never overwrites
    the 0-shot one) → (value, the metric taken) for every task of a results document."""
    results = doc.get("results")
    if not isinstance(results, Mapping) or not results:
        raise InputError(f"{source}: no 'results' object (is this an lm-evaluation-harness results file?)")
    chosen = dict(metrics or {})
    out: dict[str, tuple[float, str]] = {}
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
            k = n_shot(doc, task)
            col = "acc_" + task.replace(" ", "_") + (f"_{k}shot" if k else "")
            out[col] = (value, key.split(",", 1)[0])
            break
        else:
            if task in chosen:
                raise InputError(
                    f"{source}: task {task!r} has no metric {chosen[task]!r} (has: {', '.join(entry)})"
                )
    return out


def task_accuracies(
    doc: Mapping[str, Any], metrics: Mapping[str, str] | None = None, source: str = ""
) -> dict[str, float]:
    """``acc_<task>`` → value for every task of a results document (see :func:`task_scores`)."""
    return {col: v for col, (v, _) in task_scores(doc, metrics, source).items()}


def _components(path: str) -> list[str]:
    return [c for c in path.replace("\\", "/").split("/") if c]


def _match(
    runs: RunTable, path: str | None, run_id: str | None, path_column: str | None, pattern: NamePattern | None
) -> tuple[str | None, Mapping[str, Any]]:
    """(the run a model path belongs to, the pattern's other fields such as the step)."""
    ids = runs.run_ids
    if run_id is not None:
        return (run_id if run_id in ids else None), {}
    if path is None:
        return None, {}
    if path_column is not None:
        col = runs.frame[path_column].astype(str).tolist()
        hits = [rid for rid, v in zip(ids, col) if v.rstrip("/") == path.rstrip("/")]
        return (hits[0] if len(hits) == 1 else None), {}
    parts = _components(path)
    if pattern is not None:
        depth = pattern.text.strip("/").count("/") + 1
        fields = pattern.match("/".join(parts[-depth:]))
        rid = None if fields is None else str(fields.get("run_id", ""))
        return (rid if rid in ids else None), (fields or {})
    for comp in reversed(parts):  # any component: <run>/step5000-unsharded-hf belongs to <run>
        if comp in ids:
            return comp, {}
    return None, {}


def merge_lm_eval(
    runs: RunTable,
    results: str | Path | Sequence[str | Path],
    *,
    metrics: Mapping[str, str] | None = None,
    run_id: str | None = None,
    path_column: str | None = None,
    path_pattern: str | None = None,
) -> ImportReport:
    """``runs`` with ``acc_<task>`` columns from the results files. A file belongs to the run
    named by ``run_id``, by ``path_column``, by ``path_pattern`` over the model path's last
    components (``'{run}/step{step}-hf'``; the largest step of a run wins), or else by any component
    of the model path equal to a run id. Files that match no run are skipped with the reason; the
    metric taken per task and any results computed with ``--limit`` are reported in the notes."""
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
    pattern = NamePattern.parse(path_pattern) if path_pattern else None
    if pattern is not None and not {"run_id"} & {_field(f) for f in pattern.fields}:
        raise InputError(f"path pattern {path_pattern!r} needs a {{run}} field")
    frame = runs.frame.copy()
    skipped: list[tuple[str, str]] = []
    taken: dict[str, set[str]] = {}
    limits: list[str] = []
    best: dict[str, float] = {}  # run → step of the results merged so far
    merged = 0
    for p in paths:
        doc = _read_results(p)
        if not isinstance(doc, Mapping):
            skipped.append((str(p), "not a JSON object"))
            continue
        try:
            scores = task_scores(doc, metrics, str(p))
        except InputError as exc:
            skipped.append((str(p), str(exc).replace(f"{p}: ", "")))
            continue
        mp = model_path(doc)
        rid, fields = _match(runs, mp, run_id, path_column, pattern)
        if rid is None:
            why = "its model path matches no run" + (
                f" through {path_pattern!r}" if path_pattern else " (no path component is a run id)"
            )
            skipped.append((f"{p} ({mp})", why + "; use --path-pattern, --path-column or --run-id"))
            continue
        step = _step(fields)
        if rid in best and step < best[rid]:
            skipped.append((str(p), "an earlier checkpoint of a run whose later one is merged"))
            continue
        best[rid] = step
        cut = limited(doc)
        if cut:
            limits.append(f"{p} ({cut})")
        i = runs.run_ids.index(rid)
        for col, (v, metric) in scores.items():
            if col not in frame.columns:
                frame[col] = float("nan")
            frame.loc[frame.index[i], col] = v
            taken.setdefault(col, set()).add(metric)
        merged += 1
    if merged == 0:
        raise InputError(
            "no results file matched a run:"
            + "".join(f"\n  {line}" for line in grouped_reasons(skipped)[:20])
        )
    table = RunTable.from_frame(pd.DataFrame(frame), source=f"{runs.source} + lm-eval results")
    notes = [f"merged {merged} results file(s)"]
    notes.append(
        "metric per column: " + ", ".join(f"{c} = {'/'.join(sorted(m))}" for c, m in sorted(taken.items()))
    )
    if limits:
        notes.append(
            f"warning: {len(limits)} results file(s) were computed with --limit (accuracies on a subset "
            f"of each task, noisier and not comparable with full runs): {', '.join(limits[:3])}"
            + (" …" if len(limits) > 3 else "")
        )
    return ImportReport(table, tuple(skipped), tuple(notes))


def _field(name: str) -> str:
    from lmscale.interop.mapping import _ALIASES

    return _ALIASES.get(name.lower(), name)


def _step(fields: Mapping[str, Any]) -> float:
    try:
        return float(fields.get("step", 0))
    except (TypeError, ValueError):
        return 0.0


def _read_results(path: Path) -> Any:
    """A results file as the harness writes it: Python's ``json`` output, where a NaN (a standard
    error of one sample) is a bare ``NaN`` token, which strict JSON readers refuse."""
    from lmscale._io import MAX_JSON_BYTES, parse_json

    text = read_text(path, max_bytes=MAX_JSON_BYTES, what="lm-evaluation-harness results")
    return parse_json(text, path, allow_nan=True)
