"""Candidate defaults the multi-lab benchmark did not adopt, measured on the same ladders and splits
(`lmscale.benchmark.ladders`), so a later change can start from the numbers:

    python benchmarks/ladder_variants.py [SHARED]            # SHARED defaults to ../shared

Per ladder × split, the mean absolute relative error of the held-out runs for:

- ``paper`` and ``default`` (the shipped methods; ``default`` is its law's own value, before the
  center shift lmscale applies beyond the fitted runs, so that every variant below starts from it);
- ``ls-size^p``: least squares on the loss with run weights (N / N_max)^p, p = 0.25, 0.5, 1;
- ``ls/L^q``: least squares with weights 1 / L^q, q = 0.5, 1 (between the paper's q = 0 and the
  relative residuals of rel-ls, q = 2);
- ``default M>=k``: the default fitted only on runs with M ≥ k (k = 2, 4);
- ``backtest-pick``: the method among paper / default / rel-ls / huber-log whose own rolling-origin
  backtest on the fit runs has the smallest mean error at the larger half of its distances;
  ``pick paper|default`` the same choice between the two shipped methods only;
- ``local-M``: one fit per held-out run, the default's weights times a Gaussian kernel in
  ln M around that run's M (bandwidth 2), so that each prediction leans on runs trained as long;
- ``bias-const`` / ``bias-N``: the default, its prediction moved by half the drift its own backtest
  shows — the mean signed log error (const), or its slope against the e-folds of N beyond the fit
  (N) — when that drift is at least twice its standard error;

and what N counts: with the input embedding taken out (N − V·d, the FLOP-counting N that Porian's
table already uses), on the two ladders whose tables let it be derived rather than assumed:

- Gemstones gives each shape's width d and depth; within a width its N is linear in depth with
  intercept (2V + 1)·d (untied input and output embeddings and a final norm), which gives V.
- The paper testbed's N follows PAPER.md's count N = 2·V·d + l·(4d² + 3·d·h + 2d) + d (GPT-NeoX
  V = 50,432, as its open_lm configs say); each of its six sizes is matched to the one (d, l) that
  gives it exactly.

Whether the ladder itself could choose what N counts: the default's residual on its fit runs and
its own rolling-origin backtest, by either N, beside the held-out error.

A last section asks where the chained downstream error's bias comes from (the testbed's ladders,
the only ones with downstream tasks): the error law fitted on the fit runs, asked at the held-out
runs' *observed* losses as well as at the paper's and the default's predicted ones.

The summary lines count, per variant, the splits where it is at most the paper method's error and its
mean error over the splits relative to the paper's.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale.benchmark import ladders as L
from lmscale.benchmark.references import backtest_points
from lmscale.errors import FitError, InputError
from lmscale.fit.core import fit, run_weights
from lmscale.laws import ERROR, OVERTRAIN


def err(lad, sp, method, weights=None, fit_mask=None, signed=False):
    """Mean absolute relative error of the held-out runs (and, with ``signed``, the mean signed one)."""
    f = sp.fit if fit_mask is None else fit_mask
    x = {"n_params": lad.n_params[f], "multiplier": lad.multiplier[f]}
    w = None if weights is None else weights[f]
    try:
        r = fit(OVERTRAIN, x, lad.loss[f], method=method, weights=w)
    except (FitError, InputError):
        return (float("nan"), float("nan")) if signed else float("nan")
    h = sp.heldout
    pred = np.asarray(r.predict(n_params=lad.n_params[h], multiplier=lad.multiplier[h]), float)
    rel = (pred - lad.loss[h]) / lad.loss[h]
    out = float(np.mean(np.abs(rel)))
    return (out, float(np.mean(rel))) if signed else out


def backtest_pick(lad, sp, candidates=("paper", "default", "rel-ls", "huber-log")) -> str:
    best, pick = np.inf, "paper"
    for m in candidates:
        pts = [p for p in L.backtest_points(lad, sp.fit, m, 0, 0) if np.isfinite(p.log_error)]
        if not pts:
            continue
        e = np.array([abs(p.log_error) for p in pts])
        c = np.array([p.c_factor for p in pts])
        score = float(np.mean(e[c >= np.median(c)]))
        if score < best:
            best, pick = score, m
    return pick


def gemstones_vocab(df: pd.DataFrame) -> tuple[int, np.ndarray]:
    """Gemstones' vocabulary V, from its table: within a width d, N = (2V + 1)·d + depth·(per-layer
    count); returns V and each run's width."""
    shapes = df[["width", "depth", "n_params"]].drop_duplicates()
    vocab = set()
    for w, group in shapes.groupby("width"):
        if group["depth"].nunique() >= 2:
            g = group.sort_values("depth")
            per_layer = (g["n_params"].iloc[-1] - g["n_params"].iloc[0]) / (
                g["depth"].iloc[-1] - g["depth"].iloc[0]
            )
            intercept = g["n_params"].iloc[0] - per_layer * g["depth"].iloc[0]
            vocab.add(round((intercept / w - 1) / 2))
    if len(vocab) != 1:
        raise SystemExit(f"gemstones: the widths disagree on the vocabulary: {sorted(vocab)}")
    return vocab.pop(), df["width"].to_numpy(float)


def testbed_width(n: float, vocab: int) -> int:
    """The width d of the testbed shape with exactly N parameters (PAPER.md's count)."""
    for d in range(64, 8193, 32):
        h = 256 * -(-int(8 * d / 3) // 256)
        for layers in range(1, 65):
            if 2 * vocab * d + layers * (4 * d * d + 3 * d * h + 2 * d) + d == int(n):
                return d
    raise SystemExit(f"testbed: no (d, l) gives N = {n:.0f}")


def local_m(lad, sp, bandwidth: float = 2.0) -> float:
    """Mean held-out error of per-target fits weighted towards the target's token multiplier."""
    f, h = sp.fit, sp.heldout
    x = {"n_params": lad.n_params[f], "multiplier": lad.multiplier[f]}
    base = run_weights("relative-size", x, lad.loss[f])
    assert base is not None
    rel = []
    for j in np.flatnonzero(h):
        k = np.exp(-0.5 * ((np.log(lad.multiplier[f]) - np.log(lad.multiplier[j])) / bandwidth) ** 2)
        r = fit(OVERTRAIN, x, lad.loss[f], method="varpro", weights=base * np.maximum(k, 1e-3))
        pred = float(r.predict(n_params=lad.n_params[j], multiplier=lad.multiplier[j]))
        rel.append(abs(pred - lad.loss[j]) / lad.loss[j])
    return float(np.mean(rel))


def bias_corrected(lad, sp, kind: str, shrink: float = 0.5, min_t: float = 2.0) -> float:
    """The default's held-out error with its prediction moved by ``shrink`` × the drift of its own
    backtest's signed log error (``const``: a constant; ``N``: a slope in ln⁺ of the N factor, plus
    ln⁺ of the M-below factor), when the drift is at least ``min_t`` standard errors."""
    pts = [p for p in L.backtest_points(lad, sp.fit, "default", 0, 0) if np.isfinite(p.log_error)]
    f = sp.fit
    r = fit(OVERTRAIN, {"n_params": lad.n_params[f], "multiplier": lad.multiplier[f]}, lad.loss[f])
    h = sp.heldout
    pred = np.asarray(r.predict(n_params=lad.n_params[h], multiplier=lad.multiplier[h]), float)

    def x_of(n_factor, m_below):
        if kind == "const":
            return np.ones_like(np.asarray(n_factor, float))
        return np.log(np.clip(n_factor, 1, None)) + np.log(np.clip(m_below, 1, None))

    if len(pts) >= 3:
        x = x_of(np.array([p.n_factor for p in pts]), np.array([p.m_below_factor for p in pts]))
        y = np.array([p.log_error for p in pts])
        if np.sum(x * x) > 0:
            b = float(np.sum(x * y) / np.sum(x * x))
            se = float(np.sqrt(np.sum((y - b * x) ** 2) / (len(y) - 1) / np.sum(x * x)))
            if se > 0 and abs(b) / se >= min_t:
                nf = lad.n_params[h] / lad.n_params[f].max()
                mb = lad.multiplier[f].min() / lad.multiplier[h]
                pred = pred * np.exp(shrink * b * x_of(nf, mb))
    return float(np.mean(np.abs(pred - lad.loss[h]) / lad.loss[h]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shared", nargs="?", default="../shared")
    args = ap.parse_args()
    s = Path(args.shared)
    paths = [s / "ladders" / f for f in ("porian_owt2.csv", "porian_rw.csv", "gemstones.csv")]
    paths += [s / "peers" / "chinchilla-epoch" / "svg_extracted_data.csv", s / "testbed" / "exp_data"]
    warnings.filterwarnings("ignore")
    rows = []
    for p in paths:
        for lad in L.load(p):
            for sp in L.splits(lad):
                size = lad.n_params / lad.n_params[sp.fit].max()
                row: dict[str, object] = {"ladder": lad.name, "split": sp.name}
                row["paper"] = err(lad, sp, "paper")
                row["default"] = err(lad, sp, "default")
                for pw in (0.25, 0.5, 1.0):
                    row[f"ls-size^{pw:g}"] = err(lad, sp, "varpro", weights=size**pw)
                for q in (0.5, 1.0):
                    row[f"ls/L^{q:g}"] = err(lad, sp, "varpro", weights=1.0 / lad.loss**q)
                for k in (2, 4):
                    row[f"default M>={k}"] = err(lad, sp, "default", fit_mask=sp.fit & (lad.multiplier >= k))
                pick = backtest_pick(lad, sp)
                row["backtest-pick"] = err(lad, sp, pick)
                row["pick paper|default"] = err(lad, sp, backtest_pick(lad, sp, ("paper", "default")))
                row["local-M"] = local_m(lad, sp)
                row["bias-const"] = bias_corrected(lad, sp, "const")
                row["bias-N"] = bias_corrected(lad, sp, "N")
                row["picked"] = pick
                rows.append(row)
                print(f"{lad.name} {sp.name}: done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    variants = [c for c in df.columns if c not in ("ladder", "split", "picked")]
    print(df.to_string(float_format=lambda v: f"{100 * v:.2f}%"))
    print()
    for v in variants:
        wins = int(np.sum(df[v] <= df["paper"] * 1.0001))
        print(
            f"{v:16s} at most the paper's error on {wins}/{len(df)} splits; mean {df[v].mean() / df['paper'].mean():.2f}× the paper's"
        )
    # where Porian's over-prediction sits: the largest held-out size, by M
    por = L.load(s / "ladders" / "porian_owt2.csv")[0]
    sp = next(x for x in L.splits(por) if x.name == "size")
    x = {"n_params": por.n_params[sp.fit], "multiplier": por.multiplier[sp.fit]}
    r = fit(OVERTRAIN, x, por.loss[sp.fit], method="default")
    big = por.n_params == por.n_params.max()
    rel = (
        np.asarray(r.predict(n_params=por.n_params[big], multiplier=por.multiplier[big]), float)
        - por.loss[big]
    ) / por.loss[big]
    order = np.argsort(por.multiplier[big])
    print(
        f"\nporian_owt2 size split, default, the largest held-out size (N = {por.n_params.max():.3g}): signed error by M"
    )
    print(
        "  "
        + "  ".join(f"M {m:.1f}: {100 * e:+.1f}%" for m, e in zip(por.multiplier[big][order], rel[order]))
    )
    # N without the input embedding, where the table lets it be derived
    vocab, width = gemstones_vocab(pd.read_csv(s / "ladders" / "gemstones.csv"))
    moved = {"gemstones": (vocab, width)}
    for lad in L.load(s / "testbed" / "exp_data"):
        moved[lad.name] = (50432, np.array([testbed_width(n, 50432) for n in lad.n_params], float))
    print("\nN − V·d (input embedding out); the same splits, by the original N (signed error in brackets)")
    print(f"  gemstones: V = {vocab} from its table")
    for lad, shifted in embedding_out(s, moved):
        for sp in L.splits(lad):
            for m in ("paper", "default"):
                a, b = err(lad, sp, m, signed=True), err(shifted, sp, m, signed=True)
                print(
                    f"  {lad.name:20s} {sp.name:8s} {m:8s} {100 * a[0]:.2f}% ({100 * a[1]:+.2f}%) → "
                    f"{100 * b[0]:.2f}% ({100 * b[1]:+.2f}%)"
                )
    n_count_by_own_evidence(s, moved)
    error_law_at_true_loss(s)


def n_count_by_own_evidence(s: Path, moved) -> None:
    """Whether a ladder's own evidence could choose what N counts: per split, the default's RMS
    relative residual on the fit runs and its own rolling-origin backtest's mean absolute log error,
    by the original N → by N − V·d, beside the held-out error they would have to predict."""
    print("\nwhat N counts, by the ladder's own evidence (default; original N → N − V·d)")
    print(f"  {'ladder':20s} {'split':8s} {'fit residual':>16s} {'own backtest':>16s} {'held out':>16s}")
    for lad, shifted in embedding_out(s, moved):
        for sp in L.splits(lad):
            cells = []
            for one in (lad, shifted):
                x = {"n_params": one.n_params[sp.fit], "multiplier": one.multiplier[sp.fit]}
                r = fit(OVERTRAIN, x, one.loss[sp.fit], method="default")
                resid = np.asarray(r.predict(**x), float) / one.loss[sp.fit] - 1
                points = backtest_points(one, sp.fit, "default", 0, 0)
                own = np.mean([abs(q.log_error) for q in points]) if points else float("nan")
                cells.append((np.sqrt(np.mean(resid**2)), own, err(one, sp, "default")))
            print(
                f"  {lad.name:20s} {sp.name:8s}"
                + "".join(
                    f" {100 * a:6.2f}% → {100 * b:5.2f}%" for a, b in zip(cells[0], cells[1], strict=True)
                )
            )


def embedding_out(s: Path, moved):
    """(ladder, the same ladder with N − V·d) for Gemstones and the testbed's training sets."""
    for p in (s / "ladders" / "gemstones.csv", s / "testbed" / "exp_data"):
        for lad in L.load(p):
            v, d = moved[lad.name]
            yield lad, replace(lad, n_params=lad.n_params - v * d)


def error_law_at_true_loss(s: Path) -> None:
    """Mean signed error of the chained downstream error per testbed split and target, with the
    error law asked at the paper's, the default's and the observed held-out losses."""
    print("\nchained error, mean signed (error law fitted on the fit runs, asked at each loss)")
    print(
        f"  {'ladder':20s} {'split':8s} {'target':9s} {'paper L':>8s} {'default L':>10s} {'observed L':>11s}"
    )
    for lad in L.load(s / "testbed" / "exp_data"):
        for sp in L.splits(lad):
            x = {"n_params": lad.n_params[sp.fit], "multiplier": lad.multiplier[sp.fit]}
            h = sp.heldout
            at = {"observed": lad.loss[h]}
            for m in ("paper", "default"):
                r = fit(OVERTRAIN, x, lad.loss[sp.fit], method=m)
                at[m] = np.asarray(r.predict(n_params=lad.n_params[h], multiplier=lad.multiplier[h]), float)
            for target, values in lad.errors.items():
                f = sp.fit & np.isfinite(values)
                ef = fit(ERROR, {"loss": lad.loss[f]}, values[f])
                keep = np.isfinite(values[h])
                obs = values[h][keep]
                cells = [
                    f"{100 * np.mean(np.asarray(ef.predict(loss=at[k][keep]), float) / obs - 1):+.1f}%"
                    for k in ("paper", "default", "observed")
                ]
                print(
                    f"  {lad.name:20s} {sp.name:8s} {target:9s} {cells[0]:>8s} {cells[1]:>10s} {cells[2]:>11s}"
                )


if __name__ == "__main__":
    main()
