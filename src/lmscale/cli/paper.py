"""``lmscale reproduce``, ``testbed`` and ``benchmark``: the paper's numbers from its released
measurements, the testbed itself, and the speed and accuracy benchmarks."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import click
from rich.table import Table

from lmscale.cli._common import err, fmt, format_option, labelled, method_option, out
from lmscale.cli.progress import LadderProgress, quiet_option
from lmscale.formatting import pct


@click.command()
@click.option(
    "--testbed",
    "testbed_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="The paper's testbed folder (exp_data), e.g. from `lmscale testbed download`.",
)
@click.option("--spec", default="paper-default", show_default=True, help="Fit-spec preset or a JSON file.")
@click.option("--train-set", "train_sets", multiple=True, help="Training set(s); default all.")
@click.option("--val-set", "val_sets", multiple=True, help="Validation set(s); default all 8.")
@format_option()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Write the full report (12 analyses: report.md, report.html, figures/*.png, tables/*.csv|json) "
    "into this folder instead of printing the held-out table.",
)
@click.option(
    "--split",
    default=None,
    help="Task split of the error law: 17-task, 46-task or comma-separated task names "
    "(default: the report uses 17-task; the table shows both splits).",
)
@click.option(
    "--loss-fit",
    "loss_fit",
    multiple=True,
    help="Runs that fit the loss law, e.g. 'n_params <= 5e8 and multiplier == 20' (repeat to OR); "
    "overrides the spec's.",
)
@click.option(
    "--error-fit", "error_fit", multiple=True, help="Runs that fit the error law (overrides the spec's)."
)
@click.option("--heldout", "heldout", multiple=True, help="Held-out runs (overrides the spec's).")
# the paper report keeps the authors' method by default, so that its numbers are the paper's
@method_option("Fitting method of the fits", default="paper")
@click.option("--only", multiple=True, help="Report (with --out): run only these analyses (default all).")
@quiet_option
def reproduce(
    testbed_dir, spec, train_sets, val_sets, fmt, out_dir, split, loss_fit, error_fit, heldout, method, only
):
    """Reproduce the paper's held-out predictions (Figure 1 and every training × validation set), or
    with --out, every table and figure of the paper as one report."""
    from lmscale import paper, testbed
    from lmscale.analyses.context import split_target
    from lmscale.selection import load_spec

    fit_spec = load_spec(spec).with_selections(loss_fit or None, error_fit or None, heldout or None)
    if out_dir:
        _report(testbed_dir, fit_spec, train_sets, val_sets, split or "17-task", method, only, out_dir)
        return
    if only:
        raise click.UsageError("--only chooses analyses of the report: give --out DIR with it")
    runs = testbed.load(testbed_dir)
    targets = (split_target(split),) if split else paper.ERROR_TARGETS
    with LadderProgress(1, "reproduce", transient=True, mode="quiet" if fmt == "json" else None) as bar:
        _fits, rows = paper.reproduce(runs, fit_spec, train_sets or None, val_sets or None, targets, method)
        bar.advance("held-out predictions")
    if fmt == "json":
        click.echo(json.dumps([r.summary() for r in rows], indent=1))
        return
    fig1 = paper.figure1_numbers(rows, strict=False)
    if fig1:
        t = Table(title="Figure 1 (train RedPajama, C4-eval loss, 17-task error): relative error")
        t.add_column("prediction")
        t.add_column("relative error", justify="right")
        for k, v in fig1.items():
            t.add_row(k, pct(v, 4))
        out.print(t)
    tab = Table(title=f"held-out predictions ({fit_spec.name}, method {method})")
    cols = ("train", "val set", "N", "M", "target", "predicted", "observed", "rel. err", "from true loss")
    for col in cols:
        tab.add_column(col, justify="right" if col not in ("train", "val set", "target") else "left")
    for r in rows:
        tab.add_row(
            r.train_set,
            r.val_set,
            f"{r.n_params / 1e9:.2f}B",
            f"{r.multiplier:g}",
            r.target,
            f"{r.predicted:.4f}",
            f"{r.observed:.4f}",
            pct(r.rel_error),
            "" if r.rel_error_from_true_loss is None else pct(r.rel_error_from_true_loss),
        )
    out.print(tab)


def _report(testbed_dir, fit_spec, train_sets, val_sets, split, method, only, out_dir):
    from lmscale.analyses.context import Context, Setting
    from lmscale.paper_constants import PAPER_VAL_SET
    from lmscale.report.writer import ANALYSES, build_report

    setting = Setting(
        spec=fit_spec,
        val_set=val_sets[0] if val_sets else PAPER_VAL_SET,
        split=split,
        train_sets=tuple(train_sets) or None,
        method=method,
        val_sets=tuple(val_sets) or None,
    )
    ctx = Context.from_testbed(testbed_dir, setting)
    n = len(only or ANALYSES)
    with LadderProgress(2 * n, "reproduce", transient=True) as bar:
        built = build_report(ctx, out_dir, only or None, progress=bar.advance)
    out.print(
        f"wrote {built.path} and {Path(out_dir) / 'report.html'}: {len(built.analyses)} analyses in "
        f"{built.seconds:.1f} s (figures in {Path(out_dir) / 'figures'}, tables in {Path(out_dir) / 'tables'})"
    )
    for k, why in built.skipped.items():
        out.print(labelled("skipped", "yellow", f"{k}: {why}"), soft_wrap=True)
    fig1 = next((a for a in built.analyses if a.key == "figure1"), None)
    if fig1 is not None:
        out.print(fig1.text)


# -------------------------------------------------------------------------------------- testbed
@click.group()
def testbed():
    """The paper's released measurements."""


@testbed.command("download")
@click.option("--dest", required=True, type=click.Path(file_okay=False), help="Folder to download into.")
@click.option(
    "--base-url",
    default=None,
    help="Mirror of the release's exp_data folder (default: the authors' repository at the pinned commit).",
)
def testbed_download(dest, base_url):
    """Fetch the pinned public release into DEST/exp_data, verifying every file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from lmscale import testbed as tb

    kwargs = {"base_url": base_url} if base_url else {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("downloading testbed", total=len(tb.manifest()))
        root = tb.download(
            dest, progress=lambda name, done, total: bar.update(task, completed=done), **kwargs
        )
    runs = tb.load(root)
    out.print(
        f"testbed ready at {root}: {len(runs)} runs, {len(runs.val_sets)} validation losses, "
        f"{len(runs.tasks)} tasks (pinned commit {tb.UPSTREAM_COMMIT[:12]}, all files verified)"
    )


@testbed.command("tasks")
@click.option("--testbed", "testbed_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--threshold", default=10.0, show_default=True, help="Points above chance.")
@click.option(
    "--reference-n-params", default=153677376.0, show_default=True, help="Model size the rule looks at."
)
def testbed_tasks(testbed_dir, threshold, reference_n_params):
    """The above-chance task subset (the paper's 17 tasks at the defaults)."""
    from lmscale import tasks
    from lmscale import testbed as tb

    chosen = tasks.above_chance_tasks(
        tb.load(testbed_dir),
        tb.load_task_metadata(testbed_dir),
        threshold_points=threshold,
        reference_n_params=reference_n_params,
    )
    out.print(
        f"{len(chosen)} tasks at >= {threshold:g} points above chance for N = {reference_n_params:.6g}:"
    )
    out.print(", ".join(chosen))


# ------------------------------------------------------------------------------------ benchmark
@click.group()
def benchmark():
    """Speed and held-out accuracy benchmarks on the paper's testbed."""


@benchmark.command("speed")
@click.option("--testbed", "testbed_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--repeats",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Timing repeats (best is kept).",
)
@format_option()
def benchmark_speed(testbed_dir, repeats, fmt):
    """The paper's 128-start LM against the variable-projection fast path, and a 1000-resample bootstrap."""
    from lmscale import testbed as tb
    from lmscale.benchmark import speed

    res = speed.run(tb.load(testbed_dir), repeats=repeats)
    if fmt == "json":
        click.echo(json.dumps(res, indent=1))
        return
    tab = Table(title="fitting speed (24 loss-law fits of the paper default, best of repeats)")
    tab.add_column("measure")
    tab.add_column("value", justify="right")
    for k, v in res.items():
        tab.add_row(k, _fmt4(v))
    out.print(tab)


def _fmt4(v) -> str:
    return fmt(v, 4)


@benchmark.command("accuracy")
@click.option("--testbed", "testbed_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--ladder",
    "ladder_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="Score every method on this ladder instead (repeatable): a run table, a testbed exp_data "
    "folder or Epoch's Chinchilla CSV; splits by size and by compute, intervals calibrated leave one lab out "
    "(the shipped reference when only one lab is given; the table says which).",
)
@click.option(
    "--references",
    type=click.Choice(["lab-out", "shipped", "none"]),
    default="lab-out",
    show_default=True,
    help="With --ladder: the reference calibration behind the intervals.",
)
@click.option(
    "--resamples",
    default=100,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Bootstrap resamples per fit (intervals; 0: errors only).",
)
@click.option("--method", "methods", multiple=True, help="Only these methods (default all).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="With --ladder: also draw each held-out run's error and the default's 90% interval, one "
    "panel per ladder, into this file (.png, .pdf or .svg; the JSON then lists every prediction "
    "under 'points').",
)
@format_option("table", "json", "markdown")
def benchmark_accuracy(testbed_dir, ladder_paths, references, resamples, methods, plot, fmt):
    """Held-out relative error and interval coverage of every method × fit set (--testbed), or of
    every method × ladder × split (--ladder, repeatable)."""
    from rich.progress import Progress

    from lmscale import testbed as tb
    from lmscale.benchmark import accuracy

    if plot and (not ladder_paths or references == "none" or resamples == 0):
        raise click.UsageError(
            "--plot draws the ladder benchmark's predictions with their intervals: give --ladder PATH, "
            "with intervals (not --references none or --resamples 0)"
        )
    if ladder_paths:
        _ladders_accuracy(ladder_paths, references, resamples, methods, fmt, plot)
        return
    if testbed_dir is None:
        raise click.UsageError("give --testbed DIR (the paper's fit sets) or --ladder PATH (repeatable)")
    chosen = accuracy.select_methods(methods)
    runs = tb.load(testbed_dir)
    t0 = time.perf_counter()
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("accuracy benchmark", total=accuracy.n_steps(runs, chosen, resamples))
        rows = accuracy.run(runs, methods=chosen, n_resamples=resamples, progress=lambda _: bar.advance(task))
    err.print(f"{len(rows)} rows in {time.perf_counter() - t0:.0f} s")
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if fmt == "markdown":
        click.echo(accuracy.markdown_table(rows))
        return
    tab = Table(
        title="held-out accuracy (48 loss + 12 chained-error predictions per row); calibrated intervals"
    )
    cols = {
        "fit set": ("fit_set", None),
        "fit FLOPs": ("fit_flops", None),
        "method": ("method", None),
        "loss mean": ("mean_rel_error", 2),
        "median": ("median_rel_error", 2),
        "max": ("max_rel_error", 2),
        "cov 80": ("coverage_80", 0),
        "cov 90": ("coverage_90", 0),
        "width 90": ("median_interval_width", 1),
        "error mean": ("error_mean_rel_error", 2),
        "err cov 80": ("error_coverage_80", 0),
        "err cov 90": ("error_coverage_90", 0),
    }
    for col in cols:
        tab.add_column(col)
    for r in rows:
        cells = []
        for key, digits in cols.values():
            v = r[key]
            cells.append(f"{v:.2e}" if key == "fit_flops" else str(v) if digits is None else pct(v, digits))
        tab.add_row(*cells)
    out.print(tab)


def _ladders_accuracy(paths, references, resamples, methods, fmt, plot=None) -> None:
    from rich.progress import Progress

    from lmscale.benchmark import ladder_tables, ladders

    chosen = [m for m in ladders.METHODS if not methods or m.name in methods]
    unknown = sorted(set(methods) - {m.name for m in ladders.METHODS})
    if unknown:
        raise click.UsageError(
            f"unknown method(s) {', '.join(unknown)}; known: {', '.join(m.name for m in ladders.METHODS)}"
        )
    lads = [lad for p in paths for lad in ladders.load(p)]
    for problem in ladders.check_ladders(lads):
        err.print(labelled("warning:", "yellow", problem), soft_wrap=True)
    t0 = time.perf_counter()
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("ladder benchmark", total=None)
        rows = ladders.run(
            lads,
            chosen,
            n_resamples=resamples,
            references=references,
            progress=lambda _: bar.advance(task),
            keep_points=plot is not None,
        )
    err.print(f"{len(rows)} rows ({len(lads)} ladders) in {time.perf_counter() - t0:.0f} s")
    if fmt == "json":
        # strict JSON: a missing number (no intervals for a method) is null, never NaN
        clean = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
            for r in rows
        ]
        click.echo(json.dumps(clean, indent=1))
    else:
        for q in ladder_tables.quantities(rows):
            title = "loss" if q == "loss" else f"chained {q}"
            click.echo(f"\n## {title}: every method\n\n" + ladder_tables.markdown_table(rows, q))
            click.echo(f"\n## {title}: default against the paper's method\n")
            click.echo(ladder_tables.summary_markdown(rows, q))
            click.echo("\n" + ladder_tables.per_ladder_markdown(rows, q))
        click.echo("\n## goals\n\n" + ladder_tables.goals_markdown(rows))
    if plot is not None:  # after the tables: a figure that cannot be written loses no result
        from lmscale.report import ladder_figure

        err.print(f"figure: {ladder_figure.save(rows, plot)}")


COMMANDS = (reproduce, testbed, benchmark)
