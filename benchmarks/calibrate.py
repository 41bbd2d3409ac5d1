"""Build the reference calibration shipped with lmscale (``src/lmscale/data/reference_calibration.json``)
and print the τ scan behind :data:`lmscale.calibration.TAU`:

- the **loss** reference from the full-ladder backtests of the five public ladders of the shared
  data folder (four labs, each weighing the same: :func:`lmscale.benchmark.ladders.multi_lab_reference`);
- the **chained error** reference from the paper testbed's chained backtests (the only ladder with
  downstream tasks), the error law asked at the loss centered by the loss reference's shift.

    python benchmarks/calibrate.py [SHARED] [--write]       # SHARED defaults to $LMSCALE_SHARED or ../shared

Without ``--write`` it only prints; ``tests/test_calibration.py`` checks that the shipped file is
what this script builds.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from lmscale import calibration as cal
from lmscale import testbed
from lmscale._io import atomic_write_text
from lmscale.backtest import backtest
from lmscale.benchmark import ladders
from lmscale.benchmark.references import (
    REFERENCE_ERROR_LOSS,
    backtest_points,
    build_reference,
    lab_mean_errors,
    lab_weighted_reference,
)

OUT = Path(__file__).resolve().parents[1] / "src" / "lmscale" / "data" / "reference_calibration.json"


def reference_payload(runs, shared: Path) -> dict:
    lads = ladders.public_ladders(shared)
    pts = {lad.name: backtest_points(lad, np.ones(len(lad.loss), bool), "default", 200, 0) for lad in lads}
    loss = lab_weighted_reference(lads, pts, "loss")  # what ladders.multi_lab_reference builds
    for lab, mean in lab_mean_errors(lads, pts).items():
        print(f"loss backtests of {lab}: mean ln(observed / predicted) {100 * mean:+.2f}%")
    refs = build_reference(runs, shift=loss.shift)  # its chained errors asked at the centered loss
    refs["loss"] = loss
    return {
        "format": "lmscale.ReferenceCalibration",
        "version": 4,
        "method": "default",
        "levels": cal._REF_LEVELS.tolist(),
        "calibrations": {k: v.to_dict() for k, v in refs.items()},
    }


def tau_scan(runs) -> None:
    """Median 90% width and leave-one-training-set-out coverage for several τ."""
    for quantity, targets in (
        ("loss", ["loss_" + v for v in runs.val_sets]),
        ("error", ["error_17", "error_46"]),
    ):
        pts = []
        for t in targets:
            pts += backtest(runs, t, methods=("default",), loss_column=REFERENCE_ERROR_LOSS).points
        r = np.array([p.log_error for p in pts])
        sd = np.array([p.sd_log for p in pts])
        c = np.array([p.c_factor for p in pts])
        ts = np.array([p.train_set for p in pts])
        mb = np.array([p.m_below_factor for p in pts])
        gap = np.array([p.loss_gap for p in pts])
        nf = np.array([p.n_factor if quantity == "loss" else 1.0 for p in pts])
        for tau in (0.002, 0.005, 0.01, 0.02, 0.05):
            s = cal.scores(r, sd, c, tau, mb, gap, nf)
            u = cal.unit(sd, c, tau, mb, gap, nf)
            cov = [float(np.mean(s[ts == t] <= np.quantile(s[ts != t], 0.9))) for t in np.unique(ts)]
            print(
                f"{quantity:5s} tau {tau:<6g} median 90% width {np.median(2 * np.quantile(s, 0.9) * u):.4f}  "
                f"held-out-training-set 90% coverage {', '.join(f'{v:.2f}' for v in cov)}"
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("shared", nargs="?", default=os.environ.get("LMSCALE_SHARED", "../shared"))
    ap.add_argument("--write", action="store_true", help=f"write {OUT}")
    args = ap.parse_args()
    shared = Path(args.shared)
    runs = testbed.load(shared / "testbed" / "exp_data")
    t0 = time.perf_counter()
    tau_scan(runs)
    payload = reference_payload(runs, shared)
    for k, v in payload["calibrations"].items():
        c = cal.Calibration.from_dict(v)
        print(
            f"{k}: {c.description}; q80 {c.quantile(0.8):.3f}, q90 {c.quantile(0.9):.3f}, shift {c.shift:+.5f}"
        )
    if args.write:
        atomic_write_text(OUT, json.dumps(payload, indent=1) + "\n")
        print(f"wrote {OUT}")
    print(f"{time.perf_counter() - t0:.1f} s")
