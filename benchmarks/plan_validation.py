"""Is the planner honest? `python benchmarks/plan_validation.py [TESTBED] [--budget FLOPS]`.

Leave one training set out: plan the ladder for the held-out set's 1.4B max-M and 6.9B runs with
the evidence of the other two, fit the recommended ladder's runs of the held-out set, predict its
target on every validation loss, and count how often the realised error lies inside the planner's
90% range (and at most its upper end).
"""

import os
import sys

import pandas as pd

from lmscale import testbed
from lmscale.plan import validate_leave_one_out

args = [a for a in sys.argv[1:] if not a.startswith("--")]
budget = float(sys.argv[sys.argv.index("--budget") + 1]) if "--budget" in sys.argv else None
if budget is not None:
    args = [a for a in args if a != sys.argv[sys.argv.index("--budget") + 1]]
runs = testbed.load(args[0] if args else os.environ.get("LMSCALE_SHARED", "../shared") + "/testbed/exp_data")
raw = pd.DataFrame(validate_leave_one_out(runs, budget_flops=budget, correct_selection=False))
df = pd.DataFrame(validate_leave_one_out(runs, budget_flops=budget))
summary = df.groupby(["held_out", "target"]).agg(
    expected=("expected_rel_error", "median"),
    realised=("realised_rel_error", "median"),
    inside=("inside", "mean"),
    at_most_high=("at_most_high", "mean"),
)
print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
print(
    f"budget {budget or 'none'}: {len(df)} cases; realised error inside the planner's 90% range in "
    f"{100 * df.inside.mean():.0f}%, at most its upper end in {100 * df.at_most_high.mean():.0f}%; median expected "
    f"{100 * df.expected_rel_error.median():.2f}% vs realised {100 * df.realised_rel_error.median():.2f}%"
)
print(
    f"without the selection correction: inside the 90% range in {100 * raw.inside.mean():.0f}%, at most its "
    f"upper end in {100 * raw.at_most_high.mean():.0f}%"
)
