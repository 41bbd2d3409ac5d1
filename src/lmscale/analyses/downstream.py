"""Analyses of the downstream tasks: per-task predictions (Table 2), Table 7 (the error law
without the 1.4B run), the rank correlation of predicted and observed errors, and the sweep of the
above-chance threshold (Fig. 8). Each returns an :class:`Analysis`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lmscale.analyses.context import Analysis, Context, md_table, split_label, train_set_name
from lmscale.errors import FitError
from lmscale.formatting import pct
from lmscale.paper_constants import PAPER_17, PAPER_46
from lmscale.predict import relative_error
from lmscale.tasks import above_chance_tasks

# ------------------------------------------------------------------------------ per-task (Table 2)
HIGHLIGHTED_TASKS = ("arc_easy", "lambada_openai", "openbook_qa", "hellaswag_zeroshot")


def per_task(ctx: Context, tasks: tuple[str, ...] | None = None) -> Analysis:
    """One error law per task on the error-fit runs; relative error at the largest run (6.9B),
    chained through its predicted loss and from its true loss."""
    tasks = tasks or tuple(t for t in PAPER_46 if t in ctx.runs.tasks) or tuple(ctx.runs.tasks)
    rows: list[dict[str, Any]] = []
    numbers: dict[str, Any] = {}
    for ts in ctx.train_sets:
        i = ctx.target_run(ts, "largest")
        ds = ctx.dataset(ts)
        n, m = float(ds.column("n_params")[i]), float(ds.column("multiplier")[i])
        pred_loss = ctx.predict_loss(ts, n, m)
        true_loss = float(ds.loss("loss_" + ctx.val_set)[i])
        for tgt in [*("error_" + t for t in tasks), ctx.target]:
            obs = ctx.observed(ts, i, tgt)
            try:
                ef = ctx.error_fit(ts, tgt)
            except FitError as exc:
                rows.append(
                    {
                        "train_set": ts,
                        "task": tgt.removeprefix("error_"),
                        "in_17": tgt[6:] in PAPER_17,
                        "predicted": np.nan,
                        "observed": obs,
                        "rel_error": np.nan,
                        "rel_error_from_true_loss": np.nan,
                        "note": str(exc),
                    }
                )
                continue
            p = float(ef.predict(loss=pred_loss))
            name = (
                split_label(ctx.setting.split) + " average"
                if tgt == ctx.target
                else tgt.removeprefix("error_")
            )
            rows.append(
                {
                    "train_set": ts,
                    "task": name,
                    "in_17": tgt[6:] in PAPER_17,
                    "predicted": p,
                    "observed": obs,
                    "rel_error": relative_error(p, obs),
                    "rel_error_from_true_loss": relative_error(float(ef.predict(loss=true_loss)), obs),
                    "note": "",
                }
            )
            numbers[f"{ts}/{name}"] = rows[-1]["rel_error"]
    df = pd.DataFrame(rows)
    show = [*HIGHLIGHTED_TASKS, split_label(ctx.setting.split) + " average"]
    cells = []
    for t in show:
        sel = df[df.task == t].set_index("train_set")["rel_error"]
        cells.append((t, *(pct(sel.get(ts, np.nan), 2) for ts in ctx.train_sets)))
    text = (
        "Per-task error laws predict poorly compared with the task average (relative error at the largest "
        "run, chained):\n\n"
        + md_table(cells, ["task", *(train_set_name(t) for t in ctx.train_sets)])
        + f"\n\nMedian over {len(tasks)} tasks: "
        + ", ".join(
            f"{train_set_name(ts)} {pct(df[(df.train_set == ts) & (df.task != show[-1])].rel_error.median(), 1)}"
            for ts in ctx.train_sets
        )
        + "."
    )
    return Analysis("per_task", "Per-task predictions (Table 2)", text, {"per_task": df}, numbers=numbers)


# ------------------------------------------------------------------------------------- Table 7
def table7(ctx: Context, without_above: float = 1e9) -> Analysis:
    """The largest run's chained error with the spec's error-fit runs, and without its runs of
    ≥ ``without_above`` parameters (the paper drops the 1.4B run)."""
    rows: list[dict[str, Any]] = []
    numbers: dict[str, Any] = {}
    for ts in ctx.train_sets:
        i = ctx.target_run(ts, "largest")
        ds = ctx.dataset(ts)
        pl = ctx.predict_loss(ts, float(ds.column("n_params")[i]), float(ds.column("multiplier")[i]))
        obs = ctx.observed(ts, i, ctx.target)
        er = ctx.error_runs(ts)
        small = er.subset(er.column("n_params").astype(float) < without_above)
        with_ = relative_error(float(ctx.error_fit(ts).predict(loss=pl)), obs)
        try:
            without = relative_error(float(ctx.error_fit(ts, runs=small).predict(loss=pl)), obs)
        except FitError:
            without = np.nan
        rows.append(
            {
                "train_set": ts,
                "n_error_fit_runs": len(er),
                "n_without": len(small),
                "rel_error_with": with_,
                "rel_error_without": without,
            }
        )
        numbers[f"{ts}/with"], numbers[f"{ts}/without"] = with_, without
    df = pd.DataFrame(rows)
    text = (
        f"Relative error of the largest run's {split_label(ctx.setting.split)} error, with and without the "
        f"error-fit runs of ≥ {without_above:.0e} parameters:\n\n"
        + md_table(
            [
                (train_set_name(r["train_set"]), pct(r["rel_error_with"]), pct(r["rel_error_without"]))
                for r in rows
            ],
            ["training set", "with", "without"],
        )
    )
    return Analysis(
        "table7", "Table 7: the error law without the 1.4B run", text, {"table7": df}, numbers=numbers
    )


# ------------------------------------------------------------------------------ rank correlation
def rank_correlation(ctx: Context, min_params: float = 1e9) -> Analysis:
    """Spearman and Kendall correlation of predicted vs true error over held-out runs with
    N ≥ ``min_params``, pooled over training sets."""
    rows: list[dict[str, Any]] = []
    for ts in ctx.train_sets:
        ds = ctx.dataset(ts)
        held = set(ctx.heldout(ts).run_ids)
        ef = ctx.error_fit(ts)
        for i, rid in enumerate(ds.run_ids):
            n, m = float(ds.column("n_params")[i]), float(ds.column("multiplier")[i])
            if rid in held and n >= min_params:
                p = float(ef.predict(loss=ctx.predict_loss(ts, n, m)))
                rows.append(
                    {
                        "train_set": ts,
                        "run_id": rid,
                        "n_params": n,
                        "multiplier": m,
                        "predicted": p,
                        "observed": ctx.observed(ts, i, ctx.target),
                    }
                )
    df = pd.DataFrame(rows)
    if len(df) < 3:
        rho = tau = p_rho = p_tau = float("nan")
    else:
        rho, p_rho = stats.spearmanr(df.predicted, df.observed)
        tau, p_tau = stats.kendalltau(df.predicted, df.observed)
    summary = pd.DataFrame(
        [{"n_runs": len(df), "spearman": rho, "spearman_p": p_rho, "kendall": tau, "kendall_p": p_tau}]
    )
    text = (
        f"Over the {len(df)} held-out runs with N ≥ {min_params / 1e9:g}B, predicted vs true "
        f"{split_label(ctx.setting.split)} error: Spearman ρ = {rho:.2f} (p = {p_rho:.2g}), "
        f"Kendall τ = {tau:.2f} (p = {p_tau:.2g})."
    )
    return Analysis(
        "rank_correlation",
        "Rank correlation of predicted and true error",
        text,
        {"rank_correlation": summary, "rank_correlation_runs": df},
        numbers={"spearman": float(rho), "kendall": float(tau), "n_runs": float(len(df))},
    )


# ------------------------------------------------------------------------------ threshold sweep
PAPER_THRESHOLDS = tuple(float(t) for t in np.arange(0.0, 32.5, 2.5))


def threshold_sweep(ctx: Context, thresholds: tuple[float, ...] = PAPER_THRESHOLDS) -> Analysis:
    """Paper Fig. 8: build the task suite with the above-chance rule at each threshold, fit its
    error law, and predict the largest run's error."""

    if ctx.metadata is None:
        raise FitError("the threshold sweep needs the tasks' random baselines (eval_metadata.csv)")
    rows: list[dict[str, Any]] = []
    numbers: dict[str, Any] = {}
    for th in thresholds:
        tasks = above_chance_tasks(ctx.runs, ctx.metadata, threshold_points=float(th))
        if not tasks:
            continue
        tgt = "error:" + ",".join(tasks)
        for ts in ctx.train_sets:
            i = ctx.target_run(ts, "largest")
            ds = ctx.dataset(ts)
            pl = ctx.predict_loss(ts, float(ds.column("n_params")[i]), float(ds.column("multiplier")[i]))
            obs = ctx.observed(ts, i, tgt)
            try:
                p = float(ctx.error_fit(ts, tgt).predict(loss=pl))
            except FitError:
                p = np.nan
            rows.append(
                {
                    "threshold_points": float(th),
                    "n_tasks": len(tasks),
                    "train_set": ts,
                    "predicted": p,
                    "observed": obs,
                    "rel_error": relative_error(p, obs) if np.isfinite(p) else np.nan,
                }
            )
            numbers[f"{ts}/{th:g}"] = rows[-1]["rel_error"]
    df = pd.DataFrame(rows)
    piv = df.pivot(index="threshold_points", columns="train_set", values="rel_error")
    ntask = df.groupby("threshold_points").n_tasks.first()
    text = (
        "Chained error of the largest run for task suites built at each above-chance threshold "
        "(points above chance for some 0.154B run; the paper uses 10):\n\n"
        + md_table(
            [
                (f"{th:g}", int(ntask[th]), *(pct(piv.loc[th].get(ts, np.nan)) for ts in ctx.train_sets))
                for th in piv.index
            ],
            ["threshold", "tasks", *(train_set_name(t) for t in ctx.train_sets)],
        )
    )
    return Analysis(
        "threshold_sweep",
        "Task-suite threshold sweep (Fig. 8)",
        text,
        {"threshold_sweep": df},
        numbers=numbers,
    )
