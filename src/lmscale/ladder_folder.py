"""A ladder folder shared by concurrent writers: one lock per run (``runs/<id>/.lock``, an
``fcntl`` lock that dies with its process), ``runs.jsonl`` rebuilt from the per-run records, a
note of the job that trains each run, and each run's state for ``lmscale ladder status``.

No lock is held for the whole ladder: a worker holds one run's lock while it trains that run, and
the short ``runs.lock`` only while it rewrites ``runs.jsonl`` (read every record, write the table
atomically), so the last writer's table holds every finished run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lmscale._io import atomic_write_text, read_json
from lmscale.errors import InputError
from lmscale.run_record import DONE, FAILED, RunRecord, finished

PENDING, RUNNING = "pending", "running"


def _open_lock(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a+", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the lock file {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def run_lock(run_dir: str | Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold run ``run_dir``'s lock for the block; yields True when held. With ``wait=False`` a lock
    held by another process yields False at once (the block must then leave the run alone)."""
    path = Path(run_dir) / ".lock"
    fh = _open_lock(path)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} on {platform.node()}")
        fh.flush()
        yield True
    finally:
        fh.close()


@contextlib.contextmanager
def folder_lock(folder: Path):
    """Hold an exclusive lock on ``folder`` (its ``.lock`` file) for this process: a second
    ``ladder run`` on the same folder stops at once and says which process holds it, instead of
    training every run twice and interleaving the logs. The lock dies with its process."""
    path = folder / ".lock"
    try:
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block's duration
    except OSError as exc:
        raise InputError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise InputError(
                f"{folder} is in use by {holder}; wait for it to finish or use another folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} on {platform.node()}")
        fh.flush()
        yield
    finally:
        fh.close()


def run_is_locked(run_dir: str | Path) -> bool:
    """Whether a live process holds the run's lock (probed with a shared lock, released at once)."""
    path = Path(run_dir) / ".lock"
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _plan_order(records: dict[str, RunRecord]) -> list[str]:
    """Run ids in the planner's order (compute, then size), from the records' rows."""

    def key(k: str) -> tuple:
        row = records[k].row
        nums = [row.get(c) for c in ("flops", "n_params")]
        return (*(float(v) if isinstance(v, (int, float)) else math.inf for v in nums), k)

    return sorted(records, key=key)


def write_runs_table(ladder_dir: str | Path, run_ids: Sequence[str] | None = None) -> Path:
    """Rewrite ``runs.jsonl`` from the finished runs' records (in ``run_ids``' order, or the
    planner's order), under the short ``runs.lock``; returns its path."""
    root = Path(ladder_dir)
    fh = _open_lock(root / "runs.lock")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if run_ids is None:
            found = {p.name: finished(p / "record.json") for p in (root / "runs").glob("*")}
            done = {k: r for k, r in found.items() if r is not None}
            order = _plan_order(done)
        else:
            done = {k: r for k in run_ids if (r := finished(root / "runs" / k / "record.json")) is not None}
            order = [k for k in run_ids if k in done]
        text = "".join(json.dumps(done[k].to_json()["row"]) + "\n" for k in order)
        return atomic_write_text(root / "runs.jsonl", text)
    finally:
        fh.close()


def note_job(run_dir: str | Path, job_id: str, executor: str) -> None:
    """Append a submitted job to the run's ``job.json`` (the newest last)."""
    path = Path(run_dir) / "job.json"
    jobs = _jobs(path)
    jobs.append({"job_id": str(job_id), "executor": executor, "submitted": time.time()})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"jobs": jobs}, indent=1))


def _jobs(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        jobs = read_json(path).get("jobs", [])
    except InputError:
        return []
    return [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []


def last_job(run_dir: str | Path) -> str:
    """The newest job id submitted for the run ('' when none was)."""
    jobs = _jobs(Path(run_dir) / "job.json")
    return str(jobs[-1].get("job_id", "")) if jobs else ""


def note_worker(run_dir: str | Path, job_id: str | None) -> int:
    """Record in ``worker.json`` which process trains the run now and the step it resumes from
    (the last step of ``train_log.jsonl``); returns that step."""
    rdir = Path(run_dir)
    step = last_logged(rdir)[0]
    info = {
        "pid": os.getpid(),
        "host": platform.node(),
        "job_id": job_id,
        "started": time.time(),
        "resumed_from_step": step,
    }
    atomic_write_text(rdir / "worker.json", json.dumps(info, indent=1))
    return step


def last_logged(run_dir: str | Path) -> tuple[int, float | None]:
    """(step, training loss) of the last complete line of the run's ``train_log.jsonl``; (0, None)
    without one."""
    path = Path(run_dir) / "train_log.jsonl"
    if not path.is_file():
        return 0, None
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return 0, None
    for line in reversed(tail.splitlines()):
        try:
            entry = json.loads(line)
            return int(entry["step"]), float(entry["loss"])
        except (ValueError, KeyError, TypeError, OverflowError):
            continue
    return 0, None


@dataclass(frozen=True)
class RunState:
    """Where one run of a ladder stands."""

    run_id: str
    #: pending (not started, or stopped and resumable), running (its lock is held), done or failed
    state: str
    #: last logged training step and loss (the record's final values once done)
    step: int
    loss: float | None
    #: the job training it while running, else the newest job submitted for it ('' when none)
    job_id: str
    #: the failure's reason, or the worker's host and process while running
    detail: str = ""


def run_state(run_dir: str | Path) -> RunState:
    rdir = Path(run_dir)
    step, loss = last_logged(rdir)
    job_id = last_job(rdir)
    rec_path = rdir / "record.json"
    done = finished(rec_path)
    if done is not None:
        final = done.row.get("train_loss")
        final = float(final) if isinstance(final, (int, float)) and not isinstance(final, bool) else loss
        return RunState(rdir.name, DONE, step, final, job_id)
    if run_is_locked(rdir):
        who = ""
        with contextlib.suppress(InputError, OSError):
            w = read_json(rdir / "worker.json")
            who = f"process {w.get('pid')} on {w.get('host')}"
            job_id = str(w.get("job_id") or "")  # the job that trains it ('' for a `ladder run`)
        return RunState(rdir.name, RUNNING, step, loss, job_id, who)
    if rec_path.is_file():
        with contextlib.suppress(InputError):
            rec = RunRecord.read(rec_path)
            if rec.status == FAILED:
                return RunState(rdir.name, FAILED, rec.step or step, loss, job_id, rec.reason or "")
    return RunState(rdir.name, PENDING, step, loss, job_id)


def ladder_status(ladder_dir: str | Path) -> list[RunState]:
    """The state of every run of a ladder folder, in the planner's order (so runs never started
    show as pending), then any other run folder it holds."""
    from lmscale.train.ladder import LadderConfig, plan

    root = Path(ladder_dir)
    cfg_path = root / "ladder.json"
    if not cfg_path.is_file():
        raise InputError(f"{root} is not a ladder folder (no ladder.json)")
    ids = [r.run_id for r in plan(LadderConfig.from_json(read_json(cfg_path), str(cfg_path)))]
    ids += sorted(p.name for p in (root / "runs").glob("*") if p.is_dir() and p.name not in ids)
    return [run_state(root / "runs" / k) for k in ids]
