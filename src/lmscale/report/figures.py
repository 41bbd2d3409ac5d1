"""Figures of the paper analyses. Colours, markers and labels live here only.

Each ``plot_<key>(analysis)`` returns ``[(name, Figure)]``. Figures are built on
:class:`matplotlib.figure.Figure` directly (no pyplot, no display, no global state), so they render
headless and in threads; matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import itertools

import numpy as np

from lmscale.analyses.context import Analysis, size_label, train_set_name

M_RANGE = (5.0, 640.0)
SIZE_MARKERS = ("o", "s", "^", "D", "P", "*", "X", "v")
TRAIN_COLOURS = {"c4_original": "#1f77b4", "rpj": "#d62728", "rw_original": "#2ca02c"}
_OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def m_range(multipliers) -> tuple[float, float]:
    """The colour scale's M range: the ladder's own multipliers (the paper's 5–640 when there are none)."""
    m = np.asarray([v for v in np.ravel(multipliers) if np.isfinite(v) and v > 0], dtype=float)
    if m.size == 0:
        return M_RANGE
    lo, hi = float(m.min()), float(m.max())
    return (lo, hi) if hi > lo else (lo / 2, hi * 2)


def _m_colour(m, rng=M_RANGE):
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    norm = LogNorm(*rng)
    return colormaps["viridis"](norm(np.clip(m, *rng)))


def _m_colourbar(fig, ax, rng=M_RANGE, ticks=None):
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm

    sm = ScalarMappable(norm=LogNorm(*rng), cmap=colormaps["viridis"])
    cb = fig.colorbar(sm, ax=ax, pad=0.01)
    ticks = [
        t
        for t in (ticks if ticks is not None else [5, 10, 20, 40, 80, 160, 320, 640])
        if rng[0] * (1 - 1e-9) <= t <= rng[1] * (1 + 1e-9)
    ]
    cb.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
    cb.minorticks_off()
    cb.set_label("token multiplier M = D/N")


def _plain_log_ticks(axis):
    """Log-axis tick labels as plain numbers (2, 3, 4) instead of 2×10⁰."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _pos: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(fmt)


def target_title(t: str) -> str:
    """How a fitting target reads in tables and titles (``loss``, ``loss_<set>``, error targets)."""
    if t == "loss":
        return "loss"
    if t.startswith("loss_"):
        return "loss: " + t[5:]
    if t.startswith("error_") and t[6:].isdigit():
        return f"{t[6:]}-task error (chained)"
    if t.startswith("error:"):
        return f"{len(t[6:].split(','))}-task custom error (chained)"
    return t


def _ts_colour(ts: str, order: list[str]) -> str:
    return TRAIN_COLOURS.get(ts, _OTHER_COLOURS[order.index(ts) % len(_OTHER_COLOURS)])


def _size_markers(sizes) -> dict[float, str]:
    return {s: SIZE_MARKERS[i % len(SIZE_MARKERS)] for i, s in enumerate(sorted(sizes))}


def _size_legend(ax, markers: dict[float, str], loc="lower left", extra=()):
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker=mk, color="0.3", label=f"N = {size_label(n)}")
        for n, mk in markers.items()
    ]
    ax.legend(handles=[*handles, *extra], loc=loc, fontsize=7, framealpha=0.85)


# ------------------------------------------------------------------------------------ Figure 1
def plot_figure1(a: Analysis):
    from matplotlib.lines import Line2D

    pts = a.tables["figure1_points"]
    out = []
    for ts, d in pts.groupby("train_set", sort=False):
        laws = a.data["laws"][ts]
        lfit = laws["loss"]
        fig, ax = _figure(12, 4.8, 1, 2)
        left, right = ax[0]
        markers = _size_markers(d.n_params.unique())
        mr = m_range(d.multiplier)
        e = lfit.params["E"]
        cgrid = np.logspace(np.log10(d.flops.min() / 2), np.log10(d.flops.max() * 2), 200)
        for m in sorted(d.multiplier.unique()):
            n = np.sqrt(cgrid / (6 * m))
            red = np.asarray(lfit.predict(n_params=n, multiplier=np.full_like(n, m))) - e
            left.plot(cgrid, red, color=_m_colour(m, mr), lw=1, alpha=0.8)
        for _, r in d.iterrows():
            style = dict(color=_m_colour(r.multiplier, mr), marker=markers[r.n_params], ls="", ms=7)
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
        _plain_log_ticks(left.yaxis)
        _size_legend(
            left,
            markers,
            extra=[
                Line2D([], [], ls="", marker="o", color="0.6", mec="k", label="fit run"),
                Line2D([], [], ls="", marker="o", color="0.6", mec="red", mew=1.6, label="held-out run"),
                Line2D([], [], ls="", marker="x", color="red", label="prediction"),
            ],
        )
        _m_colourbar(fig, left, mr, sorted(d.multiplier.unique()))
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
            style = dict(color=_m_colour(r.multiplier, mr), marker=markers[r.n_params], ls="", ms=7)
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
        fig, axes = _figure(4.1 * ncols, 3.3 * nrows, nrows, ncols)
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
    fig, ax = _figure(8, 0.22 * len(tasks) + 1.5)
    ax = ax[0, 0]
    h = 0.8 / len(order)
    for k, ts in enumerate(order):
        s = df[df.train_set == ts].set_index("task").reindex(tasks)
        ax.barh(
            np.arange(len(tasks)) + (k - (len(order) - 1) / 2) * h,
            100 * s.rel_error,
            height=h,
            color=_ts_colour(ts, order),
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
    fig, ax = _figure(6, 3.6)
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
    fig, ax = _figure(5, 4.6)
    ax = ax[0, 0]
    markers = _size_markers(df.n_params.unique())
    for _, r in df.iterrows():
        ax.plot(
            r.observed,
            r.predicted,
            ls="",
            marker=markers[r.n_params],
            ms=8,
            color=_ts_colour(r.train_set, order),
            mec="k",
            mew=0.5,
        )
    lo, hi = min(df.observed.min(), df.predicted.min()), max(df.observed.max(), df.predicted.max())
    pad = 0.05 * (hi - lo)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
    from matplotlib.lines import Line2D

    extra = [
        Line2D([], [], ls="", marker="s", color=_ts_colour(t, order), label=train_set_name(t)) for t in order
    ]
    _size_legend(ax, markers, loc="upper left", extra=extra)
    ax.set(
        xlabel="true average error",
        ylabel="predicted average error (chained)",
        title=f"Spearman ρ = {s.spearman:.2f}, Kendall τ = {s.kendall:.2f} (n = {int(s.n_runs)})",
    )
    return [("rank_correlation", fig)]


def plot_threshold_sweep(a: Analysis):
    df = a.tables["threshold_sweep"]
    order = list(dict.fromkeys(df.train_set))
    fig, ax = _figure(10, 3.8, 1, 2)
    for ts in order:
        d = df[df.train_set == ts]
        ax[0, 0].plot(
            d.threshold_points, 100 * d.rel_error, "o-", color=_ts_colour(ts, order), label=train_set_name(ts)
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


# ------------------------------------------------------------------------------------ sweeps
def plot_exponent_vs_m(a: Analysis):
    df = a.tables["exponent_vs_m"]
    order = list(dict.fromkeys(df.train_set))
    fig, ax = _figure(7, 4.2)
    ax = ax[0, 0]
    for k, ts in enumerate(order):
        d = df[df.train_set == ts]
        x = d.multiplier * 1.06 ** (k - 1)
        c = _ts_colour(ts, order)
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
    fig, axes = _figure(4.2 * len(order), 3.8, 1, len(order), sharey=True)
    markers = _size_markers(df.n_params.unique())
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
    fig, axes = _figure(10, 7.5, 2, 2, sharex=True)
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
                    color=_ts_colour(ts, order),
                    label=train_set_name(ts),
                )
                g = d[(d.train_set == ts) & d["default"]]
                ax.plot(g.fit_flops, 100 * g.rel_error, "*", ms=15, mec="k", color=_ts_colour(ts, order))
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
    fig, ax = _figure(8, 3.8)
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
    fig, ax = _figure(7, 4.6)
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
    _plain_log_ticks(ax.yaxis)
    fig.colorbar(sc, ax=ax, pad=0.01).set_label("parameters N")
    ax.legend(fontsize=8)
    return [("hparam_search", fig)]


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


def plot_backtest(frame, title: str = ""):
    """Backtest relative error against the compute extrapolation factor, one colour per method;
    the lines are the running medians. ``frame``: :meth:`lmscale.backtest.BacktestResult.frame`."""
    fig, axes = _figure(6.4, 4.2)
    ax = axes[0, 0]
    colours = dict(zip(dict.fromkeys(frame.method), (*TRAIN_COLOURS.values(), *_OTHER_COLOURS)))
    for meth, group in frame.groupby("method", sort=False):
        g = group.sort_values("c_factor")
        ax.scatter(
            g.c_factor,
            100 * g.rel_error,
            s=12,
            alpha=0.45,
            color=colours[meth],
            marker="o",
            label=f"{meth} ({len(g)})",
        )
        if len(g) >= 5:
            edges = np.quantile(np.log(g.c_factor), np.linspace(0, 1, min(8, len(g) // 3) + 1))
            mids, meds = [], []
            for lo, hi in itertools.pairwise(edges):
                sel = (np.log(g.c_factor) >= lo) & (np.log(g.c_factor) <= hi)
                if sel.any():
                    mids.append(np.exp((lo + hi) / 2))
                    meds.append(100 * g.rel_error[sel].median())
            ax.plot(mids, meds, color=colours[meth], lw=2)
    ax.axvline(1.0, color="k", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(
        xlabel="compute of the predicted run ÷ largest fitted run",
        ylabel="relative error (%)",
        title=title or "Backtest: error vs extrapolation",
    )
    ax.legend(fontsize=8, title="method (predictions); line: median", title_fontsize=8)
    return [("backtest", fig)]


def plot_plan(p):
    """Expected relative error vs ladder cost for every candidate of a :class:`lmscale.plan.Plan`,
    with the three proposals marked."""
    fig, axes = _figure(6.4, 4.2)
    ax = axes[0, 0]
    c = p.candidates
    flops = np.array([x.flops for x in c])
    err = np.array([x.expected_rel_error for x in c])
    lo = np.array([x.expected_interval[0] for x in c])
    hi = np.array([x.expected_interval[1] for x in c])
    ax.errorbar(
        flops,
        100 * err,
        yerr=[100 * (err - lo), 100 * (hi - err)],
        fmt="o",
        color="#999999",
        ms=4,
        alpha=0.6,
        elinewidth=0.8,
        label="candidate ladders",
    )
    for (label, i), colour in zip(p.picks.items(), ("#2ca02c", "#d62728", "#1f77b4")):
        ax.plot(c[i].flops, 100 * c[i].expected_rel_error, "*", ms=14, color=colour, label=label)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="ladder cost (FLOPs)",
        ylabel="expected relative error of the target (%)",
        title=f"Ladders for N = {p.target.n_params:.3g}, M = {p.target.multiplier:g}",
    )
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8)
    return [("plan", fig)]
