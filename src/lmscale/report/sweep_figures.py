"""Figures of the analyses that vary the fit: exponent per M, under-training, fitting compute,
tied vs untied exponents and the hyper-parameter search. Each returns ``[(name, Figure)]``."""

from __future__ import annotations

import numpy as np

from lmscale.analyses.context import Analysis, size_label, train_set_name
from lmscale.report.style import new_figure, plain_log_ticks, size_markers, ts_colour


# ------------------------------------------------------------------------------------ sweeps
def plot_exponent_vs_m(a: Analysis):
    df = a.tables["exponent_vs_m"]
    order = list(dict.fromkeys(df.train_set))
    fig, ax = new_figure(7, 4.2)
    ax = ax[0, 0]
    for k, ts in enumerate(order):
        d = df[df.train_set == ts]
        x = d.multiplier * 1.06 ** (k - 1)
        c = ts_colour(ts, order)
        yerr = np.vstack([d.eta - d.eta_low, d.eta_high - d.eta]).clip(min=0)
        ax.errorbar(x, d.eta, yerr=np.nan_to_num(yerr), fmt="o", color=c, capsize=3, label=train_set_name(ts))
        ax.axhline(d.eta_default_fit.iloc[0], color=c, ls="--", lw=0.8)
    ax.set_xscale("log")
    ms = sorted(df.multiplier.unique())
    ax.set_xticks(ms, [f"{m:g}" for m in ms])
    ax.minorticks_off()
    ax.set(
        xlabel="token multiplier M",
        ylabel="exponent η (per-M power law)",
        title="η per M with 90% bootstrap intervals (dashed: Eq. 4 fit)",
    )
    ax.legend(fontsize=8)
    return [("exponent_vs_m", fig)]


def plot_undertraining(a: Analysis):
    df = a.tables["undertraining"]
    order = list(dict.fromkeys(df.train_set))
    fig, axes = new_figure(4.2 * len(order), 3.8, 1, len(order), sharey=True)
    markers = size_markers(df.n_params.unique())
    for ax, ts in zip(axes[0], order):
        d = df[df.train_set == ts]
        for n, group in d.groupby("n_params"):
            g = group.sort_values("multiplier")
            ax.plot(
                g.multiplier, 100 * g.signed_rel_error, marker=markers[n], ms=6, label=f"N = {size_label(n)}"
            )
        ax.axhline(0, color="k", lw=0.6)
        ax.axvspan(4, 12, color="orange", alpha=0.12)
        ax.set_xscale("log")
        ms = sorted(df.multiplier.unique())
        ax.set_xticks(ms, [f"{m:g}" for m in ms])
        ax.minorticks_off()
        ax.set(xlabel="token multiplier M", title=f"{train_set_name(ts)} (shaded: M = 5, 10)")
    axes[0, 0].set_ylabel("(predicted − true) / true loss (%)")
    axes[0, 0].legend(fontsize=7)
    return [("undertraining", fig)]


def plot_compute_sweep(a: Analysis):
    df = a.tables["compute_sweep"]
    order = list(dict.fromkeys(df.train_set))
    fig, axes = new_figure(10, 7.5, 2, 2, sharex=True)
    for i, qty in enumerate(("loss", "error")):
        for j, tgt in enumerate(("1.4B max M", "largest")):
            ax = axes[i, j]
            d = df[(df.quantity == qty) & (df.target == tgt)]
            for ts in order:
                g = d[(d.train_set == ts) & ~d["default"]]
                ax.plot(
                    g.fit_flops,
                    100 * g.rel_error,
                    "o",
                    ms=3.5,
                    alpha=0.6,
                    color=ts_colour(ts, order),
                    label=train_set_name(ts),
                )
                g = d[(d.train_set == ts) & d["default"]]
                ax.plot(g.fit_flops, 100 * g.rel_error, "*", ms=15, mec="k", color=ts_colour(ts, order))
            name = d.target_run.iloc[0] if len(d) else tgt
            ax.set(
                xscale="log",
                yscale="log",
                title=f"{qty} of {name if tgt != 'largest' else 'the largest run'}",
                ylabel="relative error (%)",
            )
            if i == 1:
                ax.set_xlabel("compute of the fit runs (FLOPs)")
    axes[0, 0].legend(fontsize=8, title="★ default fit", title_fontsize=8)
    return [("compute_sweep", fig)]


def plot_tied_vs_untied(a: Analysis):
    df = a.tables["tied_vs_untied"].dropna(subset=["mean_rel_error"])
    groups = list(dict.fromkeys(zip(df.train_set, df.fit_runs)))
    fig, ax = new_figure(8, 3.8)
    ax = ax[0, 0]
    x = np.arange(len(groups))
    for k, (law, colour) in enumerate((("overtrain", "#4c72b0"), ("chinchilla", "#dd8452"))):
        vals = [
            df[(df.train_set == t) & (df.fit_runs == f) & (df.law == law)].mean_rel_error.mean()
            for t, f in groups
        ]
        ax.bar(
            x + (k - 0.5) * 0.4,
            100 * np.array(vals),
            0.4,
            color=colour,
            label="tied (Eq. 4)" if law == "overtrain" else "untied (Chinchilla)",
        )
    ax.set_xticks(
        x, [f"{train_set_name(t)}\n{f.split(' ')[0]} {f.split(' ')[1]}" for t, f in groups], fontsize=7
    )
    ax.set(ylabel="mean held-out loss relative error (%)", title="tied vs untied exponents")
    ax.legend(fontsize=8)
    return [("tied_vs_untied", fig)]


def plot_hparam_search(a: Analysis):
    df = a.tables["hparam_search"]
    pfit = a.data["fit"]
    fitd = pfit.params
    fig, ax = new_figure(7, 4.6)
    ax = ax[0, 0]
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    norm = LogNorm(df.n_params.min(), df.n_params.max())
    sc = ax.scatter(df.flops, df.loss, c=df.n_params, cmap=colormaps["plasma"], norm=norm, s=12, alpha=0.7)
    fr = df[df.frontier].sort_values("flops")
    ax.plot(fr.flops, fr.loss, "k-", lw=1, marker="o", ms=4, mfc="none", label="Pareto frontier")
    cg = np.logspace(np.log10(df.flops.min()), np.log10(df.flops.max()), 50)
    ax.plot(
        cg,
        pfit.predict(flops=cg),
        "r--",
        lw=1.2,
        label=f"L = {fitd['E']:.3g} + {fitd['K']:.3g}·C^-{fitd['eta']:.3f}",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="compute C = 6ND (FLOPs)",
        ylabel="validation loss (nats)",
        title=f"hyper-parameter search: {len(df)} runs",
    )
    plain_log_ticks(ax.yaxis)
    fig.colorbar(sc, ax=ax, pad=0.01).set_label("parameters N")
    ax.legend(fontsize=8)
    return [("hparam_search", fig)]
