"""Peak memory of ``lmscale import wandb-csv`` on a large W&B history:
``python benchmarks/wandb_memory.py [MB]`` (default 16).

Writes one history CSV of about MB megabytes in the layout ``run.history()`` saved with pandas
has (``_step``, ``_runtime``, ``_timestamp``, 150 logged metrics, most steps logging a few of them,
the evaluation loss every 50 steps), then runs the import in a fresh process and reports its peak
resident set size (``ru_maxrss``), beside the same import of a 6-line history: the difference is
what the file costs. Run it with PYTHONPATH pointing at another checkout's ``src`` for a
before/after.
"""

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

N_METRICS = 150


def write_history(path: Path, megabytes: float) -> int:
    rng = random.Random(0)
    cols = ["_step", "_runtime", "_timestamp", "eval/val/c4/ce_loss"] + [
        f"train/layer{i}/grad_norm" for i in range(N_METRICS - 1)
    ]
    target = megabytes * 1e6
    with open(path, "w") as fh:
        fh.write(",".join(cols) + "\n")
        step = 0
        while fh.tell() < target or step < 6:
            cells = [str(step), f"{step * 0.5:.1f}", f"{1.7e9 + step:.3f}"]
            cells.append(f"{3 + 10 / (step + 10):.6f}" if step % 50 == 0 else "")
            cells += [f"{rng.random():.6f}" if rng.random() < 0.8 else "" for _ in range(N_METRICS - 1)]
            fh.write(",".join(cells) + "\n")
            step += 1
    return step


def peak_rss_mb(folder: Path) -> float:
    code = (
        "import resource, sys\n"
        "from lmscale.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    args = ["import", "wandb-csv", str(folder), "--map", "eval/val/c4/ce_loss=loss_c4"]
    args += ["--name-pattern", "{model}_{tokens}.csv", "-o", str(folder.parent / f"{folder.name}.csv")]
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=False, capture_output=True, text=True, env=os.environ
    )
    if out.returncode != 0:
        raise SystemExit(f"the import failed:\n{out.stdout}{out.stderr}")
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # kilobytes on Linux


def main():
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 16.0
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        big.mkdir()
        small.mkdir()
        steps = write_history(big / "150M_3B.csv", megabytes)
        write_history(small / "150M_3B.csv", 0.001)
        size = (big / "150M_3B.csv").stat().st_size / 1e6
        base, peak = peak_rss_mb(small), peak_rss_mb(big)
    print(f"history: {size:.1f} MB, {steps} steps × {N_METRICS} metrics")
    print(f"peak RSS: {peak:.0f} MB (a 6-line history: {base:.0f} MB; the file costs {peak - base:.0f} MB)")


if __name__ == "__main__":
    main()
