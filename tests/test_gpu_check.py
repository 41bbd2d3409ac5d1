"""benchmarks/gpu_check.sh on the CPU with tiny shapes: every section of the GPU check (ladder loop,
throughput with checkpointing and compile, FSDP2 under torchrun with a kill/resume of its sharded
checkpoint, device-vs-CPU evaluation) runs, so the script cannot rot between GPU sessions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_runs_every_section_on_cpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "gpu_check.sh"),
            "--device",
            "cpu",
            "--tiny",
            "--out",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())["sections"]
    assert not [k for k, v in summary.items() if "skipped" in v], summary
    assert summary["ladder"]["runs"] == 9 and summary["ladder"]["report"]
    fsdp = summary["fsdp"]
    # killed after a checkpoint, resumed from it, and ends where the uninterrupted run ends
    assert not fsdp["finished_before_kill"] and fsdp["killed_at_step"] > 0
    assert fsdp["resume_rel_diff"] < 1e-5 and not fsdp["view_warning"]
    assert summary["throughput:tiny:compile"]["graph_breaks"] == 0
    assert "| section | result |" in res.stdout
