"""Held-out accuracy: `python benchmarks/accuracy.py [TESTBED]` (same as `lmscale benchmark accuracy`)."""

import os
import sys

from lmscale.cli import main

main(
    [
        "benchmark",
        "accuracy",
        "--testbed",
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get("LMSCALE_SHARED", "../shared") + "/testbed/exp_data",
        *sys.argv[2:],
    ]
)
