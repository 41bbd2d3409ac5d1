"""How the default method's size-weight power was chosen: `python benchmarks/size_weight.py [TESTBED]`.

For each power p of `rel-ls-size` (runs weighted by (N / largest N)^p / y²; p = 0 is `rel-ls`),
the mean held-out loss error on every fit set of the accuracy benchmark, per training set. Then, as
the choice would be made honestly: for each training set, the power picked on the *other two*
(lowest mean error over the cap and k-smallest fit sets, among the powers no worse than the paper's
method on any of those fit sets) and what it gives on the held-out one.
"""

import os
import sys

import numpy as np

from lmscale import testbed
from lmscale.benchmark import accuracy
from lmscale.fit import core

POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)
runs = testbed.load(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LMSCALE_SHARED", "../shared") + "/testbed/exp_data"
)
paper = [m for m in accuracy.METHODS_COMPARED if m.name == "paper"]
default = [m for m in accuracy.METHODS_COMPARED if m.name == "default"]
err = {}  # (power or "paper", train set, fit set) -> mean loss error
for ts in runs.datasets:
    one = runs.of_dataset(ts)
    for r in accuracy.run(one, methods=paper, n_resamples=0):
        err[("paper", ts, r["fit_set"])] = r["mean_rel_error"]
    for p in POWERS:
        core.SIZE_WEIGHT_POWER = p
        for r in accuracy.run(one, methods=default, n_resamples=0, workers=1):
            err[(p, ts, r["fit_set"])] = r["mean_rel_error"]
fit_sets = list(accuracy.fit_sets(runs=runs))
tuned = [f for f in fit_sets if not f.startswith("paper")]
print("mean held-out loss error over the three training sets")
print(f"{'fit set':14s} " + " ".join(f"{'p=' + str(p):>8s}" for p in POWERS) + f" {'paper':>8s}")
for f in fit_sets:
    cells = [np.mean([err[(p, ts, f)] for ts in runs.datasets]) for p in (*POWERS, "paper")]
    print(f"{f:14s} " + " ".join(f"{100 * c:7.2f}%" for c in cells))
print("\nleave one training set out: power chosen on the other two, result on the held-out one")
for held in runs.datasets:
    others = [t for t in runs.datasets if t != held]
    ok = [
        p
        for p in POWERS
        if all(
            np.mean([err[(p, t, f)] for t in others]) <= np.mean([err[("paper", t, f)] for t in others])
            for f in tuned
        )
    ]
    pick = min(ok or POWERS, key=lambda p: np.mean([err[(p, t, f)] for t in others for f in tuned]))
    worse = [f for f in fit_sets if err[(pick, held, f)] > err[("paper", held, f)] * (1 + 1e-3)]
    print(
        f"held out {held}: chose p = {pick}; mean error over its fit sets {100 * np.mean([err[(pick, held, f)] for f in fit_sets]):.2f}% "
        f"vs paper {100 * np.mean([err[('paper', held, f)] for f in fit_sets]):.2f}%; worse than paper on: "
        f"{', '.join(worse) or 'none'}"
    )
