"""Calibrated-interval coverage on ladders other than the paper testbed:
`python benchmarks/coverage.py [SHARED]`.

- Epoch AI's Chinchilla replication points (`SHARED/peers/chinchilla-epoch/svg_extracted_data.csv`):
  fit on the runs up to the 75th percentile of N, predict the larger ones.
- `examples/cpu-small` (made by lmscale): fit every run below the largest shape, predict the
  largest shape's four runs, for each of its three validation losses.

Each fit is made, bootstrapped and calibrated exactly as `lmscale fit --bootstrap 200` does.
"""

import os
import sys
from pathlib import Path

from lmscale.benchmark.coverage import epoch_coverage, ladder_coverage
from lmscale.run_table import RunTable

ROOT = Path(__file__).resolve().parents[1]
shared = (
    Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.environ.get("LMSCALE_SHARED", ROOT.parent / "shared"))
)


def line(name, r):
    print(
        f"{name:28s} {r['n_fit_runs']:4d} fit, {r['n_predictions']:3d} predicted: mean rel. error "
        f"{100 * r['mean_rel_error']:.2f}%, 80% / 90% coverage {100 * r['coverage_80']:.0f}% / "
        f"{100 * r['coverage_90']:.0f}%, median 90% width {100 * r['median_interval_width']:.1f}% "
        f"({r['calibration']} calibration)"
    )


epoch = shared / "peers" / "chinchilla-epoch" / "svg_extracted_data.csv"
if epoch.is_file():
    line("Epoch Chinchilla points", epoch_coverage(epoch))
else:
    print(f"skipped Epoch: {epoch} not found")
for vs, r in ladder_coverage(RunTable.read(ROOT / "examples" / "cpu-small" / "runs.jsonl")).items():
    line(f"examples/cpu-small {vs}", r)
