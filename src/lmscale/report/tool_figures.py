"""Figures of lmscale's own tools: the backtest (error against extrapolation) and the ladder plan
(cost against expected error), and the folders they are written into with their tables."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from lmscale._io import atomic_write_text
from lmscale.backtest import BacktestResult
from lmscale.plan import Plan
from lmscale.report.style import OTHER_COLOURS, TRAIN_COLOURS, new_figure
from lmscale.report.writer import save_figures


def plot_backtest(frame, title: str = ""):
    """Backtest relative error against the compute extrapolation factor, one colour per method;
    the lines are the running medians. ``frame``: :meth:`lmscale.backtest.BacktestResult.frame`."""
    fig, axes = new_figure(6.4, 4.2)
    ax = axes[0, 0]
    colours = dict(zip(dict.fromkeys(frame.method), (*TRAIN_COLOURS.values(), *OTHER_COLOURS)))
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
    fig, axes = new_figure(6.4, 4.2)
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


def write_backtest(result: BacktestResult, folder: str | Path, title: str | None = None) -> list[Path]:
    """``backtest.csv`` (every prediction), ``backtest_summary.csv`` (by extrapolation bin) and
    ``backtest.png`` (error against compute extrapolation, per method) in ``folder``, atomically."""
    frame = result.frame()
    figures = plot_backtest(frame, title or f"Backtest of {result.target}: error vs extrapolation")
    return save_figures(
        Path(folder), {"backtest.csv": frame, "backtest_summary.csv": result.summary_frame()}, figures
    )


def write_plan(p: Plan, folder: str | Path, payload: dict | None = None) -> Path:
    """``plan.json`` (:meth:`Plan.to_dict`, or ``payload``) and ``plan.png`` into ``folder``."""
    save_figures(folder, {}, plot_plan(p))
    return atomic_write_text(Path(folder) / "plan.json", json.dumps(payload or p.to_dict(), indent=1))
