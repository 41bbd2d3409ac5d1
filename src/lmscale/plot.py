"""Notebook figures: a fit against its runs, a run table, a backtest and a forecast, each drawn
onto a matplotlib ``Axes`` you pass (a new one when you do not) and returned. matplotlib is
imported only when a function here is called::

    import matplotlib.pyplot as plt, lmscale
    fig, (a, b) = plt.subplots(1, 2)
    lmscale.plot.fit(loss_fit, ax=a)
    lmscale.plot.backtest(lmscale.backtest(runs, "loss_c4"), ax=b)
"""

from __future__ import annotations

import numpy as np

from lmscale.run_table import RunTable
from lmscale.testbed import as_runs


def _axes(ax):
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=(5, 3.5), layout="constrained").subplots()


def _m_colours(m: np.ndarray):
    from lmscale.report.style import m_colour, m_range

    return m_colour(m, m_range(m)), m_range(m)


def fit(fit_result, *, ax=None, n_points: int = 100):
    """The fitted runs (y against N, coloured by M) and the law's curve at each fitted M; an
    error-law fit: error against loss. Returns ``ax``."""
    ax = _axes(ax)
    x, y = fit_result.x_arrays, np.asarray(fit_result.y, dtype=float)
    if "loss" in x:
        loss = x["loss"]
        grid = np.linspace(loss.min() * 0.95, loss.max() * 1.05, n_points)
        ax.scatter(loss, y, s=18, color="#1f77b4", label="runs", zorder=3)
        ax.plot(grid, fit_result.predict(loss=grid), color="k", lw=1, label=f"{fit_result.law} law")
        ax.set_xlabel(fit_result.input_columns.get("loss", "loss"))
    elif "n_params" in x:
        n = x["n_params"]
        m = x["multiplier"] if "multiplier" in x else x["n_tokens"] / n
        from lmscale.report.style import m_colour

        colours, rng = _m_colours(m)
        grid = np.geomspace(n.min() / 1.5, n.max() * 3, n_points)
        for mv in np.unique(np.round(m, 6)):
            curve = fit_result.predict(n_params=grid, multiplier=np.full_like(grid, mv))
            ax.plot(grid, curve, color=m_colour(mv, rng), lw=1)
        ax.scatter(n, y, s=18, c=colours, edgecolors="k", linewidths=0.3, zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel("parameters N")
    else:
        (name,) = list(x)
        v = x[name]
        grid = np.geomspace(v.min() / 1.5, v.max() * 3, n_points)
        ax.scatter(v, y, s=18, zorder=3)
        ax.plot(grid, fit_result.predict(**{name: grid}), color="k", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(name)
    ax.set_ylabel(fit_result.target)
    ax.set_title(f"{fit_result.law} law, {len(y)} runs", fontsize=9)
    return ax


def runs(table: RunTable, column: str, *, ax=None):
    """``column`` (a loss, ``acc_<task>`` or any numeric column) of every run against its compute
    C = 6ND, coloured by M. ``table``: a run table, a DataFrame or a path. Returns ``ax``."""
    ax = _axes(ax)
    t = as_runs(table)
    y = t.column(column).astype(float)
    flops = 6.0 * t.column("n_params").astype(float) * t.column("n_tokens").astype(float)
    m = t.column("n_tokens").astype(float) / t.column("n_params").astype(float)
    colours, _ = _m_colours(m)
    ok = np.isfinite(y)
    ax.scatter(flops[ok], y[ok], s=18, c=colours[ok], edgecolors="k", linewidths=0.3)
    ax.set_xscale("log")
    ax.set_xlabel("compute C = 6ND (FLOPs)")
    ax.set_ylabel(column)
    ax.set_title(f"{int(ok.sum())} runs", fontsize=9)
    return ax


def backtest(result, *, ax=None):
    """Each backtest prediction's relative error against how far it extrapolates in compute
    (C ÷ largest fitted C), one colour per method. Returns ``ax``."""
    ax = _axes(ax)
    df = result.frame()
    for method, part in df.groupby("method"):
        ax.scatter(part.c_factor, 100 * part.rel_error, s=14, label=str(method), alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("compute extrapolation (C ÷ largest fitted)")
    ax.set_ylabel("relative error (%)")
    ax.set_title(f"backtest of {result.target}", fontsize=9)
    if len(df):
        ax.legend(fontsize=8)
    return ax


def forecast(fc, fit_result, *, ax=None):
    """A fit against its runs (:func:`fit`) with the forecast point and its interval. Returns ``ax``."""
    ax = fit(fit_result, ax=ax)
    if fc.point is None:
        return ax
    n = fc.point.n_params
    lo_hi = fc.loss_interval or fc.loss_bootstrap_interval
    ax.scatter([n], [fc.loss], marker="*", s=120, color="#d62728", zorder=4, label="forecast")
    if lo_hi is not None:
        ax.errorbar(
            [n], [fc.loss], yerr=[[fc.loss - lo_hi[0]], [lo_hi[1] - fc.loss]], color="#d62728", capsize=3
        )
    ax.legend(fontsize=8)
    return ax
