"""A ladder as one job per run (issue 22): ``ladder submit`` through submitit's LocalExecutor on
two concurrent workers gives the sequential run's ``runs.jsonl``; a worker killed with SIGKILL
mid-run is resubmitted and resumes; a worker warned of preemption (SIGUSR2, as SLURM sends it)
is requeued by submitit and resumes from its checkpoint; the folder's per-run locks and status."""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
submitit = pytest.importorskip("submitit")

from lmscale.cli import cli  # noqa: E402
from lmscale.errors import InputError  # noqa: E402
from lmscale.ladder_folder import ladder_status, run_is_locked, run_lock, write_runs_table  # noqa: E402
from lmscale.ladder_run import Execution, run_ladder  # noqa: E402
from lmscale.ladder_submit import RunJob, job_resources, parse_minutes, submit_ladder  # noqa: E402
from lmscale.run_record import DONE, RunRecord  # noqa: E402
from lmscale.train.data import CorpusConfig  # noqa: E402
from lmscale.train.ladder import LadderConfig, ShapeSpec, plan, preset  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SRC = Path(__file__).resolve().parents[1] / "src"
BIG = "json-b-M1"  # the largest run: 94 steps, checkpoints every 2, logged every 10


def _cfg() -> LadderConfig:
    corpus = CorpusConfig(
        "json", (str(STDLIB / "json" / "*.py"), str(STDLIB / "email" / "*.py")), val_permille=200
    )
    val = CorpusConfig("csv", (str(STDLIB / "csv.py"), str(STDLIB / "textwrap.py")), val_permille=1000)
    return LadderConfig(
        "t",
        (ShapeSpec("a", 16, 1, 2, 16, 2), ShapeSpec("b", 32, 1, 2, 16, 2)),
        (0.5, 1.0),
        corpus,
        (val,),
        vocab_size=300,
        seq_len=32,
        checkpoint_every=2,
    )


def _config_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(_cfg().to_json()))
    return path


def _rows(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["run_id"]: r for r in rows}


def _same_rows(got: Path, want: Path) -> None:
    a, b = _rows(got), _rows(want)
    assert list(a) == list(b)  # the same run ids, in the same (planner's) order
    for rid in a:
        assert set(a[rid]) == set(b[rid]), rid
        for k, v in a[rid].items():
            if k == "wall_seconds":
                continue
            if isinstance(v, float):
                assert v == pytest.approx(b[rid][k], abs=1e-6), (rid, k)
            else:
                assert v == b[rid][k], (rid, k)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The ladder trained by ``run_ladder`` in this process, one thread (as the workers)."""
    import torch

    folder = tmp_path_factory.mktemp("seq") / "ladder"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = run_ladder(_cfg(), folder)
    finally:
        torch.set_num_threads(threads)
    return path


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


@pytest.mark.slow
def test_two_local_workers_give_the_sequential_runs_table(sequential, tmp_path, one_thread):
    events = []
    res = submit_ladder(
        _cfg(), tmp_path / "par", executor="local", device="cpu", parallel=2, on_event=events.append
    )
    assert not res.failed and len(res.jobs) == 4, events
    _same_rows(res.runs_path, sequential)
    states = ladder_status(tmp_path / "par")
    assert [s.state for s in states] == [DONE] * 4 and all(s.job_id for s in states)
    # submitting again finds every run done and submits nothing
    again = submit_ladder(_cfg(), tmp_path / "par", executor="local", device="cpu")
    assert again.jobs == {} and len(again.skipped_done) == 4


def _wait_for(cond, what: str, timeout: float = 240.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _mid_run_worker(run_dir: Path):
    """The worker's process id once the run has logged step 10 and has a checkpoint, unfinished."""
    log, worker = run_dir / "train_log.jsonl", run_dir / "worker.json"
    if not (log.is_file() and worker.is_file() and (run_dir / "checkpoint.pt").is_file()):
        return None
    if (run_dir / "record.json").is_file() or not log.read_text().strip():
        return None
    return json.loads(worker.read_text())["pid"]


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_resubmitted_and_resumes(sequential, tmp_path, one_thread):
    config = _config_file(tmp_path)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lmscale.cli", "ladder", "submit", str(config), "--out", str(out)]
    proc = subprocess.Popen(
        cmd + ["--executor", "local", "--device", "cpu", "--parallel", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid = _wait_for(lambda: _mid_run_worker(out / "runs" / BIG), "the largest run to get going")
    os.kill(pid, signal.SIGKILL)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output
    assert f"{BIG}: job" in output and "ended without a record (killed?); resubmitting (1/2)" in output
    jobs = json.loads((out / "runs" / BIG / "job.json").read_text())["jobs"]
    assert len(jobs) == 2  # submitted, killed, submitted again
    assert json.loads((out / "runs" / BIG / "worker.json").read_text())["resumed_from_step"] >= 10
    _same_rows(out / "runs.jsonl", sequential)


@pytest.mark.slow
def test_a_job_warned_of_preemption_is_requeued_and_resumes(sequential, tmp_path, one_thread):
    """SLURM signals a job (USR2 with submitit) before preempting it or at its time limit: submitit
    calls RunJob.checkpoint, the job is requeued and the run resumes from its checkpoint."""
    cfg = _cfg()
    out = tmp_path / "pre"
    shutil.copytree(sequential.parent, out, ignore=shutil.ignore_patterns("*.lock"))
    for f in ("record.json", "checkpoint.pt", "train_log.jsonl"):  # redo the largest run under a job
        (out / "runs" / BIG / f).unlink()
    ex = submitit.LocalExecutor(folder=tmp_path / "jobs")
    ex.update_parameters(timeout_min=30)
    job = ex.submit(RunJob(cfg, str(out), BIG, Execution(), "cpu"))
    pid = _wait_for(lambda: _mid_run_worker(out / "runs" / BIG), "the run to get going")
    os.kill(pid, signal.SIGUSR2)
    assert job.result() == "trained"
    assert "Requeued" in (job.stderr() or "") + (job.stdout() or "")
    assert json.loads((out / "runs" / BIG / "worker.json").read_text())["resumed_from_step"] >= 10
    _same_rows(out / "runs.jsonl", sequential)


@pytest.mark.slow
def test_a_job_of_two_tasks_trains_its_run_as_two_ranks(sequential, tmp_path, one_thread):
    """A run given 2 GPUs is one job of 2 tasks: each task becomes one rank of a torch.distributed
    group (here gloo on the CPU) and the run ends as the one-process run does."""
    cfg = _cfg()
    out = tmp_path / "ranks"
    shutil.copytree(sequential.parent, out, ignore=shutil.ignore_patterns("*.lock"))
    small = "json-a-M0.5"
    for f in ("record.json", "checkpoint.pt", "train_log.jsonl"):
        (out / "runs" / small / f).unlink()
    ex = submitit.LocalExecutor(folder=tmp_path / "jobs")
    ex.update_parameters(timeout_min=30, tasks_per_node=2)
    job = ex.submit(RunJob(cfg, str(out), small, Execution(), "cpu"))
    assert job.results() == ["trained", "trained"]
    assert "global_rank=1(2)" in (job.stdout() or "") + "".join(
        p.read_text() for p in (tmp_path / "jobs").glob("*_1_log.out")
    )
    got, want = _rows(out / "runs.jsonl")[small], _rows(sequential)[small]
    assert got["loss_json"] == pytest.approx(want["loss_json"], abs=1e-5)  # 2 ranks vs 1: summation order
    assert got["train_loss"] == pytest.approx(want["train_loss"], abs=1e-5)


def test_run_locks_and_status(tmp_path):
    cfg = _cfg()
    out = tmp_path / "l"
    (out / "runs").mkdir(parents=True)
    (out / "ladder.json").write_text(json.dumps(cfg.to_json()))
    ids = [r.run_id for r in plan(cfg)]
    row = {"run_id": ids[0], "n_params": 1, "n_tokens": 2, "flops": 12.0, "train_loss": 3.5, "loss_json": 4.0}
    RunRecord(DONE, ids[0], "t", row=row).write(out / "runs" / ids[0] / "record.json")
    RunRecord("failed", ids[2], "t", reason="loss is nan", step=7).write(
        out / "runs" / ids[2] / "record.json"
    )
    (out / "runs" / ids[1]).mkdir()
    (out / "runs" / ids[1] / "train_log.jsonl").write_text('{"step": 10, "loss": 4.25}\n{"step": 20, "lo')
    with run_lock(out / "runs" / ids[1]) as held:
        assert held and run_is_locked(out / "runs" / ids[1])
        with run_lock(out / "runs" / ids[1], wait=False) as again:
            assert not again  # another holder: left alone at once
        states = {s.run_id: s for s in ladder_status(out)}
        assert states[ids[1]].state == "running" and (states[ids[1]].step, states[ids[1]].loss) == (10, 4.25)
    assert not run_is_locked(out / "runs" / ids[1])
    assert [s.state for s in ladder_status(out)] == ["done", "pending", "failed", "pending"]
    assert ladder_status(out)[2].detail == "loss is nan"
    table = write_runs_table(out)
    assert [json.loads(x)["run_id"] for x in table.read_text().splitlines()] == [ids[0]]
    res = CliRunner().invoke(cli, ["ladder", "status", str(out)])
    assert res.exit_code == 0 and "1 done, 0 running, 1 failed, 2 pending" in res.output
    res = CliRunner().invoke(cli, ["ladder", "status", str(tmp_path)])
    assert res.exit_code == 2 and "not a ladder folder" in res.output


def test_job_resources_come_from_the_plan():
    cfg = preset("paper")
    runs = plan(cfg)
    res = job_resources(cfg, runs, device="cuda", gpu_bytes=80 * 2**30)
    assert {x.gpus for x in res} == {1} and all(x.minutes >= 10 for x in res)
    small, big = min(res, key=lambda x: x.minutes), max(res, key=lambda x: x.minutes)
    assert big.minutes > 100 * small.minutes  # time grows with the run's FLOPs
    big_cfg = LadderConfig.from_json({"preset": "paper", "shapes": ["6.9B"], "multipliers": [5]})
    sharded = [job_resources(big_cfg, plan(big_cfg), gpu_bytes=gb * 2**30)[0].gpus for gb in (80, 40)]
    assert sharded == [2, 4]  # the 6.9B shape is sharded (FSDP) over the fewest GPUs it fits on
    capped = job_resources(cfg, runs, device="cuda", max_minutes=48 * 60)
    assert max(x.minutes for x in capped) == 48 * 60 and min(x.minutes for x in capped) == small.minutes
    fixed = job_resources(cfg, runs[:2], gpus_per_run=16, minutes=90)
    assert [(x.gpus, x.nodes, x.minutes) for x in fixed] == [(16, 2, 90)] * 2
    assert [x.gpus for x in job_resources(cfg, runs[:1], device="cpu")] == [0]
    assert (
        parse_minutes("90") == 90 and parse_minutes("1:30:00") == 90 and parse_minutes("1-00:00:00") == 1440
    )
    for bad in ("soon", "0", "1:2:3:4"):
        with pytest.raises(InputError, match="--time"):
            parse_minutes(bad)


def test_submit_refuses_bad_input_before_submitting(tmp_path, monkeypatch):
    config = _config_file(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    res = CliRunner().invoke(
        cli, ["ladder", "submit", str(config), "--out", str(tmp_path / "x"), "--executor", "slurm"]
    )
    assert res.exit_code == 2 and "sbatch and srun not found" in res.output
    res = CliRunner().invoke(
        cli, ["ladder", "submit", "--preset", "paper", "--out", str(tmp_path / "p"), "--executor", "local"]
    )
    assert (
        res.exit_code == 2
        and "names no training corpus" in res.output
        and "lmscale data prepare" in res.output
    )
    assert not (tmp_path / "p" / "ladder.json").exists()
    res = CliRunner().invoke(
        cli,
        [
            "ladder",
            "submit",
            str(config),
            "--out",
            str(tmp_path / "y"),
            "--time",
            "later",
            "--executor",
            "local",
        ],
    )
    assert res.exit_code == 2 and "--time 'later'" in res.output


def test_slurm_jobs_ask_for_each_runs_gpus_and_time(tmp_path, monkeypatch):
    """With a stand-in ``sbatch`` (records the script, answers a job id): one job per run, each
    with its GPUs, time, partition, the warning signal that triggers the requeue, and the job id
    noted for ``ladder status``."""
    bin_dir, spool = tmp_path / "bin", tmp_path / "spool"
    bin_dir.mkdir()
    spool.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(
        f'#!/bin/sh\nn=$(ls {spool} | wc -l)\ncp "$1" {spool}/job$n.sh\necho "Submitted batch job $((1000 + n))"\n'
    )
    fake.chmod(0o755)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = _config_file(tmp_path)
    out = tmp_path / "lad"
    args = ["ladder", "submit", str(config), "--out", str(out), "--executor", "slurm", "--partition", "gpu"]
    res = CliRunner().invoke(cli, [*args, "--time", "2:00:00", "--gpus-per-run", "2"])
    assert res.exit_code == 0, res.output
    assert "4 run(s) submitted (slurm)" in res.output and "lmscale ladder status" in res.output
    scripts = sorted(spool.glob("*.sh"))
    assert len(scripts) == 4
    text = scripts[0].read_text()
    for line in (
        "--gpus-per-node=2",
        "--ntasks-per-node=2",
        "--time=120",
        "--partition=gpu",
        "--signal=USR2@120",
    ):
        assert f"#SBATCH {line}" in text, (line, text)
    states = ladder_status(out)
    assert [s.state for s in states] == ["pending"] * 4
    assert sorted(s.job_id for s in states) == ["1000", "1001", "1002", "1003"]
    # submitted again while SLURM still holds the jobs (squeue lists them): nothing is submitted
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\nprintf '1000\\n1001\\n1002\\n1003\\n999\\n'\n")
    squeue.chmod(0o755)
    res = CliRunner().invoke(cli, args)
    assert (
        res.exit_code == 0
        and "0 run(s) submitted" in res.output
        and "4 already queued or being trained" in res.output
    )
    # gone from the queue without a record (cancelled, failed): submitted again, by default for the
    # plan's time
    squeue.write_text("#!/bin/sh\nprintf '999\\n'\n")
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and "4 run(s) submitted" in res.output and len(list(spool.glob("*.sh"))) == 8
    assert "#SBATCH --time=11" in sorted(spool.glob("*.sh"))[-1].read_text()
