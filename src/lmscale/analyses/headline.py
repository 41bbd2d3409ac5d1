"""The paper's headline analyses: Figure 1, Table 6, the relative-error heat maps,  Each returns an :class:`Analysis`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lmscale.analyses.context import Analysis, Context, md_table, size_label, split_label, train_set_name
from lmscale.formatting import pct
from lmscale.laws.overtrain import optimal_multiplier, to_paper_form
from lmscale.paper_constants import PAPER_46
from lmscale.predict import relative_error
from lmscale.tasks import target_values


def _roles(ctx: Context, ts: str) -> tuple[set, set, set]:
    return (set(ctx.loss_runs(ts).run_ids), set(ctx.error_runs(ts).run_ids), set(ctx.heldout(ts).run_ids))


# ------------------------------------------------------------------------------------ Figure 1
def figure1(ctx: Context) -> Analysis:
    """Loss vs compute with the fitted lines per M, and error vs loss with the error law, per
    training set; plus the four relative errors of Figure 1 for each training set."""
    points: list = []
    numbers: dict[str, Any] = {}
    laws: dict = {}
    rows: list[dict[str, Any]] = []
    for ts in ctx.train_sets:
        ds = ctx.dataset(ts)
        lf, ef = ctx.loss_fit(ts), ctx.error_fit(ts)
        loss_ids, err_ids, held_ids = _roles(ctx, ts)
        n, m = ds.column("n_params").astype(float), ds.column("multiplier").astype(float)
        loss = ds.loss("loss_" + ctx.val_set)
        err = target_values(ds, ctx.target)
        pred = ctx.predict_losses(ts, n, m)
        for i, rid in enumerate(ds.run_ids):
            points.append(
                {
                    "train_set": ts,
                    "run_id": rid,
                    "n_params": n[i],
                    "multiplier": m[i],
                    "flops": float(ds.column("flops")[i]),
                    "loss": float(loss[i]),
                    "predicted_loss": float(pred[i]),
                    "error": float(err[i]),
                    "predicted_error": float(ef.predict(loss=float(pred[i]))),
                    "loss_role": "fit" if rid in loss_ids else "held-out" if rid in held_ids else "other",
                    "error_role": "fit" if rid in err_ids else "held-out" if rid in held_ids else "other",
                }
            )
        laws[ts] = {"loss": lf, "error": ef}  # FitResults: figures evaluate them through predict()
        for which in ("second-max-m", "largest"):
            i = ctx.target_run(ts, which)
            label = f"{size_label(n[i])} M={m[i]:g}"
            rl = relative_error(pred[i], float(loss[i]))
            re = relative_error(float(ef.predict(loss=float(pred[i]))), float(err[i]))
            rid = ds.run_ids[i]
            role = "held out" if rid in held_ids else "fit run" if rid in loss_ids | err_ids else "not used"
            rows.append(
                {"train_set": ts, "run": label, "role": role, "loss_rel_error": rl, "error_rel_error": re}
            )
            numbers[f"{ts}/{label}/loss"] = rl
            numbers[f"{ts}/{label}/error"] = re
    table = pd.DataFrame(rows)
    text = (
        f"Relative error at the paper's two headline runs — the second-largest size at its largest M and the "
        f"largest size — ({ctx.setting.describe()}); the error is chained through the predicted loss.\n\n"
        + md_table(
            [
                (
                    train_set_name(r["train_set"]),
                    r["run"],
                    r["role"],
                    pct(r["loss_rel_error"], 4),
                    pct(r["error_rel_error"], 4),
                )
                for r in rows
            ],
            [
                "training set",
                "run",
                "role",
                f"loss ({ctx.val_set})",
                f"{split_label(ctx.setting.split)} error",
            ],
        )
    )
    return Analysis(
        "figure1",
        "Figure 1: loss vs compute and error vs loss",
        text,
        {"figure1_numbers": table, "figure1_points": pd.DataFrame(points)},
        data={"laws": laws, "val_set": ctx.val_set, "split": ctx.setting.split},
        numbers=numbers,
    )


# ------------------------------------------------------------------------------------- Table 6
def table6(ctx: Context) -> Analysis:
    """Fitted laws per training set in the paper's form, and the implied M*."""
    rows: list[dict[str, Any]] = []
    for ts in ctx.train_sets:
        lp, ep = ctx.loss_fit(ts).params, ctx.error_fit(ts).params
        pf = to_paper_form(lp)
        rows.append(
            {
                "train_set": ts,
                "E": pf["E"],
                "a": pf["a"],
                "b": pf["b"],
                "eta": pf["eta"],
                "M_star": optimal_multiplier(lp),
                "epsilon": ep["epsilon"],
                "k": ep["k"],
                "gamma": ep["gamma"],
            }
        )
    df = pd.DataFrame(rows)
    md = md_table(
        [
            (
                train_set_name(r["train_set"]),
                f"{r['E']:.2f} + ({r['a']:.0f}·M^{r['eta']:.3f} + {r['b']:.0f}·M^-{r['eta']:.3f})·C^-{r['eta']:.3f}",
                f"{r['epsilon']:.3f} − {r['k']:.2f}·exp(−{r['gamma']:.3f}·L)",
                f"{r['M_star']:.2f}",
            )
            for r in rows
        ],
        ["training set", f"loss law ({ctx.val_set})", f"{split_label(ctx.setting.split)} error law", "M*"],
    )
    numbers = {
        f"{r['train_set']}/{k}": float(r[k])
        for r in rows
        for k in ("E", "a", "b", "eta", "M_star", "epsilon", "k", "gamma")
    }
    return Analysis(
        "table6", "Table 6: fitted laws and compute-optimal multiplier", md, {"table6": df}, numbers=numbers
    )


# ------------------------------------------------------------------------------------ heat maps
def heatmaps(ctx: Context, error_targets: tuple[str, ...] = ("error_46", "error_17")) -> Analysis:
    """Relative error of every run of the N × M grid, for every validation loss and the chained
    errors (46-task, 17-task where the runs have those tasks, and the setting's split)."""
    paper_tasks = all(t in ctx.runs.tasks for t in PAPER_46)
    error_targets = tuple(t for t in error_targets if paper_tasks or t not in ("error_46", "error_17"))
    targets = list(error_targets) + ([ctx.target] if ctx.target not in error_targets else [])
    rows: list[dict[str, Any]] = []
    for ts in ctx.train_sets:
        ds = ctx.dataset(ts)
        loss_ids, err_ids, _ = _roles(ctx, ts)
        n, m = ds.column("n_params").astype(float), ds.column("multiplier").astype(float)
        for vs in ctx.val_sets:
            pred = ctx.predict_losses(ts, n, m, vs)
            obs = ds.loss("loss_" + vs)
            for i, rid in enumerate(ds.run_ids):
                rows.append(
                    {
                        "train_set": ts,
                        "target": "loss_" + vs,
                        "run_id": rid,
                        "n_params": n[i],
                        "multiplier": m[i],
                        "predicted": pred[i],
                        "observed": float(obs[i]),
                        "rel_error": relative_error(pred[i], float(obs[i])),
                        "fit_point": rid in loss_ids,
                    }
                )
        pred = ctx.predict_losses(ts, n, m)
        for tgt in targets:
            ef = ctx.error_fit(ts, tgt)
            obs = target_values(ds, tgt)
            chained = np.asarray(ef.predict(loss=pred), dtype=float)
            for i, rid in enumerate(ds.run_ids):
                rows.append(
                    {
                        "train_set": ts,
                        "target": tgt,
                        "run_id": rid,
                        "n_params": n[i],
                        "multiplier": m[i],
                        "predicted": chained[i],
                        "observed": float(obs[i]),
                        "rel_error": relative_error(chained[i], float(obs[i])),
                        "fit_point": rid in err_ids,
                    }
                )
    df = pd.DataFrame(rows)
    # the paper's C4-eval cells: 1.4B at M=20 and max M, and the 6.9B run
    cells, numbers = [], {}
    for ts in ctx.train_sets:
        ds = ctx.dataset(ts)
        picks = [ctx.target_run(ts, "second-max-m"), ctx.target_run(ts, "largest")]
        n = ds.column("n_params").astype(float)
        m20 = np.flatnonzero((n == n[picks[0]]) & np.isclose(ds.column("multiplier").astype(float), 20))
        for i in ([int(m20[0])] if len(m20) else []) + picks:
            rid = ds.run_ids[i]
            sel = df[(df.train_set == ts) & (df.run_id == rid)].set_index("target")["rel_error"]
            key = f"{size_label(n[i])} M={ds.column('multiplier')[i]:g}"
            cells.append(
                (
                    train_set_name(ts),
                    key,
                    pct(sel.get("loss_" + ctx.val_set, np.nan), 1),
                    *(pct(sel.get(t, np.nan), 1) for t in targets),
                )
            )
            for t in ["loss_" + ctx.val_set, *targets]:
                numbers[f"{ts}/{key}/{t}"] = float(sel.get(t, np.nan))
    text = (
        "Relative error |pred − true| / true of every run, fitted on the marked runs "
        f"({ctx.setting.describe()}); errors chained through the predicted `{ctx.val_set}` loss.\n\n"
        + md_table(cells, ["training set", "run", f"loss {ctx.val_set}", *targets])
    )
    return Analysis(
        "heatmaps",
        "Relative-error heat maps over the N × M grid",
        text,
        {"heatmaps": df},
        data={"targets": ["loss_" + v for v in ctx.val_sets] + targets},
        numbers=numbers,
    )
