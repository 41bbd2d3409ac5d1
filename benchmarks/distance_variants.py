"""How the interval's extrapolation distance should count a target's size, measured end to end:

    python benchmarks/distance_variants.py [SHARED]          # SHARED defaults to ../shared (~8 min)

lmscale's calibrated intervals grow with a distance d (:func:`lmscale.calibration.distance`). Its
compute term ln⁺(C / C_fit) misses one kind of extrapolation: a model larger than every fitted run
but trained on few tokens, whose compute lies inside the fitted range. This script swaps the loss
distance's compute term for each of

- ``compute``: ln⁺(C / C_fit) (lmscale before the size term);
- ``max``: max(ln⁺(C / C_fit), ln⁺(N / N_fit)) (lmscale's);
- ``sum``: ln⁺(C / C_fit) + ln⁺(N / N_fit);
- ``sum-half`` / ``max-half``: the same with half the size term;

(the token-multiplier term and a chained error's loss gap are kept) and reruns, with the default
method and 100 bootstrap resamples, both held-out benchmarks: the public ladders' splits, leave one
lab out (``lmscale benchmark accuracy --ladder …``), and the paper testbed's fit sets, leave one
training set out (``lmscale benchmark accuracy --testbed``). Every reference is rebuilt from
backtests under the same distance.

It prints each variant's 80% / 90% coverage (and 90% width over the median error) per ladder split
with at least 10 held-out runs and per testbed fit set; then a *band miss* per cell — how far its
coverage lies outside 70–90% (80% intervals) plus how far outside 80–97% (90% intervals), summed
per lab — and, leave one lab out, the variant with the smallest summed miss over the other labs
and what it gives the lab left out. Over-coverage counts as a miss like under-coverage here; the
per-cell numbers show which it is.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from lmscale import calibration as cal
from lmscale import testbed as tb
from lmscale.benchmark import accuracy
from lmscale.benchmark import ladders as L

VARIANTS = {
    "compute": lambda c, n: c,
    "max": np.maximum,
    "sum": lambda c, n: c + n,
    "sum-half": lambda c, n: c + n / 2,
    "max-half": lambda c, n: np.maximum(c, n / 2),
}
SHIPPED = cal.distance


def patched(combine):
    def distance(c_factor, m_below=1.0, gap=0.0, n_factor=1.0):
        g = np.clip(np.nan_to_num(np.asarray(gap, dtype=float), nan=0.0), 0.0, None)
        c, n = cal._ln_plus(c_factor), cal._ln_plus(n_factor)
        return combine(c, n) + cal._ln_plus(m_below) + g

    return distance


def miss(c80: float, c90: float) -> float:
    return max(0.0, 0.70 - c80, c80 - 0.90) + max(0.0, 0.80 - c90, c90 - 0.97)


def cells(shared: Path) -> dict[str, list[tuple[str, str, float, float, float]]]:
    """variant → (lab, cell, 80% coverage, 90% coverage, width / median error)."""
    ladders = L.public_ladders(shared)
    runs = tb.load(shared / "testbed" / "exp_data")
    default = [m for m in L.METHODS if m.name == "default"]
    out: dict[str, list] = {}
    for name, combine in VARIANTS.items():
        cal.distance = patched(combine)
        try:
            rows = L.run(ladders, default, n_resamples=100)
            fit_sets = accuracy.run(runs, methods=accuracy.select_methods(["default"]), n_resamples=100)
        finally:
            cal.distance = SHIPPED
        got = []
        for r in rows:
            if r.get("quantity") == "loss" and r.get("n_predictions", 0) >= 10 and "coverage_90" in r:
                ratio = r["median_width_90"] / r["median_abs_error"]
                got.append(
                    (r["lab"], f"{r['ladder']} {r['split']}", r["coverage_80"], r["coverage_90"], ratio)
                )
        for r in fit_sets:
            ratio = r["median_interval_width"] / r["median_rel_error"]
            got.append(("gadre", f"testbed {r['fit_set']}", r["coverage_80"], r["coverage_90"], ratio))
        out[name] = got
        print(f"{name}: done", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shared", nargs="?", default="../shared")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    res = cells(Path(args.shared))
    names = list(res)
    print(f"{'cell':34s} " + " ".join(f"{n:>17s}" for n in names))
    for i, (_lab, cell, *_r) in enumerate(res[names[0]]):
        row = [res[n][i] for n in names]
        print(
            f"{cell:34s} " + " ".join(f"{100 * a:4.0f}/{100 * b:3.0f}% {w:5.1f}×" for _l, _c, a, b, w in row)
        )
    labs = list(dict.fromkeys(c[0] for c in res[names[0]]))
    total = {
        n: {lab: sum(miss(a, b) for lb, _c, a, b, _w in res[n] if lb == lab) for lab in labs} for n in names
    }
    print("\nband miss per lab (coverage points outside 70–90% at 80% plus outside 80–97% at 90%)")
    print(f"{'variant':10s} " + " ".join(f"{lab:>10s}" for lab in labs) + f" {'all':>8s}")
    for n in names:
        print(
            f"{n:10s} "
            + " ".join(f"{total[n][lab]:10.2f}" for lab in labs)
            + f" {sum(total[n].values()):8.2f}"
        )
    print("\nleave one lab out: the variant the other labs choose, and its miss on the lab left out")
    for lab in labs:
        pick = min(names, key=lambda n: sum(v for k, v in total[n].items() if k != lab))
        print(f"  {lab:10s} → {pick:9s} miss {total[pick][lab]:.2f} (compute: {total['compute'][lab]:.2f})")


if __name__ == "__main__":
    main()
