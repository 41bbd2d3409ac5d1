"""Bootstrap over runs (resample whole runs with replacement) for parameter and prediction
uncertainty.

A resample is a vector of run counts (multinomial), i.e. integer weights, so resampling never
copies data. Resamples with fewer distinct runs than the law has parameters cannot identify the
law, and so do resamples that fail the law's own identifiability check (``Law.unidentified``, the
one :func:`~lmscale.fit.core.fit` applies, e.g. every drawn run at one M for Eq. 4); they are
dropped and counted (``n_degenerate``), never silently kept.

Fast path: least-squares fits of laws with one non-linear parameter (Eq. 4, the error law) are
solved for all resamples at once by variable projection — the linear coefficients in closed form
for a grid of exponents, then a batched golden-section refinement of the exponent. Other methods
refit each resample from the full-data optimum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from lmscale.errors import FitError
from lmscale.fit.core import fit, run_weights
from lmscale.fit.method import METHODS
from lmscale.fit.result import FitResult
from lmscale.fit.solvers import batched_projection, single_threaded_blas
from lmscale.laws import Law

_GRID = 96
_GOLDEN_STEPS = 48
_INVPHI = (np.sqrt(5.0) - 1.0) / 2.0


def resample_counts(n_runs: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n_runs) multinomial counts: how often each run is drawn."""
    return rng.multinomial(n_runs, np.full(n_runs, 1.0 / n_runs), size=n_resamples).astype(float)


def _batched_varpro_1d(law: Law, x: dict, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Least-squares optimum for every weight row of ``w`` (B, n); returns (B, n_params)."""
    name = law.nonlinear[0]
    lo, hi = law.range_of(name)
    grid = np.linspace(lo, hi, _GRID)
    phi = law.basis(grid[:, None], x)  # (G, n, k)
    _, obj = batched_projection(phi[None], w[:, None, :], y)  # (B, G)
    i = np.clip(np.argmin(obj, axis=1), 1, _GRID - 2)
    a, b = grid[i - 1], grid[i + 1]

    def objective(theta):
        return batched_projection(law.basis(theta[:, None], x), w, y)[1]

    c, d = b - _INVPHI * (b - a), a + _INVPHI * (b - a)
    fc, fd = objective(c), objective(d)
    for _ in range(_GOLDEN_STEPS):  # golden-section search, all resamples at once, one new point a step
        left = fc < fd
        a, b = np.where(left, a, c), np.where(left, d, b)
        new = np.where(left, b - _INVPHI * (b - a), a + _INVPHI * (b - a))
        fnew = objective(new)
        c, d = np.where(left, new, d), np.where(left, c, new)
        fc, fd = np.where(left, fnew, fd), np.where(left, fc, fnew)
    theta = (a + b) / 2.0
    beta, _ = batched_projection(law.basis(theta[:, None], x), w, y)
    return law.join(theta[:, None], beta)


def bootstrap(result: FitResult, n_resamples: int = 1000, seed: int | np.random.Generator = 0) -> FitResult:
    """Return ``result`` with bootstrap parameter samples attached (see the module docstring).

    Diagnostics gain ``bootstrap_n``, ``bootstrap_n_degenerate`` and ``bootstrap_seed``.
    """
    with single_threaded_blas():  # many tiny solves: threads only cost
        return _bootstrap(result, n_resamples, seed)


def bootstrap_or_none(result: FitResult, n_resamples: int, seed: int = 0) -> FitResult | None:
    """``bootstrap(result, …)``, or None when no resample is asked for (``n_resamples`` ≤ 0) or the
    fit cannot be bootstrapped (too few runs to resample, no resample could be fitted). The one
    fallback rule of every caller: a fit without samples, whose intervals then rest on the
    calibration's extrapolation term alone (``maybe or fit``)."""
    if n_resamples <= 0:
        return None
    try:
        return bootstrap(result, n_resamples, seed)
    except FitError:
        return None


def _bootstrap(result: FitResult, n_resamples: int, seed: int | np.random.Generator) -> FitResult:
    if n_resamples < 1:
        raise FitError("the number of bootstrap resamples must be at least 1")
    law = result.law_obj
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x, y = result.x_arrays, np.asarray(result.y)
    if len(y) <= law.n_fit_params:
        # every usable resample would have to contain every run, i.e. be the data itself: the
        # spread would be zero, which is not an honest interval
        raise FitError(
            f"cannot bootstrap law {law.name!r}: {len(y)} runs for {law.n_fit_params} parameters leave no "
            "freedom to resample; fit on more runs than parameters to get intervals"
        )
    counts = resample_counts(len(y), n_resamples, rng)
    ok = (counts > 0).sum(axis=1) >= law.n_fit_params
    ok &= _distinct_ok(law, x, counts)
    ok &= _identified(law, x, counts, ok)
    w = counts[ok]
    method = METHODS[result.method]
    if method.objective == "ls" and len(law.nonlinear) == 1 and law.search_range:
        base = run_weights(method.weighting, x, y)
        samples = _batched_varpro_1d(law, x, y, w if base is None else w * base)
    else:
        start = np.array([law.vector(result.params)])
        fitted: list[Mapping[str, float]] = []
        for wb in w:
            try:
                fitted.append(fit(law, x, y, method=result.method, weights=wb, starts=start).params)
            except FitError:
                fitted.append(dict.fromkeys(law.params, np.nan))
        samples = np.array([[s[p] for p in law.params] for s in fitted])
    good = np.all(np.isfinite(samples), axis=1)
    samples = samples[good]
    if len(samples) == 0:
        raise FitError(f"no bootstrap resample of the {len(y)} runs could be fitted")
    diag = result.diagnostics.with_bootstrap(
        len(samples), int(n_resamples - len(samples)), seed if isinstance(seed, int) else None
    )
    return replace(result, bootstrap=tuple(map(tuple, samples.tolist())), diagnostics=diag)


def _distinct_ok(law: Law, x: dict, counts: np.ndarray) -> np.ndarray:
    """Resamples whose drawn runs span at least n_params distinct input points."""
    keys = np.unique(np.column_stack([x[k] for k in law.inputs]), axis=0, return_inverse=True)[1].ravel()
    n_keys = keys.max() + 1
    drawn = np.zeros((len(counts), n_keys))
    for j in range(counts.shape[1]):
        drawn[:, keys[j]] += counts[:, j]
    return (drawn > 0).sum(axis=1) >= law.n_fit_params


def _identified(law: Law, x: dict, counts: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Resamples whose drawn runs pass the same identifiability check as :func:`fit` (for Eq. 4:
    at least two multipliers; for Chinchilla's form: two sizes and two token counts). A resample
    of runs all at one M leaves A and B undetermined: its fit is arbitrary, not uncertainty."""
    out = ok.copy()
    for i in np.flatnonzero(ok):
        drawn = counts[i] > 0
        if law.unidentified({k: np.asarray(v)[drawn] for k, v in x.items()}) is not None:
            out[i] = False
    return out


def parameter_intervals(result: FitResult, level: float = 0.9) -> dict[str, tuple[float, float]]:
    """Percentile confidence interval of each parameter from the bootstrap samples."""
    if not result.bootstrap:
        raise FitError("this fit has no bootstrap samples; run bootstrap() first")
    p = np.asarray(result.bootstrap)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {name: tuple(np.percentile(p[:, j], q)) for j, name in enumerate(result.law_obj.params)}


def standard_errors(result: FitResult) -> dict[str, float]:
    if not result.bootstrap:
        raise FitError("this fit has no bootstrap samples; run bootstrap() first")
    p = np.asarray(result.bootstrap)
    return {name: float(np.std(p[:, j], ddof=1)) for j, name in enumerate(result.law_obj.params)}
