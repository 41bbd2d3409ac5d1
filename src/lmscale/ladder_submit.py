"""A ladder dispatched as one cluster job per run, through ``submitit`` (the ``cluster`` extra).

Each job trains one run (:func:`run_one`) under the run's lock, writes its record and rebuilds
``runs.jsonl`` from every finished run's record (:mod:`lmscale.ladder_folder`). A job warned of
its time limit or of preemption (SLURM's signal before the end) is requeued by submitit through
:meth:`RunJob.checkpoint` and resumes from the run's last checkpoint. The submitting process
writes ``ladder.json`` and prepares the data once, so the jobs find it cached.

Executors: ``slurm`` (submits and returns; ``lmscale ladder status DIR`` follows the runs) and
``local`` (submitit's :class:`~submitit.LocalExecutor`: one process per run on this machine, at
most ``parallel`` at once; the submitter waits, and resubmits a run whose job died without a
record, e.g. killed, up to ``retries`` times).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lmscale.errors import InputError
from lmscale.ladder_folder import last_job, note_job, run_is_locked, write_runs_table
from lmscale.ladder_run import HELD, Execution, _Ranks, open_ladder, train_run
from lmscale.run_record import RunRecord, finished
from lmscale.train.corpus_checks import require_corpus
from lmscale.train.ladder import LadderConfig, RunPlan

EXECUTORS = ("slurm", "local")


def run_one(
    cfg: LadderConfig,
    out_dir: str | Path,
    run_id: str,
    *,
    execution: Execution | None = None,
    device: str | None = None,
    job_id: str | None = None,
) -> str:
    """Train (or resume) one run of a ladder folder and rebuild its ``runs.jsonl``; what
    :func:`~lmscale.ladder_run.train_run` says (``held`` when another process trains it)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranks = _Ranks.start()
    execution = execution or Execution()
    lad = open_ladder(cfg, out, execution, ranks)
    runs = {r.run_id: r for r in lad.runs}
    if run_id not in runs:
        raise InputError(f"ladder {cfg.name!r} has no run {run_id!r}; its runs: {', '.join(runs)}")
    state = train_run(lad, runs[run_id], execution, device=device, ranks=ranks, wait=False, job_id=job_id)
    if ranks.rank == 0:
        write_runs_table(out, list(runs))
    ranks.barrier()
    return state


class RunJob:
    """One run as a submitit job. Called in the job (every task of it under several GPUs, each
    then one rank); ``checkpoint`` is what submitit calls when the job is warned of preemption
    or its time limit: it requeues the same job, which resumes from the run's checkpoint."""

    def __init__(
        self, cfg: LadderConfig, out_dir: str, run_id: str, execution: Execution, device: str | None
    ):
        self.cfg, self.out_dir, self.run_id = cfg, out_dir, run_id
        self.execution, self.device = execution, device

    def __call__(self) -> str:
        import submitit

        job_id = None
        with contextlib.suppress(RuntimeError):  # RuntimeError: not inside a submitit job
            env = submitit.JobEnvironment()
            job_id = str(env.job_id)
            if env.num_tasks > 1:  # one task per GPU: the torchrun variables for torch.distributed
                submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return run_one(
            self.cfg, self.out_dir, self.run_id, execution=self.execution, device=self.device, job_id=job_id
        )

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


@dataclass(frozen=True)
class JobResources:
    """What one run's job asks the scheduler for."""

    run_id: str
    #: GPUs (one task each); 0 on a CPU
    gpus: int
    nodes: int
    #: wall-clock limit in minutes
    minutes: int


def parse_minutes(text: str | None, what: str = "--time") -> int | None:
    """``90``, ``1:30:00``, ``2-00:00:00`` (SLURM's forms) as minutes; None for None."""
    if text is None:
        return None
    t = str(text).strip()
    try:
        days, _, rest = t.rpartition("-")
        parts = [int(p) for p in rest.split(":")]
        if len(parts) == 1:
            minutes = parts[0]
        elif len(parts) in (2, 3):
            h, m = (parts[0], parts[1]) if len(parts) == 3 else (0, parts[0])
            minutes = h * 60 + m + (1 if len(parts) == 3 and parts[2] else 0)
        else:
            raise ValueError
        minutes += int(days or 0) * 1440
    except ValueError:
        raise InputError(f"{what} {text!r}: give minutes (90), H:MM:SS (1:30:00) or D-HH:MM:SS") from None
    if minutes < 1:
        raise InputError(f"{what} {text!r}: at least one minute")
    return minutes


def job_resources(
    cfg: LadderConfig,
    runs: Sequence[RunPlan],
    *,
    device: str = "cuda",
    gpus_per_run: int | None = None,
    gpu_bytes: float | None = None,
    gpus_per_node: int = 8,
    minutes: int | None = None,
    max_minutes: int | None = None,
    slack: float = 2.0,
    overhead_minutes: int = 10,
) -> list[JobResources]:
    """Per run: its GPUs (``gpus_per_run``; else the fewest, from 1 doubling up, over which the
    batch splits and :func:`~lmscale.train.memory.run_resources`'s estimate fits ``gpu_bytes``;
    else 1; 0 on a CPU) and its time (``minutes``; else the planner's estimate,
    :meth:`~lmscale.train.ladder.RunPlan.estimated_seconds`, split over the GPUs, × ``slack``, plus
    ``overhead_minutes`` for start-up, data and validation, at most ``max_minutes``: a longer run
    is requeued at its time limit and resumes from its checkpoint)."""
    from lmscale.train.memory import run_resources

    out = []
    for r in runs:
        if device == "cpu":
            g = 0
        elif gpus_per_run is not None:
            g = gpus_per_run
        elif gpu_bytes is None:
            g = 1
        else:
            g = 0
            for world in (1, 2, 4, 8, 16, 32, 64):
                if r.shape.batch_size % world:
                    continue
                with contextlib.suppress(InputError):
                    run_resources(cfg, [r], gpu_bytes=gpu_bytes, world=world)
                    g = world
                    break
            if not g:
                raise InputError(
                    f"run {r.run_id}: does not fit {gpu_bytes / 2**30:.0f} GiB GPUs on up to 64 GPUs"
                )
        est = r.estimated_seconds(device) / max(g, 1)
        m = minutes if minutes is not None else math.ceil(est * slack / 60) + overhead_minutes
        m = min(m, max_minutes) if max_minutes is not None else m
        out.append(JobResources(r.run_id, g, max(1, -(-g // gpus_per_node)), m))
    return out


@dataclass(frozen=True)
class SubmitResult:
    """What ``ladder submit`` did."""

    #: run id → submitted job id (the last one, after resubmissions)
    jobs: dict[str, str]
    #: runs finished before the submission, and runs left alone: another process was training them,
    #: or (slurm) their newest job is still in the queue
    skipped_done: tuple[str, ...]
    skipped_running: tuple[str, ...]
    #: local executor: runs whose job failed (run id, reason); empty for slurm (see ``ladder status``)
    failed: tuple[tuple[str, str], ...] = ()
    #: ``runs.jsonl`` (local executor: complete when nothing failed)
    runs_path: Path | None = None


def _check_executor(kind: str) -> None:
    if kind not in EXECUTORS:
        raise InputError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise InputError(
            "ladder submit needs submitit: pip install 'lmscale[cluster]' (or pip install submitit)"
        ) from None
    missing = [c for c in ("sbatch", "srun") if kind == "slurm" and shutil.which(c) is None]
    if missing:
        raise InputError(
            f"--executor slurm: {' and '.join(missing)} not found; submit from a SLURM login node, "
            "or use --executor local"
        )


def _executor(kind: str, folder: Path, max_requeues: int):
    import submitit

    if kind == "slurm":
        return submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=max_requeues)
    return submitit.LocalExecutor(folder=folder, max_num_timeout=max_requeues)


def _queued_on_slurm(out: Path, run_ids: Sequence[str]) -> set[str]:
    """Runs whose newest job SLURM still holds (pending, running or requeued: listed by ``squeue``
    for this user); none when ``squeue`` cannot say."""
    import getpass
    import subprocess

    newest = {k: j for k in run_ids if (j := last_job(out / "runs" / k))}
    if not newest:
        return set()
    try:
        res = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-u", getpass.getuser()],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return set()
    alive = set(res.stdout.split()) if res.returncode == 0 else set()
    return {k for k, j in newest.items() if j in alive}


def submit_ladder(
    cfg: LadderConfig,
    out_dir: str | Path,
    *,
    executor: str = "local",
    execution: Execution | None = None,
    device: str = "cuda",
    gpus_per_run: int | None = None,
    minutes: int | None = None,
    max_minutes: int | None = None,
    partition: str | None = None,
    cpus_per_gpu: int = 8,
    parallel: int = 1,
    retries: int = 2,
    max_requeues: int = 50,
    on_event: Callable[[str], None] | None = None,
    poll_seconds: float = 0.5,
) -> SubmitResult:
    """Submit one job per unfinished run of ``cfg`` in ``out_dir`` (see the module's docstring)."""
    _check_executor(executor)
    require_corpus(cfg.corpus, cfg.name)
    say = on_event or (lambda _m: None)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    execution = execution or Execution()
    lad = open_ladder(cfg, out, execution)  # ladder.json and the data, once, before any job
    done = tuple(r.run_id for r in lad.runs if finished(out / "runs" / r.run_id / "record.json"))
    queued = _queued_on_slurm(out, [r.run_id for r in lad.runs]) if executor == "slurm" else set()
    running = tuple(
        r.run_id
        for r in lad.runs
        if r.run_id not in done and (r.run_id in queued or run_is_locked(out / "runs" / r.run_id))
    )
    pending = [r for r in lad.runs if r.run_id not in done and r.run_id not in running]
    res = {
        x.run_id: x
        for x in job_resources(
            cfg,
            pending,
            device=device,
            gpus_per_run=gpus_per_run,
            gpu_bytes=execution.gpu_memory,
            minutes=minutes,
            max_minutes=max_minutes,
        )
    }
    ex = _executor(executor, out / "jobs", max_requeues)

    def submit(r: RunPlan, slot: int = 0):
        x = res[r.run_id]
        params: dict = dict(timeout_min=x.minutes, tasks_per_node=max(1, x.gpus // x.nodes))
        if executor == "slurm":
            params |= dict(
                name=f"lmscale-{r.run_id}",
                nodes=x.nodes,
                gpus_per_node=x.gpus // x.nodes,
                cpus_per_task=cpus_per_gpu if x.gpus else 2,
                slurm_signal_delay_s=120,
            )
            if partition:
                params["slurm_partition"] = partition
        elif x.gpus:
            params |= dict(
                gpus_per_node=x.gpus, visible_gpus=tuple(range(slot * x.gpus, (slot + 1) * x.gpus))
            )
        ex.update_parameters(**params)
        job = ex.submit(RunJob(cfg, str(out), r.run_id, execution, device))
        note_job(out / "runs" / r.run_id, job.job_id, executor)
        say(f"{r.run_id}: job {job.job_id} ({x.gpus} GPU(s), {x.minutes} min)")
        return job

    if executor == "slurm":
        jobs = {r.run_id: str(submit(r).job_id) for r in pending}
        return SubmitResult(jobs, done, running)
    return _run_locally(out, lad.runs, pending, submit, parallel, retries, say, poll_seconds, done, running)


def _run_locally(out, plan_runs, pending, submit, parallel, retries, say, poll_seconds, done, running):
    """Keep at most ``parallel`` local jobs running; resubmit a run whose job died without a record."""
    queue, tries = list(pending), dict.fromkeys((r.run_id for r in pending), 0)
    active: dict = {}
    jobs, failed, left = {}, [], []
    free = list(range(parallel))
    while queue or active:
        while queue and free:
            r = queue.pop(0)
            slot = free.pop(0)
            job = submit(r, slot)
            active[r.run_id] = (r, job, slot)
            jobs[r.run_id] = str(job.job_id)
        time.sleep(poll_seconds)
        for rid, (r, job, slot) in list(active.items()):
            if not job.done():
                continue
            del active[rid]
            free.append(slot)
            rec_path = out / "runs" / rid / "record.json"
            outcome, reason = None, ""
            try:
                outcome = job.result()
            except Exception as exc:  # noqa: BLE001 - submitit re-raises the job's own error, of any type
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            if finished(rec_path) is not None:
                say(f"{rid}: done")
            elif outcome == HELD:
                left.append(rid)
                say(f"{rid}: another process is training it; left to it")
            elif rec_path.is_file() or tries[rid] >= retries:
                why = RunRecord.read(rec_path).reason if rec_path.is_file() else reason
                failed.append((rid, why or "no record"))
                say(f"{rid}: failed ({why})")
            else:
                tries[rid] += 1
                say(
                    f"{rid}: job {job.job_id} ended without a record (killed?); resubmitting ({tries[rid]}/{retries})"
                )
                queue.insert(0, r)
    path = write_runs_table(out, [r.run_id for r in plan_runs])
    return SubmitResult(jobs, done, running + tuple(left), tuple(failed), path)
