"""``lmscale fit``, ``predict``, ``backtest`` and ``plan``: fitting laws to a run table, predicting
from saved fits, checking a ladder against itself, and proposing a ladder."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from lmscale.cli._common import SIZE, finite, fmt, labelled, method_option, out
from lmscale.cli.progress import LadderProgress, quiet_option
from lmscale.formatting import pct


@click.command()
@click.argument("runs", type=click.Path(exists=True, dir_okay=True))
@click.option(
    "--law",
    default=None,
    help="overtrain, chinchilla or error (default: error for an error target, overtrain for a loss; "
    "a loss law with an error target is refused).",
)
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
@method_option()
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
    from lmscale.calibrated_fit import fit_runs
    from lmscale.errors import InputError
    from lmscale.testbed import load_runs

    if output and Path(output).resolve() == Path(runs).resolve():
        raise InputError(
            f"-o {output} is RUNS itself: the fit would replace the run table; name another file"
        )

    result = fit_runs(
        load_runs(runs),
        law,
        target,
        where=where,
        dataset=dataset,
        method=method,
        loss_column=loss_column,
        huber_delta=huber_delta,
        n_boot=n_boot,
        seed=seed,
    )
    _print_fit(result)
    from lmscale.cli._common import warn
    from lmscale.sanity import fit_warnings

    for w in fit_warnings(result):
        warn(w)
    if n_boot:
        from lmscale.calibration import describe, of_fit

        out.print(describe(of_fit(result, "error" if result.law == "error" else "loss")))
    if output:
        result.save(output)
        out.print(f"wrote {output}")


def _print_fit(result) -> None:
    from lmscale.summaries import fit_header, fit_rows, fit_title

    tab = Table(title=fit_title(result))
    for i, col in enumerate(fit_header(result)):
        tab.add_column(col, justify="right" if i else "left")
    for row in fit_rows(result):
        tab.add_row(*row)
    out.print(tab)
    out.print(result.diagnostics.summary())


@click.command()
@click.argument("fit_file", type=click.Path(dir_okay=False))
@click.option("--n-params", type=SIZE, help="N, parameters (1B, 900M or 9e8).")
@click.option("--tokens", type=SIZE, help="D, training tokens (20B or 2e10).")
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
    from lmscale.forecasting import forecast
    from lmscale.predict import ScalePoint

    fit_res = _load_fit(fit_file)
    point = None
    if fit_res.law == "error":
        if loss is None:
            raise InputError(f"{fit_file} is an error-law fit: give --loss")
        options = {
            "--n-params": n_params,
            "--tokens": tokens,
            "--multiplier": multiplier,
            "--error-fit": error_fit,
        }
        given = [o for o, v in options.items() if v is not None]
        if given:
            raise InputError(f"{fit_file} is an error-law fit: it maps --loss alone, not {', '.join(given)}")
    else:
        if loss is not None:
            raise InputError(
                f"{fit_file} is a loss-law fit ({fit_res.law}): --loss is for error-law fits; it "
                "predicts at --n-params with --tokens or --multiplier"
            )
        if n_params is None:
            raise InputError("give --n-params and one of --tokens or --multiplier")
        point = ScalePoint.make(n_params, multiplier=multiplier, n_tokens=tokens)
    efit = _load_fit(error_fit) if error_fit else None
    try:
        result = forecast(fit_res, point, error_fit=efit, loss=loss, level=level)
    except InputError as exc:  # e.g. an edited fit predicting a negative loss: say which file(s)
        raise InputError(f"{fit_file}{f' with {error_fit}' if error_fit else ''}: {exc}") from None
    _print_forecast(result, f"prediction from {fit_file}", fmt)


def _load_fit(path):
    """A saved fit, its calibration payload checked here, where it is read, so that a malformed one
    is reported with the file's name."""
    from lmscale.calibration import Calibration
    from lmscale.fit.result import FitResult

    res = FitResult.load(path)
    if res.calibration is not None:
        Calibration.from_dict(res.calibration, f"{path}: calibration")
    return res


def _print_forecast(result, title: str, fmt_name: str) -> None:
    data = result.to_dict()
    if fmt_name == "json":
        click.echo(json.dumps(data, indent=1))
        return
    tab = Table(title=title)
    tab.add_column("quantity")
    tab.add_column("value", justify="right")
    notes = ("warnings", "loss_interval_method", "error_interval_method")
    for k, v in data.items():
        if isinstance(v, list) and k not in notes:
            tab.add_row(f"{k} ({100 * result.level:g}%)", f"[{fmt(v[0], 5)}, {fmt(v[1], 5)}]")
        elif v is not None and k not in notes:
            tab.add_row(k, fmt(v, 6))
    out.print(tab)
    for k in notes[1:]:
        if data.get(k):
            out.print(f"{k.split('_')[0]}: {data[k]}")
    if result.center_note:
        out.print(result.center_note)
    for w in result.warnings:
        out.print(labelled("warning:", "yellow", w), soft_wrap=True)
    if result.point is not None and result.loss_interval is None:
        out.print("no intervals: refit with --bootstrap N to get them")


@click.command()
@click.argument("runs", type=click.Path(exists=True, dir_okay=True))
@click.option("--target", required=True, help="loss_<set>, or an error target chained through --loss-column.")
@click.option(
    "--loss-column", help="Error targets: the validation loss they are chained through (e.g. loss_c4_val)."
)
@method_option("Fitting method(s) to compare (repeatable; default: default and paper)", multiple=True)
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
    from lmscale.calibration import choose, describe, for_method, reference
    from lmscale.report.tool_figures import write_backtest
    from lmscale.selection import Selection
    from lmscale.testbed import load_runs

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
    summary = res.summary_frame()
    paths = write_backtest(res, out_dir, f"Backtest of {target}: error vs extrapolation")
    if fmt == "json":
        payload = {"summary": json.loads(summary.to_json(orient="records")), "files": [str(p) for p in paths]}
        click.echo(json.dumps(payload, indent=1))
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
            pct(r.mean_rel_error),
            pct(r.median_rel_error),
            pct(r.max_rel_error),
        )
    out.print(tab)
    first = res.points[0]
    ref = for_method(reference(first.quantity), first.method)  # the default's center: its method only
    out.print(f"{first.method}: " + describe(choose(res.of_method(first.method), first.quantity, ref)))
    out.print("wrote " + ", ".join(str(p) for p in paths))


def _sizes(ctx, param, value):
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"comma-separated numbers, got {value!r}") from None


@click.command("plan")
@click.option("--target-params", type=SIZE, callback=finite, required=True, help="Target N (7B or 7e9).")
@click.option(
    "--target-multiplier",
    type=click.FloatRange(min=0, min_open=True),
    callback=finite,
    help="Target M = D/N.",
)
@click.option("--target-tokens", type=SIZE, callback=finite, help="Target D (instead of M; 140B or 1.4e11).")
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
    "--allowed-sizes",
    callback=_sizes,
    help="Only these model sizes, comma-separated N (e.g. 1.06e7,7.89e7,1.54e8).",
)
@click.option("--budget", type=SIZE, callback=finite, help="Most FLOPs the ladder may cost (1e20).")
@click.option("--max-runs", type=click.IntRange(min=5), help="Most runs in the ladder.")
@click.option(
    "--mfu",
    default=0.4,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    callback=finite,
    help="Model FLOPs utilisation for GPU-hours (H100 bf16 peak).",
)
@method_option("Fitting method of the loss law")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Also write plan.json and plan.png here."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@quiet_option
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
    from lmscale.plan import combine, plan
    from lmscale.predict import ScalePoint
    from lmscale.report.tool_figures import write_plan
    from lmscale.testbed import load_runs

    point = ScalePoint.make(target_params, multiplier=target_multiplier, n_tokens=target_tokens)
    # JSON output is for scripts: it stays the only output
    with LadderProgress(0, "plan", transient=True, mode="quiet" if fmt == "json" else None) as bar:

        def progress(done, total, label):
            bar.total = total
            bar.advance(label)

        p = plan(
            combine([load_runs(e) for e in evidence]),
            point,
            budget_flops=budget,
            max_runs=max_runs,
            method=method,
            allowed_sizes=allowed_sizes,
            progress=progress,
        )
    payload = p.to_dict(mfu, budget_flops=budget)
    if out_dir:
        write_plan(p, out_dir, payload)
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
    for r in payload["proposals"]:
        tab.add_row(
            r["choice"],
            ", ".join(f"{n / 1e9:.3g}B" for n in r["sizes"]),
            ", ".join(f"{m:g}" for m in r["multipliers"]),
            str(r["n_runs"]),
            f"{r['flops']:.2e}",
            f"{r['gpu_hours']:.1f}",
            pct(r["expected_rel_error"]),
            f"{100 * r['expected_interval'][0]:.2f}–{100 * r['expected_interval'][1]:.2f}%",
        )
    out.print(tab)
    out.print(
        "expected error of the target's loss prediction: backtests of each candidate on the evidence, scaled "
        "to the target's extrapolation distance; the proposals' upper ends are raised "
        f"{p.selection_bias:.2f}× for having been picked as the best-looking (nested over evidence training sets)"
    )


COMMANDS = (fit, predict, backtest, plan_cmd)
