"""``lmscale ladder plan|run|eval``, ``eval``, ``loop`` and ``report``: training a ladder, scoring
its runs, and the whole train → evaluate → fit → predict loop."""

from __future__ import annotations

import json
import time

import click
from rich.table import Table

from lmscale.cli._common import SIZE, err, format_option, out, suite_options, suite_tasks, warn
from lmscale.cli.progress import LadderProgress, duration, quiet_option

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
    type=SIZE,
    help="Training tokens in the corpus, for epochs (default: a prepared corpus's manifest, or DIR's token cache with --ladder-dir).",
)
@click.option(
    "--ladder-dir",
    type=click.Path(file_okay=False),
    help="A ladder folder whose token cache gives the corpus size.",
)
@click.option(
    "--gpu-peak-tflops",
    default=989.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="GPU time estimate: peak TFLOP/s of one GPU (default: H100 dense bf16).",
)
@click.option(
    "--mfu",
    default=0.4,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="GPU time estimate: model-FLOPs utilisation assumed.",
)
@click.option(
    "--measure",
    is_flag=True,
    help="CPU time estimate: time a few real steps of each shape here (needs torch; seconds to minutes).",
)
@format_option()
def ladder_plan(
    config,
    preset_name,
    device,
    gpu_memory,
    gpus,
    corpus_tokens,
    ladder_dir,
    gpu_peak_tflops,
    mfu,
    measure,
    fmt,
):
    """Show the runs of a ladder: N, D, M, FLOPs, steps, epochs, memory per GPU and an estimated
    time: on GPUs (--device cuda, --gpus or --gpu-memory) FLOPs ÷ (GPUs × peak × MFU), on a CPU from
    step times measured here with --measure (else a rough FLOP/s constant, said so)."""
    from lmscale.train.corpus_checks import corpus_warnings, known_corpus_tokens
    from lmscale.train.ladder import family_warnings, plan
    from lmscale.train.memory import parse_bytes, resource_warnings, run_resources

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
    est = _time_estimate(cfg, runs, res, device, gpus, gpu_memory, gpu_peak_tflops, mfu, measure, fmt)
    if fmt == "json":
        click.echo(json.dumps(_plan_rows(runs, res, est), indent=1))
        return
    _print_plan(cfg, runs, res, est, gpus)


def _plan_rows(runs, res, est) -> list[dict]:
    return [
        r.row()
        | {
            "estimated_seconds": secs,
            "time_assumption": est.assumption,
            "n_steps": x.n_steps,
            "epochs": x.epochs,
            "micro_batch": x.micro_batch,
            "activation_checkpointing": x.checkpointing,
            "peak_bytes_per_rank": x.memory.total if x.memory else None,
        }
        for r, x, secs in zip(runs, res, est.seconds)
    ]


def _print_plan(cfg, runs, res, est, gpus) -> None:
    from lmscale.train.memory import GIB

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
        "est. time",
    ]
    for col in cols:
        tab.add_column(col, justify="left" if col in ("run", "shape") else "right")
    for r, x, secs in zip(runs, res, est.seconds):
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
            duration(secs),
        )
    out.print(tab)
    out.print(
        f"total {sum(r.n_tokens for r in runs):,} tokens, {sum(r.flops for r in runs):.2e} FLOPs, "
        f"about {est.total_hours:.3g} hours ({est.assumption}); peak/rank: an estimate "
        "(see lmscale.train.memory), bf16 autocast"
    )


def _time_estimate(cfg, runs, res, device, gpus, gpu_memory, peak, mfu, measure, fmt):
    """GPUs planned for (cuda, several ranks or a GPU memory): an assumed MFU of a stated peak; a
    CPU: measured step times (or, with --no-measure, the rough FLOP/s constant, said so)."""
    from lmscale.train.ladder import THROUGHPUT
    from lmscale.train.timing import TimeEstimate, gpu_estimate, measured_estimate

    if device == "cuda" or gpus > 1 or gpu_memory:
        if measure:
            why = "--device cuda" if device == "cuda" else ("--gpus" if gpus > 1 else "--gpu-memory")
            warn(
                f"--measure times CPU steps; this plan is for GPUs ({why}), so its times assume "
                f"{mfu:g} MFU of {peak:g} TFLOP/s per GPU (--mfu, --gpu-peak-tflops) instead"
            )
        return gpu_estimate([r.flops for r in runs], gpus, peak, mfu)
    if not measure:
        return TimeEstimate(
            tuple(r.estimated_seconds("cpu") for r in runs),
            f"not measured: assumes {THROUGHPUT['cpu']:.2g} FLOP/s on 6ND, often several times too fast "
            "for small models; --measure times real steps here",
        )
    if fmt != "json":
        err.print(f"timing a few steps of each shape on {device} …")
    return measured_estimate(runs, [x.n_steps for x in res], cfg.seq_len, "cpu")


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
@quiet_option
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
    with LadderProgress(len(plan(cfg)), "ladder run") as progress:
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
@quiet_option
def ladder_eval_cmd(
    ladder_dir, suite, data_root, task_labels, limit, harness, include_path, device, batch_size
):
    """Score every finished run of a ladder on a task suite (or with the harness) and rewrite DIR/runs.jsonl."""
    from lmscale.ladder_eval import finished_runs, ladder_eval

    n_runs = len(finished_runs(ladder_dir))
    if harness:
        from lmscale.interop.harness import ladder_harness_eval

        if suite:
            raise click.UsageError("give --suite or --harness, not both")
        names = [t.strip() for t in harness.split(",") if t.strip()]
        with LadderProgress(n_runs, "ladder eval (harness)", transient=True) as bar:
            path = ladder_harness_eval(
                ladder_dir,
                names,
                include_path=include_path,
                device=device,
                batch_size=batch_size,
                limit=limit,
                progress=lambda run: bar.advance(f"run {run} scored"),
            )
        out.print(f"wrote {path}: {n_runs} runs × {len(names)} harness task(s)")
        return
    tasks = suite_tasks(suite, data_root, task_labels)
    with LadderProgress(n_runs * len(tasks), "ladder eval", transient=True) as bar:
        path = ladder_eval(ladder_dir, tasks, limit=limit, progress=bar.advance, device=device)
    out.print(f"wrote {path}: {n_runs} runs × {len(tasks)} tasks")


COMMANDS = (ladder,)
