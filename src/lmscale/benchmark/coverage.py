"""Interval coverage on ladders other than the paper testbed's fit sets: Epoch AI's Chinchilla
points and a ladder of one training set (``benchmarks/coverage.py`` prints them)."""

from __future__ import annotations

import numpy as np

from lmscale import calibration as cal
from lmscale.benchmark.accuracy import LEVELS, _score
from lmscale.fit.bootstrap import bootstrap_or_none
from lmscale.fit.core import fit
from lmscale.laws import get_law
from lmscale.predict import ScalePoint
from lmscale.run_table import RunTable


def holdout_coverage(
    n_params, multiplier, loss, fit_mask, *, method: str = "default", n_resamples: int = 200, seed: int = 0
) -> dict:
    """Fit on ``fit_mask``'s runs exactly as ``lmscale fit --bootstrap`` does (bootstrap, then the
    fit's own backtest or the reference), predict every other run; relative error, 80% / 90%
    coverage and median width of the calibrated loss intervals."""

    n, m, y = (np.asarray(v, dtype=float) for v in (n_params, multiplier, loss))
    fm = np.asarray(fit_mask, bool)
    lf = fit(get_law("overtrain"), {"n_params": n[fm], "multiplier": m[fm]}, y[fm], method=method)
    lf = cal.calibrate_fit(bootstrap_or_none(lf, n_resamples, seed) or lf, n_resamples, seed)
    c = cal.of_fit(lf)
    rows: list[tuple] = []
    for i in np.flatnonzero(~fm):
        pt = ScalePoint.make(float(n[i]), multiplier=float(m[i]))
        cp = cal.calibrated(lf, pt, LEVELS[0], c)
        ivs = {lv: cp.at(lv) for lv in LEVELS}
        rows.append((cp.value, float(y[i]), ivs))
    s = _score(rows)
    return {
        "n_fit_runs": int(fm.sum()),
        "n_predictions": len(rows),
        "mean_rel_error": s["mean"],
        "coverage_80": s["cov80"],
        "coverage_90": s["cov90"],
        "median_interval_width": s["width"],
        "calibration": c.source,
    }


def epoch_coverage(csv_path, fit_quantile: float = 0.75, **kw) -> dict:
    """Epoch AI's Chinchilla replication points (N, C, loss): fit on the runs up to the
    ``fit_quantile`` of N, predict the larger ones."""
    import pandas as pd

    df = pd.read_csv(csv_path)
    n = df["Model Size"].to_numpy(float)
    d = df["Training FLOP"].to_numpy(float) / (6 * n)
    return holdout_coverage(n, d / n, df["loss"].to_numpy(float), n <= np.quantile(n, fit_quantile), **kw)


def ladder_coverage(runs: RunTable, **kw) -> dict[str, dict]:
    """A ladder of one training set (e.g. ``examples/cpu-small``): fit every run below the largest
    size, predict the largest size's runs; per validation loss."""
    n = runs.column("n_params").astype(float)
    return {
        vs: holdout_coverage(n, runs.column("multiplier"), runs.loss("loss_" + vs), n < n.max(), **kw)
        for vs in runs.val_sets
    }
