"""Import a folder of per-run Weights & Biases history exports (one CSV per run) into a run table.

Two layouts are read, as W&B writes them:

- ``run.history()`` saved with pandas: a ``_step`` column (``_runtime``, ``_timestamp`` beside it)
  and one column per logged metric, empty where a step did not log it;
- the web UI's "Export CSV" of a chart: a ``Step`` column and ``<run name> - <metric>`` columns
  with ``__MIN`` / ``__MAX`` companions, every cell quoted.

Quirks handled: ``NaN`` strings, steps where a metric is missing (the last logged value at or before
the chosen step is taken), and steps logged twice after a resume (the later line wins). N and D come
from mapped history columns, from a sibling ``<file>.config.json|yaml`` (the W&B run config, plain or
``{key: {value: …}}``), or from the file name through a pattern such as ``'{model}_{tokens}.csv'``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmscale._io import open_regular, read_json, read_yaml
from lmscale.errors import InputError
from lmscale.interop.mapping import NOMINAL_N, MetricMap, NamePattern, parse_size

STEP_COLUMNS = ("_step", "Step", "step", "trainer/global_step", "global_step")
_MISSING = {"", "nan", "NaN", "null", "None", "none"}
#: run-config keys tried for N and D when none is named
PARAMS_KEYS = ("n_params", "num_params", "model_params", "params", "model/num_params", "n_parameters")
TOKENS_KEYS = ("n_tokens", "num_tokens", "train_tokens", "tokens", "total_tokens", "max_tokens")
#: tokens per parameter of "1xC", one Chinchilla multiple (Hoffmann et al. 2022)
CHINCHILLA_TOKENS_PER_PARAM = 20.0


@dataclass(frozen=True)
class History:
    """One run's history: steps in order, and per metric its (step, value) points (missing cells
    left out; a step logged twice keeps its later line)."""

    name: str
    metrics: Mapping[str, tuple[tuple[int, float], ...]]

    def value(self, metric: str, step: int | None = None) -> tuple[int, float] | None:
        """(step, value) of the last point of ``metric`` at or before ``step`` (None: the last)."""
        pts = [p for p in self.metrics.get(metric, ()) if step is None or p[0] <= step]
        return pts[-1] if pts else None


def _cell(text: str, where: str) -> float | None:
    t = text.strip()
    if t in _MISSING:
        return None
    try:
        return float(t)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None


def read_history(path: str | Path, mapping: MetricMap | None = None) -> History:
    """Parse one history CSV (either layout), streamed row by row: memory holds the points of the
    columns ``mapping`` maps (of every column without one), whatever the file's size. Only a
    regular file is opened; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is dropped."""
    p = Path(path)
    fh = io.TextIOWrapper(open_regular(p, "W&B history CSV"), encoding="utf-8-sig", newline="")
    reader = csv.reader(fh)
    try:
        with fh:
            header = next(reader, None)
            if not header:
                raise InputError(f"{p}: empty file")
            return _parse_rows(p, header, reader, mapping)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{p}: W&B history CSV is not UTF-8 text ({exc.reason} near line {reader.line_num})"
        ) from None
    except csv.Error as exc:
        raise InputError(f"{p}, line {reader.line_num}: malformed CSV ({exc})") from None


def _parse_rows(p: Path, header: list[str], reader, mapping: MetricMap | None) -> History:
    step_col = next((c for c in STEP_COLUMNS if c in header), None)
    if step_col is None:
        raise InputError(f"{p}: no step column (expected one of {', '.join(STEP_COLUMNS)})")
    si = header.index(step_col)
    keep = [
        (i, c)
        for i, c in enumerate(header)
        if i != si and not c.startswith("_") and not c.endswith(("__MIN", "__MAX"))
    ]
    names = [c for _, c in keep]
    # the UI export prefixes every metric with "<run name> - "
    prefixes = {c.split(" - ", 1)[0] for c in names if " - " in c}
    run_name = p.stem
    if names and len(prefixes) == 1 and all(" - " in c for c in names):
        run_name = prefixes.pop()
        keep = [(i, c.split(" - ", 1)[1]) for i, c in keep]
    mapped = set(mapping.apply(c for _, c in keep)) if mapping is not None else {c for _, c in keep}
    by_step: dict[str, dict[int, float]] = {c: {} for _, c in keep if c in mapped}
    seen: set[str] = set()  # unmapped columns with a value somewhere (named in messages)
    for row in reader:
        n = reader.line_num
        if not row or all(not x.strip() for x in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{p}, line {n}: {len(row)} fields, the header has {len(header)}")
        step = _cell(row[si], f"{p}, line {n}, column {step_col!r}")
        if step is None or not math.isfinite(step):
            continue
        for i, c in keep:
            v = _cell(row[i], f"{p}, line {n}, column {header[i]!r}")
            if v is None:
                continue
            if c in by_step:
                by_step[c][int(step)] = v  # a step logged again after a resume: the later line wins
            else:
                seen.add(c)
    metrics = {c: tuple(sorted(d.items())) for c, d in by_step.items() if d}
    metrics.update((c, ()) for c in sorted(seen))
    return History(run_name, metrics)


def read_config(csv_path: Path) -> dict[str, Any]:
    """The run config beside a history file (``<stem>.config.json`` or ``.yaml``), flattened from
    W&B's ``{key: {value: …}}`` form; {} when there is none."""
    for suffix in (".config.json", ".config.yaml", ".config.yml"):
        p = csv_path.with_name(csv_path.stem + suffix)
        if p.is_file():
            data = read_json(p) if suffix.endswith("json") else read_yaml(p, what="run config")
            if not isinstance(data, Mapping):
                raise InputError(f"{p}: a run config is an object")
            return flatten_config(data)
    return {}


def flatten_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A run config, W&B's ``{key: {desc, value}}`` form unwrapped to ``{key: value}``, and nested
    sections also reachable by dotted keys (``{"model": {"n_params": 1e8}}`` → ``model.n_params``,
    as the runs-table export names them)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any, depth: int) -> None:
        if isinstance(value, Mapping) and depth < 8:
            for k, v in value.items():
                walk(f"{prefix}.{k}", v, depth + 1)
        else:
            out.setdefault(prefix, value)

    for k, v in data.items():
        value = v["value"] if isinstance(v, Mapping) and "value" in v else v
        out[str(k)] = value
        if isinstance(value, Mapping):
            walk(str(k), value, 0)
    return out


@dataclass(frozen=True)
class RowRules:
    """How any importer turns one run (a name, its history, its config) into a run-table row."""

    mapping: MetricMap
    pattern: NamePattern | None = None
    step: int | None = None
    dataset: str | None = None
    params_keys: Sequence[str] = PARAMS_KEYS
    tokens_keys: Sequence[str] = TOKENS_KEYS
    #: tokens per parameter of one unit of the name's multiplier (20 for Chinchilla multiples, 1xC);
    #: a ``{k}`` (or ``{xc}``) pattern field is in such units, 20 unless given
    tokens_per_param_unit: float | None = None

    def row(self, name: str, history: Callable[[], History], config: Callable[[], Mapping[str, Any]]) -> dict:
        """The row; the name is checked against the pattern before anything is read."""
        fields = None
        if self.pattern is not None:
            fields = self.pattern.match(name)
            if fields is None:
                raise InputError(f"the name does not match the pattern {self.pattern.text!r}")
            if "chinchilla_multiple" in fields:
                k = float(fields.pop("chinchilla_multiple"))
                fields["multiplier"] = k * (self.tokens_per_param_unit or CHINCHILLA_TOKENS_PER_PARAM)
            elif self.tokens_per_param_unit and "multiplier" in fields:
                fields["multiplier"] = float(fields["multiplier"]) * self.tokens_per_param_unit
        return history_row(
            history(),
            self.mapping,
            step=self.step,
            config=config(),
            name_fields=fields,
            params_keys=self.params_keys,
            tokens_keys=self.tokens_keys,
            dataset=self.dataset,
        )


def _from_config(config: Mapping[str, Any], keys: Sequence[str], what: str) -> float | None:
    for k in keys:
        if k in config and config[k] is not None:
            return parse_size(config[k], f"run config {k!r} ({what})")
    return None


def history_row(
    hist: History,
    mapping: MetricMap,
    *,
    step: int | None = None,
    config: Mapping[str, Any] | None = None,
    name_fields: Mapping[str, Any] | None = None,
    params_keys: Sequence[str] = PARAMS_KEYS,
    tokens_keys: Sequence[str] = TOKENS_KEYS,
    dataset: str | None = None,
) -> dict[str, Any]:
    """One run-table row from a history: mapped metrics at ``step`` (default: the last logged), N
    and D from mapped columns, the config or the name fields (in that order)."""
    cols = mapping.apply(hist.metrics)
    if not any(c.startswith(("loss_", "acc_")) for c in cols.values()):
        raise InputError(
            f"no metric maps to a loss_ or acc_ column (metrics: {', '.join(sorted(hist.metrics)) or 'none'})"
        )
    row: dict[str, Any] = dict(name_fields or {})
    last_step = None
    for metric, col in cols.items():
        got = hist.value(metric, step)
        if got is None:
            continue
        s, v = got
        row[col] = v
        last_step = s if last_step is None else max(last_step, s)
    cfg = config or {}
    nominal = row.pop(NOMINAL_N, None)
    if "n_params" not in row:
        n = _from_config(cfg, params_keys, "N")
        if n is not None:
            row["n_params"] = n
        elif nominal is not None:
            row["n_params"] = nominal
    if "n_tokens" not in row:
        d = _from_config(cfg, tokens_keys, "D")
        if d is not None:
            row["n_tokens"] = d
        elif "multiplier" in row and "n_params" in row:
            row["n_tokens"] = float(row["multiplier"]) * float(row["n_params"])
    missing = [k for k in ("n_params", "n_tokens") if k not in row]
    if missing:
        keys = sorted(k for k, v in cfg.items() if not isinstance(v, Mapping))
        shown = ", ".join(keys[:40]) + (f" … ({len(keys)} in all)" if len(keys) > 40 else "")
        raise InputError(
            f"{' and '.join(missing)} not found: map a history column to it, name its run-config key "
            "(--params-key / --tokens-key, dotted for nested keys such as model.n_params), or parse it "
            "from the name with --name-pattern"
            + (f"; the run config has keys: {shown}" if keys else "; the run has no config")
        )
    row.setdefault("run_id", hist.name)
    row.setdefault("dataset", dataset or "default")
    row.setdefault("model", f"{float(row['n_params']) / 1e6:.4g}M")
    if last_step:  # a runs-table summary is one point at step 0: no step column then
        row["step"] = last_step
    return row


def _same(value):
    return value
