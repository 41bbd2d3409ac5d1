"""The paper's headline analyses: Figure 1, Table 6, the relative-error heat maps, per-task
predictions (Table 2), Table 7 and the rank correlation. Each returns an :class:`Analysis`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from lmscale.analyses.context import Analysis, Context, md_table, pct, size_label, split_label, train_set_name
from lmscale.errors import FitError
from lmscale.laws.overtrain import optimal_multiplier, to_paper_form
from lmscale.predict import relative_error
from lmscale.tasks import PAPER_17, PAPER_46, target_values


def _roles(ctx: Context, ts: str) -> tuple[set, set, set]:
    return (set(ctx.loss_runs(ts).run_ids), set(ctx.error_runs(ts).run_ids), set(ctx.heldout(ts).run_ids))


# ------------------------------------------------------------------------------------ Figure 1
def figure1(ctx: Context) -> Analysis:
    """Loss vs compute with the fitted lines per M, and error vs loss with the error law, per
    training set; plus the four relative errors of Figure 1 for each training set."""
    points, numbers, laws, rows = [], {}, {}, []
    for ts in ctx.train_sets:
        ds = ctx.dataset(ts)
        lf, ef = ctx.loss_fit(ts), ctx.error_fit(ts)
        loss_ids, err_ids, held_ids = _roles(ctx, ts)
        n, m = ds.column("n_params").astype(float), ds.column("multiplier").astype(float)
        loss = ds.loss("loss_" + ctx.val_set)
        err = target_values(ds, ctx.target)
        pred = np.asarray(lf.predict(n_params=n, multiplier=m), dtype=float)
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
    rows = []
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
    rows = []
    for ts in ctx.train_sets:
        ds = ctx.dataset(ts)
        loss_ids, err_ids, _ = _roles(ctx, ts)
        n, m = ds.column("n_params").astype(float), ds.column("multiplier").astype(float)
        for vs in ctx.val_sets:
            pred = np.asarray(ctx.loss_fit(ts, vs).predict(n_params=n, multiplier=m), dtype=float)
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
        pred = np.asarray(ctx.loss_fit(ts).predict(n_params=n, multiplier=m), dtype=float)
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


# ------------------------------------------------------------------------------ per-task (Table 2)
HIGHLIGHTED_TASKS = ("arc_easy", "lambada_openai", "openbook_qa", "hellaswag_zeroshot")


def per_task(ctx: Context, tasks: tuple[str, ...] | None = None) -> Analysis:
    """One error law per task on the error-fit runs; relative error at the largest run (6.9B),
    chained through its predicted loss and from its true loss."""
    tasks = tasks or tuple(t for t in PAPER_46 if t in ctx.runs.tasks) or tuple(ctx.runs.tasks)
    rows, numbers = [], {}
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
    rows, numbers = [], {}
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
    rows = []
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
    from lmscale.tasks import above_chance_tasks

    if ctx.metadata is None:
        raise FitError("the threshold sweep needs the tasks' random baselines (eval_metadata.csv)")
    rows, numbers = [], {}
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
