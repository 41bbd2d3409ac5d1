"""The run table: one row per training run, validated, readable and writable as CSV, JSONL, Parquet.

Schema (one row per run; column names are the contract):

===================  =======================================================================
column               meaning
===================  =======================================================================
``run_id``           unique name of the run (string, required)
``dataset``          training distribution, e.g. ``rpj`` (string, required)
``model``            model/shape name, e.g. ``d=512_l=8_h=4`` (string, required)
``n_params``         N, parameters including embeddings (positive number, required)
``n_tokens``         D, training tokens (positive number, required)
``multiplier``       M = D/N (optional; derived when absent, checked when present)
``flops``            C = 6·N·D (optional; derived when absent, checked when present)
``loss_<set>``       validation loss in nats/token on validation set ``<set>`` (positive)
``loss_lower_<set>`` optional lower bound of that loss (e.g. a 95% bootstrap bound)
``loss_upper_<set>`` optional upper bound
``acc_<task>``       downstream accuracy on task ``<task>``, a fraction in [0, 1]
anything else        kept as metadata (seed, status, wall time, ...)
===================  =======================================================================

A missing measurement is an empty CSV cell, a JSON ``null`` or a Parquet null; it reads as NaN
and is reported when a fit needs it. A literal NaN or infinity is an error, never "missing".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale._io import atomic_write, check_regular_file, iter_json_lines
from lmscale.errors import InputError
from lmscale.table_checks import (
    ACC_PREFIX,
    LOSS_PREFIX,
    LOWER_PREFIX,
    STRING_COLUMNS,
    UPPER_PREFIX,
    is_measure,
    validate,
)

NUMERIC_COLUMNS = ("n_params", "n_tokens", "multiplier", "flops")
#: relative tolerance of the D = M·N and C = 6·N·D consistency checks
_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def _is_loss_column(name: str) -> bool:
    return name.startswith(LOSS_PREFIX) and not name.startswith((LOWER_PREFIX, UPPER_PREFIX))


@dataclass(frozen=True)
class RunTable:
    """A validated table of training runs (see the module docstring for the schema).

    Build one with :meth:`from_records`, :meth:`from_frame` or :meth:`read`; the frame is
    validated and normalised on construction and treated as read-only afterwards.
    """

    frame: pd.DataFrame
    source: str = "<table>"
    row_labels: tuple[str, ...] = field(default=(), repr=False, compare=False)

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        source: str = "<table>",
        row_labels: Sequence[str] | None = None,
        bad_numbers: dict[tuple[int, str], str] | None = None,
    ) -> RunTable:
        frame = frame.reset_index(drop=True).copy()
        labels = (
            tuple(row_labels) if row_labels is not None else tuple(f"row {i + 1}" for i in range(len(frame)))
        )
        normalised = validate(frame, source, labels, bad_numbers or {})
        return cls(normalised, source, labels)

    @classmethod
    def from_records(cls, records: Sequence[dict], source: str = "<records>") -> RunTable:
        if (
            isinstance(records, (str, bytes, Mapping))
            or not isinstance(records, Iterable)
            or not all(isinstance(r, Mapping) for r in records)
        ):
            raise InputError(
                f"{source}: run records must be a sequence of mappings (one per run), "
                f"got {type(records).__name__}"
            )
        return cls.from_frame(pd.DataFrame.from_records([dict(r) for r in records]), source)

    @classmethod
    def read(cls, path: str | Path) -> RunTable:
        """Read runs from ``.csv``, ``.jsonl`` or ``.parquet`` (chosen by suffix)."""
        path = Path(path)
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise InputError(
                f"{path}: unknown run-table format {path.suffix!r}; use .csv, .jsonl or .parquet"
            )
        check_regular_file(path, "run table")
        reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[fmt]
        frame, labels, bad = reader(path)
        return cls.from_frame(frame, str(path), labels, bad)

    # ---------------------------------------------------------------------------------- output
    def write(self, path: str | Path) -> Path:
        """Write atomically; the format follows the suffix. Missing values stay missing."""
        path = Path(path)
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise InputError(
                f"{path}: unknown run-table format {path.suffix!r}; use .csv, .jsonl or .parquet"
            )
        if fmt == "csv":
            # float_format=None: pandas writes repr(), the shortest text that reads back to the same float
            return atomic_write(path, lambda fh: self.frame.to_csv(fh, index=False, float_format=None))
        if fmt == "jsonl":

            def write_jsonl(fh):
                for rec in self.to_records():
                    fh.write(json.dumps(rec, allow_nan=False) + "\n")

            return atomic_write(path, write_jsonl)
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        return atomic_write(path, lambda fh: pq.write_table(table, fh), binary=True)

    def to_records(self) -> list[dict]:
        """Rows as plain dicts; missing values are ``None``."""
        out = []
        for rec in self.frame.to_dict(orient="records"):
            out.append(
                {k: (None if isinstance(v, float) and math.isnan(v) else _plain(v)) for k, v in rec.items()}
            )
        return out

    # -------------------------------------------------------------------------------- accessors
    def __len__(self) -> int:
        return len(self.frame)

    @property
    def val_sets(self) -> list[str]:
        return [c[len(LOSS_PREFIX) :] for c in self.frame.columns if _is_loss_column(c)]

    @property
    def tasks(self) -> list[str]:
        return [c[len(ACC_PREFIX) :] for c in self.frame.columns if c.startswith(ACC_PREFIX)]

    @property
    def datasets(self) -> list[str]:
        return sorted(self.frame["dataset"].unique().tolist())

    @property
    def run_ids(self) -> list[str]:
        return self.frame["run_id"].tolist()

    def column(self, name: str) -> np.ndarray:
        if name not in self.frame.columns:
            raise InputError(f"{self.source}: no column {name!r}; available: {', '.join(self.frame.columns)}")
        return self.frame[name].to_numpy()

    def loss(self, val_set: str) -> np.ndarray:
        """Losses on ``val_set`` (with or without the ``loss_`` prefix)."""
        name = val_set if val_set.startswith(LOSS_PREFIX) else LOSS_PREFIX + val_set
        if name not in self.frame.columns:
            raise InputError(
                f"{self.source}: unknown validation set {val_set.removeprefix(LOSS_PREFIX)!r}; "
                f"known: {', '.join(self.val_sets) or 'none'}"
            )
        return self.frame[name].to_numpy(dtype=float)

    def accuracy(self, task: str) -> np.ndarray:
        name = task if task.startswith(ACC_PREFIX) else ACC_PREFIX + task
        if name not in self.frame.columns:
            raise InputError(
                f"{self.source}: unknown task {task!r}; known: {', '.join(self.tasks) or 'none'}"
            )
        return self.frame[name].to_numpy(dtype=float)

    def subset(self, mask) -> RunTable:
        """Rows where ``mask`` is true (a boolean array or Series), already validated."""
        mask = np.asarray(mask, dtype=bool)
        labels = tuple(label for label, keep in zip(self.row_labels, mask) if keep)
        return RunTable(self.frame.loc[mask].reset_index(drop=True), self.source, labels)

    def of_dataset(self, train_set: str) -> RunTable:
        """The runs of one training set (``dataset`` column): laws are fitted per training
        distribution, so this is where most analyses start."""
        return self.subset(self.column("dataset").astype(str) == train_set)

    def label(self, i: int) -> str:
        """Where row ``i`` came from, for messages: ``file, line 4 (run 'x')``."""
        where = self.row_labels[i] if i < len(self.row_labels) else f"row {i + 1}"
        return f"{self.source}, {where} (run {self.frame['run_id'].iloc[i]!r})"


# --------------------------------------------------------------------------------------- readers
def _read_csv(path: Path):
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty (expected a header row)") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    header = _csv_header(path)
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"{path}: column(s) {', '.join(map(repr, dup))} appear more than once in the header")
    labels = [f"line {i + 2}" for i in range(len(raw))]
    frame = raw.copy()
    bad: dict[tuple[int, str], str] = {}
    for col in raw.columns:
        if col in STRING_COLUMNS:
            continue
        values: list[float] = []
        numeric = True
        for i, cell in enumerate(raw[col]):
            text = cell.strip()
            if text == "":
                values.append(np.nan)
                continue
            try:
                number = float(text)
                if not math.isfinite(number) and (col in NUMERIC_COLUMNS or is_measure(col)):
                    bad[(i, col)] = f"must be finite, found {text!r}"
                values.append(number)
            except ValueError:
                if col in NUMERIC_COLUMNS or is_measure(col):
                    bad[(i, col)] = f"is not a number: {text!r}"
                    values.append(np.nan)
                else:
                    numeric = False
                    break
        if numeric:
            frame[col] = np.array(values, dtype=float)
    return frame, labels, bad


def _read_jsonl(path: Path):
    rows, labels = [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, rec in iter_json_lines(fh, path):
            rows.append(rec)
            labels.append(f"line {lineno}")
    if not rows:
        raise InputError(f"{path}: no runs in the file")
    frame = pd.DataFrame.from_records(rows)
    bad = {}
    for col in frame.columns:
        if not (is_measure(col) or col in NUMERIC_COLUMNS):
            continue
        values = []
        for i, rec in enumerate(rows):
            v = rec.get(col)
            if v is None:
                values.append(np.nan)  # absent key or null: missing
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                bad[(i, col)] = f"is not a number: {v!r}"
                values.append(np.nan)
            elif not math.isfinite(v):
                bad[(i, col)] = f"must be finite, found {v!r}"
                values.append(np.nan)
            else:
                values.append(float(v))
        frame[col] = np.array(values, dtype=float)
    return frame, labels, bad


def _csv_header(path: Path) -> list[str]:
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return [h.strip() for h in next(csv.reader(fh), [])]


def _read_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: malformed Parquet file: {exc}") from None
    bad = {}
    for name in table.column_names:
        col = table.column(name)
        if (name in NUMERIC_COLUMNS or is_measure(name)) and not (
            pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type)
        ):
            raise InputError(f"{path}: column {name!r} must hold numbers, found Parquet type {col.type}")
        if pa.types.is_floating(col.type):
            flags = pc.fill_null(pc.invert(pc.is_finite(col)), False).to_pylist()
            for i, flag in enumerate(flags):
                if flag:
                    bad[(i, name)] = f"must be finite, found {col[i].as_py()!r}"
    frame = table.to_pandas()
    return frame, [f"row {i + 1}" for i in range(len(frame))], bad


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v
