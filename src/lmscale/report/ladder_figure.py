"""The ladder benchmark as a figure (``lmscale benchmark accuracy --ladder … --plot FILE.png``): one
panel per ladder, each held-out run's signed error against its N, the default's calibrated 90%
interval as a bar (a bar that crosses 0 covers the truth; without the default, the first method's)
and every other method's error beside it.
Reads the rows of :func:`lmscale.benchmark.ladders.run` made with ``keep_points=True`` (plain
dicts: this module imports nothing of the benchmark)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmscale._io import atomic_write
from lmscale.errors import InputError

#: marker and colour per split rule
MARKERS = {"size": "o", "compute": "s"}
COLOURS = {"size": "#1f77b4", "compute": "#d95f02"}
#: edge colours of the other methods' hollow markers (the paper's grey, then these in turn)
OTHERS = ("#7570b3", "#e7298a", "#66a61e", "#a6761d")


def figure(rows: Sequence[dict]):
    """A matplotlib Figure of the rows' held-out loss predictions (see the module docstring)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = [r for r in rows if r.get("quantity") == "loss" and r.get("points")]
    if not rows:
        raise InputError("no held-out predictions with intervals to plot (a ladder needs a split)")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    barred = "default" if "default" in methods else methods[0]
    others = [m for m in methods if m not in (barred, "paper")]
    edge = {"paper": "0.45", **{m: OTHERS[i % len(OTHERS)] for i, m in enumerate(others)}}
    ladders = list(dict.fromkeys(r["ladder"] for r in rows))
    ncols = min(4, len(ladders))
    nrows = math.ceil(len(ladders) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, name in zip(axes.flat, ladders):
        covered = []
        for r in (r for r in rows if r["ladder"] == name):
            pts = r["points"]
            n = np.array([p["n_params"] for p in pts])
            obs = np.array([p["observed"] for p in pts])
            rel = 100 * (np.array([p["predicted"] for p in pts]) / obs - 1)
            marker = MARKERS.get(r["split"], "^")
            if r["method"] == barred:
                lo = 100 * (np.array([p["low_90"] for p in pts]) / obs - 1)
                hi = 100 * (np.array([p["high_90"] for p in pts]) / obs - 1)
                covered += list((lo <= 0) & (hi >= 0))
                ax.errorbar(
                    n, rel, yerr=[rel - lo, hi - rel], fmt=marker, ms=3.5, color=COLOURS.get(r["split"], "k"), alpha=0.7,
                    elinewidth=0.7, label=f"{barred}, {r['split']} split (90% interval)",
                )  # fmt: skip
            else:
                ax.scatter(
                    n, rel, marker=marker, s=14, facecolors="none", edgecolors=edge[r["method"]], linewidths=0.7,
                    label=f"{r['method']}, {r['split']} split",
                )  # fmt: skip
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / 1e9:g}B"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        cover = f": 90% covers {100 * np.mean(covered):.0f}%" if covered else ""
        ax.set_title(f"{name}{cover}", fontsize=9)
        ax.set_xlabel("N of the held-out run", fontsize=8)
        ax.set_ylabel("predicted / observed − 1 (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(ladders) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=6, loc="best")
    return fig


def save(rows: Sequence[dict], path: str | Path) -> Path:
    """Draw :func:`figure` and write it to ``path`` atomically, in the format its suffix names
    (``.png``, ``.pdf``, ``.svg``, …; PNG without one)."""
    fig = figure(rows)
    kind = Path(path).suffix.lstrip(".").lower() or "png"
    known = fig.canvas.get_supported_filetypes()
    if kind not in known:
        raise InputError(
            f"cannot draw the figure as {path}: .{kind} is not one of .{', .'.join(sorted(known))}"
        )
    buf = io.BytesIO()
    fig.savefig(buf, format=kind, dpi=110)
    try:
        return atomic_write(path, lambda fh: fh.write(buf.getvalue()), binary=True)
    except OSError as exc:
        raise InputError(f"cannot write the figure to {path}: {exc.strerror or exc}") from None
