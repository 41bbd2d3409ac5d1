"""Held-out accuracy: `python benchmarks/accuracy.py [TESTBED]` (same as `lmscale benchmark accuracy`)."""

import sys

from lmscale.cli import main

main(
    [
        "benchmark",
        "accuracy",
        "--testbed",
        sys.argv[1] if len(sys.argv) > 1 else "../shared/testbed/exp_data",
        *sys.argv[2:],
    ]
)
