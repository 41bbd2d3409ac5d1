"""``lmscale eval`` (a run or a Hugging Face model on a task suite), ``loop`` (train → evaluate →
fit → predict → report) and ``report`` (held-out report of any run table)."""

from __future__ import annotations

import json
import time

import click
from rich.table import Table

from lmscale.cli._common import err, format_option, method_option, out, suite_options, suite_tasks
from lmscale.cli.ladder import ladder_config
from lmscale.cli.progress import LadderProgress, quiet_option
from lmscale.formatting import pct

_preset_option = click.option("--preset", "preset_name", help="cpu-tiny (default), cpu-small or paper.")
_device_option = click.option(
    "--device",
    default=None,
    type=click.Choice(["cpu", "cuda"]),
    help="cpu or cuda (default: cuda when available).",
)


@click.command("eval")
@click.argument("run_dir", required=False, type=click.Path(exists=True, file_okay=False))
@suite_options
@click.option(
    "--hf-model",
    type=click.Path(exists=True, file_okay=False),
    help="Score a local Hugging Face causal LM folder instead of a ladder run (same prompts and scoring).",
)
@click.option(
    "--trust-remote-code",
    is_flag=True,
    help="Allow the model folder's own code (an lmscale export needs it).",
)
@click.option("--device", default="cpu", show_default=True, help="Device to score on (cpu, cuda, cuda:1 …).")
@format_option()
def eval_cmd(run_dir, suite, data_root, task_labels, limit, hf_model, trust_remote_code, device, fmt):
    """Score a trained run (a ladder run folder; accuracies go into its record) or a Hugging Face
    model (--hf-model) on a task suite."""
    from rich.progress import Progress

    from lmscale.ladder_eval import eval_run, eval_tasks

    if (run_dir is None) == (hf_model is None):
        raise click.UsageError("give a RUN_DIR or --hf-model (one of them)")
    tasks = suite_tasks(suite, data_root, task_labels)
    with Progress(console=err, transient=True) as bar:
        t = bar.add_task("tasks", total=len(tasks))
        if hf_model:
            from lmscale.interop.hf import load_hf_model

            model, tok = load_hf_model(hf_model, device=device, trust_remote_code=trust_remote_code)
            accs = eval_tasks(model, tok, tasks, limit=limit, progress=lambda _l: bar.advance(t))
        else:
            accs = eval_run(run_dir, tasks, limit=limit, progress=lambda _l: bar.advance(t), device=device)
    if fmt == "json":
        click.echo(json.dumps(accs, indent=1))
        return
    tab = Table(title=f"{run_dir or hf_model}: accuracy")
    tab.add_column("task")
    tab.add_column("accuracy", justify="right")
    for k, v in accs.items():
        tab.add_row(k.removeprefix("acc_"), f"{v:.4f}")
    out.print(tab)


def _print_heldout(df, title: str) -> None:
    from lmscale.report.style import target_title

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
            pct(r.rel_error),
        )
    out.print(tab)
    if "inside_interval" in df:
        out.print(
            f"{int(df.inside_interval.sum())} of {len(df)} observed values inside their {level}s "
            "(calibrated: see the report for how)"
        )


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_preset_option
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Ladder + report folder."
)
@_device_option
@method_option("Fitting method of both laws")
@quiet_option
def loop(config, preset_name, out_dir, device, method):
    """The whole loop, offline: train (or reuse) a ladder, evaluate it (validation losses and the
    built-in task suite), fit on the smaller runs, predict the largest, write OUT/report."""
    from lmscale.pipeline import run_loop
    from lmscale.train.ladder import plan

    cfg = ladder_config(config, preset_name)
    t0 = time.perf_counter()
    with LadderProgress(len(plan(cfg)), "loop", transient=True) as p:
        res = run_loop(
            cfg, out_dir, device=device, method=method, on_run=p.on_run, on_step=p.on_step, on_eval=p.on_eval
        )
    out.print(
        f"ladder {cfg.name}: {res.runs_path}; report {res.report_path} ({time.perf_counter() - t0:.0f} s)"
    )
    _print_heldout(res.heldout, "held-out predictions (laws fitted on the smaller runs)")


@click.command()
@click.argument("runs", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--loss-column",
    "--val-set",
    "val_set",
    required=True,
    help="Validation loss the laws use (loss_python or python; --val-set is its old name), as in fit and backtest.",
)
@click.option(
    "--split",
    help="Tasks averaged by the error law: comma-separated names or a split name (leave out for a "
    "loss-only report, e.g. a table without accuracies).",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Report folder.")
@click.option(
    "--fit-runs",
    "fit_runs",
    multiple=True,
    help="Runs that fit both laws (default: every run below the largest model size).",
)
@click.option("--heldout", multiple=True, help="Runs to predict (default: the largest model size).")
@method_option("Fitting method of both laws")
def report(runs, val_set, split, out_dir, fit_runs, heldout, method):
    """Held-out report for any run table of one training set (e.g. examples/cpu-small/runs.jsonl):
    fit on some runs, predict the others, write REPORT/report.md with figures."""
    from lmscale.pipeline import custom_spec, report_runs
    from lmscale.run_table import RunTable

    table = RunTable.read(runs)
    val_set = val_set.removeprefix("loss_")
    spec = custom_spec(table, fit_runs, heldout)
    path, df = report_runs(table, val_set, split, out_dir, method=method, spec=spec)
    out.print(f"wrote {path}")
    _print_heldout(df, "held-out predictions")


COMMANDS = (eval_cmd, loop, report)
