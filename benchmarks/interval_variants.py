"""Interval models the multi-lab benchmark did not adopt, scored on the same ladders and splits as
``lmscale benchmark accuracy --ladder`` (loss, default method), leave one lab out:

    python benchmarks/interval_variants.py [SHARED]          # SHARED defaults to ../shared

Each model writes a held-out prediction's uncertainty unit as u = sqrt(sd² + (s · g(d))²): sd the
bootstrap spread of the prediction, g a growth with the extrapolation distance d, and s a scale
that *the user's own fit* provides, so that a noisy ladder gets wide intervals and a clean one
narrow ones:

- ``residual``: s = the RMS of the fit's own log residuals;
- ``backtest``: s = the RMS of |log error| / g(d) over the fit runs' own rolling-origin backtest;
- ``geometric``: the geometric mean of the two;
- ``fixed``: s = τ = 0.01 (what lmscale ships with g = 1 + max(d_C, d_N), without its own-backtest scores);
- ``fixed+noise``: s = τ, plus the fit's residual RMS r as a term that does not grow with distance,
  u = sqrt(sd² + r² + (τ · g(d))²) — run-to-run noise, which a single held-out run carries whatever
  its distance, kept apart from the error of extrapolating;

and g(d) = 1 + d_C (d_C: e-folds of compute beyond the fit, plus e-folds of M below it),
1 + max(d_C, d_N) (d_N: e-folds of N beyond the fit plus those of M; lmscale's distance since it
counts size), √(1 + d_C), 1, 1 + d_N, √(1 + d_N) or 1 + ln(1 + d_C). The distance's end-to-end
comparison, with every reference rebuilt, is ``benchmarks/distance_variants.py``. The interval at level ℓ is
prediction · exp(± q_ℓ · u), q_ℓ the ℓ-quantile of the scores |log error| / u over the rolling-
origin backtests of every *other* lab's full ladders (each origin's own scale computed from its
own fit and its own nested backtest).

Per model it prints how many of the splits with at least 10 held-out runs meet both coverage bands
(80% intervals cover 70–90%, 90% intervals 80–97%), the mean coverage over those splits, and the
median over every split of the 90% width over the median absolute error (the goal is ≤ 3).

Two checks on the rolling-origin backtests themselves (many more fits than the 14 splits, so a
choice made here is not tuned on the held-out splits):

- **growth**: whether the scores under each g are exchangeable across distance, as split-conformal
  quantiles assume: the 90% quantile of the scores of the farther half of the predictions over that
  of the nearer half (1 is right), and their rank correlation with d;
- **own backtest**: for every origin whose fit runs have a backtest of their own (≥ 20 points), the
  coverage of its predictions with q from the other labs' reference alone, from the origin's own
  backtest alone, and from the larger of the two (what lmscale does), per lab.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from lmscale.backtest import backtest_arrays, log_spread, origins
from lmscale.benchmark import ladders as L
from lmscale.errors import FitError, InputError
from lmscale.fit.bootstrap import bootstrap_or_none
from lmscale.fit.core import fit
from lmscale.laws import OVERTRAIN

GROWTHS = ("1+dC", "1+max(dC,dN)", "sqrt(1+dC)", "1", "1+dN", "sqrt(1+dN)", "1+ln(1+dC)")
SCALES = ("fixed", "fixed+noise", "residual", "backtest", "geometric")


def _lp(x):
    return np.log(np.clip(np.nan_to_num(np.asarray(x, float), nan=1.0), 1.0, None))


def growth(name: str, c, m_below, n) -> np.ndarray:
    dc, dm, dn = _lp(c) + _lp(m_below), _lp(m_below), _lp(n)
    return {
        "1+dC": 1 + dc,
        "1+max(dC,dN)": 1 + np.maximum(dc, dn + dm),
        "sqrt(1+dC)": np.sqrt(1 + dc),
        "1": np.ones_like(dc),
        "1+dN": 1 + dn + dm,
        "sqrt(1+dN)": np.sqrt(1 + dn + dm),
        "1+ln(1+dC)": 1 + np.log1p(dc),
    }[name]


def case(lad, fm, pm) -> dict | None:
    """One fit (``fm``) and its predictions (``pm``): log errors, factors, bootstrap spread, the
    fit's log residuals and its own backtest."""
    n, m, y = lad.n_params, lad.multiplier, lad.loss
    try:
        lf = fit(OVERTRAIN, {"n_params": n[fm], "multiplier": m[fm]}, y[fm], method="default")
    except (FitError, InputError):
        return None
    pred = np.asarray(lf.predict(n_params=n[pm], multiplier=m[pm]), float)
    lb = bootstrap_or_none(lf, 100, 0)
    sd = log_spread(lb.predict_samples(n_params=n[pm], multiplier=m[pm])) if lb else np.full(pm.sum(), np.nan)
    c = lad.flops
    pts = [
        p
        for p in backtest_arrays(n[fm], m[fm], y[fm], method="default", n_resamples=0)
        if p.quantity == "loss" and np.isfinite(p.log_error)
    ]
    return {
        "e": np.log(y[pm] / pred),
        "f": (c[pm] / c[fm].max(), m[fm].min() / m[pm], n[pm] / n[fm].max()),
        "sd": np.nan_to_num(sd, nan=0.0),
        "res": np.log(y[fm] / np.asarray(lf.predict(n_params=n[fm], multiplier=m[fm]), float)),
        "bt_e": np.array([p.log_error for p in pts]),
        "bt_f": (
            np.array([p.c_factor for p in pts]),
            np.array([p.m_below_factor for p in pts]),
            np.array([p.n_factor for p in pts]),
        ),
    }


def scale(k: dict, kind: str, g: str) -> float | None:
    if kind in ("fixed", "fixed+noise"):
        return 0.01
    res = float(np.sqrt(np.mean(k["res"] ** 2)))
    if kind == "residual":
        return max(res, 1e-3)
    if len(k["bt_e"]) < 3:
        return None
    bt = float(np.sqrt(np.mean((k["bt_e"] / growth(g, *k["bt_f"])) ** 2)))
    return max(bt if kind == "backtest" else np.sqrt(res * bt), 1e-3)


def unit(k: dict, s: float, g: str, kind: str = "fixed") -> np.ndarray:
    noise = float(np.mean(k["res"] ** 2)) if kind == "fixed+noise" else 0.0
    return np.sqrt(k["sd"] ** 2 + noise + (s * growth(g, *k["f"])) ** 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shared", nargs="?", default="../shared")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    lads = L.public_ladders(Path(args.shared))
    refs, held = {}, {}
    for lad in lads:
        refs[lad.name] = [
            k
            for o in origins(lad.n_params, lad.multiplier, OVERTRAIN.n_fit_params + 1)
            if (k := case(lad, o.fit, o.predict)) is not None
        ]
        held[lad.name] = [(sp.name, case(lad, sp.fit, sp.heldout)) for sp in L.splits(lad)]
        print(f"{lad.name}: done", file=sys.stderr, flush=True)
    print(f"{'scale':12s} {'growth':12s} bands met (≥10 held out)  mean 80/90% cover  median width/error")
    for kind in SCALES:
        for g in GROWTHS:
            met, c80, c90, ratios, big = 0, [], [], [], 0
            for lad in lads:
                scores = []
                for other in lads:
                    if other.lab == lad.lab:
                        continue
                    for k in refs[other.name]:
                        s = scale(k, kind, g)
                        if s is not None:
                            scores += list(np.abs(k["e"]) / unit(k, s, g, kind))
                q80, q90 = np.quantile(scores, [0.8, 0.9])
                for _name, k in held[lad.name]:
                    if k is None:
                        continue
                    s = scale(k, kind, g) or 0.01
                    u = unit(k, s, g, kind)
                    a80, a90 = np.mean(np.abs(k["e"]) <= q80 * u), np.mean(np.abs(k["e"]) <= q90 * u)
                    ratios.append(np.median(2 * np.sinh(q90 * u)) / np.median(np.abs(np.expm1(-k["e"]))))
                    if len(k["e"]) >= 10:
                        big += 1
                        c80.append(a80)
                        c90.append(a90)
                        met += bool(0.7 <= a80 <= 0.9 and 0.8 <= a90 <= 0.97)
            print(
                f"{kind:12s} {g:12s} {met}/{big}{'':22s} {np.mean(c80):.2f} / {np.mean(c90):.2f}"
                f"{'':8s} {np.median(ratios):.1f}×"
            )
    backtest_checks(lads, refs)


def backtest_checks(lads, refs) -> None:
    from scipy.stats import spearmanr

    print("\ngrowth: 90% score quantile, farther half of the backtest predictions over the nearer half")
    for kind, g in [*(("fixed", g) for g in GROWTHS), ("fixed+noise", "1+max(dC,dN)")]:
        s, d = [], []
        for lad in lads:
            for k in refs[lad.name]:
                s += list(np.abs(k["e"]) / unit(k, 0.01, g, kind))
                d += list(_lp(k["f"][0]) + _lp(k["f"][1]))
        sa, da = np.array(s), np.array(d)
        near, far = sa[da <= np.median(da)], sa[da > np.median(da)]
        label = g if kind == "fixed" else f"{g} + noise"
        print(
            f"  {label:20s} {np.quantile(far, 0.9) / np.quantile(near, 0.9):.2f}   "
            f"rank correlation with d {spearmanr(sa, da).correlation:+.2f}"
        )
    print("\nown backtest: 80% / 90% coverage of the backtest predictions (scale τ = 0.01, g = 1 + d_C)")
    cover: dict = {}
    for lad in lads:
        ref = [
            v
            for o in lads
            if o.lab != lad.lab
            for k in refs[o.name]
            for v in np.abs(k["e"]) / unit(k, 0.01, "1+dC")
        ]
        for k in refs[lad.name]:
            if len(k["bt_e"]) < 20:
                continue
            own = np.sort(np.abs(k["bt_e"]) / (0.01 * growth("1+dC", *k["bt_f"])))
            sc = np.abs(k["e"]) / unit(k, 0.01, "1+dC")
            for lv in (0.8, 0.9):
                qr = float(np.quantile(ref, lv))
                qo = float(own[min(int(np.ceil((len(own) + 1) * lv)), len(own)) - 1])
                for key, q in (("reference", qr), ("own", qo), ("larger", max(qr, qo))):
                    for group in (lad.lab, "all labs"):
                        cover.setdefault((group, key, lv), []).extend(sc <= q)
    for group in [*dict.fromkeys(lad.lab for lad in lads), "all labs"]:
        cells = [
            f"{key} {np.mean(cover[(group, key, 0.8)]):.2f} / {np.mean(cover[(group, key, 0.9)]):.2f}"
            for key in ("reference", "own", "larger")
            if (group, key, 0.8) in cover
        ]
        n = len(cover.get((group, "reference", 0.9), []))
        print(f"  {group:10s} ({n} predictions)  " + "   ".join(cells))


if __name__ == "__main__":
    main()
