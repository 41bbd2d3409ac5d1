"""Held-out accuracy and interval calibration of fitting methods on the paper's testbed.

Targets, per training set: the 1.4B run at its largest M and the 6.9B run at M = 20
(:data:`lmscale.study.TARGET_RUNS`), for every validation loss (3 × 8 × 2 = 48 loss predictions per
fit set), plus the chained 46- and 17-task errors through the C4-eval loss (3 × 2 × 2 = 12). Every
target lies outside every fit set.

Fit sets (each a :class:`FitSpec`, applied per training set): ``paper-default`` and
``paper-no-1b`` (PAPER.md §4, Table 7); ``cap-<C>``: every 0.011–0.411B run with compute ≤ C
(both laws on the same runs); ``k<k>-smallest``: every run of the k smallest sizes. ``fit_flops``
is the compute of the runs a fit set uses, averaged over the training sets.

Methods: ``paper`` (Eq. 4, least squares on raw loss, the authors' LM); ``default`` (lmscale's
default: ``rel-ls-size`` for the loss law); ``rel-ls``; ``huber-log-tied`` and ``ls-log-tied``
(Eq. 4 on log loss); ``untied-default`` (the Chinchilla form, α ≠ β, with the default objective:
variable projection over α and β). The error law is fitted by exact least squares for every method
but ``paper``.

Intervals (methods with a batched bootstrap: least-squares objectives): calibrated as lmscale does
by default (:mod:`lmscale.calibration`) — bootstrap over runs ⊕ extrapolation error, with
conformal scores from the fit set's own backtest when it is large enough, else from the reference
ladder built **without the training set being scored** (leave-one-training-set-out), so no target
is ever used to calibrate its own interval. ``median_interval_width`` is the median of
(high − low) / prediction of the 90% loss intervals.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np

from lmscale import calibration as cal
from lmscale.backtest import backtest_arrays
from lmscale.benchmark.references import build_reference
from lmscale.errors import FitError, InputError
from lmscale.fit.bootstrap import bootstrap_or_none
from lmscale.fit.method import METHODS as FIT_METHODS
from lmscale.fit.method import resolve_method
from lmscale.laws import get_law
from lmscale.predict import ScalePoint
from lmscale.run_table import RunTable
from lmscale.selection import FitSpec, Selection, preset
from lmscale.study import TARGET_RUNS, Study
from lmscale.tasks import target_values

CAPS = (1e19, 3e19, 1e20)
K_SMALLEST = (2, 3, 4)
ERROR_TARGETS = ("error_46", "error_17")
ERROR_LOSS = "c4_val"
LEVELS = (0.8, 0.9)


@dataclass(frozen=True)
class Method:
    name: str
    law: str
    loss_method: str
    error_method: str

    @property
    def has_intervals(self) -> bool:
        """Calibrated intervals need the batched bootstrap: least squares on a one-exponent law."""
        m = FIT_METHODS[resolve_method(self.loss_method, get_law(self.law))]
        return m.objective == "ls" and self.law == "overtrain"


METHODS_COMPARED = (
    Method("paper", "overtrain", "paper", "paper"),
    Method("default", "overtrain", "default", "default"),
    Method("rel-ls", "overtrain", "rel-ls", "varpro"),
    Method("huber-log-tied", "overtrain", "huber-log", "varpro"),
    Method("ls-log-tied", "overtrain", "ls-log", "varpro"),
    Method("untied-default", "chinchilla", "default", "default"),
)


def fit_sets(
    caps: Sequence[float] = CAPS, k_smallest: Sequence[int] = K_SMALLEST, runs: RunTable | None = None
) -> dict[str, FitSpec]:
    heldout = Selection.parse("n_params >= 1e9")
    out = {"paper-default": preset("paper-default"), "paper-no-1b": preset("paper-no-1b")}
    for c in caps:
        sel = Selection.parse(f"n_params <= 5e8 and flops <= {c:g}")
        name = f"cap-{c:.0e}".replace("+", "")
        out[name] = FitSpec(name, sel, sel, heldout, f"0.011–0.411B runs with C ≤ {c:g}")
    sizes = (
        np.unique(runs.column("n_params").astype(float))
        if runs is not None
        else np.array([10569312, 78914048, 153677376, 411616256], float)
    )
    sizes = sizes[sizes < 1e9]
    for k in k_smallest:
        if k <= len(sizes):
            sel = Selection.parse(f"n_params <= {sizes[k - 1] * 1.0001:.6g}")
            out[f"k{k}-smallest"] = FitSpec(
                f"k{k}-smallest", sel, sel, heldout, f"every run of the {k} smallest sizes"
            )
    return out


def _score(rows: list[tuple]) -> dict:
    """rows: (predicted, observed, {level: Interval} or None)."""
    if not rows:
        return {
            "mean": float("nan"),
            "median": float("nan"),
            "max": float("nan"),
            "cov80": float("nan"),
            "cov90": float("nan"),
            "width": float("nan"),
        }
    rel = np.array([abs(p - o) / abs(o) for p, o, _ in rows])
    iv = [(o, i) for p, o, i in rows if i is not None]
    cov = {lv: float(np.mean([i[lv].contains(o) for o, i in iv])) if iv else float("nan") for lv in LEVELS}
    width = (
        float(np.median([(i[0.9].high - i[0.9].low) / p for (p, _o, i) in rows if i is not None]))
        if iv
        else float("nan")
    )
    return {
        "mean": float(np.mean(rel)),
        "median": float(np.median(rel)),
        "max": float(np.max(rel)),
        "cov80": cov[0.8],
        "cov90": cov[0.9],
        "width": width,
    }


def run(
    runs: RunTable,
    *,
    caps: Sequence[float] = CAPS,
    methods: Sequence[Method] = METHODS_COMPARED,
    n_resamples: int = 200,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    fit_set_names: Sequence[str] | None = None,
    workers: int | None = None,
) -> list[dict]:
    """One row per fit set × method (see the module docstring for every column). The rows are
    independent: ``workers`` processes (default: the machine's cores, at most 4) compute them."""
    specs = fit_sets(caps, runs=runs)
    if fit_set_names:
        specs = {k: v for k, v in specs.items() if k in fit_set_names}
    workers = workers or min(4, os.cpu_count() or 1)
    with _pool(workers) as pool:
        references: dict[str, dict] = {}
        if any(m.has_intervals for m in methods) and n_resamples > 0:
            # leave-one-training-set-out reference calibrations: a training set is never scored
            # with intervals calibrated on its own runs
            # with intervals calibrated on the other training sets, but centered by the shift
            # lmscale ships (the five public ladders'), as a user's predictions are
            shift = cal.reference("loss").shift
            ref_jobs = {
                ts: pool.submit(
                    build_reference,
                    runs,
                    exclude_train_set=ts,
                    n_resamples=n_resamples,
                    seed=seed,
                    shift=shift,
                )
                for ts in runs.datasets
            }
            for ts, job in ref_jobs.items():
                references[ts] = job.result()
                if progress is not None:
                    progress(f"reference without {ts}")
        jobs = [
            (f"{fs} × {m.name}", pool.submit(_one, runs, fs, spec, m, references, n_resamples, seed))
            for fs, spec in specs.items()
            for m in methods
        ]
        rows: list[dict[str, Any]] = []
        for label, job in jobs:
            rows.append(job.result())
            if progress is not None:
                progress(label)
    return rows


class _Serial:
    """The executor interface, run in this process (one worker)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args, **kwargs):
        fut: Future = Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


def _pool(workers: int):
    return _Serial() if workers <= 1 else ProcessPoolExecutor(workers, mp_context=get_context("fork"))


def _one(runs, fs_name, spec, meth, references, n_resamples, seed) -> dict:
    study = Study(
        runs,
        spec,
        meth.loss_method,
        error_targets=ERROR_TARGETS,
        loss_law=meth.law,
        error_method=meth.error_method,
    )
    intervals = meth.has_intervals and n_resamples > 0
    loss_rows, err_rows, flops, failures, note, sources = [], [], [], 0, "", set()
    for ts in runs.datasets:
        ds = study.dataset(ts)
        lruns, eruns = study.loss_runs(ts), study.error_runs(ts)
        used = set(lruns.run_ids) | set(eruns.run_ids)
        flops.append(float(sum(f for r, f in zip(ds.run_ids, ds.column("flops")) if r in used)))
        targets = [study.target_run(ts, w) for w in TARGET_RUNS]
        points = [
            ScalePoint.make(float(ds.column("n_params")[i]), n_tokens=float(ds.column("n_tokens")[i]))
            for i in targets
        ]
        for vs in runs.val_sets:
            try:
                lf = study.loss_fit(ts, vs)
            except FitError as exc:
                failures, note = failures + 1, str(exc).split(";")[0]
                continue
            efits = {}
            if vs == ERROR_LOSS:
                for tgt in ERROR_TARGETS:
                    try:
                        efits[tgt] = study.error_fit(ts, vs, tgt)
                    except FitError as exc:
                        failures, note = failures + 1, str(exc).split(";")[0]
            own_loss = own_err = None
            centered = cal.for_fit(references[ts]["loss"] if intervals else cal.reference("loss"), lf)
            if intervals:
                lf = bootstrap_or_none(lf, n_resamples, seed) or lf
                efits = {t: bootstrap_or_none(f, n_resamples, seed + 1) or f for t, f in efits.items()}
                errs = None
                if vs == ERROR_LOSS and set(eruns.run_ids) == set(lruns.run_ids):
                    errs = {t: target_values(lruns, t) for t in ERROR_TARGETS}
                bt = backtest_arrays(
                    lruns.column("n_params"),
                    lruns.column("multiplier"),
                    lruns.loss("loss_" + vs),
                    method=meth.loss_method,
                    run_ids=lruns.run_ids,
                    n_resamples=n_resamples,
                    seed=seed,
                )
                own_loss = centered = cal.choose(bt, "loss", centered)
                if errs:
                    ebt = []
                    for t in ERROR_TARGETS:
                        ebt += backtest_arrays(
                            lruns.column("n_params"),
                            lruns.column("multiplier"),
                            lruns.loss("loss_" + vs),
                            method=meth.loss_method,
                            errors=errs[t],
                            run_ids=lruns.run_ids,
                            n_resamples=n_resamples,
                            seed=seed,
                            loss_shift=centered.shift,
                        )
                    own_err = cal.choose(ebt, "error", references[ts]["error"])
                else:
                    own_err = references[ts]["error"]
                sources.add(own_loss.source)
            for i, point in zip(targets, points):
                obs = study.observed(ts, i, "loss_" + vs)
                ivs = None
                if intervals:
                    assert own_loss is not None
                    c = cal.calibrated(lf, point, LEVELS[0], own_loss)  # one set of samples, every level
                    ivs = {lv: c.at(lv) for lv in LEVELS}
                pred = float(lf.predict(**{k: point.inputs()[k] for k in lf.law_obj.inputs}))
                pred *= float(np.exp(cal.center_shift(lf, point, centered)))
                loss_rows.append((pred, obs, ivs))
                for tgt, ef in efits.items():
                    obs_e = study.observed(ts, i, tgt)
                    eivs = None
                    if intervals:
                        assert own_err is not None
                        c = cal.calibrated(lf, point, LEVELS[0], own_err, error_fit=ef, loss_cal=centered)
                        eivs = {lv: c.at(lv) for lv in LEVELS}
                    err_rows.append((float(ef.predict(loss=pred)), obs_e, eivs))
    ls, es = _score(loss_rows), _score(err_rows)
    return {
        "method": meth.name,
        "fit_set": fs_name,
        "fit_flops": float(np.mean(flops)),
        "n_loss_predictions": len(loss_rows),
        "mean_rel_error": ls["mean"],
        "median_rel_error": ls["median"],
        "max_rel_error": ls["max"],
        "coverage_80": ls["cov80"],
        "coverage_90": ls["cov90"],
        "median_interval_width": ls["width"],
        "n_error_predictions": len(err_rows),
        "error_mean_rel_error": es["mean"],
        "error_median_rel_error": es["median"],
        "error_max_rel_error": es["max"],
        "error_coverage_80": es["cov80"],
        "error_coverage_90": es["cov90"],
        "error_median_interval_width": es["width"],
        "calibration": "+".join(sorted(sources)) if sources else "",
        "failed_fits": failures,
        "note": note,
    }


def markdown_table(rows: Sequence[dict]) -> str:
    head = (
        "| fit set | fit FLOPs | method | loss mean / median / max rel. err | loss 80% / 90% cover | "
        "90% width | error mean / max rel. err | error 80% / 90% cover | calibration | notes |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]

    def p(v, digits=2):
        if v is None or not np.isfinite(v):
            return "n/a"
        return "> 1000%" if v > 10 else f"{100 * v:.{digits}f}%"

    for r in rows:
        lines.append(
            f"| {r['fit_set']} | {r['fit_flops']:.2e} | {r['method']} | "
            f"{p(r['mean_rel_error'])} / {p(r['median_rel_error'])} / {p(r['max_rel_error'])} | "
            f"{p(r['coverage_80'], 0)} / {p(r['coverage_90'], 0)} | {p(r['median_interval_width'], 1)} | "
            f"{p(r['error_mean_rel_error'])} / {p(r['error_max_rel_error'])} | "
            f"{p(r['error_coverage_80'], 0)} / {p(r['error_coverage_90'], 0)} | {r.get('calibration') or '—'} | "
            + (f"{r['failed_fits']} fits failed: {r.get('note', '')}" if r.get("failed_fits") else "")
            + " |"
        )
    return "\n".join(lines)


def select_methods(names: Sequence[str] = ()) -> list[Method]:
    """The compared methods named (all when none is); unknown names are an error."""
    known = {m.name for m in METHODS_COMPARED}
    unknown = sorted(set(names) - known)
    if unknown:
        raise InputError(
            f"unknown method(s) {', '.join(unknown)}; known: {', '.join(m.name for m in METHODS_COMPARED)}"
        )
    return [m for m in METHODS_COMPARED if not names or m.name in names]


def n_steps(runs: RunTable, methods: Sequence[Method], n_resamples: int) -> int:
    """How many progress ticks :func:`run` makes (one per method × fit set, one per reference)."""
    n_refs = len(runs.datasets) if n_resamples > 0 and any(m.has_intervals for m in methods) else 0
    return len(methods) * len(fit_sets(runs=runs)) + n_refs
