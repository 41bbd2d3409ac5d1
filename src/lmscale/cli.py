"""The ``lmscale`` command line. Each sub-command parses its arguments, calls one library
function, prints a rich summary and writes at most one file. Errors are one clear message on
stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lmscale.errors import LmscaleError

# a pipe or a file gets wide tables rather than rich's 80-column default
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


class _Group(click.Group):
    """Turns lmscale's own errors into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LmscaleError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
            sys.exit(2)
        except OSError as exc:  # permissions, a file where a folder should be, a full disk …
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            err.print(
                f"[bold red]error:[/] cannot read or write{where}: {exc.strerror or exc}",
                markup=True,
                soft_wrap=True,
            )
            sys.exit(2)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)


def load_runs(path: str):
    """A run-table file (.csv/.jsonl/.parquet) or a testbed folder."""
    from lmscale import testbed
    from lmscale.records import RunTable

    p = Path(path)
    return testbed.load(p) if p.is_dir() else RunTable.read(p)


def _fmt(v, digits: int = 6) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lmscale")
def cli():
    """Predict the loss and downstream error of large, over-trained language-model runs from small ones."""


# ------------------------------------------------------------------------------------------ fit
@cli.command()
@click.argument("runs", type=click.Path(exists=True, dir_okay=True))
@click.option("--law", default="overtrain", show_default=True, help="overtrain, chinchilla or error.")
@click.option(
    "--target",
    required=True,
    help="loss_<set>, error_46, error_17, error:<split or comma-separated tasks>, error_<task> or acc_<task>.",
)
@click.option(
    "--where",
    "where",
    multiple=True,
    help="Run selection, e.g. 'n_params <= 5e8 and multiplier == 20'. Repeat to OR several clauses.",
)
@click.option("--dataset", help="Shorthand for --where 'dataset == NAME' (AND-ed with --where).")
@click.option("--loss-column", help="Error law: the validation loss it maps from (e.g. loss_c4_val).")
@click.option(
    "--method",
    default="default",
    show_default=True,
    help="default (rel-ls-size for loss laws, varpro for the error law; chosen by the accuracy benchmark), "
    "paper (the authors' LM on raw least squares), varpro (exact least squares, fast), rel-ls, "
    "rel-ls-size, ls-log, huber-log.",
)
@click.option(
    "--huber-delta",
    default=1e-3,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Huber threshold on log residuals.",
)
@click.option(
    "--bootstrap",
    "n_boot",
    default=0,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Bootstrap resamples over runs (intervals for parameters and predictions).",
)
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the bootstrap."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the fit to this JSON file.")
def fit(runs, law, target, where, dataset, loss_column, method, huber_delta, n_boot, seed, output):
    """Fit a scaling law to RUNS (a run table or a testbed folder)."""
    from lmscale.fit.tables import fit_table
    from lmscale.selection import Selection

    table = load_runs(runs)
    if where:
        table = Selection.parse(list(where)).apply(table)
    if dataset:
        table = Selection.parse(f"dataset == {dataset}").apply(table)
    result = fit_table(table, law, target, method=method, loss_column=loss_column, huber_delta=huber_delta)
    if n_boot:
        from lmscale.calibration import calibrate_fit, describe, of_fit
        from lmscale.fit.bootstrap import bootstrap

        result = calibrate_fit(bootstrap(result, n_boot, seed), min(n_boot, 200), seed)
    _print_fit(result)
    if n_boot:
        out.print(describe(of_fit(result, "error" if result.law == "error" else "loss")))
    if output:
        result.save(output)
        out.print(f"wrote {output}")


def _print_fit(result):
    from lmscale.laws.overtrain import optimal_multiplier, to_paper_form

    tab = Table(
        title=f"{result.law} law fitted to {result.target} ({len(result.y)} runs, method {result.method})"
    )
    tab.add_column("parameter")
    tab.add_column("value", justify="right")
    ci = {}
    if result.bootstrap:
        from lmscale.fit.bootstrap import parameter_intervals

        ci = parameter_intervals(result, 0.9)
        tab.add_column("90% bootstrap interval", justify="right")
    for k, v in result.params.items():
        tab.add_row(k, _fmt(v, 8), *([f"[{_fmt(ci[k][0], 4)}, {_fmt(ci[k][1], 4)}]"] if ci else []))
    if result.law == "overtrain":
        for k, v in to_paper_form(result.params).items():
            tab.add_row(f"paper form {k}", _fmt(v, 6))
        tab.add_row("M* (compute-optimal)", _fmt(optimal_multiplier(result.params), 4))
    out.print(tab)
    d = result.diagnostics
    out.print(
        f"starts converged {d.get('n_converged')}/{d.get('n_starts')}, at the optimum {d.get('n_at_optimum')}, "
        f"parameter spread {_fmt(d.get('param_spread'), 2)}, RMSE {_fmt(d.get('rmse'), 4)}, "
        f"condition {_fmt(d.get('condition_number'), 3)}"
        + (f", at bounds: {', '.join(d['at_bounds'])}" if d.get("at_bounds") else "")
    )
    if result.bootstrap:
        out.print(
            f"bootstrap: {d.get('bootstrap_n')} usable resamples, {d.get('bootstrap_n_degenerate')} dropped "
            "(too few distinct runs to identify the law)"
        )


# -------------------------------------------------------------------------------------- predict
@cli.command()
@click.argument("fit_file", type=click.Path(dir_okay=False))
@click.option("--n-params", type=float, help="N, parameters.")
@click.option("--tokens", type=float, help="D, training tokens.")
@click.option("--multiplier", type=float, help="M = D/N (instead of --tokens).")
@click.option("--loss", type=float, help="Error-law fits: the validation loss to map.")
@click.option(
    "--error-fit", type=click.Path(dir_okay=False), help="Chain a loss prediction through this error fit."
)
@click.option(
    "--level",
    default=0.9,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Interval level (fits saved with --bootstrap).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def predict(fit_file, n_params, tokens, multiplier, loss, error_fit, level, fmt):
    """Predict from a saved fit: loss at (N, D) or (N, M), optionally chained to error."""
    from lmscale.errors import InputError
    from lmscale.fit.result import FitResult
    from lmscale.predict import ScalePoint, predict_chain

    fit_res = FitResult.load(fit_file)
    if fit_res.law == "error":
        if loss is None:
            raise InputError(f"{fit_file} is an error-law fit: give --loss")
        if not (math.isfinite(loss) and loss > 0):
            raise InputError(f"--loss must be a positive finite validation loss (nats), got {loss!r}")
        result = {"loss": loss, "error": float(fit_res.predict(loss=loss))}
    else:
        if n_params is None:
            raise InputError("give --n-params and one of --tokens or --multiplier")
        point = ScalePoint.make(n_params, multiplier=multiplier, n_tokens=tokens)
        efit = FitResult.load(error_fit) if error_fit else None
        pred = predict_chain(fit_res, efit, point)
        result = {**point.inputs(), "loss": pred.loss, "error": pred.error, "target": fit_res.target}
        result.update(_intervals(fit_res, efit, point, level))
        from lmscale.predict import extrapolation_warnings

        result["warnings"] = extrapolation_warnings(fit_res, point)
    if fmt == "json":
        click.echo(json.dumps(result, indent=1))
        return
    tab = Table(title=f"prediction from {fit_file}")
    tab.add_column("quantity")
    tab.add_column("value", justify="right")
    notes = ("warnings", "loss_interval_method", "error_interval_method")
    for k, v in result.items():
        if isinstance(v, list) and k not in notes:
            tab.add_row(f"{k} ({100 * level:g}%)", f"[{_fmt(v[0], 5)}, {_fmt(v[1], 5)}]")
        elif v is not None and k not in notes:
            tab.add_row(k, _fmt(v, 6))
    out.print(tab)
    for k in notes[1:]:
        if result.get(k):
            out.print(f"{k.split('_')[0]}: {result[k]}")
    for w in result.get("warnings", []):
        out.print(f"[yellow]warning:[/] {w}")
    if "loss_interval" not in result and fit_res.law != "error":
        out.print("no intervals: refit with --bootstrap N to get them")


def _intervals(loss_fit, error_fit, point, level) -> dict:
    """Calibrated intervals (the default), and the bootstrap-only ones beside them, for a saved fit."""
    if not loss_fit.bootstrap:
        return {}
    from lmscale import calibration as cal
    from lmscale.predict import predict_with_intervals

    lc = cal.of_fit(loss_fit, "loss")
    li = cal.calibrated(loss_fit, point, level, lc).interval
    res = {"loss_interval": [li.low, li.high], "loss_interval_method": cal.describe(lc)}
    up = predict_with_intervals(loss_fit, error_fit, point, level=level)
    res["loss_bootstrap_interval"] = [up.loss_prediction.low, up.loss_prediction.high]
    if error_fit is not None:
        ec = cal.of_fit(error_fit, "error")
        ei = cal.calibrated(loss_fit, point, level, ec, error_fit=error_fit).interval
        res.update(error_interval=[ei.low, ei.high], error_interval_method=cal.describe(ec))
        if up.error_prediction is not None:
            res["error_bootstrap_interval"] = [up.error_prediction.low, up.error_prediction.high]
    return res


# ------------------------------------------------------------------------------------- backtest
@cli.command()
@click.argument("runs", type=click.Path(exists=True, dir_okay=True))
@click.option("--target", required=True, help="loss_<set>, or an error target chained through --loss-column.")
@click.option(
    "--loss-column", help="Error targets: the validation loss they are chained through (e.g. loss_c4_val)."
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    help="Fitting method(s) to compare (repeatable; default: default and paper).",
)
@click.option("--where", "where", multiple=True, help="Only these runs (as for fit).")
@click.option(
    "--bootstrap",
    "n_boot",
    default=200,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Bootstrap resamples per origin (the spread the intervals are calibrated with).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="backtest",
    show_default=True,
    help="Folder for backtest.csv, backtest_summary.csv and backtest.png.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def backtest(runs, target, loss_column, methods, where, n_boot, out_dir, fmt):
    """Rolling-origin backtest on your own ladder: fit on the smaller runs (by size and by compute),
    predict the larger ones, and see the error grow with the extrapolation distance."""
    from lmscale.backtest import backtest as run_backtest
    from lmscale.calibration import choose, describe
    from lmscale.report.writer import save_figures
    from lmscale.selection import Selection

    table = load_runs(runs)
    if where:
        table = Selection.parse(list(where)).apply(table)
    res = run_backtest(
        table,
        target,
        methods=tuple(methods) or ("default", "paper"),
        loss_column=loss_column,
        n_resamples=n_boot,
    )
    summary = res.summary()
    folder = Path(out_dir)
    frame = res.frame()
    paths = save_figures(
        folder, {"backtest.csv": frame, "backtest_summary.csv": summary}, _backtest_figures(frame, target)
    )
    if fmt == "json":
        click.echo(
            json.dumps(
                {"summary": json.loads(summary.to_json(orient="records")), "files": [str(p) for p in paths]},
                indent=1,
            )
        )
        return
    tab = Table(
        title=f"backtest of {target} on {runs}: relative error by compute extrapolation (C ÷ largest fitted)"
    )
    for col in ("method", "quantity", "C factor", "predictions", "mean", "median", "max"):
        tab.add_column(col, justify="left" if col in ("method", "quantity", "C factor") else "right")
    for r in summary.itertuples():
        tab.add_row(
            r.method,
            r.quantity,
            r.c_factor_bin,
            str(r.n),
            f"{100 * r.mean_rel_error:.2f}%",
            f"{100 * r.median_rel_error:.2f}%",
            f"{100 * r.max_rel_error:.2f}%",
        )
    out.print(tab)
    first = res.points[0].method
    out.print(
        f"{first}: " + describe(choose([p for p in res.points if p.method == first], res.points[0].quantity))
    )
    out.print("wrote " + ", ".join(str(p) for p in paths))


def _backtest_figures(frame, target):
    from lmscale.report.figures import plot_backtest

    return plot_backtest(frame, f"Backtest of {target}: error vs extrapolation")


# ----------------------------------------------------------------------------------------- plan
@cli.command("plan")
@click.option("--target-params", type=click.FloatRange(min=0, min_open=True), required=True, help="Target N.")
@click.option("--target-multiplier", type=click.FloatRange(min=0, min_open=True), help="Target M = D/N.")
@click.option("--target-tokens", type=click.FloatRange(min=0, min_open=True), help="Target D (instead of M).")
@click.option(
    "--evidence",
    "evidence",
    required=True,
    multiple=True,
    type=click.Path(exists=True),
    help="A testbed folder or a run table whose runs are backtested (e.g. ../shared/testbed/exp_data); "
    "repeat to combine (the testbed and your own runs).",
)
@click.option(
    "--allowed-sizes", help="Only these model sizes, comma-separated N (e.g. 1.06e7,7.89e7,1.54e8)."
)
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), help="Most FLOPs the ladder may cost.")
@click.option("--max-runs", type=click.IntRange(min=5), help="Most runs in the ladder.")
@click.option(
    "--mfu",
    default=0.4,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Model FLOPs utilisation for GPU-hours (H100 bf16 peak).",
)
@click.option("--method", default="default", show_default=True, help="Fitting method of the loss law.")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Also write plan.json and plan.png here."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def plan_cmd(
    target_params,
    target_multiplier,
    target_tokens,
    evidence,
    allowed_sizes,
    budget,
    max_runs,
    mfu,
    method,
    out_dir,
    fmt,
):
    """Propose a ladder for a target run: cost and the expected error of its prediction, from backtests of the evidence."""
    from lmscale.errors import InputError
    from lmscale.plan import combine, plan
    from lmscale.predict import ScalePoint

    point = ScalePoint.make(target_params, multiplier=target_multiplier, n_tokens=target_tokens)
    sizes = None
    if allowed_sizes is not None:
        try:
            sizes = [float(v) for v in allowed_sizes.split(",") if v.strip()]
        except ValueError:
            raise InputError(
                f"--allowed-sizes must be comma-separated numbers, got {allowed_sizes!r}"
            ) from None
    p = plan(
        combine([load_runs(e) for e in evidence]),
        point,
        budget_flops=budget,
        max_runs=max_runs,
        method=method,
        allowed_sizes=sizes,
    )
    picks = [{"choice": k, **p.candidates[i].to_dict(mfu)} for k, i in p.picks.items()]
    payload = {
        "target": point.inputs(),
        "budget_flops": budget,
        "evidence": p.evidence,
        "n_candidates": len(p.candidates),
        "selection_bias": p.selection_bias,
        "proposals": picks,
    }
    if out_dir:
        from lmscale._io import atomic_write_text
        from lmscale.report.figures import plot_plan
        from lmscale.report.writer import save_figures

        save_figures(out_dir, {}, plot_plan(p))
        atomic_write_text(Path(out_dir) / "plan.json", json.dumps(payload, indent=1))
    if fmt == "json":
        click.echo(json.dumps(payload, indent=1))
        return
    tab = Table(
        title=f"ladders for N = {point.n_params:.3g}, M = {point.multiplier:g} ({len(p.candidates)} candidates"
        f"{f', budget {budget:.2g} FLOPs' if budget else ''})"
    )
    for col in (
        "choice",
        "sizes",
        "M",
        "runs",
        "FLOPs",
        f"GPU-h @ {mfu:g} MFU",
        "expected error",
        "90% range",
    ):
        tab.add_column(col, justify="left" if col in ("choice", "sizes", "M") else "right")
    for r in picks:
        tab.add_row(
            r["choice"],
            ", ".join(f"{n / 1e9:.3g}B" for n in r["sizes"]),
            ", ".join(f"{m:g}" for m in r["multipliers"]),
            str(r["n_runs"]),
            f"{r['flops']:.2e}",
            f"{r['gpu_hours']:.1f}",
            f"{100 * r['expected_rel_error']:.2f}%",
            f"{100 * r['expected_interval'][0]:.2f}–{100 * r['expected_interval'][1]:.2f}%",
        )
    out.print(tab)
    out.print(
        "expected error of the target's loss prediction: backtests of each candidate on the evidence, scaled "
        "to the target's extrapolation distance; the proposals' upper ends are raised "
        f"{p.selection_bias:.2f}× for having been picked as the best-looking (nested over evidence training sets)"
    )


# ------------------------------------------------------------------------------------ reproduce
@cli.command()
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
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Write the full report (12 analyses: report.md, report.html, figures/*.png, tables/*.csv|json) "
    "into this folder instead of printing the held-out table.",
)
@click.option(
    "--split",
    default="17-task",
    show_default=True,
    help="Report: task split of the error law: 17-task, 46-task or comma-separated task names.",
)
@click.option(
    "--loss-fit",
    "loss_fit",
    multiple=True,
    help="Report: runs that fit the loss law, e.g. 'n_params <= 5e8 and multiplier == 20' (repeat to OR); "
    "overrides the spec's.",
)
@click.option(
    "--error-fit",
    "error_fit",
    multiple=True,
    help="Report: runs that fit the error law (overrides the spec's).",
)
@click.option("--heldout", "heldout", multiple=True, help="Report: held-out runs (overrides the spec's).")
@click.option(
    "--method",
    default="paper",
    show_default=True,
    help="Report: fitting method of the headline fits (paper, default, varpro, rel-ls, rel-ls-size, ls-log, huber-log).",
)
@click.option("--only", multiple=True, help="Report: run only these analyses (default all).")
def reproduce(
    testbed_dir, spec, train_sets, val_sets, fmt, out_dir, split, loss_fit, error_fit, heldout, method, only
):
    """Reproduce the paper's held-out predictions (Figure 1 and every training × validation set), or
    with --out, every table and figure of the paper as one report."""
    from lmscale import paper, testbed

    runs = testbed.load(testbed_dir)
    fit_spec = _load_spec(spec)
    if loss_fit or error_fit or heldout:
        from dataclasses import replace

        from lmscale.selection import Selection

        fit_spec = replace(
            fit_spec,
            name=fit_spec.name + " (modified)",
            loss_fit=Selection.parse(list(loss_fit)) if loss_fit else fit_spec.loss_fit,
            error_fit=Selection.parse(list(error_fit)) if error_fit else fit_spec.error_fit,
            heldout=Selection.parse(list(heldout)) if heldout else fit_spec.heldout,
        )
    if out_dir:
        _report(runs, testbed_dir, fit_spec, train_sets, val_sets, split, method, only, out_dir)
        return
    _fits, rows = paper.reproduce(runs, fit_spec, train_sets or None, val_sets or None)
    if fmt == "json":
        keys = (
            "train_set",
            "val_set",
            "n_params",
            "multiplier",
            "target",
            "predicted",
            "observed",
            "rel_error",
            "run_id",
            "predicted_from_true_loss",
            "rel_error_from_true_loss",
            "used_in_error_fit",
        )
        click.echo(json.dumps([{k: r.to_dict()[k] for k in keys} for r in rows], indent=1))
        return
    try:
        fig1 = paper.figure1_numbers(rows)
    except LmscaleError:
        fig1 = {}
    if fig1:
        t = Table(title="Figure 1 (train RedPajama, C4-eval loss, 17-task error): relative error")
        t.add_column("prediction")
        t.add_column("relative error", justify="right")
        for k, v in fig1.items():
            t.add_row(k, f"{100 * v:.4f}%")
        out.print(t)
    tab = Table(title=f"held-out predictions ({fit_spec.name})")
    for col in (
        "train",
        "val set",
        "N",
        "M",
        "target",
        "predicted",
        "observed",
        "rel. err",
        "from true loss",
    ):
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
            f"{100 * r.rel_error:.2f}%",
            "" if r.rel_error_from_true_loss is None else f"{100 * r.rel_error_from_true_loss:.2f}%",
        )
    out.print(tab)


def _report(runs, testbed_dir, fit_spec, train_sets, val_sets, split, method, only, out_dir):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from lmscale import testbed
    from lmscale.analyses.context import Context, Setting
    from lmscale.fit.core import ALIASES, METHODS
    from lmscale.report.writer import ANALYSES, build_report

    if method not in METHODS and method not in ALIASES:
        from lmscale.errors import InputError

        raise InputError(f"unknown fitting method {method!r}; known: default, {', '.join(METHODS)}")
    setting = Setting(
        spec=fit_spec,
        val_set=val_sets[0] if val_sets else "c4_val",
        split=split,
        train_sets=tuple(train_sets) or None,
        method=method,
        val_sets=tuple(val_sets) or None,
    )
    try:
        metadata = testbed.load_task_metadata(testbed_dir)
    except LmscaleError:
        metadata = None
    grid = Path(testbed_dir) / "grid.json"
    ctx = Context(runs, setting, metadata=metadata, grid_path=grid if grid.is_file() else None)
    n = len(only or ANALYSES)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task("analyses", total=2 * n)
        path, analyses, skipped, seconds = build_report(
            ctx, out_dir, only or None, progress=lambda k: bar.update(task, advance=1, description=k)
        )
    out.print(
        f"wrote {path} and {Path(out_dir) / 'report.html'}: {len(analyses)} analyses in {seconds:.1f} s "
        f"(figures in {Path(out_dir) / 'figures'}, tables in {Path(out_dir) / 'tables'})"
    )
    for k, why in skipped.items():
        out.print(f"[yellow]skipped {k}:[/] {why}")
    fig1 = next((a for a in analyses if a.key == "figure1"), None)
    if fig1 is not None:
        out.print(fig1.text)


def _load_spec(spec: str):
    from lmscale.errors import InputError
    from lmscale.selection import PRESETS, FitSpec, preset

    if spec in PRESETS:
        return preset(spec)
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"unknown fit spec {spec!r}: not a preset ({', '.join(PRESETS)}) nor a JSON file")
    from lmscale._io import read_json

    return FitSpec.from_json(read_json(path))


# -------------------------------------------------------------------------------------- testbed
@cli.group()
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

    runs = tb.load(testbed_dir)
    chosen = tasks.above_chance_tasks(
        runs,
        tb.load_task_metadata(testbed_dir),
        threshold_points=threshold,
        reference_n_params=reference_n_params,
    )
    out.print(
        f"{len(chosen)} tasks at >= {threshold:g} points above chance for N = {reference_n_params:.6g}:"
    )
    out.print(", ".join(chosen))


# --------------------------------------------------------------------------------------- ladder
@cli.group()
def ladder():
    """Train a ladder of small runs (shapes × token multipliers) into run records."""


def _ladder_config(config, preset_name):
    from lmscale.train.ladder import LadderConfig, preset

    if config and preset_name:
        raise click.UsageError("give a CONFIG file or --preset, not both")
    if config:
        return LadderConfig.read(config)
    return preset(preset_name or "cpu-tiny")


@ladder.command("plan")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--preset", "preset_name", help="cpu-tiny (default), cpu-small or paper.")
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="For the time estimate.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def ladder_plan(config, preset_name, device, fmt):
    """Show the runs of a ladder: N, D, M, FLOPs and an estimated time."""
    from lmscale.train.ladder import THROUGHPUT, family_warnings, plan

    cfg = _ladder_config(config, preset_name)
    runs = plan(cfg)
    for w in family_warnings(cfg):
        err.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
    if fmt == "json":
        click.echo(
            json.dumps([r.row() | {"estimated_seconds": r.estimated_seconds(device)} for r in runs], indent=1)
        )
        return
    tab = Table(
        title=f"ladder {cfg.name}: {len(runs)} runs on corpus {cfg.corpus.name!r} (V = {cfg.vocab_size}, "
        f"T = {cfg.seq_len})"
    )
    for col in ("run", "shape", "N", "M", "D tokens", "FLOPs", f"est. time ({device})"):
        tab.add_column(col, justify="left" if col in ("run", "shape") else "right")
    for r in runs:
        tab.add_row(
            r.run_id,
            r.shape.name,
            f"{r.n_params:,}",
            f"{r.multiplier:g}",
            f"{r.n_tokens:,}",
            f"{r.flops:.2e}",
            f"{r.estimated_seconds(device):.0f} s",
        )
    out.print(tab)
    total = sum(r.estimated_seconds(device) for r in runs)
    out.print(
        f"total {sum(r.n_tokens for r in runs):,} tokens, {sum(r.flops for r in runs):.2e} FLOPs, "
        f"about {total / 60:.1f} min (rough: assumes {THROUGHPUT[device]:.2g} FLOP/s)"
    )


class _LadderProgress:
    """A rich progress display for ladder training: one bar over runs, one over the current run's
    steps (tokens/s), and an optional evaluation phase. Use as a context manager."""

    def __init__(self, n_runs: int, transient: bool = False):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.n_runs = n_runs
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=err,
            transient=transient,
        )

    def __enter__(self):
        self.bar.__enter__()
        self.top = self.bar.add_task("ladder", total=self.n_runs, info="")
        self.sub = self.bar.add_task("run", total=1, info="")
        return self

    def __exit__(self, *exc):
        self.bar.update(self.top, completed=self.n_runs)
        return self.bar.__exit__(*exc)

    def on_run(self, k, n, r):
        self.bar.update(self.top, completed=k, description=f"train run {k + 1}/{n}")
        self.bar.update(self.sub, completed=0, total=1, description=r.run_id, info="preparing")

    def on_step(self, step, n_steps, tps):
        self.bar.update(self.sub, completed=step, total=n_steps, info=f"{tps:,.0f} tokens/s")

    def on_eval(self, label):
        self.bar.update(self.sub, advance=1, description=f"evaluate: {label}", info="")


@ladder.command("run")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--preset", "preset_name", help="cpu-tiny (default), cpu-small or paper.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Ladder folder.")
@click.option(
    "--device",
    default=None,
    type=click.Choice(["cpu", "cuda"]),
    help="cpu or cuda (default: cuda when available).",
)
def ladder_run(config, preset_name, out_dir, device):
    """Train every run (finished runs are skipped, interrupted ones resume) and write DIR/runs.jsonl."""
    from lmscale.train.ladder import plan, run_ladder

    cfg = _ladder_config(config, preset_name)
    t0 = time.perf_counter()
    with _LadderProgress(len(plan(cfg))) as progress:
        path = run_ladder(cfg, out_dir, device=device, on_run=progress.on_run, on_step=progress.on_step)
    from lmscale.records import RunTable

    table = RunTable.read(path)
    out.print(
        f"wrote {path}: {len(table)} runs in {time.perf_counter() - t0:.0f} s; "
        f"validation sets {', '.join(table.val_sets)}"
    )
    tab = Table(title="final validation losses")
    tab.add_column("run")
    for v in table.val_sets:
        tab.add_column(v, justify="right")
    for i, rid in enumerate(table.run_ids):
        tab.add_row(rid, *(f"{table.loss(v)[i]:.4f}" for v in table.val_sets))
    out.print(tab)


def _suite(suite, data_root, task_labels):
    from lmscale.errors import InputError
    from lmscale.evaluate.icl import read_suite

    tasks = read_suite(suite, data_root or Path(suite).parent)
    if task_labels:
        known = {t.label for t in tasks}
        unknown = [t for t in task_labels if t not in known]
        if unknown:
            raise InputError(f"unknown task name(s) {', '.join(unknown)} in suite {suite}")
        tasks = [t for t in tasks if t.label in task_labels]
    present = [t for t in tasks if Path(t.path).is_file()]
    for t in tasks:
        if t not in present:
            err.print(f"[yellow]skipping {t.label}:[/] {t.path} not found")
    if not present:
        raise InputError(f"none of the suite's task files were found under {data_root}")
    return present


_suite_options = [
    click.option(
        "--suite",
        required=True,
        type=click.Path(exists=True, dir_okay=False),
        help="Task suite in LLM-Foundry's icl_tasks YAML form (e.g. the testbed's heavy.yaml).",
    ),
    click.option(
        "--data-root",
        type=click.Path(exists=True, file_okay=False),
        help="Folder the suite's dataset_uri paths are relative to (default: the suite's folder).",
    ),
    click.option("--task", "task_labels", multiple=True, help="Only these tasks."),
    click.option(
        "--limit", type=click.IntRange(min=1), default=None, help="Score at most this many items per task."
    ),
]


def _with_suite_options(f):
    for opt in reversed(_suite_options):
        f = opt(f)
    return f


@cli.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@_with_suite_options
def eval_cmd(run_dir, suite, data_root, task_labels, limit):
    """Score a trained run (a ladder run folder) on a task suite; accuracies go into its record."""
    from rich.progress import Progress

    from lmscale.evaluate.runs import eval_run

    tasks = _suite(suite, data_root, task_labels)
    with Progress(console=err, transient=True) as bar:
        t = bar.add_task("tasks", total=len(tasks))
        accs = eval_run(run_dir, tasks, limit=limit, progress=lambda _l: bar.advance(t))
    tab = Table(title=f"{run_dir}: accuracy")
    tab.add_column("task")
    tab.add_column("accuracy", justify="right")
    for k, v in accs.items():
        tab.add_row(k.removeprefix("acc_"), f"{v:.4f}")
    out.print(tab)


@ladder.command("eval")
@click.argument("ladder_dir", type=click.Path(exists=True, file_okay=False))
@_with_suite_options
def ladder_eval_cmd(ladder_dir, suite, data_root, task_labels, limit):
    """Score every finished run of a ladder on a task suite and rewrite DIR/runs.jsonl."""
    from rich.progress import Progress

    from lmscale.evaluate.runs import ladder_eval

    tasks = _suite(suite, data_root, task_labels)
    n_runs = len(list((Path(ladder_dir) / "runs").glob("*/record.json")))
    with Progress(console=err, transient=True) as bar:
        t = bar.add_task("runs × tasks", total=n_runs * len(tasks))
        path = ladder_eval(ladder_dir, tasks, limit=limit, progress=lambda _l: bar.advance(t))
    out.print(f"wrote {path}: {n_runs} runs × {len(tasks)} tasks")


# ----------------------------------------------------------------------------------------- loop
def _print_heldout(df, title: str) -> None:
    from lmscale.report.figures import target_title

    tab = Table(title=title)
    level = f"{100 * df.interval_level.iloc[0]:g}% interval" if "interval_level" in df else "interval"
    for col in ("run", "M", "target", "predicted", level, "observed", "rel. error"):
        tab.add_column(col, justify="left" if col in ("run", "target") else "right")
    for r in df.itertuples():
        iv = f"[{r.interval_low:.4f}, {r.interval_high:.4f}]" if "interval_low" in df else "—"
        tab.add_row(
            r.run_id,
            f"{r.multiplier:g}",
            target_title(r.target),
            f"{r.predicted:.4f}",
            iv,
            f"{r.observed:.4f}",
            f"{100 * r.rel_error:.2f}%",
        )
    out.print(tab)
    if "inside_interval" in df:
        out.print(
            f"{int(df.inside_interval.sum())} of {len(df)} observed values inside their {level}s "
            "(calibrated: see the report for how)"
        )


@cli.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--preset", "preset_name", help="cpu-tiny (default), cpu-small or paper.")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Ladder + report folder."
)
@click.option(
    "--device",
    default=None,
    type=click.Choice(["cpu", "cuda"]),
    help="cpu or cuda (default: cuda when available).",
)
@click.option("--method", default="default", show_default=True, help="Fitting method of both laws.")
def loop(config, preset_name, out_dir, device, method):
    """The whole loop, offline: train (or reuse) a ladder, evaluate it (validation losses and the
    built-in task suite), fit on the smaller runs, predict the largest, write OUT/report."""
    from lmscale.pipeline import run_loop
    from lmscale.train.ladder import plan

    cfg = _ladder_config(config, preset_name)
    t0 = time.perf_counter()
    with _LadderProgress(len(plan(cfg)), transient=True) as p:
        res = run_loop(
            cfg, out_dir, device=device, method=method, on_run=p.on_run, on_step=p.on_step, on_eval=p.on_eval
        )
    out.print(
        f"ladder {cfg.name}: {res.runs_path}; report {res.report_path} ({time.perf_counter() - t0:.0f} s)"
    )
    _print_heldout(res.heldout, "held-out predictions (laws fitted on the smaller runs)")


@cli.command()
@click.argument("runs", type=click.Path(exists=True, dir_okay=False))
@click.option("--val-set", required=True, help="Validation loss the laws use (e.g. python).")
@click.option(
    "--split", required=True, help="Tasks averaged by the error law: comma-separated names or a split name."
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Report folder.")
@click.option(
    "--fit-runs",
    "fit_runs",
    multiple=True,
    help="Runs that fit both laws (default: every run below the largest model size).",
)
@click.option("--heldout", multiple=True, help="Runs to predict (default: the largest model size).")
@click.option("--method", default="default", show_default=True, help="Fitting method of both laws.")
def report(runs, val_set, split, out_dir, fit_runs, heldout, method):
    """Held-out report for any run table of one training set (e.g. examples/cpu-small/runs.jsonl):
    fit on some runs, predict the others, write REPORT/report.md with figures."""
    from lmscale.pipeline import holdout_spec, report_runs
    from lmscale.records import RunTable
    from lmscale.selection import FitSpec, Selection

    table = RunTable.read(runs)
    spec = None
    if fit_runs or heldout:
        base = None if (fit_runs and heldout) else holdout_spec(table)
        fit_sel = Selection.parse(list(fit_runs)) if fit_runs else base.loss_fit
        held_sel = Selection.parse(list(heldout)) if heldout else base.heldout
        spec = FitSpec("custom", fit_sel, fit_sel, held_sel)
    path, df = report_runs(table, val_set, split, out_dir, method=method, spec=spec)
    out.print(f"wrote {path}")
    _print_heldout(df, "held-out predictions")


# ------------------------------------------------------------------------------------ benchmark
@cli.group()
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
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
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
        tab.add_row(k, _fmt(v, 4))
    out.print(tab)


@benchmark.command("accuracy")
@click.option("--testbed", "testbed_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--resamples",
    default=100,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Bootstrap resamples per fit (intervals; 0: errors only).",
)
@click.option("--method", "methods", multiple=True, help="Only these methods (default all).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True
)
def benchmark_accuracy(testbed_dir, resamples, methods, fmt):
    """Held-out relative error and interval coverage of every method × fit set."""
    from rich.progress import Progress

    from lmscale import testbed as tb
    from lmscale.benchmark import accuracy

    chosen = [m for m in accuracy.METHODS_COMPARED if not methods or m.name in methods]
    unknown = set(methods) - {m.name for m in accuracy.METHODS_COMPARED}
    if unknown:
        from lmscale.errors import InputError

        raise InputError(
            f"unknown method(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(m.name for m in accuracy.METHODS_COMPARED)}"
        )
    runs = tb.load(testbed_dir)
    t0 = time.perf_counter()
    with Progress(console=err, transient=True) as bar:
        n_refs = len(runs.datasets) if resamples > 0 and any(m.has_intervals for m in chosen) else 0
        task = bar.add_task(
            "accuracy benchmark", total=len(chosen) * len(accuracy.fit_sets(runs=runs)) + n_refs
        )
        rows = accuracy.run(runs, methods=chosen, n_resamples=resamples, progress=lambda _: bar.advance(task))
    err.print(f"{len(rows)} rows in {time.perf_counter() - t0:.0f} s")
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    elif fmt == "markdown":
        click.echo(accuracy.markdown_table(rows))
    else:
        tab = Table(
            title="held-out accuracy (48 loss + 12 chained-error predictions per row); calibrated intervals"
        )

        def p(v, d=2):
            return "n/a" if v is None or math.isnan(v) else f"{100 * v:.{d}f}%"

        for col in (
            "fit set",
            "fit FLOPs",
            "method",
            "loss mean",
            "median",
            "max",
            "cov 80",
            "cov 90",
            "width 90",
            "error mean",
            "err cov 80",
            "err cov 90",
        ):
            tab.add_column(col)
        for r in rows:
            tab.add_row(
                r["fit_set"],
                f"{r['fit_flops']:.2e}",
                r["method"],
                p(r["mean_rel_error"]),
                p(r["median_rel_error"]),
                p(r["max_rel_error"]),
                p(r["coverage_80"], 0),
                p(r["coverage_90"], 0),
                p(r["median_interval_width"], 1),
                p(r["error_mean_rel_error"]),
                p(r["error_coverage_80"], 0),
                p(r["error_coverage_90"], 0),
            )
        out.print(tab)


def main(argv=None):
    cli.main(args=argv, prog_name="lmscale")


if __name__ == "__main__":  # pragma: no cover
    main()
