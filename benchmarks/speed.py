"""Fitting speed: `python benchmarks/speed.py [TESTBED]` (same as `lmscale benchmark speed`)."""

import os
import sys

from lmscale.cli import main

main(
    [
        "benchmark",
        "speed",
        "--testbed",
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get("LMSCALE_SHARED", "../shared") + "/testbed/exp_data",
        *sys.argv[2:],
    ]
)
