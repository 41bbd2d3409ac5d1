"""The whole loop on our own ladder: train (or reuse) → evaluate (validation losses and the
built-in task suite) → fit the loss and error laws on the smaller runs → predict the held-out
largest runs → report predicted vs observed, with figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale.analyses.context import Analysis, Context, Setting, md_escape, md_table, size_label
from lmscale.calibration import describe
from lmscale.errors import InputError
from lmscale.evaluate.builtin import builtin_tasks, write_suite
from lmscale.fit.method import check_method
from lmscale.formatting import pct
from lmscale.ladder_eval import ladder_eval
from lmscale.ladder_run import run_ladder
from lmscale.predict import ScalePoint
from lmscale.report.style import target_title
from lmscale.report.writer import run_analyses, write_report
from lmscale.run_table import RunTable
from lmscale.selection import FitSpec, Selection
from lmscale.train.data import split_documents
from lmscale.train.ladder import plan


@dataclass
class LoopResult:
    runs_path: Path
    report_path: Path
    heldout: pd.DataFrame


def holdout_spec(runs: RunTable) -> FitSpec:
    """Fit both laws on every run smaller than the largest model; hold out the largest model's runs."""
    n = np.unique(runs.column("n_params").astype(float))
    if len(n) < 3:
        raise InputError(
            f"the ladder has {len(n)} model size(s); the loop needs at least 3 (2 to fit, 1 to predict)"
        )
    cut = f"{(n[-1] + n[-2]) / 2:.10g}"
    small = Selection.parse(f"n_params < {cut}")
    return FitSpec(
        "ladder-holdout",
        small,
        small,
        Selection.parse(f"n_params > {cut}"),
        "laws fitted on all runs below the largest size; the largest size is predicted",
    )


def custom_spec(runs: RunTable, fit_runs: Sequence[str] = (), heldout: Sequence[str] = ()) -> FitSpec | None:
    """A fit spec from selection text: ``fit_runs`` fit both laws, ``heldout`` are predicted; the one
    not given comes from :func:`holdout_spec`. None when neither is given (the default split)."""
    if not fit_runs and not heldout:
        return None
    base = holdout_spec(runs) if not (fit_runs and heldout) else None
    fit_sel = Selection.parse(list(fit_runs)) if fit_runs else base.loss_fit  # type: ignore[union-attr]
    held_sel = Selection.parse(list(heldout)) if heldout else base.heldout  # type: ignore[union-attr]
    return FitSpec("custom", fit_sel, fit_sel, held_sel)


def check_loop(cfg, method: str) -> None:
    """What the loop needs after its (possibly hours of) training, checked before the first step:
    a known fitting method, at least three model sizes (two to fit, one to predict), and a device
    that exists."""
    check_method(method)
    sizes = {r.n_params for r in plan(cfg)}
    if len(sizes) < 3:
        raise InputError(
            f"ladder {cfg.name!r} has {len(sizes)} model size(s); the loop needs at least 3 "
            "(two to fit the laws on, one to predict)"
        )


def run_loop(
    cfg,
    out_dir: str | Path,
    *,
    device: str | None = None,
    method: str = "default",
    n_items: int = 200,
    on_run: Callable | None = None,
    on_step: Callable | None = None,
    on_eval: Callable[[str], None] | None = None,
) -> LoopResult:
    check_loop(cfg, method)  # everything that would fail after training fails now, before it
    out = Path(out_dir)
    runs_path = run_ladder(cfg, out, device=device, on_run=on_run, on_step=on_step)
    _train, held_text, _h = split_documents(cfg.corpus)
    tasks = builtin_tasks(write_suite(held_text, out / "tasks", n_items=n_items, seed=cfg.seed))
    runs_path = ladder_eval(out, tasks, progress=on_eval, skip_done=True, device=device)
    runs = RunTable.read(runs_path)
    report, df = report_runs(
        runs, cfg.corpus.name, ",".join(t.label for t in tasks), out / "report", method=method
    )
    return LoopResult(runs_path, report, df)


def report_runs(
    runs: RunTable,
    val_set: str,
    split: str | None,
    out_dir: str | Path,
    *,
    method: str = "default",
    spec: FitSpec | None = None,
    level: float = 0.9,
) -> tuple[Path, pd.DataFrame]:
    """Fit on the smaller runs of a run table (or ``spec``'s), predict the held-out ones, and write
    the report into ``out_dir``; returns (report.md path, held-out predictions). ``split`` None (or a
    table without accuracies): a loss-only report, the error law and its analyses left out."""

    spec = spec or holdout_spec(runs)
    if not runs.tasks:
        split = None  # a loss-only table: nothing for the error law
    if len(runs.datasets) != 1:
        raise InputError(f"expected the runs of one training set, found {', '.join(runs.datasets)}")
    ctx = Context(runs, Setting(spec=spec, val_set=val_set, split=split or "", method=method))
    for ts in ctx.train_sets:
        both = sorted(
            set(ctx.heldout(ts).run_ids) & (set(ctx.loss_runs(ts).run_ids) | set(ctx.error_runs(ts).run_ids))
        )
        if both:
            raise InputError(
                f"{len(both)} held-out run(s) are also fit runs ({', '.join(both[:3])}"
                f"{', …' if len(both) > 3 else ''}): their 'held-out' error would measure nothing; "
                "hold out runs the laws do not see"
            )
    rows = [r for ts in ctx.train_sets for r in ctx.study.heldout(ts, ctx.val_set)]
    if not rows:
        raise InputError(f"fit spec {spec.name!r} holds out no runs: nothing to predict")
    df = pd.DataFrame([r.to_dict() for r in rows])
    calibrated = [
        ctx.study.interval(
            r.train_set, r.val_set, r.target, ScalePoint.make(r.n_params, multiplier=r.multiplier), level
        )
        for r in rows
    ]
    df["interval_level"] = level
    df["interval_low"] = [c.interval.low for c in calibrated]
    df["interval_high"] = [c.interval.high for c in calibrated]
    df["inside_interval"] = [c.interval.contains(r.observed) for c, r in zip(calibrated, rows)]
    sources = sorted({describe(c.calibration) for c in calibrated})
    cells = [
        (
            r.run_id,
            size_label(r.n_params),
            f"{r.multiplier:g}",
            target_title(r.target),
            f"{r.predicted:.4f}",
            f"[{r.interval_low:.4f}, {r.interval_high:.4f}]",
            f"{r.observed:.4f}",
            pct(r.rel_error),
        )
        for r in df.itertuples()
    ]
    loss_err = df[df.target == "loss"].rel_error
    err_err = df[df.target != "loss"].rel_error
    text = (
        f"Laws fitted ({method}) on the {len(spec.loss_fit.apply(runs))} runs of `{spec.loss_fit}`; the "
        f"{len(spec.heldout.apply(runs))} runs of `{spec.heldout}` are predicted. Mean relative error: loss "
        f"`{ctx.val_set}` {pct(loss_err.mean())}"
        + (
            f", chained error ({md_escape(split)}) {pct(err_err.mean())}. "
            if split
            else " (loss only: no task accuracies). "
        )
        + f"{df.inside_interval.sum()} of {len(df)} observed values lie inside their {100 * level:g}% intervals "
        "("
        + "; ".join(sources)
        + ").\n\n"
        + md_table(
            cells,
            ["run", "N", "M", "target", "predicted", f"{100 * level:g}% interval", "observed", "rel. error"],
        )
    )
    heldout = Analysis(
        "heldout",
        "Held-out predictions",
        text,
        {"heldout": df},
        numbers={
            "loss_mean_rel_error": float(loss_err.mean()),
            "error_mean_rel_error": float(err_err.mean()),
        },
    )
    analyses, skipped = run_analyses(ctx, ["figure1", "table6", "heatmaps"])
    return write_report(
        ctx,
        out_dir,
        [heldout, *analyses],
        skipped,
        title="lmscale: held-out predictions",
        source_label="Runs",
    ), df
