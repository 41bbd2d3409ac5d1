"""Writes this folder's 25 W&B history exports: a synthetic over-training ladder (5 sizes × 5 token
multipliers, losses from the paper's Eq. 4 with 0.3% noise), one CSV per run in the layout
``run.history()`` saved with pandas has (``_step``, ``_runtime``, ``_timestamp``, metrics; the
evaluation loss logged every 500 steps, blank between). File names are ``{model}_{tokens}.csv``.

    python examples/wandb-export/make.py
"""

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
A, B, C, E = 150.0, 300.0, -0.26, 1.9
SIZES = {"20M": 2e7, "60M": 6e7, "150M": 1.5e8, "400M": 4e8, "1B": 1e9}


def loss(n, m):
    return A * n**C + B * 6 ** (C / 2) * (m * n) ** C + E


def label(x):
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if x >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


rng = np.random.default_rng(0)
for name, n in SIZES.items():
    for m in (5, 10, 20, 40, 80):
        final = loss(n, m) * (1 + 0.003 * rng.standard_normal())
        with open(HERE / f"{name}_{label(m * n)}.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["_step", "_runtime", "_timestamp", "train/loss", "eval/val/c4/ce_loss", "lr"])
            for s in range(0, 5001, 100):
                cur = final + 2.0 * (1 - s / 5000) ** 2
                ev = "" if s % 500 else f"{cur:.6f}"
                w.writerow([s, f"{s * 0.5:.1f}", f"{1.7e9 + s:.3f}", f"{cur + 0.05:.6f}", ev, "0.0003"])
