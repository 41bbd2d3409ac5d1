"""Logs that work anywhere (issue 21): plain timestamped progress lines when stdout is not a
terminal, at a bounded rate, silenced by --quiet; ladder plan time estimates in hours with their
assumption."""

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from lmscale.cli import cli
from lmscale.cli.progress import LadderProgress, duration

STDLIB = Path(os.__file__).parent
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[[^\]]+\] .+$")


class _Run:
    def __init__(self, run_id):
        self.run_id = run_id


def test_lines_on_a_non_tty_stream_at_a_bounded_rate(monkeypatch):
    buf = io.StringIO()
    clock = [0.0]
    monkeypatch.setattr("lmscale.cli.progress.time.monotonic", lambda: clock[0])
    with LadderProgress(2, "ladder run", mode="lines", stream=buf, interval_s=20) as p:
        for k in range(2):
            p.on_run(k, 2, _Run(f"r{k}"))
            for step in range(1, 101):
                clock[0] += 1.0  # one step a second: a line every 20 s, not every step
                p.on_step(step, 100, 12345.0)
    lines = buf.getvalue().splitlines()
    assert all(LINE.match(x) for x in lines), lines
    steps = [x for x in lines if "step " in x]
    assert 8 <= len(steps) <= 12  # 200 s of steps at one line per 20 s (+ each run's last step)
    assert "run 1/2 r0: step 20/100, 12,345 tokens/s, run ETA 1m20s" in buf.getvalue()
    assert "run 2/2 r1: start, ETA 1m40s" in buf.getvalue() and "r1: finished in 1m40s" in buf.getvalue()
    assert lines[0].endswith("[ladder run] start: 2 item(s)") and "done after 3m20s (2/2)" in lines[-1]


def test_advance_names_items_and_quiet_prints_nothing():
    buf = io.StringIO()
    with LadderProgress(3, "ladder eval (harness)", mode="lines", stream=buf, interval_s=0) as p:
        for r in ("a", "b", "c"):
            p.advance(f"run {r} scored")
    assert "3/3 run c scored" in buf.getvalue()
    quiet = io.StringIO()
    with LadderProgress(3, "x", mode="quiet", stream=quiet) as p:
        p.advance("a")
    assert quiet.getvalue() == ""
    assert duration(3725) == "1h02m" and duration(125) == "2m05s" and duration(7) == "7s"


def _tiny_ladder(tmp_path) -> Path:
    cfg = tmp_path / "ladder.yaml"
    cfg.write_text(
        textwrap.dedent(f"""
        name: log
        shapes: [{{name: a, d_model: 16, n_layers: 1, n_heads: 2, batch_size: 16, warmup_steps: 2}}]
        multipliers: [0.25, 0.5]
        corpus: {{name: json, sources: ["{STDLIB / "json" / "*.py"}"], val_permille: 200}}
        vocab_size: 300
        seq_len: 32
        checkpoint_every: 0
    """)
    )
    return cfg


def test_ladder_run_redirected_to_a_file_leaves_progress_lines(tmp_path):
    """`lmscale ladder run … > log.txt`: the log shows each run's start and end, with timestamps."""
    cfg = _tiny_ladder(tmp_path)
    log = tmp_path / "log.txt"
    env = {**os.environ, "LMSCALE_PROGRESS_INTERVAL": "0"}
    with log.open("w") as fh:
        res = subprocess.run(
            [sys.executable, "-m", "lmscale.cli", "ladder", "run", str(cfg), "--out", str(tmp_path / "l"),
             "--device", "cpu"],
            stdout=fh, stderr=subprocess.PIPE, text=True, env=env, timeout=600, check=False,
        )  # fmt: skip
    assert res.returncode == 0, res.stderr
    text = log.read_text()
    lines = [x for x in text.splitlines() if LINE.match(x)]
    assert any("[ladder run] run 1/2 " in x and "start" in x for x in lines), text
    assert any("tokens/s" in x for x in lines) and any("done after" in x for x in lines)
    res = CliRunner().invoke(cli, ["ladder", "run", str(cfg), "--out", str(tmp_path / "l"), "--quiet"])
    assert res.exit_code == 0 and "[ladder run]" not in res.output


@pytest.mark.slow
def test_loop_redirected_to_a_file_leaves_progress_lines(tmp_path):
    """`lmscale loop … > log.txt` (three sizes, two multipliers): every run's start, step lines
    with tokens/s and ETA, and its end, with timestamps."""
    cfg = tmp_path / "ladder.yaml"
    shapes = "".join(
        f"  - {{name: {n}, d_model: {d}, n_layers: 1, n_heads: 2, batch_size: 16, warmup_steps: 2}}\n"
        for n, d in (("a", 16), ("b", 24), ("c", 32))
    )
    sources = f'["{STDLIB / "json" / "*.py"}", "{STDLIB / "email" / "*.py"}"]'
    cfg.write_text(
        f"name: log\nshapes:\n{shapes}multipliers: [1, 2]\n"
        f"corpus: {{name: py, sources: {sources}, val_permille: 200}}\nvocab_size: 300\nseq_len: 32\n"
        "checkpoint_every: 0\n"
    )
    log = tmp_path / "log.txt"
    env = {**os.environ, "LMSCALE_PROGRESS_INTERVAL": "5"}
    with log.open("w") as fh:
        res = subprocess.run(
            [sys.executable, "-m", "lmscale.cli", "loop", str(cfg), "--out", str(tmp_path / "l"), "--device", "cpu"],
            stdout=fh, stderr=subprocess.PIPE, text=True, timeout=1200, check=False, env=env,
        )  # fmt: skip
    text = log.read_text()
    assert "[loop] start: 6 item(s)" in text and "[loop] run 6/6 " in text, (text, res.stderr)
    assert re.search(r"\[loop\] run 1/6 \S+: step \d+/\d+, [0-9,]+ tokens/s", text), text


def test_ladder_plan_paper_on_8_gpus_in_hours():
    res = CliRunner().invoke(
        cli,
        ["ladder", "plan", "--preset", "paper", "--gpus", "8", "--gpu-memory", "80GB", "--format", "json"],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    hours = sum(r["estimated_seconds"] for r in rows) / 3600
    assert 10 <= hours <= 2000, hours
    assert "8 GPU(s) × 989 TFLOP/s peak × 40% MFU" in rows[0]["time_assumption"]
    res = CliRunner().invoke(
        cli, ["ladder", "plan", "--preset", "paper", "--gpus", "8", "--gpu-memory", "80GB"]
    )
    assert re.search(r"about [0-9.]+ hours \(assumes 8 GPU", res.output)
    res = CliRunner().invoke(
        cli, ["ladder", "plan", "--preset", "paper", "--gpus", "8", "--mfu", "0.2", "--format", "json"]
    )
    doubled = sum(r["estimated_seconds"] for r in json.loads(res.stdout)) / 3600
    assert doubled == pytest.approx(2 * hours)


def test_ladder_plan_on_cpu_uses_measured_step_times(monkeypatch):
    monkeypatch.setattr("lmscale.train.timing.step_seconds", lambda *a, **k: 0.5)
    res = CliRunner().invoke(cli, ["ladder", "plan", "--preset", "cpu-tiny", "--measure", "--format", "json"])
    rows = json.loads(res.stdout)
    assert all(r["estimated_seconds"] == 0.5 * r["n_steps"] for r in rows)
    assert rows[0]["time_assumption"].startswith("measured")
    res = CliRunner().invoke(cli, ["ladder", "plan", "--preset", "cpu-tiny", "--format", "json"])
    assert json.loads(res.stdout)[0]["time_assumption"].startswith("not measured")
