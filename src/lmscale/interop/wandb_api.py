"""Import runs straight from a W&B project through the ``wandb`` public API (optional extra).

The same rules as the CSV importer: mapped history metrics at the final (or a chosen) step, N and D
from mapped metrics, the run config or the run name. The API object is injectable, so tests replay
recorded responses (runs with their name, config, summary and history rows) with no network."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lmscale.errors import InputError
from lmscale.interop import require
from lmscale.interop.mapping import ImportReport, MetricMap, NamePattern, finish
from lmscale.interop.wandb_csv import PARAMS_KEYS, TOKENS_KEYS, History, RowRules, flatten_config


def history_from_rows(name: str, rows: Iterable[Mapping[str, Any]]) -> History:
    """A :class:`History` from ``run.scan_history()`` rows (dicts with ``_step`` and metrics)."""
    by_metric: dict[str, dict[int, float]] = {}
    for row in rows:
        step = row.get("_step")
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            continue
        for k, v in row.items():
            if k.startswith("_") or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if isinstance(v, float) and math.isnan(v):
                continue
            by_metric.setdefault(k, {})[int(step)] = float(v)
    return History(name, {k: tuple(sorted(d.items())) for k, d in by_metric.items()})


def import_wandb_project(
    project: str,
    mapping: MetricMap,
    *,
    api: Any = None,
    filters: Mapping[str, Any] | None = None,
    name_pattern: str | None = None,
    step: int | None = None,
    dataset: str | None = None,
    params_keys: Sequence[str] = PARAMS_KEYS,
    tokens_keys: Sequence[str] = TOKENS_KEYS,
    tokens_per_param_unit: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ImportReport:
    """Every run of ``project`` (``entity/project``) as a row; runs that cannot give one are skipped
    with the reason. ``api``: a ``wandb.Api()`` (made here when None; no login is one line of
    error, not a traceback). Only the mapped metrics are fetched: the run summary when it holds
    them all and no ``step`` is asked for, else ``scan_history(keys=...)`` of those metrics.
    ``progress(i, n, name)`` is called once per run."""
    if api is None:
        wandb = require("wandb", "importing from a W&B project")
        try:
            api = wandb.Api()
        except Exception as exc:  # noqa: BLE001 - the client raises its own types for a missing login
            raise InputError(
                f"W&B: cannot connect ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "log in with `wandb login` or set WANDB_API_KEY"
            ) from None
    pattern = NamePattern.parse(name_pattern) if name_pattern else None
    try:
        runs = list(api.runs(project, filters=filters or {}))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the client raises its own error types for auth and paths
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"W&B project {project!r}: {exc.__class__.__name__}: {first}") from None
    rows, skipped = [], []
    rules = RowRules(mapping, pattern, step, dataset, params_keys, tokens_keys, tokens_per_param_unit)
    for i, run in enumerate(runs, start=1):
        name = str(getattr(run, "name", None) or getattr(run, "id", "?"))
        if progress is not None:
            progress(i, len(runs), name)
        try:
            row = rules.row(
                name,
                functools.partial(_history_of, run, name, mapping, step),
                functools.partial(_config_of, run),
            )
            row.setdefault("wandb_id", str(getattr(run, "id", "")))
            rows.append((name, row))
        except InputError as exc:
            skipped.append((name, str(exc)))
    if not runs:
        raise InputError(
            f"W&B project {project!r} has no runs" + (f" matching {dict(filters)}" if filters else "")
        )
    return finish(rows, skipped, f"wandb:{project}")


def mapped_keys(mapping: MetricMap, available: Iterable[str]) -> list[str]:
    """The metric names of ``available`` that ``mapping`` maps to a column."""
    return [k for k in available if mapping.column(k) is not None]


def _history_of(run: Any, name: str, mapping: MetricMap, step: int | None) -> History:
    summary = dict(getattr(run, "summary", {}) or {})
    keys = mapped_keys(mapping, [k for k in summary if not str(k).startswith("_")])
    if step is None and keys:
        # the summary holds each metric's last logged value: no history to page through
        last = summary.get("_step", 0)
        rows = [{"_step": last if isinstance(last, (int, float)) else 0, **{k: summary[k] for k in keys}}]
        return history_from_rows(name, rows)
    if not keys:  # no summary to learn the names from: every mapping rule that names one metric
        keys = [src for src, _ in mapping.rules if not any(ch in src for ch in "*?[")]
    return history_from_rows(name, run.scan_history(keys=["_step", *keys]))


def _config_of(run: Any) -> dict[str, Any]:
    return flatten_config(dict(getattr(run, "config", {}) or {}))
