"""Time of the whole paper report: `python benchmarks/report.py [TESTBED] [--out DIR]`.

Prints the seconds of each analysis and of its figures, and the total (issue 3 asks for < 30 s on a
2-core machine)."""

import argparse
import os
import tempfile
import time
from pathlib import Path

from lmscale import testbed
from lmscale.analyses.context import Context
from lmscale.report.writer import build_report

ap = argparse.ArgumentParser()
ap.add_argument(
    "testbed", nargs="?", default=os.environ.get("LMSCALE_SHARED", "../shared") + "/testbed/exp_data"
)
ap.add_argument("--out", default=None, help="report folder (default: a temporary one)")
args = ap.parse_args()

marks, last = [], [time.perf_counter()]


def progress(key):
    now = time.perf_counter()
    marks.append((key, now - last[0]))
    last[0] = now


t0 = time.perf_counter()
runs = testbed.load(args.testbed)
ctx = Context(
    runs, metadata=testbed.load_task_metadata(args.testbed), grid_path=Path(args.testbed) / "grid.json"
)
with tempfile.TemporaryDirectory() as tmp:
    build_report(ctx, args.out or tmp, progress=progress)
total = time.perf_counter() - t0
half = len(marks) // 2
print(f"{'analysis':<18}{'compute s':>10}{'figures+files s':>17}")
for (key, a), (_, w) in zip(marks[:half], marks[half:]):
    print(f"{key:<18}{a:>10.2f}{w:>17.2f}")
print(f"whole report (load + 12 analyses + figures + files): {total:.1f} s")
