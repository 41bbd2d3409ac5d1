"""Held-out accuracy and interval coverage on public ladders from several labs.

A *ladder* here is one lab's set of finished runs (N, D, validation loss). Each ladder gets honest
splits, derived from its own grid by one rule so that no split is tuned by hand:

- ``size``: fit on every run whose N is at most 1/8 of the ladder's largest N (at least three
  sizes), predict every run at least 1.3× larger than the largest fitted size;
- ``compute``: fit on every run with compute C = 6·N·D at most 1/32 of the ladder's largest,
  predict every run at least 16× beyond the fitted compute.

Every compared method fits Eq. 4 (or, for ``untied``, Chinchilla's form) on the fit runs and
predicts the held-out ones. Methods with the batched bootstrap (least squares on Eq. 4) also get
calibrated intervals (:mod:`lmscale.calibration`): the ladder's own backtest when it is large
enough, floored by a reference calibration; the reference is either the shipped one (the paper
testbed's) or, *leave one lab out*, one built from the backtests of every other lab's ladders —
never from the lab being scored.

Loaders: a run table in lmscale's schema (CSV, JSONL, Parquet; the first ``loss_*`` column), the
paper testbed's ``exp_data`` folder (one ladder per training set, C4-eval loss), and Epoch's
Chinchilla extraction (``Model Size``, ``Training FLOP``, ``loss``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale import calibration as cal
from lmscale._io import read_text
from lmscale.backtest import backtest_arrays
from lmscale.errors import FitError, InputError
from lmscale.fit.bootstrap import bootstrap_or_none
from lmscale.fit.core import fit
from lmscale.laws import CHINCHILLA, OVERTRAIN
from lmscale.predict import ScalePoint

LEVELS = (0.8, 0.9)
#: size split: fit N ≤ largest / SIZE_FIT_RATIO, predict N ≥ SIZE_GAP × largest fitted N
SIZE_FIT_RATIO, SIZE_GAP = 8.0, 1.3
#: compute split: fit C ≤ largest / COMPUTE_FIT_RATIO, predict C ≥ COMPUTE_GAP × largest fitted C
COMPUTE_FIT_RATIO, COMPUTE_GAP = 32.0, 16.0


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

    @property
    def multiplier(self) -> np.ndarray:
        return self.n_tokens / self.n_params

    @property
    def flops(self) -> np.ndarray:
        return 6.0 * self.n_params * self.n_tokens


@dataclass(frozen=True)
class Split:
    ladder: Ladder
    name: str
    fit: np.ndarray  # bool mask
    heldout: np.ndarray  # bool mask
    description: str


@dataclass(frozen=True)
class Method:
    name: str
    law: str  # "overtrain" or "chinchilla"
    fit_method: str

    @property
    def has_intervals(self) -> bool:
        return self.law == "overtrain" and self.fit_method in ("paper", "varpro", "rel-ls", "default")


METHODS = (
    Method("paper", "overtrain", "paper"),
    Method("default", "overtrain", "default"),
    Method("rel-ls", "overtrain", "rel-ls"),
    Method("huber-log", "overtrain", "huber-log"),
    Method("untied", "chinchilla", "varpro"),
)

#: lab of each known ladder name (the labs the leave-one-lab-out calibration keeps apart)
LABS = {"porian_owt2": "porian", "porian_rw": "porian", "gemstones": "gemstones", "chinchilla": "deepmind"}


def _ladder(name, lab, n, d, loss, ids, source) -> Ladder:
    n, d, loss = (np.asarray(v, dtype=float) for v in (n, d, loss))
    ok = np.isfinite(n) & np.isfinite(d) & np.isfinite(loss) & (n > 0) & (d > 0) & (loss > 0)
    if ok.sum() < 8:
        raise InputError(f"{source}: {int(ok.sum())} usable runs (positive, finite N, D and loss); need 8")
    return Ladder(name, lab, n[ok], d[ok], loss[ok], tuple(np.asarray(ids)[ok]), source, int((~ok).sum()))


def load(path: str | Path) -> list[Ladder]:
    """The ladder(s) in ``path``: a run table, the testbed's ``exp_data`` folder, or Epoch's
    Chinchilla CSV."""
    p = Path(path)
    if p.is_dir():
        from lmscale import testbed

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
            return [_ladder("chinchilla", LABS["chinchilla"], n, c / (6 * n), df["loss"], ids, str(p))]
    from lmscale.run_table import RunTable

    runs = RunTable.read(p)
    if not runs.val_sets:
        raise InputError(f"{p}: no loss_* column")
    name = p.stem
    return [
        _ladder(
            name,
            LABS.get(name, name),
            runs.column("n_params"),
            runs.column("n_tokens"),
            runs.loss("loss_" + runs.val_sets[0]),
            runs.run_ids,
            str(p),
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


def splits(ladder: Ladder) -> list[Split]:
    """The ladder's honest splits (module docstring); a split without enough fit runs is left out."""
    n, c = ladder.n_params, ladder.flops
    out = []
    sizes = np.unique(n)
    fit_n = n <= sizes.max() / SIZE_FIT_RATIO
    if len(np.unique(n[fit_n])) < 3:
        fit_n = n <= sizes[min(2, len(sizes) - 1)]
    held_n = n >= SIZE_GAP * n[fit_n].max()
    out.append(Split(ladder, "size", fit_n, held_n, f"N ≤ {n[fit_n].max():.3g} → N ≥ {n[held_n].min():.3g}"))
    fit_c = c <= c.max() / COMPUTE_FIT_RATIO * 1.0001
    held_c = c >= COMPUTE_GAP * c[fit_c].max() * 0.9999 if fit_c.any() else np.zeros_like(fit_c)
    out.append(
        Split(
            ladder,
            "compute",
            fit_c,
            held_c,
            f"C ≤ {c[fit_c].max():.3g} → C ≥ {c[held_c].min():.3g}" if held_c.any() else "",
        )
    )
    good = []
    for s in out:
        m = ladder.multiplier[s.fit]
        enough = s.fit.sum() >= 8 and len(np.unique(n[s.fit])) >= 3 and len(np.unique(np.round(m, 6))) >= 2
        if enough and s.heldout.sum() >= 1:
            good.append(s)
    return good


def backtest_points(ladder: Ladder, mask: np.ndarray, method: str, n_resamples: int, seed: int) -> list:
    return backtest_arrays(
        ladder.n_params[mask],
        ladder.multiplier[mask],
        ladder.loss[mask],
        method=method,
        run_ids=[r for r, k in zip(ladder.run_ids, mask) if k],
        n_resamples=n_resamples,
        seed=seed,
    )


def lab_references(
    ladders: Sequence[Ladder], method: str = "default", n_resamples: int = 100, seed: int = 0
) -> dict[str, cal.Calibration]:
    """Leave-one-lab-out reference calibrations: lab → the loss reference built from the full-ladder
    backtests of every *other* lab's ladders."""
    pts = {
        lad.name: backtest_points(lad, np.ones(len(lad.loss), bool), method, n_resamples, seed)
        for lad in ladders
    }
    out = {}
    for lab in sorted({lad.lab for lad in ladders}):
        others = [p for lad in ladders if lad.lab != lab for p in pts[lad.name]]
        names = sorted({lad.name for lad in ladders if lad.lab != lab})
        if others:
            out[lab] = cal.reference_from_backtest(
                others, "loss", f"backtests of {', '.join(names)} ({len(others)} predictions)"
            )
    return out


@dataclass
class Score:
    rel: list = field(default_factory=list)  # signed relative errors
    iv: list = field(default_factory=list)  # (observed, predicted, {level: Interval})

    def row(self) -> dict:
        r = np.asarray(self.rel, dtype=float)
        out = {
            "n_predictions": len(r),
            "mean_abs_error": float(np.mean(np.abs(r))) if len(r) else float("nan"),
            "max_abs_error": float(np.max(np.abs(r))) if len(r) else float("nan"),
            "median_abs_error": float(np.median(np.abs(r))) if len(r) else float("nan"),
            "mean_signed_error": float(np.mean(r)) if len(r) else float("nan"),
            "share_over_predicted": float(np.mean(r > 0)) if len(r) else float("nan"),
        }
        for lv in LEVELS:
            out[f"coverage_{int(lv * 100)}"] = (
                float(np.mean([i[lv].contains(o) for o, _p, i in self.iv])) if self.iv else float("nan")
            )
        out["median_width_90"] = (
            float(np.median([(i[0.9].high - i[0.9].low) / p for _o, p, i in self.iv]))
            if self.iv
            else float("nan")
        )
        return out


def score_split(
    split: Split,
    method: Method,
    reference: cal.Calibration | None,
    n_resamples: int = 200,
    seed: int = 0,
) -> dict:
    """Fit ``method`` on the split's fit runs, predict its held-out runs; intervals calibrated with
    the ladder's own backtest floored by ``reference`` (None: no intervals)."""
    lad, fm, hm = split.ladder, split.fit, split.heldout
    law = OVERTRAIN if method.law == "overtrain" else CHINCHILLA
    cols = {"n_params": lad.n_params, "multiplier": lad.multiplier, "n_tokens": lad.n_tokens}
    x = {k: cols[k][fm] for k in law.inputs}
    sc = Score()
    note = ""
    try:
        lf = fit(
            law, x, lad.loss[fm], method=method.fit_method, run_ids=[r for r, k in zip(lad.run_ids, fm) if k]
        )
    except (FitError, InputError) as exc:
        return {"failed": str(exc).splitlines()[0]}
    pred = np.asarray(lf.predict(**{k: cols[k][hm] for k in law.inputs}), dtype=float)
    sc.rel = list((pred - lad.loss[hm]) / lad.loss[hm])
    if reference is not None and method.has_intervals and n_resamples > 0:
        booted = bootstrap_or_none(lf, n_resamples, seed)
        lb, note = (booted, "") if booted is not None else (lf, "no bootstrap")
        own = cal.choose(backtest_points(lad, fm, method.fit_method, n_resamples, seed), "loss", reference)
        note = note or own.source
        for i, j in enumerate(np.flatnonzero(hm)):
            point = ScalePoint.make(float(lad.n_params[j]), n_tokens=float(lad.n_tokens[j]))
            c = cal.calibrated(lb, point, LEVELS[0], own)
            sc.iv.append((float(lad.loss[j]), float(pred[i]), {lv: c.at(lv) for lv in LEVELS}))
    return {**sc.row(), "calibration": note}


def run(
    ladders: Sequence[Ladder],
    methods: Sequence[Method] = METHODS,
    *,
    n_resamples: int = 200,
    seed: int = 0,
    references: str = "lab-out",
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """One row per ladder × split × method. ``references``: ``lab-out`` (leave-one-lab-out
    references from the other ladders given; the shipped one when only one lab is given),
    ``shipped`` (the paper testbed's), or ``none`` (no intervals)."""
    refs: dict[str, cal.Calibration] = {}
    if references == "lab-out" and len({lad.lab for lad in ladders}) > 1 and n_resamples > 0:
        refs = lab_references(ladders, n_resamples=min(n_resamples, 100), seed=seed)
        if progress:
            progress("leave-one-lab-out references")
    rows = []
    for lad in ladders:
        ref = None
        if references != "none":
            ref = refs.get(lad.lab) or cal.reference("loss")
        for sp in splits(lad):
            for m in methods:
                r = score_split(sp, m, ref, n_resamples, seed)
                rows.append(
                    {
                        "ladder": lad.name,
                        "lab": lad.lab,
                        "split": sp.name,
                        "split_rule": sp.description,
                        "n_fit": int(sp.fit.sum()),
                        "n_dropped_runs": lad.n_dropped,
                        "method": m.name,
                        **r,
                    }
                )
                if progress:
                    progress(f"{lad.name} {sp.name} {m.name}")
    return rows
