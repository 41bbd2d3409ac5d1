"""The hyper-parameter search of the paper (Fig. 4): the grid's runs by compute and loss, and the
Pareto frontier they trace."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lmscale.analyses.context import Analysis, Context
from lmscale.errors import InputError
from lmscale.fit.core import fit
from lmscale.laws import POWER
from lmscale.testbed import read_grid


# ------------------------------------------------------------------------ hyper-parameter search
#: the vocabulary of the paper's runs (GPT-NeoX tokenizer)
def pareto_mask(flops: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Runs no other run beats on both compute and loss (ties in compute keep the lowest loss)."""
    order = np.lexsort((loss, flops))
    keep = np.zeros(len(flops), dtype=bool)
    best = np.inf
    for i in order:
        if loss[i] < best:
            keep[i] = True
            best = loss[i]
    return keep


def hparam_search(ctx: Context) -> Analysis:
    """The 435-run search (paper Fig. 4): loss vs compute, the Pareto frontier, and the saturating
    power law L = E + K·C^-η fitted to the frontier by least squares."""
    if ctx.grid_path is None:
        raise InputError("the hyper-parameter analysis needs the testbed's grid.json")
    df = read_grid(ctx.grid_path)
    df["frontier"] = pareto_mask(df.flops.to_numpy(), df.loss.to_numpy())
    fr = df[df.frontier]
    res = fit(POWER, {"flops": fr.flops.to_numpy()}, fr.loss.to_numpy(), method="varpro", target="loss")
    fitd = {**res.params, "n_frontier": len(fr), "rmse": res.diagnostics.rmse}
    text = (
        f"{len(df)} runs of the search ({df.d_model.nunique()} widths, {df.n_layers.nunique()} depths, "
        f"warm-up {', '.join(str(int(w)) for w in sorted(df.warmup.unique()))} steps); {len(fr)} are on the "
        f"Pareto frontier of loss vs compute, fitted by L = {fitd['E']:.3g} + {fitd['K']:.3g}·C^-{fitd['eta']:.3f} "
        f"(least squares, RMSE {fitd['rmse']:.4f} nats)."
    )
    return Analysis(
        "hparam_search",
        "Hyper-parameter search and its frontier (Fig. 4)",
        text,
        {"hparam_search": df, "hparam_frontier_fit": pd.DataFrame([fitd])},
        data={"fit": res},
        numbers=fitd,
    )
