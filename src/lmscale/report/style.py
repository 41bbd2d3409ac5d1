"""Shared look of every figure: colours of training sets and token multipliers, size markers,
log-axis ticks and target titles. Colours, markers and labels live here only."""

from __future__ import annotations

import numpy as np

from lmscale.analyses.context import size_label
from lmscale.paper_constants import M_RANGE

SIZE_MARKERS = ("o", "s", "^", "D", "P", "*", "X", "v")
TRAIN_COLOURS = {"c4_original": "#1f77b4", "rpj": "#d62728", "rw_original": "#2ca02c"}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw):
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


def m_colour(m, rng=M_RANGE):
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    norm = LogNorm(*rng)
    return colormaps["viridis"](norm(np.clip(m, *rng)))


def m_colourbar(fig, ax, rng=M_RANGE, ticks=None):
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


def plain_log_ticks(axis):
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


def ts_colour(ts: str, order: list[str]) -> str:
    return TRAIN_COLOURS.get(ts, OTHER_COLOURS[order.index(ts) % len(OTHER_COLOURS)])


def size_markers(sizes) -> dict[float, str]:
    return {s: SIZE_MARKERS[i % len(SIZE_MARKERS)] for i, s in enumerate(sorted(sizes))}


def size_legend(ax, markers: dict[float, str], loc="lower left", extra=()):
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker=mk, color="0.3", label=f"N = {size_label(n)}")
        for n, mk in markers.items()
    ]
    ax.legend(handles=[*handles, *extra], loc=loc, fontsize=7, framealpha=0.85)
