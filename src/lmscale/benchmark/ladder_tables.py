"""The tables of the multi-lab ladder benchmark (:mod:`lmscale.benchmark.ladders`): every row, and
the default against the paper's method per ladder and split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pct(v, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.{digits}f}%"


def markdown_table(rows: Sequence[dict]) -> str:
    lines = [
        "| ladder | split | fit → held out | method | mean / max abs. error | mean signed | over-predicted "
        "| 80% / 90% cover | 90% width | calibration |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "failed" in r:
            lines.append(
                f"| {r['ladder']} | {r['split']} | | {r['method']} | failed: {r['failed']} | | | | | |"
            )
            continue
        lines.append(
            f"| {r['ladder']} | {r['split']} | {r['n_fit']} → {r['n_predictions']} ({r['split_rule']}) | "
            f"{r['method']} | {_pct(r['mean_abs_error'])} / {_pct(r['max_abs_error'])} | "
            f"{100 * r['mean_signed_error']:+.2f}% | {_pct(r['share_over_predicted'], 0)} | "
            f"{_pct(r['coverage_80'], 0)} / {_pct(r['coverage_90'], 0)} | {_pct(r['median_width_90'], 1)} | "
            f"{r.get('calibration') or '—'} |"
        )
    dropped = {r["ladder"]: r.get("n_dropped_runs") or 0 for r in rows}
    for lad, n in dropped.items():
        if n:
            lines.append(f"\n{lad}: {n} row(s) left out (missing, non-finite or non-positive N, D or loss)")
    return "\n".join(lines)


def summary(rows: Sequence[dict], default: str = "default", baseline: str = "paper") -> list[dict]:
    """Per ladder × split: the default's and the baseline's mean error, their ratio, the default's
    signed error, share over-predicted, coverage and width."""
    by = {(r["ladder"], r["split"], r["method"]): r for r in rows if "failed" not in r}
    out = []
    for (lad, sp, m), r in by.items():
        if m != default or (lad, sp, baseline) not in by:
            continue
        b = by[(lad, sp, baseline)]
        out.append(
            {
                "ladder": lad,
                "lab": r["lab"],
                "split": sp,
                "n_fit": r["n_fit"],
                "n_predictions": r["n_predictions"],
                "baseline_mean_abs_error": b["mean_abs_error"],
                "default_mean_abs_error": r["mean_abs_error"],
                "ratio": r["mean_abs_error"] / b["mean_abs_error"],
                "default_mean_signed_error": r["mean_signed_error"],
                "share_over_predicted": r["share_over_predicted"],
                "coverage_80": r["coverage_80"],
                "coverage_90": r["coverage_90"],
                "median_width_90": r["median_width_90"],
                "width_over_median_error": r["median_width_90"] / max(r["median_abs_error"], 1e-12),
            }
        )
    return out


def summary_markdown(rows: Sequence[dict]) -> str:
    lines = [
        "| ladder | split | fit → held out | paper mean error | default mean error | ratio | default signed "
        "| 80% / 90% cover | 90% width (× median error) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary(rows):
        lines.append(
            f"| {s['ladder']} | {s['split']} | {s['n_fit']} → {s['n_predictions']} | "
            f"{_pct(s['baseline_mean_abs_error'])} | {_pct(s['default_mean_abs_error'])} | {s['ratio']:.2f} | "
            f"{100 * s['default_mean_signed_error']:+.2f}% | {_pct(s['coverage_80'], 0)} / {_pct(s['coverage_90'], 0)} | "
            f"{_pct(s['median_width_90'], 1)} ({s['width_over_median_error']:.1f}×) |"
        )
    return "\n".join(lines)
