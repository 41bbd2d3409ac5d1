"""Analyses that vary the fit: the exponent per M (Fig. 17), under-training at M = 5 and 10,
fitting compute vs prediction error (Figs. 14–16), and tied vs untied exponents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lmscale.analyses.context import Analysis, Context, md_table, size_label, train_set_name
from lmscale.errors import FitError
from lmscale.fit.bootstrap import bootstrap, parameter_intervals
from lmscale.fit.runs import fit_table
from lmscale.formatting import pct
from lmscale.laws.overtrain import to_paper_form
from lmscale.plan_grid import ladder_grid
from lmscale.predict import ScalePoint, predict_loss, relative_error
from lmscale.run_table import RunTable

#: the small models of the ladder (0.011–0.411B) are those below this size
SMALL_MAX = 5e8


def _small(ctx: Context, ts: str):
    ds = ctx.dataset(ts)
    return ds.subset(ds.column("n_params").astype(float) <= SMALL_MAX)


# ------------------------------------------------------------------------------- exponent vs M
def exponent_vs_m(ctx: Context, n_resamples: int = 1000, level: float = 0.9, seed: int = 0) -> Analysis:
    """Fit L = E + K·C^-η separately at each M on the small models, with bootstrap intervals; the
    over-training law assumes one η for all M (paper Fig. 17)."""
    rows: list[dict[str, Any]] = []
    for ts in ctx.train_sets:
        small = _small(ctx, ts)
        m_all = small.column("multiplier").astype(float)
        eta_tied = to_paper_form(ctx.loss_fit(ts).params)["eta"]
        for m in np.unique(m_all):
            sub = small.subset(np.isclose(m_all, m))
            row = {
                "train_set": ts,
                "multiplier": float(m),
                "n_runs": len(sub),
                "eta": np.nan,
                "eta_low": np.nan,
                "eta_high": np.nan,
                "eta_default_fit": eta_tied,
                "note": "",
            }
            try:
                res = fit_table(sub, "power", "loss_" + ctx.val_set, method="varpro")
                row["eta"] = res.params["eta"]
                if len(sub) <= 3:
                    row["note"] = f"{len(sub)} runs for 3 parameters: exact fit, no interval"
                else:
                    lo, hi = parameter_intervals(bootstrap(res, n_resamples, seed), level)["eta"]
                    row.update(eta_low=lo, eta_high=hi)
            except FitError as exc:
                row["note"] = str(exc)
            rows.append(row)
    df = pd.DataFrame(rows)
    cells = []
    for ts in ctx.train_sets:
        d = df[df.train_set == ts]
        ok = d.dropna(subset=["eta"])
        cells.append(
            (
                train_set_name(ts),
                f"{d.eta_default_fit.iloc[0]:.3f}",
                f"{ok.eta.min():.3f} – {ok.eta.max():.3f}" if len(ok) else "—",
                f"{ok.eta.median():.3f}" if len(ok) else "—",
            )
        )
    text = (
        f"η fitted per M on the {int(df.n_runs.max()) if len(df) else 0} small models at each M "
        f"(L = E + K·C^-η, {int(100 * level)}% bootstrap intervals over runs, {n_resamples} resamples; with "
        "four runs per fit the intervals are wide):\n\n"
        + md_table(cells, ["training set", "η of the default fit", "η per M (range)", "median"])
    )
    return Analysis(
        "exponent_vs_m", "Exponent η vs token multiplier M (Fig. 17)", text, {"exponent_vs_m": df}
    )


# ------------------------------------------------------------------------------- under-training
def undertraining(ctx: Context) -> Analysis:
    """How far the default fit misses runs that were not used to fit it, by M (M = 5, 10 are
    under-trained relative to the compute-optimal M* ≈ 3–7 … 20 range)."""
    rows: list[dict[str, Any]] = []
    for ts in ctx.train_sets:
        ds = ctx.dataset(ts)
        fit_ids = set(ctx.loss_runs(ts).run_ids)
        n, m = ds.column("n_params").astype(float), ds.column("multiplier").astype(float)
        pred = ctx.predict_losses(ts, n, m)
        obs = ds.loss("loss_" + ctx.val_set)
        for i, rid in enumerate(ds.run_ids):
            if rid not in fit_ids:
                rows.append(
                    {
                        "train_set": ts,
                        "run_id": rid,
                        "n_params": n[i],
                        "multiplier": m[i],
                        "predicted": pred[i],
                        "observed": float(obs[i]),
                        "signed_rel_error": (pred[i] - obs[i]) / obs[i],
                        "rel_error": relative_error(pred[i], float(obs[i])),
                    }
                )
    df = pd.DataFrame(rows)
    summ = (
        df.assign(group=np.where(df.multiplier <= 10, df.multiplier.map(lambda v: f"M={v:g}"), "M≥20"))
        .groupby(["train_set", "group"])
        .rel_error.agg(["mean", "max", "count"])
        .reset_index()
    )
    numbers = {f"{r.train_set}/{r.group}/mean": float(r["mean"]) for _, r in summ.iterrows()}
    cells = []
    for ts in ctx.train_sets:
        s = summ[summ.train_set == ts].set_index("group")
        cells.append(
            (
                train_set_name(ts),
                *(
                    f"{pct(s.loc[g, 'mean'])} / {pct(s.loc[g, 'max'])}" if g in s.index else "—"
                    for g in ("M=5", "M=10", "M≥20")
                ),
            )
        )
    text = (
        "Mean / max relative error of the default loss fit on runs it did not see, by M "
        "(M = 5 and 10 are under-trained; the law is fitted at M = 20 and 320):\n\n"
        + md_table(cells, ["training set", "M=5", "M=10", "M≥20"])
    )
    return Analysis(
        "undertraining",
        "Under-training: the default fit at M = 5 and 10",
        text,
        {"undertraining": df, "undertraining_summary": summ},
        numbers=numbers,
    )


# ------------------------------------------------------------------------- fit compute sweep
@dataclass(frozen=True)
class SweepFitSet:
    """One fit set of the compute sweep: the runs both laws are fitted on."""

    label: str
    runs: RunTable  # the loss law's runs
    err_runs: RunTable  # the error law's runs (the same runs, except for the default fit set)
    default: bool  # the analysis' own (default) fit set rather than a sampled one


def compute_fit_sets(ctx: Context, ts: str) -> list[SweepFitSet]:
    """The sampled fit sets (documented in the report): the k smallest sizes (k = 2, 3, 4) ×
    every contiguous window of the M values [M_lo, M_hi] with at least two values
    (:func:`lmscale.plan_grid.ladder_grid`, the planner's grid). Each fits both
    laws on the same runs; sets with fewer than 6 runs are skipped."""
    small = _small(ctx, ts)
    n, m = small.column("n_params").astype(float), small.column("multiplier").astype(float)
    sizes, ms = np.unique(n), np.unique(m)
    out = []
    for k, window in ladder_grid(len(sizes), len(ms)):
        lo, hi = ms[window][0], ms[window][-1]
        mask = (n <= sizes[k - 1]) & (m >= lo) & (m <= hi)
        if mask.sum() >= 6:
            runs = small.subset(mask)
            out.append(SweepFitSet(f"N≤{size_label(sizes[k - 1])} M{lo:g}–{hi:g}", runs, runs, False))
    return out


#: exponent starts of the sweep's fits (variable projection searches only the exponents): the
#: paper's two values of c, and three values of γ around the paper's start
_LOSS_STARTS = np.array([[1e3, 1e3, -0.1, 1.0], [1e3, 1e3, -0.3, 1.0], [1e3, 1e3, -0.6, 1.0]])
_ERROR_STARTS = np.array([[1.0, 0.5, 1.0], [1.0, 1.0, 1.0], [1.0, 2.0, 1.0]])


def compute_sweep(ctx: Context) -> Analysis:
    """Relative error of the 1.4B max-M and largest-run predictions (loss and chained error) vs
    the compute of the fit runs (paper Figs. 14–16). Fits use ``varpro`` (the least-squares
    optimum, as the paper's method, found fast)."""
    rows: list[dict[str, Any]] = []
    for ts in ctx.train_sets:
        ds = ctx.dataset(ts)
        targets = {"1.4B max M": ctx.target_run(ts, "second-max-m"), "largest": ctx.target_run(ts, "largest")}
        obs = {
            w: (float(ds.loss("loss_" + ctx.val_set)[i]), ctx.observed(ts, i, ctx.target))
            for w, i in targets.items()
        }
        points = {
            w: ScalePoint.make(float(ds.column("n_params")[i]), multiplier=float(ds.column("multiplier")[i]))
            for w, i in targets.items()
        }
        names = {w: f"{size_label(p.n_params)} M={p.multiplier:g}" for w, p in points.items()}
        sets = [
            *compute_fit_sets(ctx, ts),
            SweepFitSet(f"default ({ctx.setting.spec.name})", ctx.loss_runs(ts), ctx.error_runs(ts), True),
        ]
        for s in sets:
            used = set(s.runs.run_ids) | set(s.err_runs.run_ids)
            flops = float(sum(f for r, f in zip(ds.run_ids, ds.column("flops")) if r in used))
            try:
                lf = fit_table(
                    s.runs, "overtrain", "loss_" + ctx.val_set, method="varpro", starts=_LOSS_STARTS
                )
                ef = fit_table(
                    s.err_runs,
                    "error",
                    ctx.target,
                    method="varpro",
                    loss_column="loss_" + ctx.val_set,
                    starts=_ERROR_STARTS,
                )
            except FitError:
                continue
            for w, p in points.items():
                pl = predict_loss(lf, p)
                pe = float(ef.predict(loss=pl))
                for qty, pred, true in (("loss", pl, obs[w][0]), ("error", pe, obs[w][1])):
                    rows.append(
                        {
                            "train_set": ts,
                            "fit_set": s.label,
                            "default": s.default,
                            "n_runs": len(used),
                            "fit_flops": flops,
                            "target_run": names[w],
                            "target": w,
                            "quantity": qty,
                            "predicted": pred,
                            "observed": true,
                            "rel_error": relative_error(pred, true),
                        }
                    )
    df = pd.DataFrame(rows)
    cells, numbers = [], {}
    for qty in ("loss", "error"):
        for w in ("1.4B max M", "largest"):
            d = df[(df.quantity == qty) & (df.target == w) & ~df.default]
            if d.empty:
                continue
            terc = pd.qcut(np.log(d.fit_flops), 3, labels=["low", "mid", "high"])
            med = d.groupby(terc, observed=False).rel_error.median()
            rho = float(d[["fit_flops", "rel_error"]].corr(method="spearman").iloc[0, 1])
            dflt = df[(df.quantity == qty) & (df.target == w) & df.default].rel_error.median()
            cells.append(
                (qty, w, pct(med["low"]), pct(med["mid"]), pct(med["high"]), f"{rho:.2f}", pct(dflt))
            )
            numbers[f"{qty}/{w}/spearman"] = rho
            numbers[f"{qty}/{w}/median_low"], numbers[f"{qty}/{w}/median_high"] = (
                float(med["low"]),
                float(med["high"]),
            )
    n_sets = df[~df.default].groupby("train_set").fit_set.nunique().to_dict() if len(df) else {}
    text = (
        "Fit sets: the k smallest model sizes (k = 2, 3, 4) × every contiguous window [M_lo, M_hi] of the M "
        "values with ≥ 2 values and ≥ 6 runs; both laws fitted on the same runs by exact least squares; "
        f"{', '.join(f'{train_set_name(k)} {v}' for k, v in n_sets.items())} fit sets. Median relative error by "
        "tercile of fit compute (Spearman ρ of compute vs error; negative: more compute, lower error):\n\n"
        + md_table(cells, ["quantity", "target", "low compute", "mid", "high", "ρ", "default fit"])
    )
    return Analysis(
        "compute_sweep",
        "Fitting compute vs prediction error (Figs. 14–16)",
        text,
        {"compute_sweep": df},
        numbers=numbers,
    )


# ------------------------------------------------------------------------ tied vs untied
def tied_vs_untied(ctx: Context) -> Analysis:
    """Eq. 4 (α = β) against the untied Chinchilla form, both by least squares on raw loss, on the
    spec's loss-fit runs and on all small runs; relative error on the held-out runs."""
    rows: list[dict[str, Any]] = []
    fits: list[dict[str, Any]] = []
    for ts in ctx.train_sets:
        held = ctx.heldout(ts)
        obs = held.loss("loss_" + ctx.val_set)
        for fs_name, runs in (
            ("spec loss-fit runs", ctx.loss_runs(ts)),
            ("all 0.011–0.411B runs", _small(ctx, ts)),
        ):
            for law in ("overtrain", "chinchilla"):
                try:
                    f = fit_table(runs, law, "loss_" + ctx.val_set, method="varpro")
                except FitError as exc:
                    fits.append(
                        {
                            "train_set": ts,
                            "fit_runs": fs_name,
                            "law": law,
                            "n_runs": len(runs),
                            "note": str(exc),
                        }
                    )
                    continue
                if law == "overtrain":
                    exps = {"alpha": -f.params["c"], "beta": -f.params["c"]}
                else:
                    exps = {"alpha": f.params["alpha"], "beta": f.params["beta"]}
                errs = []
                for i in range(len(held)):
                    p = ScalePoint.make(
                        float(held.column("n_params")[i]), n_tokens=float(held.column("n_tokens")[i])
                    )
                    pred = predict_loss(f, p)
                    errs.append(relative_error(pred, float(obs[i])))
                    rows.append(
                        {
                            "train_set": ts,
                            "fit_runs": fs_name,
                            "law": law,
                            "run_id": held.run_ids[i],
                            "n_params": p.n_params,
                            "multiplier": p.multiplier,
                            "predicted": pred,
                            "observed": float(obs[i]),
                            "rel_error": errs[-1],
                        }
                    )
                fits.append(
                    {
                        "train_set": ts,
                        "fit_runs": fs_name,
                        "law": law,
                        "n_runs": len(runs),
                        **exps,
                        "E": f.params["E"],
                        "rmse": f.diagnostics.rmse,
                        "mean_rel_error": float(np.mean(errs)),
                        "max_rel_error": float(np.max(errs)),
                        "note": "",
                    }
                )
    fdf = pd.DataFrame(fits)
    cells = [
        (
            train_set_name(r["train_set"]),
            r["fit_runs"],
            r["law"],
            int(r["n_runs"]),
            f"{r.get('alpha', np.nan):.3f} / {r.get('beta', np.nan):.3f}",
            f"{r.get('rmse', np.nan):.4f}",
            pct(r.get("mean_rel_error", np.nan)),
            pct(r.get("max_rel_error", np.nan)),
        )
        for r in fits
    ]
    numbers = {
        f"{r['train_set']}/{r['fit_runs']}/{r['law']}": float(r.get("mean_rel_error", np.nan)) for r in fits
    }
    same = [
        r for r in fits if r["law"] == "chinchilla" and "alpha" in r and abs(r["alpha"] - r["beta"]) < 1e-4
    ]
    text = (
        "Held-out loss relative error of the tied law (Eq. 4: α = β, 4 parameters) and the untied Chinchilla "
        "form L = E + A·N^-α + B·D^-β (5 parameters), both by least squares on raw loss"
        + (f"; in {len(same)} fit(s) the untied optimum is the tied one (α = β)" if same else "")
        + ". Exponents are those of N and D (α = β = 2η for Eq. 4).\n\n"
        + md_table(
            cells, ["training set", "fit runs", "law", "runs", "α / β", "RMSE", "mean rel. err", "max"]
        )
    )
    return Analysis(
        "tied_vs_untied",
        "Tied vs untied exponents",
        text,
        {"tied_vs_untied": fdf, "tied_vs_untied_runs": pd.DataFrame(rows)},
        numbers=numbers,
    )
