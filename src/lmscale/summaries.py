"""Fits and backtests as people read them: the rows of ``lmscale fit``'s and ``lmscale backtest``'s
tables, as plain text (``summary()``), as HTML (a notebook's ``_repr_html_``) and as one line
(``repr``). The CLI prints the same rows."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np


def _num(v: float | None, digits: int) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def fit_title(fit) -> str:
    return f"{fit.law} law fitted to {fit.target} ({len(fit.y)} runs, method {fit.method})"


def fit_rows(fit) -> list[tuple[str, ...]]:
    """(parameter, value[, 90% bootstrap interval]) rows, the paper form and M* for the
    over-training law."""
    from lmscale.laws.overtrain import optimal_multiplier, to_paper_form

    ci = {}
    if fit.bootstrap:  # 90% percentile intervals, as lmscale.fit.bootstrap.parameter_intervals
        samples = np.asarray(fit.bootstrap, dtype=float)
        lo, hi = np.percentile(samples, [5.0, 95.0], axis=0)
        ci = {name: (float(lo[j]), float(hi[j])) for j, name in enumerate(fit.law_obj.params)}
    rows: list[tuple[str, ...]] = []
    for k, v in fit.params.items():
        rows.append((k, _num(v, 8), *([f"[{_num(ci[k][0], 4)}, {_num(ci[k][1], 4)}]"] if ci else [])))
    if fit.law == "overtrain":
        pad = ("",) if ci else ()
        rows += [(f"paper form {k}", _num(v, 6), *pad) for k, v in to_paper_form(fit.params).items()]
        rows.append(("M* (compute-optimal)", _num(optimal_multiplier(fit.params), 4), *pad))
    return rows


def fit_header(fit) -> tuple[str, ...]:
    return ("parameter", "value", *(["90% bootstrap interval"] if fit.bootstrap else []))


def text_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
) -> str:
    """A plain-text table: a title, aligned columns (text left, numbers right), notes below."""
    cols = list(zip(header, *rows)) if rows else [(h,) for h in header]
    widths = [max(len(str(c)) for c in col) for col in cols]

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [title, line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join([*out, *notes])


def html_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    foot = "".join(f"<p>{esc(n)}</p>" for n in notes)
    return f"<div><b>{esc(title)}</b><table><tr>{head}</tr>{body}</table>{foot}</div>"


def fit_notes(fit) -> list[str]:
    from lmscale.sanity import fit_warnings

    return [fit.diagnostics.summary(), *(f"warning: {w}" for w in fit_warnings(fit))]


def fit_summary(fit) -> str:
    return text_table(fit_title(fit), fit_header(fit), fit_rows(fit), fit_notes(fit))


def fit_html(fit) -> str:
    return html_table(fit_title(fit), fit_header(fit), fit_rows(fit), fit_notes(fit))


def fit_repr(fit) -> str:
    params = ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items())
    boot = f", bootstrap={len(fit.bootstrap)}" if fit.bootstrap else ""
    return f"FitResult({fit.law} on {fit.target}: {len(fit.y)} runs, method {fit.method}, {params}{boot})"


BACKTEST_HEADER = ("method", "quantity", "C factor", "predictions", "mean", "median", "max")


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def backtest_rows(result) -> list[tuple[str, ...]]:
    return [
        (r.method, r.quantity, str(r.c_factor_bin), str(r.n), _pct(r.mean_rel_error), _pct(r.median_rel_error),
         _pct(r.max_rel_error))
        for r in result.summary_frame().itertuples()
    ]  # fmt: skip


def backtest_title(result) -> str:
    return f"backtest of {result.target}: relative error by compute extrapolation (C ÷ largest fitted)"


def backtest_summary(result) -> str:
    return text_table(backtest_title(result), BACKTEST_HEADER, backtest_rows(result))


def backtest_html(result) -> str:
    return html_table(backtest_title(result), BACKTEST_HEADER, backtest_rows(result))


def backtest_repr(result) -> str:
    methods = sorted({p.method for p in result.points})
    df = result.frame()
    mean = f", mean relative error {100 * df.rel_error.mean():.2f}%" if len(df) else ""
    return f"BacktestResult({result.target}: {len(result.points)} predictions, methods {', '.join(methods)}{mean})"
