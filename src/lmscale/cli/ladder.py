"""``lmscale ladder plan|run|eval``, ``eval``, ``loop`` and ``report``: training a ladder, scoring
its runs, and the whole train → evaluate → fit → predict loop."""

from __future__ import annotations

import json
import time

import click
from rich.table import Table

from lmscale.cli._common import err, format_option, out, pct, warn

_preset_option = click.option("--preset", "preset_name", help="cpu-tiny (default), cpu-small or paper.")
_device_option = click.option(
    "--device",
    default=None,
    type=click.Choice(["cpu", "cuda"]),
    help="cpu or cuda (default: cuda when available).",
)


def _config(config, preset_name):
    from lmscale.train.ladder import load_config

    if config and preset_name:
        raise click.UsageError("give a CONFIG file or --preset, not both")
    return load_config(config, preset_name)


@click.group()
def ladder():
    """Train a ladder of small runs (shapes × token multipliers) into run records."""


@ladder.command("plan")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_preset_option
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="For the time estimate.",
)
@format_option()
def ladder_plan(config, preset_name, device, fmt):
    """Show the runs of a ladder: N, D, M, FLOPs and an estimated time."""
    from lmscale.train.ladder import THROUGHPUT, family_warnings, plan

    cfg = _config(config, preset_name)
    runs = plan(cfg)
    for w in family_warnings(cfg):
        warn(w)
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


class LadderProgress:
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
@_preset_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Ladder folder.")
@_device_option
@click.option(
    "--log",
    "log_to",
    multiple=True,
    type=click.Choice(["tensorboard", "wandb"]),
    help="Also log training to TensorBoard (DIR/logs/tensorboard) or W&B (offline, DIR/logs/wandb). Repeat for both.",
)
def ladder_run(config, preset_name, out_dir, device, log_to):
    """Train every run (finished runs are skipped, interrupted ones resume) and write DIR/runs.jsonl."""
    from lmscale.ladder_run import run_ladder
    from lmscale.run_table import RunTable
    from lmscale.train.ladder import plan

    cfg = _config(config, preset_name)
    t0 = time.perf_counter()
    with LadderProgress(len(plan(cfg))) as progress:
        path = run_ladder(
            cfg, out_dir, device=device, on_run=progress.on_run, on_step=progress.on_step, log_to=log_to
        )
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


def _tasks(suite, data_root, task_labels):
    from lmscale.evaluate.icl import select_tasks

    if suite is None:
        raise click.UsageError("give the task suite: --suite FILE.yaml")

    def missing(t):
        err.print(f"[yellow]skipping {t.label}:[/] {t.path} not found")

    return select_tasks(suite, data_root, task_labels, on_missing=missing)


def _suite_options(f):
    for opt in reversed(
        [
            click.option(
                "--suite",
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
                "--limit",
                type=click.IntRange(min=1),
                default=None,
                help="Score at most this many items per task.",
            ),
        ]
    ):
        f = opt(f)
    return f


@click.command("eval")
@click.argument("run_dir", required=False, type=click.Path(exists=True, file_okay=False))
@_suite_options
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
@click.option(
    "--device", default="cpu", show_default=True, help="Device of a --hf-model (cpu, cuda, cuda:1 …)."
)
@format_option()
def eval_cmd(run_dir, suite, data_root, task_labels, limit, hf_model, trust_remote_code, device, fmt):
    """Score a trained run (a ladder run folder; accuracies go into its record) or a Hugging Face
    model (--hf-model) on a task suite."""
    from rich.progress import Progress

    from lmscale.evaluate.runs import eval_run, eval_tasks

    if (run_dir is None) == (hf_model is None):
        raise click.UsageError("give a RUN_DIR or --hf-model (one of them)")
    tasks = _tasks(suite, data_root, task_labels)
    with Progress(console=err, transient=True) as bar:
        t = bar.add_task("tasks", total=len(tasks))
        if hf_model:
            from lmscale.interop.hf import load_hf_model

            model, tok = load_hf_model(hf_model, device=device, trust_remote_code=trust_remote_code)
            accs = eval_tasks(model, tok, tasks, limit=limit, progress=lambda _l: bar.advance(t))
        else:
            accs = eval_run(run_dir, tasks, limit=limit, progress=lambda _l: bar.advance(t))
    if fmt == "json":
        click.echo(json.dumps(accs, indent=1))
        return
    tab = Table(title=f"{run_dir or hf_model}: accuracy")
    tab.add_column("task")
    tab.add_column("accuracy", justify="right")
    for k, v in accs.items():
        tab.add_row(k.removeprefix("acc_"), f"{v:.4f}")
    out.print(tab)


@ladder.command("eval")
@click.argument("ladder_dir", type=click.Path(exists=True, file_okay=False))
@_suite_options
@click.option(
    "--harness",
    help="Score with lm-evaluation-harness instead: comma-separated harness task names (interop extra).",
)
@click.option(
    "--include-path",
    type=click.Path(exists=True, file_okay=False),
    help="Harness: folder of your own YAML tasks (e.g. a local JSONL file with dataset_path: json).",
)
@click.option("--device", default="cpu", show_default=True, help="Harness: device of the model.")
@click.option(
    "--batch-size", default=8, show_default=True, type=click.IntRange(min=1), help="Harness: batch size."
)
def ladder_eval_cmd(
    ladder_dir, suite, data_root, task_labels, limit, harness, include_path, device, batch_size
):
    """Score every finished run of a ladder on a task suite (or with the harness) and rewrite DIR/runs.jsonl."""
    from rich.progress import Progress

    from lmscale.evaluate.runs import finished_runs, ladder_eval

    n_runs = len(finished_runs(ladder_dir))
    if harness:
        from lmscale.interop.harness import ladder_harness_eval

        if suite:
            raise click.UsageError("give --suite or --harness, not both")
        names = [t.strip() for t in harness.split(",") if t.strip()]
        with Progress(console=err, transient=True) as bar:
            t = bar.add_task("runs (harness)", total=n_runs)
            path = ladder_harness_eval(
                ladder_dir,
                names,
                include_path=include_path,
                device=device,
                batch_size=batch_size,
                limit=limit,
                progress=lambda _r: bar.advance(t),
            )
        out.print(f"wrote {path}: {n_runs} runs × {len(names)} harness task(s)")
        return
    tasks = _tasks(suite, data_root, task_labels)
    with Progress(console=err, transient=True) as bar:
        t = bar.add_task("runs × tasks", total=n_runs * len(tasks))
        path = ladder_eval(ladder_dir, tasks, limit=limit, progress=lambda _l: bar.advance(t))
    out.print(f"wrote {path}: {n_runs} runs × {len(tasks)} tasks")


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
@click.option("--method", default="default", show_default=True, help="Fitting method of both laws.")
def loop(config, preset_name, out_dir, device, method):
    """The whole loop, offline: train (or reuse) a ladder, evaluate it (validation losses and the
    built-in task suite), fit on the smaller runs, predict the largest, write OUT/report."""
    from lmscale.pipeline import run_loop
    from lmscale.train.ladder import plan

    cfg = _config(config, preset_name)
    t0 = time.perf_counter()
    with LadderProgress(len(plan(cfg)), transient=True) as p:
        res = run_loop(
            cfg, out_dir, device=device, method=method, on_run=p.on_run, on_step=p.on_step, on_eval=p.on_eval
        )
    out.print(
        f"ladder {cfg.name}: {res.runs_path}; report {res.report_path} ({time.perf_counter() - t0:.0f} s)"
    )
    _print_heldout(res.heldout, "held-out predictions (laws fitted on the smaller runs)")


@click.command()
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
    from lmscale.pipeline import custom_spec, report_runs
    from lmscale.run_table import RunTable

    table = RunTable.read(runs)
    spec = custom_spec(table, fit_runs, heldout)
    path, df = report_runs(table, val_set, split, out_dir, method=method, spec=spec)
    out.print(f"wrote {path}")
    _print_heldout(df, "held-out predictions")


COMMANDS = (ladder, eval_cmd, loop, report)
