"""Backtests on a user's own ladder: rolling-origin evaluation of the laws.

Using only the runs given, fit on the smaller runs and predict the larger ones, for a sequence of
origins — by model size (fit every run of the k smallest sizes, predict the larger sizes) and by
compute (fit every run at or below a compute cut, predict the runs above it) — and record each
prediction's relative error against how far it extrapolates: the ratios of the target's N, M and
C to the largest fitted run. This shows whether a ladder supports the prediction a team wants
before it pays for the target run, and it is the evidence behind lmscale's calibrated intervals
(:mod:`lmscale.calibration`).

Pure numerics over arrays (:func:`backtest_arrays`) plus a run-table front end (:func:`backtest`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale.compute import flops
from lmscale.errors import FitError, InputError
from lmscale.fit.bootstrap import bootstrap_or_none
from lmscale.fit.core import fit
from lmscale.fit.method import DEFAULT_LOSS_METHOD, METHODS, NAMES, check_method, method_for, resolve_method
from lmscale.laws import ERROR, OVERTRAIN
from lmscale.predict import loss_gap
from lmscale.reference_data import loss_shift as shipped_loss_shift
from lmscale.run_table import RunTable
from lmscale.tasks import target_values
from lmscale.testbed import as_runs

#: compute cuts of the compute origins, as quantiles of the runs' compute
COMPUTE_QUANTILES = (0.5, 0.65, 0.8)
#: bootstrap resamples per origin for methods without the batched path (Huber, log least squares)
SLOW_RESAMPLES = 40
#: most size origins taken one per size; more sizes than this are cut at quantiles instead
MAX_SIZE_ORIGINS = 8
#: bins of the compute extrapolation factor in the summary table
FACTOR_BINS = (0.0, 1.0, 10.0, 100.0, np.inf)


@dataclass(frozen=True)
class Origin:
    """One split of the runs: fit on ``fit`` (a boolean mask), predict ``predict``."""

    kind: str  # "size" or "compute"
    label: str
    fit: np.ndarray
    predict: np.ndarray


@dataclass(frozen=True)
class BacktestPoint:
    """One backtest prediction: a run predicted by laws fitted on smaller runs only."""

    method: str
    origin_kind: str
    origin: str
    run_id: str
    #: ``loss`` or ``error`` (chained through the predicted loss)
    quantity: str
    n_params: float
    multiplier: float
    flops: float
    predicted: float
    observed: float
    rel_error: float
    #: ln(observed / predicted): the signed error the intervals calibrate
    log_error: float
    #: bootstrap spread of ln(prediction): a robust standard deviation (:func:`log_spread`); NaN when
    #: the fit cannot be bootstrapped
    sd_log: float
    #: target ÷ largest fitted value of N, M and C (≤ 1: inside the fitted range)
    n_factor: float
    m_factor: float
    c_factor: float
    #: smallest fitted M ÷ the target's M (> 1: the target is more under-trained than any fitted run)
    m_below_factor: float
    n_fit_runs: int
    #: error predictions: how far the error law extrapolates in loss, in e-folds of compute
    #: (:func:`lmscale.predict.loss_gap`); 0 for loss predictions
    loss_gap: float = 0.0
    #: the training set (run-table front end only)
    train_set: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def origins(n_params: np.ndarray, multiplier: np.ndarray, min_runs: int) -> list[Origin]:
    """Size origins (the k smallest sizes, k ≥ 2) and compute origins (:data:`COMPUTE_QUANTILES`);
    each keeps at least ``min_runs`` runs, two sizes and two multipliers to fit, and one run to predict."""
    n, m = np.asarray(n_params, float), np.asarray(multiplier, float)
    c = flops(n, multiplier=m)
    sizes = np.unique(n)
    out, seen = [], set()

    def add(kind, label, mask, beyond):
        key = mask.tobytes()
        if key in seen or mask.sum() < min_runs or not beyond.any():
            return
        if len(np.unique(n[mask])) < 2 or len(np.unique(m[mask])) < 2:
            return
        seen.add(key)
        out.append(Origin(kind, label, mask, beyond))

    # a ladder of a few sizes: every size is an origin; a cloud of sizes (a peer's scatter of
    # runs): the size quantiles of the compute origins
    cuts = (
        sizes[1:-1]
        if len(sizes) <= MAX_SIZE_ORIGINS + 2
        else np.unique([sizes[np.searchsorted(sizes, np.quantile(sizes, q))] for q in COMPUTE_QUANTILES])
    )
    for s in cuts:
        mask = n <= s * (1 + 1e-9)
        add("size", f"N ≤ {s:.3g}", mask, ~mask)
    for q in COMPUTE_QUANTILES:
        cut = float(np.quantile(c, q))
        mask = c <= cut * (1 + 1e-9)
        add("compute", f"C ≤ {cut:.3g}", mask, ~mask)
    return out


def log_spread(samples: np.ndarray) -> np.ndarray:
    """Robust standard deviation of ln(samples) along axis 0: the interquartile range / 1.349. A few
    resamples that cannot pin the law down (near-degenerate draws) give wild predictions; a plain
    standard deviation would let them set the interval's width."""
    with np.errstate(all="ignore"):
        logs = np.log(np.where(samples > 0, samples, np.nan))
    ok = np.isfinite(logs).sum(axis=0) >= 10
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: NaN, said by ``ok``
        q1, q3 = np.nanpercentile(np.where(np.isfinite(logs), logs, np.nan), [25, 75], axis=0)
    return np.where(ok, (q3 - q1) / 1.349, np.nan)


def backtest_arrays(
    n_params,
    multiplier,
    loss,
    *,
    method: str = "default",
    errors=None,
    run_ids: Sequence[str] | None = None,
    n_resamples: int = 200,
    seed: int = 0,
    error_method: str = "default",
    loss_shift: float = 0.0,
) -> list[BacktestPoint]:
    """Rolling-origin backtest of the loss law (and, with ``errors``, the error law chained through
    the predicted loss, times exp(``loss_shift``): the center a calibration puts every prediction
    beyond the fit at, :mod:`lmscale.calibration`) on one ladder given as arrays."""
    n, m, y = (np.asarray(v, dtype=float).ravel() for v in (n_params, multiplier, loss))
    if not (len(n) == len(m) == len(y)):
        raise InputError("backtest: N, M and loss must have one value per run")
    e = None if errors is None else np.asarray(errors, dtype=float).ravel()
    ids = list(run_ids) if run_ids is not None else [f"#{i}" for i in range(len(n))]
    c = flops(n, multiplier=m)
    points = []
    asked = method_for(method, OVERTRAIN)
    # the same optimum, found fast (paper: variable projection for the authors' multi-start LM); the
    # points keep the asked method's name
    how = METHODS[asked.fast] if asked.fast else asked
    if not how.least_squares:
        # no batched bootstrap (one L-BFGS fit per resample): a robust spread needs few resamples
        n_resamples = min(n_resamples, SLOW_RESAMPLES)
    for origin in origins(n, m, OVERTRAIN.n_fit_params + 1):
        fm, pm = origin.fit, origin.predict
        try:
            lf = fit(OVERTRAIN, {"n_params": n[fm], "multiplier": m[fm]}, y[fm], method=how)
        except (FitError, InputError):
            continue
        lb = bootstrap_or_none(lf, n_resamples, seed)
        pred = np.asarray(lf.predict(n_params=n[pm], multiplier=m[pm]), dtype=float)
        loss_s = lb.predict_samples(n_params=n[pm], multiplier=m[pm]) if lb else None
        factors = (n[pm] / n[fm].max(), m[pm] / m[fm].max(), c[pm] / c[fm].max(), m[fm].min() / m[pm])
        common = dict(
            method=asked.name,
            origin_kind=origin.kind,
            origin=origin.label,
            n_fit_runs=int(fm.sum()),
        )
        idx = np.flatnonzero(pm)
        sd = log_spread(loss_s) if loss_s is not None else np.full(len(idx), np.nan)
        points += _points(common, "loss", idx, ids, n, m, c, pred, y[pm], sd, factors)
        if e is None:
            continue
        try:
            ef = fit(ERROR, {"loss": y[fm]}, e[fm], method=method_for(error_method, ERROR))
        except (FitError, InputError):
            continue
        centered = pred * float(np.exp(loss_shift))
        epred = np.asarray(ef.predict(loss=centered), dtype=float)
        gaps = loss_gap(lf, float(np.min(y[fm])), centered)
        eb = bootstrap_or_none(ef, n_resamples, seed + 1)
        sd_e = np.full(len(idx), np.nan)
        if loss_s is not None and eb is not None:
            ep = np.asarray(eb.bootstrap)
            k = min(len(ep), len(loss_s))
            shifted = loss_s[:k] * float(np.exp(loss_shift))
            sd_e = log_spread(ERROR.evaluate_vector(ep[:k], {"loss": shifted}))  # (samples, targets)
        points += _points(
            dict(common, method=f"{common['method']}+{ef.method}"),
            "error",
            idx,
            ids,
            n,
            m,
            c,
            epred,
            e[pm],
            sd_e,
            factors,
            gaps,
        )
    return points


def _points(common, quantity, idx, ids, n, m, c, pred, obs, sd, factors, gaps=None) -> list[BacktestPoint]:
    out = []
    for j, i in enumerate(idx):
        p, o = float(pred[j]), float(obs[j])
        if not (np.isfinite(p) and np.isfinite(o) and o > 0):
            continue
        with np.errstate(all="ignore"):
            le = float(np.log(o / p)) if p > 0 else float("inf")
        out.append(
            BacktestPoint(
                **common,
                run_id=ids[i],
                quantity=quantity,
                n_params=float(n[i]),
                multiplier=float(m[i]),
                flops=float(c[i]),
                predicted=p,
                observed=o,
                rel_error=abs(p - o) / abs(o),
                log_error=le,
                sd_log=float(sd[j]),
                n_factor=float(factors[0][j]),
                m_factor=float(factors[1][j]),
                c_factor=float(factors[2][j]),
                m_below_factor=float(factors[3][j]),
                loss_gap=0.0 if gaps is None else float(gaps[j]),
            )
        )
    return out


@dataclass(frozen=True, repr=False)
class BacktestResult:
    """Every backtest prediction of a run table, for each method."""

    target: str
    loss_column: str
    points: tuple[BacktestPoint, ...]

    def of_method(self, method: str) -> list[BacktestPoint]:
        return [p for p in self.points if p.method == method]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [p.to_dict() for p in self.points], columns=list(BacktestPoint.__dataclass_fields__)
        )

    def __repr__(self) -> str:
        from lmscale.summaries import backtest_repr

        return backtest_repr(self)

    def summary(self) -> str:
        """The ``lmscale backtest`` table as text (:meth:`summary_frame` holds its numbers)."""
        from lmscale.summaries import backtest_summary

        return backtest_summary(self)

    def _repr_html_(self) -> str:
        from lmscale.summaries import backtest_html

        return backtest_html(self)

    def summary_frame(self) -> pd.DataFrame:
        """Mean / median / max relative error per method, quantity and compute-extrapolation bin."""
        df = self.frame()
        if df.empty:
            return pd.DataFrame(
                columns=[
                    "method",
                    "quantity",
                    "c_factor_bin",
                    "n",
                    "mean_rel_error",
                    "median_rel_error",
                    "max_rel_error",
                ]
            )
        labels = ["≤1×", "1–10×", "10–100×", ">100×"]
        df["c_factor_bin"] = pd.cut(df.c_factor, FACTOR_BINS, labels=labels, include_lowest=True)
        g = df.groupby(["method", "quantity", "c_factor_bin"], observed=True).rel_error
        out = g.agg(
            n="size", mean_rel_error="mean", median_rel_error="median", max_rel_error="max"
        ).reset_index()
        allbins = (
            df.groupby(["method", "quantity"])
            .rel_error.agg(n="size", mean_rel_error="mean", median_rel_error="median", max_rel_error="max")
            .reset_index()
        )
        allbins["c_factor_bin"] = "all"
        return pd.concat([out.astype({"c_factor_bin": str}), allbins], ignore_index=True)[
            ["method", "quantity", "c_factor_bin", "n", "mean_rel_error", "median_rel_error", "max_rel_error"]
        ]


def backtest(
    runs: RunTable | pd.DataFrame | str | Path,
    target: str,
    *,
    methods: Sequence[str] = ("default", "paper"),
    loss_column: str | None = None,
    n_resamples: int = 200,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    loss_shift: float | None = None,
) -> BacktestResult:
    """Backtest ``target`` on ``runs`` for each method, per training set (laws are fitted per
    training distribution). ``target``: ``loss_<set>``, or an error target chained through
    ``loss_column`` (required then), at the loss times exp(``loss_shift``; None: the shipped reference's,
    as ``lmscale predict``) for the default method. ``runs``: a run table, a DataFrame or a path."""
    if not methods:
        raise InputError(f"give at least one fitting method to backtest; known: {', '.join(NAMES)}")
    for meth in methods:
        check_method(meth)
    runs = as_runs(runs)
    if target.startswith("loss_"):
        loss_col, err_target = target, None
    else:
        if not loss_column:
            raise InputError(
                f"backtesting the error target {target!r} chains it through a validation loss: "
                "give --loss-column (e.g. loss_c4_val)"
            )
        loss_col = loss_column if loss_column.startswith("loss_") else "loss_" + loss_column
        err_target = target
        if loss_shift is None:  # where lmscale predict centers the default's loss
            loss_shift = shipped_loss_shift()
    points: list[BacktestPoint] = []
    for ts in runs.datasets:
        ds = runs.of_dataset(ts)
        y = ds.loss(loss_col)
        e = target_values(ds, err_target) if err_target else None
        keep = np.isfinite(y) & (np.isfinite(e) if e is not None else True)
        if not keep.any():  # nothing measured on this training set: nothing to backtest
            continue
        ds, y = ds.subset(keep), y[keep]
        e = e[keep] if e is not None else None
        for meth in methods:
            points += [
                replace(p, train_set=ts)
                for p in backtest_arrays(
                    ds.column("n_params"),
                    ds.column("multiplier"),
                    y,
                    method=meth,
                    errors=e,
                    run_ids=ds.run_ids,
                    n_resamples=n_resamples,
                    seed=seed,
                    loss_shift=(loss_shift or 0.0) * (resolve_method(meth, OVERTRAIN) == DEFAULT_LOSS_METHOD),
                )
            ]
            if progress is not None:
                progress(f"{ts} × {meth}")
    if not points and not np.isfinite(runs.loss(loss_col)).any():
        raise InputError(f"{runs.source}: column {loss_col!r} holds no value: there is nothing to backtest")
    if not points and err_target and not np.isfinite(target_values(runs, err_target)).any():
        raise InputError(f"{runs.source}: {err_target!r} holds no value: there is nothing to backtest")
    if not points:
        raise InputError(
            f"{runs.source}: too few runs for a backtest: each origin needs at least "
            f"{OVERTRAIN.n_fit_params + 1} fit runs over two sizes and two multipliers, and a larger run "
            "to predict"
        )
    if err_target:
        points = [p for p in points if p.quantity == "error"]
    return BacktestResult(target, loss_col, tuple(points))


def weighted_quantiles(values, weights, levels) -> np.ndarray:
    """Weighted quantiles: for each level, the smallest value whose cumulative share of the total
    weight reaches the level (the inverse of the weighted empirical distribution; with equal weights
    numpy's ``method="inverted_cdf"``)."""
    v, w = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order]) / np.sum(w)
    idx = np.searchsorted(cum, np.asarray(levels, dtype=float) - 1e-12, side="left")
    return v[order][np.minimum(idx, len(v) - 1)]
