"""``lmscale ladder plan|run|eval``, ``eval``, ``loop`` and ``report``: training a ladder, scoring
its runs, and the whole train → evaluate → fit → predict loop."""

from __future__ import annotations

import json
import time

import click
from rich.table import Table

from lmscale.cli._common import err, format_option, out, suite_options, suite_tasks, warn

_preset_option = click.option("--preset", "preset_name", help="cpu-tiny (default), cpu-small or paper.")
_device_option = click.option(
    "--device",
    default=None,
    type=click.Choice(["cpu", "cuda"]),
    help="cpu or cuda (default: cuda when available).",
)


def epochs_limit(max_epochs, allow_repeat):
    """``--max-epochs`` / ``--allow-repeat`` as execution's ``max_epochs`` (None: the default)."""
    if max_epochs is not None and allow_repeat:
        raise click.UsageError("give --max-epochs or --allow-repeat, not both")
    return float("inf") if allow_repeat else max_epochs


def ladder_config(config, preset_name):
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
@click.option(
    "--gpu-memory", help="GPU memory per rank (e.g. 80GB): pick the micro-batch that fits and show the peak."
)
@click.option(
    "--gpus",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Ranks the global batch splits over.",
)
@click.option(
    "--corpus-tokens",
    type=float,
    help="Training tokens in the corpus, for epochs (default: a prepared corpus's manifest, or DIR's token cache with --ladder-dir).",
)
@click.option(
    "--ladder-dir",
    type=click.Path(file_okay=False),
    help="A ladder folder whose token cache gives the corpus size.",
)
@format_option()
def ladder_plan(config, preset_name, device, gpu_memory, gpus, corpus_tokens, ladder_dir, fmt):
    """Show the runs of a ladder: N, D, M, FLOPs, steps, epochs, memory per GPU and an estimated time."""
    from lmscale.train.corpus_checks import corpus_warnings, known_corpus_tokens
    from lmscale.train.ladder import THROUGHPUT, family_warnings, plan
    from lmscale.train.memory import GIB, parse_bytes, resource_warnings, run_resources

    cfg = ladder_config(config, preset_name)
    runs = plan(cfg)
    if corpus_tokens is None:
        corpus_tokens = known_corpus_tokens(cfg.corpus, ladder_dir)
    res = run_resources(
        cfg,
        runs,
        gpu_bytes=parse_bytes(gpu_memory) if gpu_memory else None,
        world=gpus,
        corpus_tokens=corpus_tokens,
    )
    for w in corpus_warnings(cfg.corpus, cfg.name) + family_warnings(cfg) + resource_warnings(res):
        warn(w)
    if fmt == "json":
        rows = []
        for r, x in zip(runs, res):
            rows.append(
                r.row()
                | {
                    "estimated_seconds": r.estimated_seconds(device),
                    "n_steps": x.n_steps,
                    "epochs": x.epochs,
                    "micro_batch": x.micro_batch,
                    "activation_checkpointing": x.checkpointing,
                    "peak_bytes_per_rank": x.memory.total if x.memory else None,
                }
            )
        click.echo(json.dumps(rows, indent=1))
        return
    tab = Table(
        title=f"ladder {cfg.name}: {len(runs)} runs on corpus {cfg.corpus.name!r} (V = {cfg.vocab_size}, "
        f"T = {cfg.seq_len}, {gpus} rank{'s' if gpus > 1 else ''})"
    )
    cols = [
        "run",
        "shape",
        "N",
        "M",
        "D tokens",
        "FLOPs",
        "steps",
        "epochs",
        "micro-batch",
        "peak/rank",
        f"est. time ({device})",
    ]
    for col in cols:
        tab.add_column(col, justify="left" if col in ("run", "shape") else "right")
    for r, x in zip(runs, res):
        tab.add_row(
            r.run_id,
            r.shape.name,
            f"{r.n_params:,}",
            f"{r.multiplier:g}",
            f"{r.n_tokens:,}",
            f"{r.flops:.2e}",
            f"{x.n_steps:,}",
            "?" if x.epochs is None else f"{x.epochs:.2f}",
            f"{x.micro_batch}{' +ckpt' if x.checkpointing else ''}",
            f"{x.memory.total / GIB:.1f} GiB" if x.memory else "—",
            f"{r.estimated_seconds(device):.0f} s",
        )
    out.print(tab)
    total = sum(r.estimated_seconds(device) for r in runs)
    out.print(
        f"total {sum(r.n_tokens for r in runs):,} tokens, {sum(r.flops for r in runs):.2e} FLOPs, "
        f"about {total / 60:.1f} min (rough: assumes {THROUGHPUT[device]:.2g} FLOP/s); peak/rank: an estimate "
        "(see lmscale.train.memory), bf16 autocast"
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
@click.option(
    "--micro-batch",
    type=click.IntRange(min=0),
    help="Sequences per forward per rank (0: whole batch). Also execution.micro_batch in CONFIG.",
)
@click.option(
    "--activation-checkpointing",
    is_flag=True,
    default=None,
    help="Recompute each block's activations in the backward pass.",
)
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the model.")
@click.option("--gpu-memory", help="GPU memory per rank (e.g. 80GB): choose each run's micro-batch to fit.")
@click.option(
    "--max-epochs",
    type=click.FloatRange(min=0, min_open=True),
    help="Refuse runs that would repeat the corpus more often (default: 1 for ladders of 1e8+ tokens per run).",
)
@click.option("--allow-repeat", is_flag=True, help="Allow runs to repeat the corpus any number of times.")
def ladder_run(
    config,
    preset_name,
    out_dir,
    device,
    log_to,
    micro_batch,
    activation_checkpointing,
    compile_,
    gpu_memory,
    max_epochs,
    allow_repeat,
):
    """Train every run (finished runs are skipped, interrupted ones resume) and write DIR/runs.jsonl."""
    from lmscale.ladder_run import execution_from, run_ladder
    from lmscale.run_table import RunTable
    from lmscale.train.ladder import plan

    cfg = ladder_config(config, preset_name)
    execution = execution_from(
        config,
        micro_batch=micro_batch,
        activation_checkpointing=activation_checkpointing,
        compile=compile_,
        gpu_memory=gpu_memory,
        max_epochs=epochs_limit(max_epochs, allow_repeat),
    )
    t0 = time.perf_counter()
    with LadderProgress(len(plan(cfg))) as progress:
        path = run_ladder(
            cfg,
            out_dir,
            device=device,
            on_run=progress.on_run,
            on_step=progress.on_step,
            log_to=log_to,
            execution=execution,
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


@ladder.command("eval")
@click.argument("ladder_dir", type=click.Path(exists=True, file_okay=False))
@suite_options
@click.option(
    "--harness",
    help="Score with lm-evaluation-harness instead: comma-separated harness task names (interop extra).",
)
@click.option(
    "--include-path",
    type=click.Path(exists=True, file_okay=False),
    help="Harness: folder of your own YAML tasks (e.g. a local JSONL file with dataset_path: json).",
)
@click.option("--device", default="cpu", show_default=True, help="Device to score on (cpu, cuda, cuda:1 …).")
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
    tasks = suite_tasks(suite, data_root, task_labels)
    with Progress(console=err, transient=True) as bar:
        t = bar.add_task("runs × tasks", total=n_runs * len(tasks))
        path = ladder_eval(ladder_dir, tasks, limit=limit, progress=lambda _l: bar.advance(t), device=device)
    out.print(f"wrote {path}: {n_runs} runs × {len(tasks)} tasks")


COMMANDS = (ladder,)
