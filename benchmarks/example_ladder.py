"""Held-out errors on the committed example ladder (`examples/cpu-small`, trained by lmscale):
`python benchmarks/example_ladder.py [--out benchmarks/results/example_ladder.json]`.

Fits both laws on the 12 runs of the three smaller shapes and predicts the four runs of the largest
(what `lmscale report examples/cpu-small/runs.jsonl --val-set python ...` shows), then compares the
default fitting method with the paper's over all three validation losses. Writes the numbers as JSON;
`python benchmarks/update_docs.py` turns them into the tables of docs/loop.md.
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from lmscale._io import atomic_write_text
from lmscale.pipeline import holdout_spec, report_runs
from lmscale.run_table import RunTable
from lmscale.study import Study

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"
SPLIT = "cloze,brackets,next_line,first_word"


def measure(path: Path = EXAMPLE) -> dict:
    """The held-out predictions of the largest shape and the per-method mean loss errors."""
    runs = RunTable.read(path)
    with tempfile.TemporaryDirectory() as tmp:
        _report, df = report_runs(runs, "python", SPLIT, Path(tmp) / "report")
    rows = [
        {
            "run_id": r.run_id,
            "multiplier": float(r.multiplier),
            "target": "loss" if r.target == "loss" else "error",
            "predicted": float(r.predicted),
            "observed": float(r.observed),
            "rel_error": float(r.rel_error),
            "interval": [float(r.interval_low), float(r.interval_high)],
            "inside": bool(r.inside_interval),
        }
        for r in df.itertuples()
    ]
    methods = {}
    for method in ("default", "paper"):
        st = Study(runs, holdout_spec(runs), method, error_targets=())
        errs = [r.rel_error for vs in runs.val_sets for r in st.heldout(runs.datasets[0], vs)]
        methods[method] = {"mean_rel_error": float(np.mean(errs)), "n_predictions": len(errs)}
    return {
        "ladder": "examples/cpu-small",
        "val_set": "python",
        "split": SPLIT,
        "interval_level": float(df.interval_level.iloc[0]),
        "heldout": rows,
        "val_sets": list(runs.val_sets),
        "methods": methods,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "example_ladder.json"))
    args = ap.parse_args()
    payload = measure()
    atomic_write_text(args.out, json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")
