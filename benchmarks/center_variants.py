"""How the center shift of the default's predictions was chosen, on the rolling-origin backtests
themselves (not the held-out splits the accuracy benchmark scores):

    python benchmarks/center_variants.py [SHARED]            # SHARED defaults to ../shared

Every public ladder's full-ladder backtest with the default method (as the shipped loss reference
is built, without bootstraps: the center needs only the signed errors). For each form of the shift
— a prediction at distance d (lmscale's extrapolation distance) is moved by β · x(d) in ln units —
β is fitted by least squares through 0 on the backtests of every *other* lab, each lab weighing the
same, and applied to the left-out lab's backtest predictions. Printed: each lab's mean absolute ln
error before → after, and the mean of the after / before ratios over the labs (below 1: the shift
helps a lab it never saw). Forms: ``const`` (x = 1, what lmscale ships), ``sat1`` (x = min(d, 1)),
``sat2`` (min(d, 2) / 2), ``sqrt`` (√d) and ``lin`` (x = d).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lmscale import calibration as cal
from lmscale.benchmark import ladders as L
from lmscale.benchmark.references import backtest_points

FORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "const": np.ones_like,
    "sat1": lambda d: np.minimum(d, 1.0),
    "sat2": lambda d: np.minimum(d, 2.0) / 2.0,
    "sqrt": np.sqrt,
    "lin": lambda d: d,
}


def lab_points(shared: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Lab → (ln(observed / predicted), distance d) of its ladders' loss backtest predictions."""
    out: dict[str, tuple[list, list]] = {}
    for lad in L.public_ladders(shared):
        pts = [
            p
            for p in backtest_points(lad, np.ones(len(lad.loss), bool), "default", 0, 0)
            if p.quantity == "loss"
        ]
        e, d = out.setdefault(lad.lab, ([], []))
        e += [p.log_error for p in pts]
        d += list(
            cal.distance(
                [p.c_factor for p in pts], [p.m_below_factor for p in pts], 0.0, [p.n_factor for p in pts]
            )
        )
    return {lab: (np.asarray(e, float), np.asarray(d, float)) for lab, (e, d) in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shared", nargs="?", default="../shared")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    pts = lab_points(Path(args.shared))
    labs = sorted(pts)
    print(
        "mean |ln(observed / predicted)| of each lab's backtest, before → after the shift the other labs give"
    )
    for name, x in FORMS.items():
        cells, ratios = [], []
        for lab in labs:
            num = float(sum(float(np.mean(e * x(d))) for o, (e, d) in pts.items() if o != lab))
            den = float(sum(float(np.mean(x(d) ** 2)) for o, (e, d) in pts.items() if o != lab))
            beta = num / den
            e, d = pts[lab]
            before, after = np.mean(np.abs(e)), np.mean(np.abs(e - beta * x(d)))
            cells.append(f"{lab} {100 * before:.2f}→{100 * after:.2f}%")
            ratios.append(after / before)
        print(f"  {name:6s} " + "  ".join(cells) + f"   mean ratio {np.mean(ratios):.3f}")


if __name__ == "__main__":
    main()
