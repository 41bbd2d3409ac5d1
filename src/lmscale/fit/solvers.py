"""Solvers for the fitting routine: Levenberg–Marquardt (the paper's), L-BFGS-B with analytic
gradients (any objective), and variable projection (least squares: the linear coefficients are
solved exactly, only the exponents are searched). Pure numerics: no I/O.

Objectives are :class:`~lmscale.fit.objectives.Objective` objects (ls, ls-log, huber-log).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares, leastsq, minimize
from threadpoolctl import ThreadpoolController

from lmscale.errors import InputError
from lmscale.fit.objectives import Objective
from lmscale.laws import Law

#: tolerances chosen so that converged starts agree to ~1e-9 relative on well-posed problems
_LM_TOL = dict(xtol=1e-14, ftol=1e-14, gtol=1e-14, max_nfev=20000)
#: variable projection searches only the exponents and converges in tens of evaluations where the
#: law is identified; a start that wanders (an exponent the data cannot pin down) is cut short
_VARPRO_TOL = dict(_LM_TOL, max_nfev=400)
#: MINPACK defaults, as used by the paper's curve_fit calls (maxfev as the authors set it)
_MINPACK = dict(ftol=1.49012e-08, xtol=1.49012e-08, gtol=0.0, maxfev=10000)
_LBFGS_OPTS = dict(maxiter=20000, ftol=1e-15, gtol=1e-12, maxcor=20)


@dataclass
class Outcome:
    best: np.ndarray  # best parameter vector (law order)
    params: np.ndarray  # (n_starts, n_params): end point of every start
    objectives: np.ndarray  # (n_starts,): objective at each end point (inf when it failed)
    converged: np.ndarray  # (n_starts,) bool
    messages: list[str]


def objective_value(
    objective: str, f: np.ndarray, y: np.ndarray, w: np.ndarray | None, delta: float = 1e-3
) -> float:
    """The objective at predictions ``f`` (see :class:`~lmscale.fit.objectives.Objective`)."""
    return Objective(objective, delta).value(f, y, w)


_CONTROLLER: list = []


def single_threaded_blas():
    """A context in which BLAS runs on one thread. The problems here are tiny: a multi-threaded
    BLAS only adds overhead, and on a busy machine its spinning threads slow L-BFGS-B down by an
    order of magnitude. The controller (a scan of the loaded libraries) is built once."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def run(solver: str, law: Law, x, y, w, starts, *, objective: str, huber_delta: float = 1e-3) -> Outcome:
    with single_threaded_blas():
        return _run(solver, law, x, y, w, starts, objective=objective, huber_delta=huber_delta)


def _run(solver: str, law: Law, x, y, w, starts, *, objective: str, huber_delta: float = 1e-3) -> Outcome:
    if starts.ndim != 2 or starts.shape[1] != law.n_fit_params:
        raise InputError(f"starting points must have {law.n_fit_params} columns ({', '.join(law.params)})")
    if solver == "lm":
        if objective != "ls":
            raise InputError("Levenberg–Marquardt solves the least-squares objective only")
        return _collect([_lm_one(law, x, y, w, s) for s in starts], law, x, y, w, objective, huber_delta)
    if solver == "lbfgs":
        return _collect(
            [_lbfgs_one(law, x, y, w, s, objective, huber_delta) for s in starts],
            law,
            x,
            y,
            w,
            objective,
            huber_delta,
        )
    if solver == "varpro":
        if objective != "ls":
            raise InputError("variable projection solves the least-squares objective only")
        idx = [law.params.index(p) for p in law.nonlinear]
        thetas = np.unique(starts[:, idx], axis=0)
        return _collect([varpro_one(law, x, y, w, t) for t in thetas], law, x, y, w, objective, huber_delta)
    raise InputError(f"unknown solver {solver!r}")


def _collect(results, law, x, y, w, objective, delta) -> Outcome:
    params = np.array([r[0] for r in results], dtype=float)
    conv = np.array([r[1] for r in results], dtype=bool)
    msgs = [r[2] for r in results]
    objs = np.full(len(results), np.inf)
    for i, p in enumerate(params):
        if conv[i] and np.all(np.isfinite(p)):
            with np.errstate(all="ignore"):
                objs[i] = objective_value(objective, law.evaluate_vector(p, x), y, w, delta)
        conv[i] = conv[i] and np.isfinite(objs[i])
    best = params[int(np.argmin(objs))] if np.any(conv) else params[0]
    return Outcome(best=best, params=params, objectives=objs, converged=conv, messages=msgs)


def _lm_one(law, x, y, w, start):
    """The authors' numerics: MINPACK's Levenberg–Marquardt (``lmdif``) with a forward-difference
    Jacobian and MINPACK's default tolerances (what ``scipy.optimize.curve_fit`` runs). These
    tolerances stop some fits ~1e-5 (relative) short of the exact optimum; ``varpro`` finds it."""
    sw = None if w is None else np.sqrt(w)
    f = law.evaluator(x)

    def resid(p):
        r = f(p) - y
        return r if sw is None else sw * r

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            p, _cov, _info, msg, ier = leastsq(resid, start, full_output=True, **_MINPACK)
        except (ValueError, TypeError, np.linalg.LinAlgError) as exc:
            return start, False, f"failed: {exc}"
    ok = ier in (1, 2, 3, 4) and np.all(np.isfinite(p))
    return p, bool(ok), str(msg).replace("\n", " ").strip()


def _lbfgs_one(law, x, y, w, start, objective, delta):
    scale = np.where(np.abs(start) > 0, np.abs(start), 1.0)
    lo, hi = law.lower() / scale, law.upper() / scale
    bounds = [(None if not np.isfinite(a) else a, None if not np.isfinite(b) else b) for a, b in zip(lo, hi)]
    ww = np.ones_like(y) if w is None else w
    obj = Objective(objective, delta)
    floor = 1e-3 * float(np.min(y)) if obj.on_logs else None

    def fun(z):
        p = z * scale
        val, dfdf = obj.value_and_grad(law.evaluate_vector(p, x), y, ww, floor)
        return val, (dfdf @ law.jacobian_vector(p, x)) * scale

    z0 = np.clip(
        start / scale,
        [b[0] if b[0] is not None else -np.inf for b in bounds],
        [b[1] if b[1] is not None else np.inf for b in bounds],
    )
    # L-BFGS-B measures progress relative to max(|f|, 1): rescale the objective so that it starts at
    # ~1e3, otherwise a small objective (Huber with δ = 1e-3) stops it after one step
    with np.errstate(all="ignore"):
        f0 = fun(z0)[0]
    k = 1e3 / f0 if 0 < f0 < 1e29 else 1.0

    def scaled(z):
        val, grad = fun(z)
        return val * k, grad * k

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            sol = minimize(scaled, z0, jac=True, method="L-BFGS-B", bounds=bounds, options=_LBFGS_OPTS)
        except (ValueError, np.linalg.LinAlgError) as exc:
            return start, False, f"failed: {exc}"
    p = sol.x * scale
    ok = np.all(np.isfinite(p)) and sol.fun / k < 1e29 and (sol.success or sol.nit > 0)
    return p, bool(ok), str(sol.message)


def batched_projection(phi: np.ndarray, w: np.ndarray, y: np.ndarray):
    """Batched weighted least squares. phi (..., n, k), w (..., n) → beta (..., k), objective (...).

    Solved like the exact projection (:func:`_projected`): by QR of √W·Φ, after scaling every
    column by its largest entry, never by normal equations. The basis columns of a steep power law differ
    by many orders of magnitude (a constant next to N^-0.7 ≈ 1e-7), so normal equations, or a
    ridge sized on their trace, would solve a different problem from the point fit's."""
    sw = np.sqrt(w)
    a = phi * sw[..., None]  # (..., n, k)
    b = np.broadcast_to(y * sw, a.shape[:-1])  # (..., n)
    # a problem that overflowed (an extreme exponent, or targets so small that their relative
    # weights are infinite) gets NaN coefficients and an infinite objective, as in _projected:
    # LAPACK does not converge on non-finite input
    bad = ~(np.all(np.isfinite(a), axis=(-2, -1)) & np.all(np.isfinite(b), axis=-1))
    if np.any(bad):
        a, b = np.where(bad[..., None, None], 0.0, a), np.where(bad[..., None], 0.0, b)
    scale = np.max(np.abs(a), axis=-2)  # (..., k): largest entry (no squares to overflow)
    scale = np.where(scale > 0, scale, 1.0)
    q, r = np.linalg.qr(a / scale[..., None, :])
    qtb = (np.swapaxes(q, -1, -2) @ b[..., None])[..., 0]  # (..., k)
    # min-norm solve of the triangular system: a rank-deficient column set gets finite
    # coefficients (and the larger objective it deserves) instead of a LinAlgError
    beta = (np.linalg.pinv(r, rcond=1e-13) @ qtb[..., None])[..., 0] / scale
    resid = (phi @ beta[..., None])[..., 0] - y
    obj = np.sum(w * resid**2, axis=-1)
    if np.any(bad):
        beta, obj = np.where(bad[..., None], np.nan, beta), np.where(bad, np.inf, obj)
    return beta, obj


def _projected(law, x, y, sw, theta):
    """Least-squares coefficients for fixed non-linear parameters, and the residual."""
    with np.errstate(all="ignore"):
        phi = law.basis(theta, x)
    a = phi if sw is None else sw[:, None] * phi
    b = y if sw is None else sw * y
    if not np.all(np.isfinite(a)):
        # an exponent far outside the data's range overflows the basis: report a huge, finite
        # residual (LAPACK would print to stdout on non-finite input) so the solver steps back
        return np.full(a.shape[-1], np.nan), np.full(b.shape, 1e100), np.zeros_like(a)
    # columns scaled by their largest entry first: a steep exponent makes N^c columns many orders of
    # magnitude smaller than the constant's, and lstsq's cut-off on singular values would
    # otherwise drop them (a worse fit than the data allow)
    scale = np.max(np.abs(a), axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    beta, *_ = np.linalg.lstsq(a / scale, b, rcond=None)
    beta = beta / scale
    return beta, a @ beta - b, a


def varpro_one(law, x, y, w, theta0):
    """Variable projection from one start of the non-linear parameters (Kaufman's Jacobian, whose
    gradient Jᵀr is exact, so stationary points are those of the full problem)."""
    sw = None if w is None else np.sqrt(w)

    def resid(theta):
        return _projected(law, x, y, sw, theta)[1]

    def jac(theta):
        beta, r, a = _projected(law, x, y, sw, theta)
        if not np.all(np.isfinite(beta)):
            return np.zeros((len(r), len(theta)))
        d = law.dbasis(theta, x)  # (n, k, m)
        if sw is not None:
            d = sw[:, None, None] * d
        dj = np.einsum("nkm,k->nm", d, beta)
        q, _ = np.linalg.qr(a)
        return dj - q @ (q.T @ dj)

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            sol = least_squares(resid, np.atleast_1d(theta0), jac=jac, method="lm", **_VARPRO_TOL)
        except (ValueError, np.linalg.LinAlgError) as exc:
            full = np.full(law.n_fit_params, np.nan)
            return full, False, f"failed: {exc}"
    full = law.join(sol.x, _projected(law, x, y, sw, sol.x)[0])
    ok = sol.status > 0 and np.all(np.isfinite(full))
    return full, bool(ok), sol.message
