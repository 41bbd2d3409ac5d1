"""``lmscale ladder submit`` and ``lmscale ladder status``: a ladder as one cluster job per run."""

from __future__ import annotations

import click
from rich.table import Table

from lmscale.cli._common import err, out
from lmscale.cli.ladder import _preset_option, epochs_limit, ladder, ladder_config

max_epochs_options = (
    click.option(
        "--max-epochs",
        type=click.FloatRange(min=0, min_open=True),
        help="Refuse runs that would repeat the corpus more often (default: 1 for ladders of 1e8+ tokens per run).",
    ),
    click.option("--allow-repeat", is_flag=True, help="Allow runs to repeat the corpus any number of times."),
)


def _with(options):
    def deco(f):
        for o in reversed(options):
            f = o(f)
        return f

    return deco


@ladder.command("submit")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_preset_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Ladder folder (shared by every node).",
)
@click.option("--executor", type=click.Choice(["slurm", "local"]), default="slurm", show_default=True)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cuda",
    show_default=True,
    help="Where each run trains.",
)
@click.option(
    "--gpus-per-run",
    type=click.IntRange(min=1),
    help="GPUs per run (default: the fewest that fit --gpu-memory, else 1).",
)
@click.option("--gpu-memory", help="GPU memory per GPU (e.g. 80GB): picks each run's GPUs and micro-batch.")
@click.option(
    "--time",
    "time_limit",
    help="Time limit per job (90, 1:30:00, 2-00:00:00; default: the plan's estimate ×2 + 10 min).",
)
@click.option(
    "--max-time",
    help="Cap on the estimated time per job (e.g. the partition's limit); a longer run is requeued at it and resumes.",
)
@click.option("--partition", help="SLURM partition.")
@click.option(
    "--parallel",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Local executor: runs at once.",
)
@click.option(
    "--retries",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="Local executor: resubmissions of a run whose job died without a record.",
)
@_with(max_epochs_options)
def ladder_submit(
    config, preset_name, out_dir, executor, device, gpus_per_run, gpu_memory, time_limit, max_time, partition,
    parallel, retries, max_epochs, allow_repeat,
):  # fmt: skip
    """Submit one job per unfinished run (submitit); requeued on preemption, resumed from its checkpoint."""
    from lmscale.ladder_run import execution_from
    from lmscale.ladder_submit import parse_minutes, submit_ladder

    cfg = ladder_config(config, preset_name)
    execution = execution_from(
        config, gpu_memory=gpu_memory, max_epochs=epochs_limit(max_epochs, allow_repeat)
    )
    res = submit_ladder(
        cfg,
        out_dir,
        executor=executor,
        execution=execution,
        device=device,
        gpus_per_run=gpus_per_run,
        minutes=parse_minutes(time_limit),
        max_minutes=parse_minutes(max_time, "--max-time"),
        partition=partition,
        parallel=parallel,
        retries=retries,
        on_event=lambda m: err.print(m, highlight=False),
    )
    out.print(
        f"{len(res.jobs)} run(s) submitted ({executor}); {len(res.skipped_done)} already done; "
        f"{len(res.skipped_running)} already queued or being trained"
    )
    if res.runs_path is not None:
        out.print(f"wrote {res.runs_path}")
    for rid, why in res.failed:
        err.print(f"[red]failed[/red] {rid}: {why}")
    if res.failed:
        raise SystemExit(1)
    if executor == "slurm":
        out.print(f"follow them with: lmscale ladder status {out_dir}")


@ladder.command("status")
@click.argument("ladder_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def ladder_status_cmd(ladder_dir, fmt):
    """Each run's state (pending, running, done, failed), last step and loss, and job id."""
    import json
    from dataclasses import asdict

    from lmscale.ladder_folder import ladder_status

    states = ladder_status(ladder_dir)
    if fmt == "json":
        click.echo(json.dumps([asdict(s) for s in states], indent=1))
        return
    tab = Table(title=f"ladder {ladder_dir}")
    for col in ("run", "state", "step", "loss", "job", "detail"):
        tab.add_column(col, justify="right" if col in ("step", "loss") else "left")
    colour = {"done": "green", "running": "cyan", "failed": "red", "pending": "yellow"}
    for s in states:
        tab.add_row(
            s.run_id, f"[{colour[s.state]}]{s.state}[/]", str(s.step), "—" if s.loss is None else f"{s.loss:.4f}",
            s.job_id or "—", s.detail,
        )  # fmt: skip
    out.print(tab)
    counts = {k: sum(s.state == k for s in states) for k in colour}
    out.print(", ".join(f"{v} {k}" for k, v in counts.items()))


COMMANDS: tuple = ()  # both commands join the ``ladder`` group
