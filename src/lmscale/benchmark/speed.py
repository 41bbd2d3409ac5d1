"""Speed: the paper's 128-start Levenberg–Marquardt procedure against lmscale's fast path
(variable projection), on the same data in the same process, plus a 1000-resample bootstrap."""

from __future__ import annotations

import time
from typing import Any

from lmscale.calibration import calibrate_fit
from lmscale.fit import fit
from lmscale.fit.bootstrap import bootstrap
from lmscale.fit.runs import fit_table
from lmscale.run_table import RunTable
from lmscale.selection import Selection, preset
from lmscale.study import Study


def _best_of(fn, repeats: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def run(runs: RunTable, repeats: int = 3, n_resamples: int = 1000) -> dict:
    """Time every training set × validation loss fit of the paper default with both methods."""
    spec = preset("paper-default")
    problems = []
    for ts in runs.datasets:
        ds = runs.of_dataset(ts)
        sel = spec.loss_fit.apply(ds)
        for vs in runs.val_sets:
            problems.append((sel.column("n_params"), sel.column("multiplier"), sel.loss(vs)))

    def fit_all(method):
        return [fit("overtrain", {"n_params": n, "multiplier": m}, y, method=method) for n, m, y in problems]

    t_paper, paper_fits = _best_of(lambda: fit_all("paper"), repeats)
    t_fast, fast_fits = _best_of(lambda: fit_all("varpro"), repeats)
    diff = max(
        abs(a.params[k] - b.params[k]) / abs(a.params[k])
        for a, b in zip(paper_fits, fast_fits)
        for k in a.params
    )
    obj_gap = max(
        (b.diagnostics.objective - a.diagnostics.objective) / a.diagnostics.objective
        for a, b in zip(paper_fits, fast_fits)
    )
    default = Study(runs, "paper-default", "paper", error_targets=()).loss_fit("rpj", "c4_val")
    t_boot, booted = _best_of(lambda: bootstrap(default, n_resamples, seed=0), repeats)
    # lmscale's default method on a 16-run table (the four small sizes of RedPajama at M = 10 … 80),
    # bootstrapped and calibrated as `lmscale fit --bootstrap 1000` does

    rpj = runs.of_dataset("rpj")
    table16 = Selection.parse("n_params <= 5e8 and multiplier >= 10 and multiplier <= 80").apply(rpj)
    dfit = fit_table(table16, "overtrain", "loss_c4_val", method="default")
    t_dboot, dbooted = _best_of(lambda: bootstrap(dfit, n_resamples, seed=0), repeats)
    t_cal, _ = _best_of(lambda: calibrate_fit(dbooted, 200, 0), repeats)
    return {
        "n_fits": len(problems),
        "paper_seconds": t_paper,
        "fast_seconds": t_fast,
        "speedup": t_paper / t_fast,
        "max_param_rel_diff": float(diff),
        "fast_objective_minus_paper_rel": float(obj_gap),
        "bootstrap_1000_seconds": t_boot * 1000.0 / n_resamples,
        "bootstrap_valid_resamples": int(booted.diagnostics.bootstrap_n or 0),
        "default_method": dfit.method,
        "default_n_runs": len(dfit.y),
        "default_bootstrap_1000_seconds": t_dboot * 1000.0 / n_resamples,
        "default_calibration_seconds": t_cal,
        "repeats": repeats,
    }
