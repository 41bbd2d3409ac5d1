"""The one fitting routine: a law, its inputs and a target → :class:`FitResult`.

It is parameterised by a *method* (objective × solver × run weighting,
:class:`lmscale.fit.method.Method`). Every method runs from several starting points, keeps the best, and records how many starts converged and how
closely they agree. Errors are raised — never a silently wrong fit — when the data are degenerate,
there are fewer runs than parameters, or no start converges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from lmscale.errors import FitError, InputError
from lmscale.fit import solvers
from lmscale.fit.diagnostics import FitDiagnostics
from lmscale.fit.method import DEFAULT, Method, method_for
from lmscale.fit.result import FitResult
from lmscale.fit.solvers import batched_projection
from lmscale.laws import BUILTIN_LAWS, Law, get_law

#: exponent of the size weighting of ``rel-ls-size``; 0.25 was chosen on the paper testbed's cap and
#: k-smallest-size fit sets (README, "Choosing the default method"), before any interval work
SIZE_WEIGHT_POWER = 0.25


def run_weights(weighting: str, x: Mapping[str, np.ndarray], y: np.ndarray) -> np.ndarray | None:
    """Per-run weights of a method's weighting scheme (None: uniform)."""
    if weighting == "uniform":
        return None
    w = 1.0 / np.square(y)
    if weighting == "relative-size" and "n_params" in x:
        n = np.asarray(x["n_params"], dtype=float)
        w = w * (n / n.max()) ** SIZE_WEIGHT_POWER
    elif weighting not in ("relative", "relative-size"):
        raise InputError(f"unknown weighting {weighting!r}")
    return w / w.mean()


#: two starts whose objectives differ by less than this (relative) reached the same optimum
SAME_OPTIMUM_RTOL = 1e-6


def check_data(
    law: Law,
    x: Mapping[str, ArrayLike],
    y: ArrayLike,
    run_ids: Sequence[str],
    weights: ArrayLike | None,
    target: str,
    log_target: bool,
) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """Validate fitting data; return float arrays. Names the run of every bad value."""
    xa = law.inputs_from(x)
    ya = np.asarray(y, dtype=float).ravel()
    n = len(ya)
    if n == 0:
        raise InputError(f"empty selection: no runs to fit law {law.name!r} on target {target!r}")
    for k, v in xa.items():
        if v.shape != ya.shape:
            raise InputError(f"input {k!r} has {v.size} values but target {target!r} has {n}")
    problems = []
    for i in range(n):
        if not np.isfinite(ya[i]):
            problems.append(
                f"run {run_ids[i]!r}: target {target!r} is missing or not finite ({float(ya[i])!r})"
            )
        elif log_target and ya[i] <= 0:
            problems.append(
                f"run {run_ids[i]!r}: target {target!r} must be positive for a log objective ({float(ya[i])!r})"
            )
        for k, v in xa.items():
            if not np.isfinite(v[i]):
                problems.append(f"run {run_ids[i]!r}: input {k!r} is missing or not finite ({float(v[i])!r})")
            elif k != "loss" and v[i] <= 0:
                problems.append(f"run {run_ids[i]!r}: input {k!r} must be positive ({float(v[i])!r})")
    if problems:
        raise InputError("cannot fit:\n  " + "\n  ".join(problems))
    if np.max(np.abs(ya)) > 1e150 or (log_target and np.min(ya) < 1e-150):  # squares overflow
        raise InputError(
            f"target {target!r} ranges from {ya.min():.3g} to {ya.max():.3g}: the fit squares it"
            f"{' (and its inverse, as a weight)' if log_target else ''}, which overflows; rescale it"
        )
    if n < law.n_fit_params:
        raise FitError(
            f"too few runs to fit law {law.name!r}: {n} run{'s' if n != 1 else ''} for "
            f"{law.n_fit_params} parameters ({', '.join(law.params)}); select at least {law.n_fit_params}"
        )
    distinct = len({tuple(v[i] for v in xa.values()) for i in range(n)})
    if distinct < law.n_fit_params:
        raise FitError(
            f"degenerate data for law {law.name!r}: only {distinct} distinct input points for "
            f"{law.n_fit_params} parameters"
        )
    why = law.unidentified(xa)
    if np.ptp(ya) <= 1e-12 * np.max(np.abs(ya)):  # e.g. a task every run gets right, or wrong
        why = f"every run has the same {target!r} ({float(ya[0]):g}): nothing pins the law's shape down"
    if why:
        raise FitError(f"cannot fit law {law.name!r} on {target!r}: {why}")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float).ravel()
        if w.shape != ya.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise InputError("weights must be one finite, non-negative number per run, not all zero")
    return xa, ya, w


def fit(
    law: Law | str,
    x: Mapping[str, ArrayLike],
    y: ArrayLike,
    *,
    method: str | Method = DEFAULT,
    run_ids: Sequence[str] | None = None,
    target: str = "y",
    input_columns: Mapping[str, str] | None = None,
    weights: ArrayLike | None = None,
    starts: np.ndarray | None = None,
    huber_delta: float = 1e-3,
) -> FitResult:
    """Fit ``law`` to targets ``y`` given inputs ``x`` (a mapping of the law's input names).

    ``method``: a :class:`Method` or its name (:data:`lmscale.fit.method.NAMES`; ``default``:
    lmscale's default for the law, see :func:`resolve_method`). ``starts``: starting points (rows in the law's parameter
    order); the law's grid by default. Returns a :class:`FitResult` with diagnostics.
    """
    law = get_law(law) if isinstance(law, str) else law
    if not (isinstance(huber_delta, (int, float)) and np.isfinite(huber_delta) and huber_delta > 0):
        raise InputError(f"the Huber threshold must be a positive number, got {huber_delta!r}")
    how = method_for(method, law)
    objective, solver, weighting = how.objective, how.solver, how.weighting
    n = len(np.atleast_1d(np.asarray(y)))
    ids = tuple(run_ids) if run_ids is not None else tuple(f"#{i}" for i in range(n))
    xa, ya, w = check_data(
        law, x, y, ids, weights, target, objective.endswith("log") or weighting != "uniform"
    )
    base = run_weights(weighting, xa, ya)
    if base is not None:
        w = base if w is None else w * base
    if starts is not None:
        grid = np.atleast_2d(np.asarray(starts, dtype=float))
    elif solver == "lbfgs" and law.search_range:
        grid = projected_starts(law, xa, ya, w)
    elif solver == "varpro" and law.search_range:
        # variable projection only searches the exponents: a fine scan of the projected objective
        # over the exponent's range (which covers the law's own starts) finds the basin, and
        # Levenberg–Marquardt refines from its best point
        grid = scanned_starts(law, xa, ya, w)
    else:
        grid = law.start_grid()
    outcome = solvers.run(solver, law, xa, ya, w, grid, objective=objective, huber_delta=huber_delta)
    diagnostics = summarise(law, outcome, xa, ya)
    _check_better_than_a_constant(law, outcome.best, xa, ya, w, len(grid), target, how.name)
    return FitResult(
        law=law.name,
        method=how.name,
        params=dict(zip(law.params, map(float, outcome.best))),
        target=target,
        input_columns=dict(input_columns or {k: k for k in law.inputs}),
        run_ids=ids,
        x={k: tuple(map(float, v)) for k, v in xa.items()},
        y=tuple(map(float, ya)),
        diagnostics=diagnostics,
        noise_sd=diagnostics.residual_sd,
        law_impl=law,
    )


#: a built-in law holds a constant (its amplitudes at 0), so at its optimum it fits at least as well
#: as one; a result this many times worse than the target's mean did not reach the optimum
WORSE_THAN_A_CONSTANT = 4.0


def _check_better_than_a_constant(law: Law, best, x, y, w, n_starts: int, target: str, method: str):
    """Refuse a fit that every start left far from the optimum (e.g. starting values made for losses
    of a few nats, given a target in other units): silently it would predict nonsense. Sums weigh
    the runs as the fit did, so runs it was told to ignore cannot trip it."""
    w = np.ones_like(y) if w is None else w
    with np.errstate(all="ignore"):
        sse = float(np.sum(w * (y - law.evaluate_vector(best, x)) ** 2))
    sst = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
    builtin = any(law is b for b in BUILTIN_LAWS)  # a registered law of one's own may hold no constant
    if builtin and sst > 0 and not sse <= WORSE_THAN_A_CONSTANT * sst:
        raise FitError(
            f"law {law.name!r} on {target!r}, method {method!r}: the best of {n_starts} starts fits "
            f"worse than a constant (residual sum of squares {sse:.3g}, {sst:.3g} around the mean), so no "
            f"start reached the law's optimum. The target ranges from {y.min():.3g} to {y.max():.3g}; "
            "starting values suit losses of a few nats and errors in (0, 1): rescale it, or use the "
            "default method, which searches the exponents instead"
        )


#: points per non-linear parameter in the projected start grid of L-BFGS-B methods, by the number
#: of non-linear parameters (1-D: 8 starts; 2-D: 36)
PROJECTED_GRID = {1: 8, 2: 6}


def _grid_projection(law: Law, x: dict, y: np.ndarray, w: np.ndarray | None, thetas: np.ndarray):
    """Least-squares coefficients for every exponent vector in ``thetas`` (G, m) at once; returns
    full parameter rows (G, n_params) and their objectives (inf where the basis overflows)."""

    with np.errstate(all="ignore"):
        phi = law.basis(thetas, x)  # (G, n, k)
        ww = np.broadcast_to(np.ones_like(y) if w is None else w, phi.shape[:-1])
        beta, obj = batched_projection(phi, ww, y)
    full = law.join(thetas, beta)
    ok = np.isfinite(obj) & np.all(np.isfinite(full), axis=1)
    return full, np.where(ok, obj, np.inf)


def projected_starts(
    law: Law, x: dict, y: np.ndarray, w: np.ndarray | None, per_dim: int | None = None
) -> np.ndarray:
    """Starting points for the general-objective solver: a grid over the exponents only (inside
    the law's ``search_range``), each completed with the least-squares coefficients for those
    exponents (clipped to the bounds), plus the exact least-squares optimum. A handful of such
    starts lands in the basin of the robust optimum far more reliably than a blind grid over all
    parameters, at a fraction of the cost (9 or 37 starts instead of 128 or 243)."""
    per_dim = per_dim or PROJECTED_GRID.get(len(law.nonlinear), 4)
    axes = [np.linspace(*law.range_of(p), per_dim + 2)[1:-1] for p in law.nonlinear]
    thetas = np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(axes), -1).T
    full, obj = _grid_projection(law, x, y, w, thetas)
    ok = np.isfinite(obj)
    if not np.any(ok):
        return law.start_grid()
    lo, hi = law.lower(), law.upper()
    rows = list(np.clip(full[ok], lo, hi))
    ls_opt, converged, _ = solvers.varpro_one(law, x, y, w, law.split(full[np.argmin(obj)])[0])
    if converged and np.all(np.isfinite(ls_opt)):
        rows.append(np.clip(ls_opt, lo, hi))
    return np.array(rows)


def scanned_starts(law: Law, x: dict, y: np.ndarray, w: np.ndarray | None, points: int = 96) -> np.ndarray:
    """For one exponent: the projected least-squares objective on an even grid of the exponent,
    solved for all grid points at once; returns the best point as a start (coefficients filled
    in). For more exponents: :func:`projected_starts`."""
    if len(law.nonlinear) != 1:
        return projected_starts(law, x, y, w)
    grid = np.linspace(*law.range_of(law.nonlinear[0]), points)[:, None]
    full, obj = _grid_projection(law, x, y, w, grid)
    if not np.any(np.isfinite(obj)):
        return law.start_grid()[:1]
    return full[np.argmin(obj)][None, :]


def summarise(law: Law, outcome: solvers.Outcome, x, y) -> FitDiagnostics:
    """Agreement of the starts, parameters at bounds, and conditioning at the optimum."""
    ok = outcome.converged
    if not np.any(ok):
        raise FitError(
            f"law {law.name!r}: none of {len(ok)} starts converged "
            f"({outcome.messages[0] if outcome.messages else 'no message'})"
        )
    obj = outcome.objectives[ok]
    best = float(np.min(obj))
    same = obj <= best + SAME_OPTIMUM_RTOL * max(abs(best), 1e-300)
    ps = outcome.params[ok][same]
    scale = np.maximum(np.abs(outcome.best), 1e-12)
    with np.errstate(over="ignore"):  # starts that agree on the objective but not on a huge parameter
        spread = float(np.max((ps.max(axis=0) - ps.min(axis=0)) / scale)) if len(ps) > 1 else 0.0
    lo, hi = law.lower(), law.upper()
    tol = 1e-8 * np.maximum(1.0, np.abs(outcome.best))
    at_bounds = [
        p
        for p, v, a, b in zip(law.params, outcome.best, lo, hi)
        if (np.isfinite(a) and v - a <= tol[law.params.index(p)])
        or (np.isfinite(b) and b - v <= tol[law.params.index(p)])
    ]
    with np.errstate(all="ignore"):  # a far optimum can overflow: its condition number is then inf
        jac = law.jacobian_vector(outcome.best, x) * scale
        cond = float(np.linalg.cond(jac)) if np.all(np.isfinite(jac)) else float("inf")
        resid = y - law.evaluate_vector(outcome.best, x)
    dof = max(len(y) - law.n_fit_params, 0)
    return FitDiagnostics(
        n_runs=len(y),
        n_starts=len(ok),
        n_converged=int(np.sum(ok)),
        n_at_optimum=int(np.sum(same)),
        objective=best,
        objective_spread=float(np.max(obj) - best),
        param_spread=spread,
        at_bounds=tuple(at_bounds),
        condition_number=cond,
        rmse=float(np.sqrt(np.mean(resid**2))),
        residual_sd=float(np.sqrt(np.sum(resid**2) / dof)) if dof > 0 else None,
        solver_message=outcome.messages[int(np.argmin(np.where(ok, outcome.objectives, np.inf)))],
    )
