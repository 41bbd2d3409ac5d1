"""What importers share: metric-name mapping (``--map 'eval/val/c4/ce_loss=loss_c4'``, glob
patterns, a mapping file), size numbers with suffixes (150M, 3B, 20B), run-name patterns
(``'{model}_{tokens}.csv'``), and the import report (what was imported, what was skipped and why)."""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmscale._io import read_json, read_yaml
from lmscale.errors import InputError
from lmscale.run_table import RunTable
from lmscale.table_checks import ACC_PREFIX, LOSS_PREFIX
from lmscale.units import parse_size

#: run-table columns a name pattern or a mapping may fill besides measures
ROW_FIELDS = ("run_id", "dataset", "model", "n_params", "n_tokens", "multiplier")
#: a row field: N as the model's name gives it (150M), used when no config key gives the exact count
NOMINAL_N = "_nominal_n_params"
#: pattern field aliases → run-table column
_ALIASES = {
    "params": "n_params",
    "size": "n_params",
    "n": "n_params",
    "tokens": "n_tokens",
    "d": "n_tokens",
    "m": "multiplier",
    "mult": "multiplier",
    "k": "chinchilla_multiple",
    "xc": "chinchilla_multiple",
    "run": "run_id",
    "name": "run_id",
    "data": "dataset",
}


@dataclass(frozen=True)
class NamePattern:
    """A file or run name pattern such as ``'{model}_{tokens}.csv'`` or ``'{dataset}-{params}-M{m}'``:
    literal text and ``{field}`` placeholders (run_id, dataset, model, n_params / params / size,
    n_tokens / tokens, multiplier / m, and k / xc: Chinchilla multiples as in ``'olmo-{size}-{k}xC'``,
    20 tokens per parameter each; other names are kept as metadata)."""

    text: str
    regex: re.Pattern = field(repr=False, compare=False, default=re.compile(""))
    fields: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> NamePattern:
        parts = re.split(r"(\{[A-Za-z_]\w*\})", text)
        out, names = [], []
        for p in parts:
            if p.startswith("{") and p.endswith("}"):
                name = p[1:-1]
                if name in names:
                    raise InputError(f"name pattern {text!r} uses {{{name}}} twice")
                names.append(name)
                out.append(f"(?P<{name}>.+?)")
            else:
                out.append(re.escape(p))
        if not names:
            raise InputError(f"name pattern {text!r} has no {{field}} placeholder")
        return cls(text, re.compile("^" + "".join(out) + "$"), tuple(names))

    def match(self, name: str) -> dict[str, Any] | None:
        """Row fields from ``name`` (sizes parsed), or None when it does not match."""
        m = self.regex.match(name)
        if not m:
            return None
        row: dict[str, Any] = {}
        for key, value in m.groupdict().items():
            col = _ALIASES.get(key.lower(), key)
            if col in ("n_params", "n_tokens", "multiplier", "chinchilla_multiple"):
                row[col] = parse_size(value, f"{col} in name {name!r}")
            else:
                row[col] = value
        if "n_params" not in row and isinstance(row.get("model"), str):
            with contextlib.suppress(InputError):  # a model named by its size (150M, 1.4B) gives N,
                # unless the run config has the exact count (see wandb_csv.history_row)
                row[NOMINAL_N] = parse_size(row["model"], "model size")
        return row


@dataclass(frozen=True)
class MetricMap:
    """Source metric name → run-table column. A source may be a glob (``eval/*/loss``); when both
    sides hold one ``*`` the matched text carries over (``eval/val/*/ce_loss=loss_*``)."""

    rules: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, entries: Sequence[str] = (), file: str | Path | None = None) -> MetricMap:
        rules: list[tuple[str, str]] = []
        if file is not None:
            p = Path(file)
            data = read_json(p) if p.suffix == ".json" else read_yaml(p, what="metric mapping")
            if not isinstance(data, Mapping):
                raise InputError(f"{p}: a metric mapping is an object of source: column")
            rules += [(str(k), str(v)) for k, v in data.items()]
        for e in entries:
            if "=" not in e:
                raise InputError(f"--map {e!r}: expected SOURCE=COLUMN, e.g. 'eval/val/c4/ce_loss=loss_c4'")
            src, dst = (s.strip() for s in e.rsplit("=", 1))
            rules.append((src, dst))
        for src, dst in rules:
            if not src or not dst:
                raise InputError(f"metric mapping {src!r} → {dst!r}: both sides are needed")
            if not dst.startswith((LOSS_PREFIX, ACC_PREFIX)) and dst not in ROW_FIELDS:
                raise InputError(
                    f"metric mapping {src!r} → {dst!r}: a column must be loss_<set>, acc_<task> or one of "
                    f"{', '.join(ROW_FIELDS)}"
                )
            if dst.count("*") > 1 or (dst.count("*") == 1 and src.count("*") != 1):
                raise InputError(
                    f"metric mapping {src!r} → {dst!r}: a '*' in the column needs exactly one in the source"
                )
        if not rules:
            raise InputError("no metric mapping: give --map SOURCE=COLUMN (or --map-file)")
        return cls(tuple(rules))

    def column(self, metric: str) -> str | None:
        """The run-table column of ``metric`` (the first rule that matches), or None."""
        for src, dst in self.rules:
            if "*" in dst:
                rx = "^" + re.escape(src).replace(r"\*", "(.+)") + "$"
                m = re.match(rx, metric)
                if m:
                    return dst.replace("*", m.group(1).replace("/", "_"))
            elif fnmatch.fnmatchcase(metric, src):
                return dst
        return None

    def apply(self, metrics: Iterable[str]) -> dict[str, str]:
        """metric → column for every metric some rule maps (two metrics onto one column: an error)."""
        out: dict[str, str] = {}
        for m in metrics:
            col = self.column(m)
            if col is None:
                continue
            clash = [k for k, v in out.items() if v == col]
            if clash:
                raise InputError(
                    f"metrics {clash[0]!r} and {m!r} both map to column {col!r}; make --map more specific"
                )
            out[m] = col
        return out


@dataclass(frozen=True)
class ImportReport:
    """An importer's result: the validated run table, and every source it skipped with the reason."""

    table: RunTable | None
    skipped: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """A summary line, then one line per skip reason with its count and a few of the sources
        (not one line per skipped source), then the notes."""
        n = 0 if self.table is None else len(self.table)
        out = [f"imported {n} run(s); skipped {len(self.skipped)}"]
        return out + grouped_reasons(self.skipped) + list(self.notes)


def grouped_reasons(skipped: Sequence[tuple[str, str]], examples: int = 3) -> list[str]:
    """``skipped N: REASON (e.g. a, b, c)``, one line per distinct reason, most frequent first."""
    by: dict[str, list[str]] = {}
    for src, why in skipped:
        by.setdefault(why, []).append(src)
    out = []
    for why, srcs in sorted(by.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(srcs[:examples]) + (f", … ({len(srcs)} in all)" if len(srcs) > examples else "")
        out.append(f"skipped {len(srcs)}: {why} ({shown})" if len(srcs) > 1 else f"skipped {shown}: {why}")
    return out


def finish(
    rows: list[tuple[str, dict[str, Any]]], skipped: list[tuple[str, str]], source: str, notes=()
) -> ImportReport:
    """Validate each (origin, row) on its own (a bad row is skipped under its origin, with the
    validator's message), then the table as a whole (duplicate run ids are an error naming both)."""
    good = []
    for origin, row in rows:
        try:
            RunTable.from_records([row], source=origin)
        except InputError as exc:
            skipped.append((origin, str(exc).replace("\n  ", "; ")))
            continue
        good.append(row)
    if not good:
        raise InputError(
            f"{source}: no run could be imported"
            + "".join(f"\n  {line}" for line in grouped_reasons(skipped)[:20])
        )
    table = RunTable.from_records(good, source=source)
    from lmscale.sanity import table_warnings

    return ImportReport(table, tuple(skipped), (*notes, *(f"warning: {w}" for w in table_warnings(table))))
