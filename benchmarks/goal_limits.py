"""What the evidence allows of the cross-lab goals that do not hold (issue 19), measured:

    python benchmarks/goal_limits.py [SHARED] [--format json]      # about 1 min; SHARED: ../shared

Three questions, each on the five public ladders of ``lmscale benchmark accuracy --ladder`` and
the paper testbed's fit sets:

1. **Width against coverage.** For each split with at least 10 held-out losses, the narrowest
   90% interval of one log-width for the whole split around the default's centered predictions —
   chosen *knowing* the held-out truths — that still covers 80% of them (the lower edge of the
   goal's 80–97% band), over the median error. Where even this oracle is wider than 3×, no
   interval of a width set per split can meet both the width goal and the coverage band. (The
   ratio falls toward 2× as the errors become all of one size, as a biased prediction's do: the
   width goal rewards bias, so the default's center is not moved to meet it.)
2. **The center against the testbed.** The default's prediction beyond its fit is its law's
   value · exp(shift), one shift for every ladder. For a grid of shifts: on which each public
   ladder's default mean error stays at most the paper method's, and on which the testbed's
   ``cap-1e20`` fit set stays at most 0.55× the paper's error (and ``paper-default`` at most
   1×). An empty intersection means no constant center meets both goals.
3. **Own-backtest rules.** How a ladder's own backtest (nested rolling origins on its fit runs)
   and the leave-one-lab-out reference combine into the interval's score quantile: ``ref``
   (reference alone), ``max`` (what lmscale does: never narrower than the reference), ``own``
   (own alone), ``geo`` (their geometric mean) and ``n200`` (a log-blend weighing own by
   n / (n + 200), n its predictions). Scored first on the rolling-origin backtests of every
   ladder (where a rule would be chosen; the output counts the fits and predictions) — per lab,
   and per fit, each fit with at least 10 predictions scored against the bands as a held-out
   split is, beside what independent, exactly calibrated errors would give those fits — then on
   the held-out splits. A rule that narrows the over-covered splits would have to narrow where
   the evidence of the user's own fit says the error is large.

Section 1 and 3 use the default method, centered by the other labs' shift (leave one lab out),
and 100 bootstrap resamples.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from lmscale import calibration as cal
from lmscale.backtest import log_spread, origins
from lmscale.benchmark import accuracy as A
from lmscale.benchmark import ladders as L
from lmscale.benchmark.ladder_tables import COVER_80, COVER_90, MIN_PREDICTIONS_FOR_COVERAGE
from lmscale.benchmark.references import backtest_points, lab_references
from lmscale.errors import FitError, InputError
from lmscale.fit.bootstrap import bootstrap_or_none
from lmscale.fit.core import fit
from lmscale.laws import OVERTRAIN
from lmscale.predict import ScalePoint
from lmscale.selection import FitSpec
from lmscale.study import TARGET_RUNS, Study
from lmscale.testbed import load as load_testbed

RESAMPLES = 100
LEVELS = (0.8, 0.9)
SHIFTS = np.round(np.arange(-0.030, 0.0101, 0.0005), 4)
RULES = ("ref", "max", "own", "geo", "n200")


# ------------------------------------------------------------------------------- fits and points
def _fit(lad, fm, method: str):
    x = {"n_params": lad.n_params[fm], "multiplier": lad.multiplier[fm]}
    return fit(OVERTRAIN, x, lad.loss[fm], method=method)


def case(lad, fm, pm) -> dict | None:
    """The default's fit on ``fm`` predicting ``pm``: log errors of the law, which targets are
    beyond the fit, the bootstrap spread and distance factors, the paper method's log errors, and the
    nested backtest of the fit runs (the ladder's own, as ``lmscale fit --bootstrap`` runs it)."""
    try:
        lf = _fit(lad, fm, "default")
    except (FitError, InputError):
        return None
    n, m, y, c = lad.n_params, lad.multiplier, lad.loss, lad.flops
    pred = np.asarray(lf.predict(n_params=n[pm], multiplier=m[pm]), float)
    lb = bootstrap_or_none(lf, RESAMPLES, 0)
    sd = log_spread(lb.predict_samples(n_params=n[pm], multiplier=m[pm])) if lb else np.full(pm.sum(), np.nan)
    out = {
        "e": np.log(y[pm] / pred),
        "sd": np.nan_to_num(sd, nan=0.0),
        "c": c[pm] / c[fm].max(),
        "mb": m[fm].min() / m[pm],
        "nf": n[pm] / n[fm].max(),
        "own": [],
        "e_paper": None,
    }
    # beyond the fit (d > 0): where the default's prediction is centered
    out["beyond"] = cal.distance(out["c"], out["mb"], 0.0, out["nf"]) > 0
    try:
        paper = _fit(lad, fm, "paper")
        out["e_paper"] = np.log(y[pm] / np.asarray(paper.predict(n_params=n[pm], multiplier=m[pm]), float))
    except (FitError, InputError):
        pass
    out["own"] = [
        p
        for p in backtest_points(lad, fm, "default", RESAMPLES, 0)
        if p.quantity == "loss" and np.isfinite(p.log_error)
    ]
    return out


def _scores(e, sd, c, mb, nf, shift) -> np.ndarray:
    return cal.scores(e, sd, c, m_below=mb, n_factor=nf, shift=shift)


# ------------------------------------------------------------------------------- 1. width
def _kth(x: np.ndarray, coverage: float) -> float:
    """The smallest value at or under which at least ``coverage`` of ``x`` lies."""
    return float(np.quantile(np.asarray(x, float), coverage, method="inverted_cdf"))


def oracle_width(e: np.ndarray, coverage: float = 0.8, u: np.ndarray | None = None) -> float:
    """The narrowest interval around the prediction covering ``coverage`` of the log errors ``e``
    (ln observed / prediction), over their median relative error: of one log-width for all, or
    with ``u`` (each prediction's uncertainty unit), of log-widths in proportion to u — the shape
    of lmscale's intervals."""
    e = np.asarray(e, float)
    u = np.ones_like(e) if u is None else np.asarray(u, float)
    q = _kth(np.abs(e) / u, coverage)
    return float(np.median(2 * np.sinh(q * u)) / np.median(np.abs(np.expm1(-e))))


def independent_bands(sizes, levels=LEVELS) -> dict:
    """The expected numbers of fits (of ``sizes`` predictions each) in both bands, above and below
    them, were each prediction's error independent and its interval exactly calibrated: the
    counts inside the 80% interval and between it and the 90% one are multinomial."""
    p80, p90 = levels
    out = {"in_bands": 0.0, "above": 0.0, "below": 0.0}
    for n in sizes:
        for a in range(n + 1):
            for b in range(n - a + 1):
                pr = (
                    math.comb(n, a)
                    * math.comb(n - a, b)
                    * p80**a
                    * (p90 - p80) ** b
                    * (1 - p90) ** (n - a - b)
                )
                c80, c90 = a / n, (a + b) / n
                out[_place(c80, c90)] += pr
    return out


# ------------------------------------------------------------------------------- 3. rules
def own_quantile(points, shift: float, level: float):
    """(the split-conformal quantile of the own backtest's scores at ``level``, their number), as
    :func:`lmscale.calibration.from_backtest` scores them but without the reference's floor; None
    when the backtest is too small to calibrate."""
    if len(points) < cal.MIN_OWN_SCORES or len({p.origin for p in points}) < 2:
        return None
    s = _scores(
        [p.log_error for p in points],
        [p.sd_log for p in points],
        [p.c_factor for p in points],
        [p.m_below_factor for p in points],
        [p.n_factor for p in points],
        shift,
    )
    own = cal.Calibration("loss", tuple(np.sort(s).tolist()), "own", "", distance=cal.DISTANCE, shift=shift)
    return own.quantile(level), len(s)


def rule_quantile(rule: str, q_ref: float, own) -> float:
    if own is None or rule == "ref":
        return q_ref
    q_own, n = own
    if rule == "max":
        return max(q_ref, q_own)
    if rule == "own":
        return q_own
    if rule == "geo":
        return math.sqrt(q_ref * q_own)
    w = n / (n + float(rule[1:]))
    return math.exp((1 - w) * math.log(q_ref) + w * math.log(q_own))


def coverage_of(k: dict, ref, rule: str) -> dict:
    shift = ref.shift
    s = _scores(k["e"], k["sd"], k["c"], k["mb"], k["nf"], shift)
    u = cal.unit(k["sd"], k["c"], m_below=k["mb"], n_factor=k["nf"])
    out = {}
    for lv in LEVELS:
        q = rule_quantile(rule, ref.quantile(lv), own_quantile(k["own"], shift, lv))
        out[lv] = s <= q
        if lv == 0.9:
            centered = k["e"] - shift * k["beyond"]
            out["ratio"] = float(np.median(2 * np.sinh(q * u)) / np.median(np.abs(np.expm1(-centered))))
    return out


def _miss(c80: float, c90: float) -> float:
    """How many coverage points a split lies outside the goal's bands (:data:`COVER_80`, :data:`COVER_90`)."""
    (lo80, hi80), (lo90, hi90) = COVER_80, COVER_90
    return max(0, lo80 - c80) + max(0, c80 - hi80) + max(0, lo90 - c90) + max(0, c90 - hi90)


def _place(c80: float, c90: float) -> str:
    """``below`` a band's lower edge (at either level), else ``in_bands`` or ``above``."""
    if c80 < COVER_80[0] or c90 < COVER_90[0]:
        return "below"
    return "in_bands" if _miss(c80, c90) == 0 else "above"


# ------------------------------------------------------------------------------- 2. the testbed
def testbed_points(runs, spec: FitSpec, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(law prediction, observed, beyond the fit) of every loss target of a testbed fit set, as
    ``lmscale benchmark accuracy --testbed`` scores them (3 training sets × 8 losses × 2 runs)."""
    study = Study(runs, spec, method)
    probe = replace(cal.reference("loss"), shift=0.1)  # any non-zero shift: which targets move
    pred, obs, beyond = [], [], []
    for ts in runs.datasets:
        ds = study.dataset(ts)
        targets = [study.target_run(ts, w) for w in TARGET_RUNS]
        for vs in runs.val_sets:
            lf = study.loss_fit(ts, vs)
            for i in targets:
                pt = ScalePoint.make(
                    float(ds.column("n_params")[i]), n_tokens=float(ds.column("n_tokens")[i])
                )
                pred.append(float(lf.predict(**{k: pt.inputs()[k] for k in lf.law_obj.inputs})))
                obs.append(study.observed(ts, i, "loss_" + vs))
                beyond.append(cal.center_shift(lf, pt, probe) != 0)
    return np.array(pred), np.array(obs), np.array(beyond)


def _err_at(pred, obs, beyond, s: float) -> float:
    """Mean relative error of the law's predictions ``pred``, centered by ``s`` where ``beyond``."""
    return float(np.mean(np.abs(pred * np.exp(s * beyond) / obs - 1)))


def _err_e(e, beyond, s: float) -> float:
    """:func:`_err_at` from the law's log errors e = ln(observed / law)."""
    return float(np.mean(np.abs(np.expm1(s * np.asarray(beyond) - np.asarray(e)))))


def _span(ok: np.ndarray) -> list[float] | None:
    return None if not ok.any() else [float(SHIFTS[ok].min()), float(SHIFTS[ok].max())]


# ------------------------------------------------------------------------------- main
def measure(shared: Path, progress=lambda msg: None) -> dict:
    warnings.filterwarnings("ignore")
    lads = L.public_ladders(shared)
    refs = lab_references(lads, n_resamples=RESAMPLES)
    progress("leave-one-lab-out references")
    out: dict = {"width": [], "center": {}, "rules": {}}
    held, outer = {}, {}
    ok_all = np.ones(len(SHIFTS), bool)
    for lad in lads:
        ref = refs[lad.lab]
        held[lad.name] = [(sp.name, case(lad, sp.fit, sp.heldout)) for sp in L.splits(lad)]
        outer[lad.name] = [
            (o.label, case(lad, o.fit, o.predict))
            for o in origins(lad.n_params, lad.multiplier, OVERTRAIN.n_fit_params + 1)
        ]
        # 2: the default's error by shift against the paper method's, pooled over the ladder's splits
        done = [k for _, k in held[lad.name] if k is not None and k["e_paper"] is not None]
        e, beyond = np.concatenate([k["e"] for k in done]), np.concatenate([k["beyond"] for k in done])
        paper_err = _err_e(np.concatenate([k["e_paper"] for k in done]), beyond, 0.0)
        ok = np.array([_err_e(e, beyond, s) for s in SHIFTS]) <= paper_err
        ok_all &= ok
        out["center"][lad.name] = {
            "paper_error": paper_err,
            "default_error": _err_e(e, beyond, ref.shift),
            "law_error": _err_e(e, beyond, 0.0),
            "shifts_at_most_paper": _span(ok),
        }
        # 1: the oracle width, on the splits with enough held-out runs
        for name, k in held[lad.name]:
            if k is not None and len(k["e"]) >= MIN_PREDICTIONS_FOR_COVERAGE:
                out["width"].append(
                    {
                        "ladder": lad.name,
                        "split": name,
                        "n": len(k["e"]),
                        "oracle": oracle_width(k["e"] - ref.shift * k["beyond"]),
                        "oracle_u": oracle_width(
                            k["e"] - ref.shift * k["beyond"],
                            u=cal.unit(k["sd"], k["c"], m_below=k["mb"], n_factor=k["nf"]),
                        ),
                        "signed_error": float(np.mean(np.expm1(ref.shift * k["beyond"] - k["e"]))),
                    }
                )
        progress(lad.name)
    runs = load_testbed(shared / "testbed" / "exp_data")
    specs = A.fit_sets(runs=runs)
    testbed = {}
    for fs, bound in (("cap-1e20", 0.55), ("paper-default", 1.0)):
        pp, po, _ = testbed_points(runs, specs[fs], "paper")
        paper_err = float(np.mean(np.abs(pp / po - 1)))
        dp, do, db = testbed_points(runs, specs[fs], "default")
        ratios = np.array([_err_at(dp, do, db, s) / paper_err for s in SHIFTS])
        ok = ratios <= bound + 1e-12
        testbed[fs] = {"bound": bound, "shifts_within": _span(ok), "ratio_at_shipped": None}
        ok_all &= ok
        testbed[fs]["ratio_at_shipped"] = _err_at(dp, do, db, cal.reference("loss").shift) / paper_err
        testbed[fs]["ratio_uncentered"] = _err_at(dp, do, db, 0.0) / paper_err
        progress(fs)
    out["center"]["testbed"] = testbed
    out["center"]["all_goals"] = _span(ok_all)
    out["center"]["shipped_shift"] = cal.reference("loss").shift
    # 3: the rules, on the backtests (per lab) and on the held-out splits
    for rule in RULES:
        per_lab: dict = {}
        fits = {"in_bands": 0, "above": 0, "below": 0, "fits": 0, "predictions": 0, "sizes": []}
        for lad in lads:
            for _label, k in outer[lad.name]:
                if k is None:
                    continue
                cov = coverage_of(k, refs[lad.lab], rule)
                fits["predictions"] += len(k["e"])
                if len(k["e"]) >= MIN_PREDICTIONS_FOR_COVERAGE:  # this fit, scored as a split is
                    c80, c90 = float(np.mean(cov[0.8])), float(np.mean(cov[0.9]))
                    fits["sizes"].append(len(k["e"]))
                    fits["fits"] += 1
                    fits[_place(c80, c90)] += 1
                cell = per_lab.setdefault(lad.lab, {0.8: [], 0.9: [], "ratio": []})
                cell[0.8] += list(cov[0.8])
                cell[0.9] += list(cov[0.9])
                cell["ratio"].append(cov["ratio"])
        labs = {
            lab: {
                "cover_80": float(np.mean(v[0.8])),
                "cover_90": float(np.mean(v[0.9])),
                "width_ratio": float(np.median(v["ratio"])),
            }
            for lab, v in per_lab.items()
        }
        splits = []
        for lad in lads:
            for name, k in held[lad.name]:
                if k is None or len(k["e"]) < MIN_PREDICTIONS_FOR_COVERAGE:
                    continue
                cov = coverage_of(k, refs[lad.lab], rule)
                c80, c90 = float(np.mean(cov[0.8])), float(np.mean(cov[0.9]))
                splits.append(
                    {
                        "ladder": lad.name,
                        "split": name,
                        "cover_80": c80,
                        "cover_90": c90,
                        "width_ratio": cov["ratio"],
                        "in_bands": _miss(c80, c90) == 0,
                    }
                )
        out["rules"][rule] = {
            "backtest_labs": labs,
            "backtest_fits": fits,
            "backtest_fits_if_independent": independent_bands(fits["sizes"]),
            "backtest_all_fits": sum(k is not None for lad in lads for _, k in outer[lad.name]),
            "backtest_pooled": {
                f"cover_{int(100 * lv)}": float(np.mean([x for v in per_lab.values() for x in v[lv]]))
                for lv in LEVELS
            },
            "backtest_band_miss": sum(_miss(v["cover_80"], v["cover_90"]) for v in labs.values()),
            "heldout_splits": splits,
        }
    return out


def render(res: dict) -> str:
    lines = [
        "1. the narrowest 90% interval covering 80% of a split's held-out losses, in hindsight, over the",
        "   median error (the goal: ≤ 3× with 80–97% coverage); of one width, and of widths ∝ lmscale's u",
    ]
    for w in res["width"]:
        lines.append(
            f"   {w['ladder']:12s} {w['split']:8s} {w['n']:3d} runs   one width {w['oracle']:.2f}×"
            f"   ∝ u {w['oracle_u']:.2f}×   (the default's mean signed error {100 * w['signed_error']:+.2f}%)"
        )
    c = res["center"]
    lines.append("\n2. constant centers (ln(center / law)) that keep each goal")

    def span(s):  # the grid's ends are open: "≤ x" / "≥ x"
        if s is None:
            return "none"
        low, high = s[0] > SHIFTS.min() + 1e-9, s[1] < SHIFTS.max() - 1e-9
        if low and high:
            return f"{100 * s[0]:+.2f}% … {100 * s[1]:+.2f}%"
        if low or high:
            return f"≥ {100 * s[0]:+.2f}%" if low else f"≤ {100 * s[1]:+.2f}%"
        return f"any of {100 * SHIFTS.min():+.1f}% … {100 * SHIFTS.max():+.1f}%"

    for name, v in c.items():
        if isinstance(v, dict) and "paper_error" in v:
            lines.append(
                f"   {name:20s} default ≤ paper ({100 * v['default_error']:.2f}% vs {100 * v['paper_error']:.2f}%;"
                f" uncentered {100 * v['law_error']:.2f}%):  {span(v['shifts_at_most_paper'])}"
            )
    for fs, v in c["testbed"].items():
        lines.append(
            f"   testbed {fs:12s} ≤ {v['bound']:.2f}× the paper's:       {span(v['shifts_within'])}"
            f"   (at the shipped {100 * c['shipped_shift']:+.3f}%: {v['ratio_at_shipped']:.3f}×;"
            f" uncentered: {v['ratio_uncentered']:.3f}×)"
        )
    lines.append(f"   every goal at once:                           {span(c['all_goals'])}")
    lines.append(
        "\n3. own-backtest rules: backtests per lab (80% / 90% cover, median width / error), band miss;"
    )
    lines.append("   held-out splits with ≥ 10 runs in both bands")
    for rule, v in res["rules"].items():
        cells = "  ".join(
            f"{lab[:9]} {x['cover_80']:.2f}/{x['cover_90']:.2f} {x['width_ratio']:.1f}×"
            for lab, x in v["backtest_labs"].items()
        )
        met = sum(s["in_bands"] for s in v["heldout_splits"])
        ratio = np.median([s["width_ratio"] for s in v["heldout_splits"]])
        lines.append(
            f"   {rule:5s} miss {v['backtest_band_miss']:.3f}  {cells}  | held out: {met}/{len(v['heldout_splits'])} in bands, median width {ratio:.1f}×"
        )
    first_rule = next(iter(res["rules"].values()))
    f0, ind = first_rule["backtest_fits"], first_rule["backtest_fits_if_independent"]
    lines.append(
        f"   the {f0['fits']} backtest fits with ≥ 10 predictions (of {first_rule['backtest_all_fits']} fits,"
        f" {f0['predictions']} predictions), each scored as a held-out split is"
    )
    lines.append(
        f"   (independent, exactly calibrated errors would put {ind['in_bands']:.1f} in both bands,"
        f" {ind['above']:.1f} above, {ind['below']:.1f} below):"
    )
    for rule, v in res["rules"].items():
        f = v["backtest_fits"]
        pooled = v["backtest_pooled"]
        lines.append(
            f"   {rule:5s} {f['in_bands']:2d} of {f['fits']} in both bands, {f['above']:2d} above, {f['below']:2d} below"
            f"   (every backtest prediction pooled: {pooled['cover_80']:.2f} / {pooled['cover_90']:.2f})"
        )
    lines.append("   held-out splits (80% / 90% cover, width / median error) by rule:")
    first = next(iter(res["rules"].values()))["heldout_splits"]
    for i, sp in enumerate(first):
        cells = "  ".join(
            f"{rule} {v['heldout_splits'][i]['cover_80']:.2f}/{v['heldout_splits'][i]['cover_90']:.2f}"
            f" {v['heldout_splits'][i]['width_ratio']:.1f}×"
            for rule, v in res["rules"].items()
        )
        lines.append(f"   {sp['ladder']:12s} {sp['split']:8s} {cells}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shared", nargs="?", default="../shared")
    ap.add_argument("--format", choices=("text", "json"), default="text")
    args = ap.parse_args()
    try:
        res = measure(Path(args.shared), lambda msg: print(f"{msg}: done", file=sys.stderr, flush=True))
    except InputError as exc:
        sys.exit(f"goal_limits: {exc} (SHARED must be the shared data folder: ladders/, peers/, testbed/)")
    print(json.dumps(res, indent=1) if args.format == "json" else render(res))


if __name__ == "__main__":
    main()
