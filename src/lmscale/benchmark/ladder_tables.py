"""The tables of the multi-lab ladder benchmark (:mod:`lmscale.benchmark.ladders`): every row, the
default against the paper's method per ladder and split, the same per ladder, and the issue's goals
checked against them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: the interval levels every ladder row is scored at
LEVELS = (0.8, 0.9)


@dataclass
class Score:
    rel: list = field(default_factory=list)  # signed relative errors
    iv: list = field(default_factory=list)  # (observed, predicted, {level: Interval})
    at: list = field(default_factory=list)  # (N, M) of each interval's held-out run

    def points(self) -> list[dict]:
        """Each held-out prediction with its 90% interval (for plots)."""
        return [
            {
                "n_params": n,
                "multiplier": m,
                "observed": o,
                "predicted": p,
                "low_90": i[0.9].low,
                "high_90": i[0.9].high,
            }
            for (n, m), (o, p, i) in zip(self.at, self.iv)
        ]

    def row(self) -> dict:
        r = np.asarray(self.rel, dtype=float)
        out = {
            "n_predictions": len(r),
            "mean_abs_error": float(np.mean(np.abs(r))) if len(r) else float("nan"),
            "max_abs_error": float(np.max(np.abs(r))) if len(r) else float("nan"),
            "median_abs_error": float(np.median(np.abs(r))) if len(r) else float("nan"),
            "mean_signed_error": float(np.mean(r)) if len(r) else float("nan"),
            "share_over_predicted": float(np.mean(r > 0)) if len(r) else float("nan"),
        }
        for lv in LEVELS:
            out[f"coverage_{int(lv * 100)}"] = (
                float(np.mean([i[lv].contains(o) for o, _p, i in self.iv])) if self.iv else float("nan")
            )
        out["median_width_90"] = (
            float(np.median([(i[0.9].high - i[0.9].low) / p for _o, p, i in self.iv]))
            if self.iv
            else float("nan")
        )
        return out


#: the goals the benchmark is judged by (interval coverage bands, width against the error)
COVER_90 = (0.80, 0.97)
COVER_80 = (0.70, 0.90)
WIDTH_OVER_ERROR = 3.0
#: fewest held-out predictions for a coverage on one split to say anything (with 1–9 predictions a
#: 90% coverage moves in steps of 10–100 points)
MIN_PREDICTIONS_FOR_COVERAGE = 10


def _pct(v, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.{digits}f}%"


def _calibration(r: dict) -> str:
    """ "own" or "reference", with the reference it is floored by (lab-out, ladder-out or shipped)."""
    how = r.get("calibration") or ""
    if not how:
        return "—"
    where = r.get("reference")
    return f"{how} ({where})" if where and where != "none" else how


def _signed(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:+.2f}%"


def _ratio(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.2f}"


def _of(rows: Sequence[dict], quantity: str) -> list[dict]:
    return [r for r in rows if r.get("quantity", "loss") == quantity]


def quantities(rows: Sequence[dict]) -> list[str]:
    """The quantities scored, the loss first."""
    return list(dict.fromkeys(["loss", *(r.get("quantity", "loss") for r in rows)]))


def markdown_table(rows: Sequence[dict], quantity: str = "loss") -> str:
    lines = [
        "| ladder | split | fit → held out | method | mean / max abs. error | mean signed | over-predicted "
        "| 80% / 90% cover | 90% width | calibration |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in _of(rows, quantity):
        if "failed" in r:
            lines.append(
                f"| {r['ladder']} | {r['split']} | | {r['method']} | failed: {r['failed']} | | | | | |"
            )
            continue
        lines.append(
            f"| {r['ladder']} | {r['split']} | {r['n_fit']} → {r['n_predictions']} ({r['split_rule']}) | "
            f"{r['method']} | {_pct(r['mean_abs_error'])} / {_pct(r['max_abs_error'])} | "
            f"{_signed(r['mean_signed_error'])} | {_pct(r['share_over_predicted'], 0)} | "
            f"{_pct(r['coverage_80'], 0)} / {_pct(r['coverage_90'], 0)} | {_pct(r['median_width_90'], 1)} | "
            f"{_calibration(r)} |"
        )
    dropped = {r["ladder"]: r.get("n_dropped_runs") or 0 for r in rows}
    for lad, n in dropped.items():
        if n:
            lines.append(f"\n{lad}: {n} row(s) left out (missing, non-finite or non-positive N, D or loss)")
    return "\n".join(lines)


def summary(
    rows: Sequence[dict], default: str = "default", baseline: str = "paper", quantity: str = "loss"
) -> list[dict]:
    """Per ladder × split: the default's and the baseline's mean error, their ratio, the default's
    signed error, share over-predicted, coverage and width."""
    by = {(r["ladder"], r["split"], r["method"]): r for r in _of(rows, quantity) if "failed" not in r}
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
                "ratio": r["mean_abs_error"] / b["mean_abs_error"] if b["mean_abs_error"] else float("nan"),
                "default_mean_signed_error": r["mean_signed_error"],
                "share_over_predicted": r["share_over_predicted"],
                "coverage_80": r["coverage_80"],
                "coverage_90": r["coverage_90"],
                "median_width_90": r["median_width_90"],
                "median_abs_error": r["median_abs_error"],
                "width_over_median_error": r["median_width_90"] / max(r["median_abs_error"], 1e-12),
            }
        )
    return out


def summary_markdown(rows: Sequence[dict], quantity: str = "loss") -> str:
    lines = [
        "| ladder | split | fit → held out | paper mean error | default mean error | ratio | default signed "
        "| 80% / 90% cover | 90% width (× median error) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary(rows, quantity=quantity):
        lines.append(
            f"| {s['ladder']} | {s['split']} | {s['n_fit']} → {s['n_predictions']} | "
            f"{_pct(s['baseline_mean_abs_error'])} | {_pct(s['default_mean_abs_error'])} | {_ratio(s['ratio'])} | "
            f"{_signed(s['default_mean_signed_error'])} | {_pct(s['coverage_80'], 0)} / {_pct(s['coverage_90'], 0)} | "
            f"{_pct(s['median_width_90'], 1)} ({s['width_over_median_error']:.1f}×) |"
        )
    return "\n".join(lines)


def per_ladder(rows: Sequence[dict], quantity: str = "loss") -> list[dict]:
    """Per ladder, pooled over its splits' held-out predictions (each prediction weighing the same):
    the default's and the paper's mean error and their ratio, the default's signed error, and its
    80% / 90% coverage; the last row pools every ladder."""
    groups: dict[str, list[dict]] = {}
    for s in summary(rows, quantity=quantity):
        groups.setdefault(s["ladder"], []).append(s)
    out = []
    for lad, ss in [*groups.items(), ("all ladders", [s for g in groups.values() for s in g])]:
        n = np.array([s["n_predictions"] for s in ss], float)

        def pooled(key: str, ss=ss, n=n) -> float:
            v = np.array([s[key] for s in ss], float)
            ok = np.isfinite(v)
            return float(np.sum(v[ok] * n[ok]) / np.sum(n[ok])) if ok.any() else float("nan")

        d, b = pooled("default_mean_abs_error"), pooled("baseline_mean_abs_error")
        out.append(
            {
                "ladder": lad,
                "n_predictions": int(n.sum()),
                "baseline_mean_abs_error": b,
                "default_mean_abs_error": d,
                "ratio": d / b if b else float("nan"),
                "default_mean_signed_error": pooled("default_mean_signed_error"),
                "coverage_80": pooled("coverage_80"),
                "coverage_90": pooled("coverage_90"),
            }
        )
    return out


def per_ladder_markdown(rows: Sequence[dict], quantity: str = "loss") -> str:
    lines = [
        "| ladder | held-out predictions | paper mean error | default mean error | ratio | default signed "
        "| 80% / 90% cover |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in per_ladder(rows, quantity):
        lines.append(
            f"| {s['ladder']} | {s['n_predictions']} | {_pct(s['baseline_mean_abs_error'])} | "
            f"{_pct(s['default_mean_abs_error'])} | {_ratio(s['ratio'])} | {_signed(s['default_mean_signed_error'])} | "
            f"{_pct(s['coverage_80'], 0)} / {_pct(s['coverage_90'], 0)} |"
        )
    return "\n".join(lines)


def goals(rows: Sequence[dict]) -> list[dict]:
    """The goals, each with what was measured and whether it holds: per split with enough held-out
    predictions (:data:`MIN_PREDICTIONS_FOR_COVERAGE`), the coverage bands and the width bound, for
    the loss and each chained error; the coverage bands pooled over every ladder; per ladder, the
    default's error against the paper's; and the default's error over the ladders against 0.85×
    the paper's."""
    out = []
    for q in quantities(rows):
        for s in summary(rows, quantity=q):
            if s["n_predictions"] < MIN_PREDICTIONS_FOR_COVERAGE:
                continue
            c80, c90, w = s["coverage_80"], s["coverage_90"], s["width_over_median_error"]
            if not (np.isfinite(c80) and np.isfinite(c90)):
                continue
            out.append(
                {
                    "goal": f"{q}: {s['ladder']} {s['split']} coverage and width",
                    "measured": f"{_pct(c80, 0)} / {_pct(c90, 0)}, width {w:.1f}× the median error",
                    "holds": bool(
                        COVER_80[0] <= c80 <= COVER_80[1]
                        and COVER_90[0] <= c90 <= COVER_90[1]
                        and w <= WIDTH_OVER_ERROR
                    ),
                }
            )
    for q in quantities(rows):
        total = per_ladder(rows, q)[-1] if summary(rows, quantity=q) else None
        if total is None or not np.isfinite(total["coverage_90"]):
            continue
        c80, c90 = total["coverage_80"], total["coverage_90"]
        out.append(
            {
                "goal": f"{q}: coverage pooled over every ladder ({total['n_predictions']} predictions)",
                "measured": f"{_pct(c80, 0)} / {_pct(c90, 0)}",
                "holds": bool(COVER_80[0] <= c80 <= COVER_80[1] and COVER_90[0] <= c90 <= COVER_90[1]),
            }
        )
    ladders = per_ladder(rows, "loss")
    for s in ladders[:-1]:
        out.append(
            {
                "goal": f"loss: {s['ladder']} default error ≤ paper's",
                "measured": f"{_pct(s['default_mean_abs_error'])} vs {_pct(s['baseline_mean_abs_error'])}",
                "holds": bool(s["ratio"] <= 1.0 + 1e-9),
            }
        )
    if ladders[:-1]:
        ratios = [s["ratio"] for s in ladders[:-1]]
        out.append(
            {
                "goal": "loss: default error averaged over ladders ≤ 0.85× the paper's",
                "measured": f"{np.mean(ratios):.2f}× (mean of the per-ladder ratios)",
                "holds": bool(np.mean(ratios) <= 0.85),
            }
        )
    return out


def goals_markdown(rows: Sequence[dict]) -> str:
    lines = ["| goal | measured | holds |", "|---|---|---|"]
    for g in goals(rows):
        lines.append(f"| {g['goal']} | {g['measured']} | {'yes' if g['holds'] else '**no**'} |")
    return "\n".join(lines)
