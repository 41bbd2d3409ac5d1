"""The public ladders as arrays: one :class:`Ladder` per lab's ladder (or per training set of the
paper testbed), from a run table in lmscale's schema (CSV, JSONL, Parquet; the first ``loss_*``
column, and with ``acc_<task>`` columns the mean error over every task, ``error_<n>task``), the
testbed's ``exp_data`` folder (C4-eval loss, and the 46- and 17-task errors), or Epoch's
Chinchilla extraction (``Model Size``, ``Training FLOP``, ``loss``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale._io import read_text
from lmscale.errors import InputError

#: the downstream errors a ladder may carry (the chained targets of the testbed)
ERROR_TARGETS = ("error_46", "error_17")


@dataclass(frozen=True)
class Ladder:
    """One lab's ladder: arrays of its runs."""

    name: str
    lab: str
    n_params: np.ndarray
    n_tokens: np.ndarray
    loss: np.ndarray
    run_ids: tuple[str, ...]
    source: str
    #: rows of the source left out: a missing, non-finite or non-positive N, D or loss
    n_dropped: int = 0
    #: downstream error targets (name → one value per run, NaN where a run has none)
    errors: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def multiplier(self) -> np.ndarray:
        return self.n_tokens / self.n_params

    @property
    def flops(self) -> np.ndarray:
        return 6.0 * self.n_params * self.n_tokens


#: lab of each known ladder name (the labs the leave-one-lab-out calibration keeps apart)
LABS = {"porian_owt2": "porian", "porian_rw": "porian", "gemstones": "gemstones", "chinchilla": "deepmind"}


def _ladder(name, lab, n, d, loss, ids, source, errors=None) -> Ladder:
    n, d, loss = (np.asarray(v, dtype=float) for v in (n, d, loss))
    ok = np.isfinite(n) & np.isfinite(d) & np.isfinite(loss) & (n > 0) & (d > 0) & (loss > 0)
    if ok.sum() < 8:
        raise InputError(f"{source}: {int(ok.sum())} usable runs (positive, finite N, D and loss); need 8")
    errs = {k: np.asarray(v, dtype=float)[ok] for k, v in (errors or {}).items()}
    errs = {k: v for k, v in errs.items() if np.isfinite(v).any()}  # a target no run has is no target
    return Ladder(
        name, lab, n[ok], d[ok], loss[ok], tuple(np.asarray(ids)[ok]), source, int((~ok).sum()), errs
    )


def load(path: str | Path) -> list[Ladder]:
    """The ladder(s) in ``path``: a run table, the testbed's ``exp_data`` folder, or Epoch's
    Chinchilla CSV."""
    p = Path(path)
    if p.is_dir():
        from lmscale import testbed
        from lmscale.tasks import target_values

        runs = testbed.load(p)
        out = []
        for ds in runs.datasets:
            sub = runs.subset(runs.column("dataset").astype(str) == ds)
            out.append(
                _ladder(
                    f"testbed_{ds}",
                    "gadre",
                    sub.column("n_params"),
                    sub.column("n_tokens"),
                    sub.loss("loss_c4_val"),
                    sub.run_ids,
                    f"{p} ({ds})",
                    {t: target_values(sub, t) for t in ERROR_TARGETS},
                )
            )
        return out
    if not p.is_file():
        raise InputError(f"{p}: no such ladder (a run table, a testbed exp_data folder or a CSV)")
    if p.suffix == ".csv":
        df = _chinchilla_csv(p)
        if df is not None:
            n, c = df["Model Size"].to_numpy(float), df["Training FLOP"].to_numpy(float)
            ids = [f"chinchilla-{i}" for i in range(len(df))]
            with np.errstate(divide="ignore", invalid="ignore"):  # N = 0: a row left out and counted
                d = c / (6 * n)
            return [_ladder("chinchilla", LABS["chinchilla"], n, d, df["loss"], ids, str(p))]
    from lmscale.run_table import RunTable

    runs = RunTable.read(p)
    if not runs.val_sets:
        raise InputError(f"{p}: no loss_* column")
    name = p.stem
    errors = {}
    tasks = [t for t in runs.tasks if np.isfinite(runs.accuracy(t)).any()]  # a task no run has: none
    if tasks:  # downstream accuracies: their mean error, chained through the first loss
        from lmscale.tasks import average_error

        errors[f"error_{len(tasks)}task"] = average_error(runs, tasks)
    return [
        _ladder(
            name,
            LABS.get(name, name),
            runs.column("n_params"),
            runs.column("n_tokens"),
            runs.loss("loss_" + runs.val_sets[0]),
            runs.run_ids,
            str(p),
            errors,
        )
    ]


def _chinchilla_csv(p: Path) -> pd.DataFrame | None:
    """Epoch's Chinchilla extraction (``Model Size``, ``Training FLOP``, ``loss``) as numbers, or
    None when ``p`` is another CSV (a run table); unreadable files and non-numbers are named."""
    import io

    text = read_text(p, what="ladder CSV")
    if not text.strip():
        raise InputError(f"{p}: empty file")
    try:
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{p}: malformed CSV ({str(exc).splitlines()[0]})") from None
    cols = ("Model Size", "Training FLOP", "loss")
    if not set(cols) <= set(df.columns):
        return None
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = np.flatnonzero(values.isna() & df[col].notna())
        if len(bad):
            raise InputError(
                f"{p}, line {bad[0] + 2}, column {col!r}: {df[col].iloc[bad[0]]!r} is not a number"
            )
        df[col] = values
    return df


#: the public ladders of the shared data folder (paths under it): five ladders from four labs
PUBLIC_LADDERS = (
    "ladders/porian_owt2.csv",
    "ladders/porian_rw.csv",
    "ladders/gemstones.csv",
    "peers/chinchilla-epoch/svg_extracted_data.csv",
    "testbed/exp_data",
)


def public_ladders(shared: str | Path) -> list[Ladder]:
    """Every ladder of :data:`PUBLIC_LADDERS` under the shared data folder ``shared``."""
    return [lad for rel in PUBLIC_LADDERS for lad in load(Path(shared) / rel)]
