"""Import runs straight from a W&B project through the ``wandb`` public API (optional extra).

The same rules as the CSV importer: mapped history metrics at the final (or a chosen) step, N and D
from mapped metrics, the run config or the run name. The API object is injectable, so tests replay
recorded responses (runs with their name, config, summary and history rows) with no network."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
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
) -> ImportReport:
    """Every run of ``project`` (``entity/project``) as a row; runs that cannot give one are skipped
    with the reason. ``api``: a ``wandb.Api()`` (made here when None)."""
    if api is None:
        wandb = require("wandb", "importing from a W&B project")
        api = wandb.Api()
    pattern = NamePattern.parse(name_pattern) if name_pattern else None
    try:
        runs = list(api.runs(project, filters=filters or {}))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the client raises its own error types for auth and paths
        raise InputError(f"W&B project {project!r}: {exc.__class__.__name__}: {exc}") from None
    rows, skipped = [], []
    rules = RowRules(mapping, pattern, step, dataset, params_keys, tokens_keys)
    for run in runs:
        name = str(getattr(run, "name", None) or getattr(run, "id", "?"))
        try:
            row = rules.row(
                name,
                functools.partial(_history_of, run, name),
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


def _history_of(run: Any, name: str) -> History:
    return history_from_rows(name, run.scan_history())


def _config_of(run: Any) -> dict[str, Any]:
    return flatten_config(dict(getattr(run, "config", {}) or {}))
