"""Figures of the paper analyses. Colours, markers and labels live here only.

Each ``plot_<key>(analysis)`` returns ``[(name, Figure)]``. Figures are built on
:class:`matplotlib.figure.Figure` directly (no pyplot, no display, no global state), so they render
headless and in threads; matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import numpy as np

from lmscale.analyses.context import Analysis, size_label, train_set_name
from lmscale.report.style import (
    m_colour,
    m_colourbar,
    m_range,
    new_figure,
    plain_log_ticks,
    size_legend,
    size_markers,
    target_title,
    ts_colour,
)


# ------------------------------------------------------------------------------------ Figure 1
def plot_figure1(a: Analysis):
    from matplotlib.lines import Line2D

    pts = a.tables["figure1_points"]
    out = []
    for ts, d in pts.groupby("train_set", sort=False):
        laws = a.data["laws"][ts]
        lfit = laws["loss"]
        fig, ax = new_figure(12, 4.8, 1, 2)
        left, right = ax[0]
        markers = size_markers(d.n_params.unique())
        mr = m_range(d.multiplier)
        e = lfit.params["E"]
        cgrid = np.logspace(np.log10(d.flops.min() / 2), np.log10(d.flops.max() * 2), 200)
        for m in sorted(d.multiplier.unique()):
            n = np.sqrt(cgrid / (6 * m))
            red = np.asarray(lfit.predict(n_params=n, multiplier=np.full_like(n, m))) - e
            left.plot(cgrid, red, color=m_colour(m, mr), lw=1, alpha=0.8)
        for _, r in d.iterrows():
            style = dict(color=m_colour(r.multiplier, mr), marker=markers[r.n_params], ls="", ms=7)
            y = max(r.loss - e, 1e-3)
            if r.loss_role == "fit":
                left.plot(r.flops, y, mec="k", mew=0.8, **style)
            elif r.loss_role == "held-out":
                left.plot(r.flops, y, mec="red", mew=1.6, **style)
                left.plot(r.flops, max(r.predicted_loss - e, 1e-3), marker="x", color="red", ms=6, ls="")
            else:
                left.plot(r.flops, y, alpha=0.45, **style)
        left.set(
            xscale="log",
            yscale="log",
            xlabel="compute C = 6ND (FLOPs)",
            ylabel=f"reducible loss L − E (nats, {a.data['val_set']})",
            title=f"{train_set_name(ts)}: loss law, E = {e:.2f}",
        )
        plain_log_ticks(left.yaxis)
        size_legend(
            left,
            markers,
            extra=[
                Line2D([], [], ls="", marker="o", color="0.6", mec="k", label="fit run"),
                Line2D([], [], ls="", marker="o", color="0.6", mec="red", mew=1.6, label="held-out run"),
                Line2D([], [], ls="", marker="x", color="red", label="prediction"),
            ],
        )
        m_colourbar(fig, left, mr, sorted(d.multiplier.unique()))
        efit = laws["error"]
        ep = efit.params
        lgrid = np.linspace(d.loss.min() - 0.1, d.loss.max() + 0.1, 200)
        right.plot(
            lgrid,
            efit.predict(loss=lgrid),
            color="k",
            lw=1.2,
            label=f"{ep['epsilon']:.3f} − {ep['k']:.2f}·exp(−{ep['gamma']:.3f}·L)",
        )
        for _, r in d.iterrows():
            style = dict(color=m_colour(r.multiplier, mr), marker=markers[r.n_params], ls="", ms=7)
            if r.error_role == "fit":
                right.plot(r.loss, r.error, mec="k", mew=0.8, **style)
            elif r.error_role == "held-out":
                right.plot(r.loss, r.error, mec="red", mew=1.6, **style)
            else:
                right.plot(r.loss, r.error, alpha=0.45, **style)
        right.set(
            xlabel=f"validation loss L (nats, {a.data['val_set']})",
            ylabel=f"average top-1 error ({a.data['split']})",
            title=f"{train_set_name(ts)}: error law",
        )
        right.legend(loc="lower right", fontsize=8)
        out.append((f"figure1_{ts}", fig))
    return out


# ---------------------------------------------------------------------------------- heat maps
def plot_heatmaps(a: Analysis, vmax: float = 10.0):
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    df = a.tables["heatmaps"]
    targets = a.data["targets"]
    cmap = colormaps["Reds"].with_extremes(bad="0.92")
    out = []
    for ts, d in df.groupby("train_set", sort=False):
        sizes, ms = sorted(d.n_params.unique()), sorted(d.multiplier.unique())
        ncols = 4
        nrows = int(np.ceil(len(targets) / ncols))
        fig, axes = new_figure(4.1 * ncols, 3.3 * nrows, nrows, ncols)
        im = None
        for k, ax in enumerate(axes.ravel()):
            if k >= len(targets):
                ax.set_axis_off()
                continue
            t = targets[k]
            sub = d[d.target == t]
            grid = np.full((len(sizes), len(ms)), np.nan)
            for _, r in sub.iterrows():
                i, j = sizes.index(r.n_params), ms.index(r.multiplier)
                grid[i, j] = 100 * r.rel_error
                if r.fit_point:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="k", lw=1.6))
            im = ax.imshow(
                np.ma.masked_invalid(grid), origin="lower", cmap=cmap, vmin=0, vmax=vmax, aspect="auto"
            )
            for i in range(len(sizes)):
                for j in range(len(ms)):
                    if np.isfinite(grid[i, j]):
                        ax.text(
                            j,
                            i,
                            f"{grid[i, j]:.1f}",
                            ha="center",
                            va="center",
                            fontsize=6.5,
                            color="white" if grid[i, j] > 0.6 * vmax else "black",
                        )
            ax.set_xticks(range(len(ms)), [f"{m:g}" for m in ms], fontsize=7)
            ax.set_yticks(range(len(sizes)), [size_label(s) for s in sizes], fontsize=7)
            ax.set_xlabel("token multiplier M", fontsize=8)
            ax.set_ylabel("parameters N", fontsize=8)
            ax.set_title(target_title(t)[:48], fontsize=9)
        if im is not None:
            cb = fig.colorbar(im, ax=axes, shrink=0.6, pad=0.01, extend="max")
            cb.set_label("relative error (%)")
        fig.suptitle(f"{train_set_name(ts)}: relative error of every run (boxed: fit runs)")
        out.append((f"heatmaps_{ts}", fig))
    return out


# ------------------------------------------------------------------------------------ per-task
def plot_per_task(a: Analysis):
    df = a.tables["per_task"].dropna(subset=["rel_error"])
    order = list(dict.fromkeys(df.train_set))
    tasks = list(df[df.train_set == order[0]].sort_values("rel_error").task)
    fig, ax = new_figure(8, 0.22 * len(tasks) + 1.5)
    ax = ax[0, 0]
    h = 0.8 / len(order)
    for k, ts in enumerate(order):
        s = df[df.train_set == ts].set_index("task").reindex(tasks)
        ax.barh(
            np.arange(len(tasks)) + (k - (len(order) - 1) / 2) * h,
            100 * s.rel_error,
            height=h,
            color=ts_colour(ts, order),
            label=train_set_name(ts),
        )
    ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
    for lbl in ax.get_yticklabels():
        if lbl.get_text().endswith("average"):
            lbl.set_fontweight("bold")
    ax.set(
        xscale="log",
        xlabel="relative error at the largest run, chained (%)",
        title="per-task error laws vs the task average",
    )
    ax.legend(fontsize=8, loc="lower right")
    return [("per_task", fig)]


def plot_table7(a: Analysis):
    df = a.tables["table7"]
    fig, ax = new_figure(6, 3.6)
    ax = ax[0, 0]
    x = np.arange(len(df))
    ax.bar(x - 0.2, 100 * df.rel_error_with, 0.4, label="with the 1.4B run", color="#4c72b0")
    ax.bar(x + 0.2, 100 * df.rel_error_without, 0.4, label="without", color="#dd8452")
    ax.set_xticks(x, [train_set_name(t) for t in df.train_set])
    ax.set(
        ylabel="relative error of the largest run's error (%)", title="error-law fit with and without 1.4B"
    )
    ax.legend(fontsize=8)
    return [("table7", fig)]


def plot_rank_correlation(a: Analysis):
    df = a.tables["rank_correlation_runs"]
    s = a.tables["rank_correlation"].iloc[0]
    order = list(dict.fromkeys(df.train_set))
    fig, ax = new_figure(5, 4.6)
    ax = ax[0, 0]
    markers = size_markers(df.n_params.unique())
    for _, r in df.iterrows():
        ax.plot(
            r.observed,
            r.predicted,
            ls="",
            marker=markers[r.n_params],
            ms=8,
            color=ts_colour(r.train_set, order),
            mec="k",
            mew=0.5,
        )
    lo, hi = min(df.observed.min(), df.predicted.min()), max(df.observed.max(), df.predicted.max())
    pad = 0.05 * (hi - lo)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
    from matplotlib.lines import Line2D

    extra = [
        Line2D([], [], ls="", marker="s", color=ts_colour(t, order), label=train_set_name(t)) for t in order
    ]
    size_legend(ax, markers, loc="upper left", extra=extra)
    ax.set(
        xlabel="true average error",
        ylabel="predicted average error (chained)",
        title=f"Spearman ρ = {s.spearman:.2f}, Kendall τ = {s.kendall:.2f} (n = {int(s.n_runs)})",
    )
    return [("rank_correlation", fig)]


def plot_threshold_sweep(a: Analysis):
    df = a.tables["threshold_sweep"]
    order = list(dict.fromkeys(df.train_set))
    fig, ax = new_figure(10, 3.8, 1, 2)
    for ts in order:
        d = df[df.train_set == ts]
        ax[0, 0].plot(
            d.threshold_points, 100 * d.rel_error, "o-", color=ts_colour(ts, order), label=train_set_name(ts)
        )
    n = df.groupby("threshold_points").n_tasks.first()
    ax[0, 1].step(n.index, n.values, where="post", color="k")
    for k in range(2):
        ax[0, k].axvline(10, color="0.5", ls="--", lw=0.8)
    ax[0, 0].set(
        yscale="log",
        xlabel="threshold (points above chance at 0.154B)",
        ylabel="relative error at the largest run (%)",
        title="chained error of the suite",
    )
    ax[0, 0].legend(fontsize=8)
    ax[0, 1].set(
        xlabel="threshold (points above chance at 0.154B)",
        ylabel="tasks in the suite",
        title="suite size (dashed: the paper's 10 points)",
    )
    return [("threshold_sweep", fig)]


from lmscale.report.sweep_figures import (  # noqa: E402
    plot_compute_sweep,
    plot_exponent_vs_m,
    plot_hparam_search,
    plot_tied_vs_untied,
    plot_undertraining,
)

PLOTS = {
    "figure1": plot_figure1,
    "heatmaps": plot_heatmaps,
    "per_task": plot_per_task,
    "table7": plot_table7,
    "rank_correlation": plot_rank_correlation,
    "threshold_sweep": plot_threshold_sweep,
    "exponent_vs_m": plot_exponent_vs_m,
    "undertraining": plot_undertraining,
    "compute_sweep": plot_compute_sweep,
    "tied_vs_untied": plot_tied_vs_untied,
    "hparam_search": plot_hparam_search,
}
