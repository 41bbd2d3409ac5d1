"""Calibrated prediction intervals: bootstrap uncertainty plus the error of extrapolating a law
beyond its runs, learned from backtests.

A bootstrap over runs carries the noise of the law's parameters only; a prediction far beyond the
fitted runs also misses because the law is not exactly right there. lmscale scales each
prediction's uncertainty as

    u = sqrt(sd² + (τ · (1 + d))²),   d = max(ln⁺(C / C_fit), ln⁺(N / N_fit)) + ln⁺(M_fit,min / M)

(sd: the bootstrap spread of ln prediction, a robust standard deviation, so that the few resamples
that cannot pin the law down do not set the width; C / C_fit and N / N_fit: the target's compute
and size over the largest fitted run's, so that a larger model trained on few tokens — at no more
compute than the fitted runs — still counts as an extrapolation; τ = :data:`TAU`), and learns
from backtests — laws fitted on smaller runs predicting larger ones (:mod:`lmscale.backtest`) —
how many units u the truth falls from the prediction: the scores |ln(observed / predicted)| / u.
The interval at level ℓ is center · exp(± q_ℓ · u), q_ℓ the split-conformal ℓ-quantile of the
scores. A law of compute alone (the power law) has no N_fit or M: its d is ln⁺(C / C_fit).

A chained downstream error adds the error law's own extrapolation to d: the loss gap g, how far
the predicted loss lies below the error law's lowest fitted loss, in e-folds of compute by the loss
law (:func:`lmscale.predict.loss_gap`).

The scores come from the user's own backtest when it has at least :data:`MIN_OWN_SCORES`
predictions from two or more origins — never giving a quantile below the reference's, since a
ladder's backtest reaches less far than its target — and otherwise from the reference shipped as
``data/reference_calibration.json`` (regenerate with ``python benchmarks/calibrate.py --write``):
for the loss, the backtests of five public ladders from four labs, each lab weighing the same; for
the chained error, the paper testbed's chained backtests. Every output says which.

The center: the default method's loss law over-predicts the runs beyond its fit on every lab's
backtests but one. The loss reference records that bias, ``shift`` = the mean of ln(observed /
predicted) over its backtests (each lab weighing the same), and a prediction of the default method
beyond its fitted runs (d > 0) is centered at law · exp(shift): the scores are then |ln(observed /
predicted) − shift| / u. Other methods' fits, and predictions inside the fitted runs, keep the
law's value (:func:`for_fit`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from lmscale.backtest import backtest_arrays, log_spread, weighted_quantiles
from lmscale.conformal import (  # noqa: F401 (re-exported: lmscale.calibration is the public name)
    _REF_LEVELS,
    COMPUTE_DISTANCE,
    DISTANCE,
    MAX_SCORE,
    MAX_SHIFT,
    MIN_OWN_SCORES,
    TAU,
    Calibration,
    distance,
    distance_for,
    scores,
    unit,
)
from lmscale.errors import InputError
from lmscale.fit.method import DEFAULT_LOSS_METHOD, resolve_method
from lmscale.predict import Interval, extrapolation_factors, loss_gap, m_below_factor, predict_chain
from lmscale.reference_data import reference_file


def _point_scores(pts, dist: str, shift: float = 0.0) -> np.ndarray:
    size = dist == DISTANCE
    return scores(
        [p.log_error for p in pts],
        [p.sd_log for p in pts],
        [p.c_factor for p in pts],
        m_below=[p.m_below_factor for p in pts],
        gap=[p.loss_gap for p in pts],
        n_factor=[p.n_factor if size else 1.0 for p in pts],
        shift=shift,
    )


def _point_distances(pts, dist: str) -> np.ndarray:
    size = dist == DISTANCE
    return distance(
        [p.c_factor for p in pts],
        [p.m_below_factor for p in pts],
        [p.loss_gap for p in pts],
        [p.n_factor if size else 1.0 for p in pts],
    )


def for_fit(cal: Calibration, fit) -> Calibration:
    """``cal`` as it applies to ``fit``: its shift was measured on backtests of Eq. 4 fitted by the
    default method, so any other method's or law's predictions keep the law's value (shift 0)."""
    same = getattr(fit, "method", None) == DEFAULT_LOSS_METHOD and getattr(fit, "law", None) == "overtrain"
    return cal if same or not cal.shift else replace(cal, shift=0.0)


def for_method(cal: Calibration, method: str, law: str = "overtrain") -> Calibration:
    """:func:`for_fit` for a fit known by its method's name: an alias (``default``), a resolved name,
    or a chained backtest's ``<loss method>+<error method>`` (the loss law's part counts)."""
    name = resolve_method(str(method).split("+")[0], law)
    return cal if name == DEFAULT_LOSS_METHOD and law == "overtrain" else for_fit(cal, None)


def from_backtest(
    points: Sequence, quantity: str = "loss", floor: Calibration | None = None
) -> Calibration | None:
    """The user's own calibration from backtest points (:class:`lmscale.backtest.BacktestPoint`) of
    one method, floored by the reference ``floor`` and measured with its distance (a floor's
    quantiles bound scores of the same units only); None when there are too few (fewer than
    :data:`MIN_OWN_SCORES` or one origin)."""
    pts = [p for p in points if p.quantity == quantity and np.isfinite(p.log_error)]
    if len(pts) < MIN_OWN_SCORES or len({p.origin for p in pts}) < 2:
        return None
    dist = distance_for(quantity) if floor is None else str(floor.distance)
    shift = 0.0 if floor is None else floor.shift
    s = _point_scores(pts, dist, shift)
    origins = len({(p.train_set, p.origin) for p in pts})
    return Calibration(
        quantity,
        tuple(np.sort(s).tolist()),
        "own",
        f"this ladder's own backtest: {len(pts)} predictions from {origins} rolling origins"
        + (", never narrower than the reference's" if floor is not None else ""),
        floor=None if floor is None else floor.scores,
        distance=dist,
        shift=shift,
    )


def reference_from_backtest(
    points: Sequence,
    quantity: str,
    description: str,
    groups: Sequence[str] | None = None,
    shift: float | None = None,
) -> Calibration:
    """A reference calibration: the score quantiles of a (large) backtest. With ``groups`` (one
    label per point, e.g. the lab of each ladder), every group weighs the same in the quantiles and
    in the shift, however many predictions its backtest made. ``shift``: the center shift to score
    with (None: the loss's is the backtest's own mean signed error beyond the fits; an error's 0)."""
    keep = [i for i, p in enumerate(points) if p.quantity == quantity and np.isfinite(p.log_error)]
    pts = [points[i] for i in keep]
    if not pts:
        raise InputError(f"no backtest predictions of {quantity!r} to build a reference calibration from")
    w = np.ones(len(pts))
    if groups is not None:
        _, inverse, counts = np.unique(
            np.asarray([groups[i] for i in keep]), return_inverse=True, return_counts=True
        )
        w = 1.0 / counts[inverse]
    # the loss's center shift: the mean signed error beyond the fits (the chained error keeps 0: one lab)
    beyond = _point_distances(pts, DISTANCE) > 0
    if shift is None:
        shift = 0.0
        if quantity == "loss" and beyond.any():
            shift = float(np.average(np.asarray([p.log_error for p in pts])[beyond], weights=w[beyond]))
    s = _point_scores(pts, distance_for(quantity), shift)
    q = (
        np.quantile(s, _REF_LEVELS, method="higher")
        if groups is None
        else weighted_quantiles(s, w, _REF_LEVELS)
    )
    return Calibration(
        quantity, tuple(np.asarray(q, dtype=float).tolist()), "reference", description, shift=shift
    )


@cache
def reference(quantity: str = "loss") -> Calibration:
    """The shipped reference calibration of ``loss`` (five public ladders' backtests) or ``error``
    (the paper testbed's chained backtests); read and checked once (a calibration is immutable), since
    every centered prediction asks for it."""
    data = reference_file()
    if quantity not in data["calibrations"]:
        raise InputError(
            f"no reference calibration for {quantity!r}; known: {', '.join(data['calibrations'])}"
        )
    return Calibration.from_dict(data["calibrations"][quantity], "reference_calibration.json")


def choose(
    points: Sequence | None, quantity: str = "loss", fallback: Calibration | None = None
) -> Calibration:
    """The user's own calibration (floored by the reference) when their backtest is large enough,
    else the reference: ``fallback``, by default the shipped one."""
    ref = fallback if fallback is not None else reference(quantity)
    own = from_backtest(points or (), quantity, floor=ref)
    return own if own is not None else ref


def describe(cal: Calibration) -> str:
    """One line for outputs: how the interval was calibrated, and what its distance counts."""
    ref = f"from the reference ({cal.description}): this ladder has too few runs for its own backtest"
    where = "from " + cal.description if cal.source == "own" else ref
    size = "compute or size" if cal.distance == DISTANCE else "compute"
    center = (
        f"; beyond the fitted runs centered {100 * math.expm1(cal.shift):+.2f}% from the law"
        if cal.shift
        else ""
    )
    return (
        f"calibrated interval: bootstrap ⊕ extrapolation error (τ = {cal.tau:g} per e-fold of {size}), "
        f"conformal scores {where}{center}"
    )


# ------------------------------------------------------------------------- calibrated predictions
@dataclass(frozen=True)
class CalibratedPrediction:
    """A prediction with its calibrated interval and how it was calibrated. ``predicted``: the law's
    value (for a chained error, at the loss's center); :attr:`value`: what lmscale reports."""

    predicted: float
    interval: Interval
    sd_log: float
    c_factor: float
    calibration: Calibration
    m_below: float = 1.0
    #: chained errors: the error law's extrapolation in loss, e-folds of compute (0 for a loss)
    loss_gap: float = 0.0
    n_factor: float = 1.0  # the target's N over the largest fitted N

    @property
    def value(self) -> float:
        """The prediction lmscale reports: the interval's center (:meth:`Calibration.center`)."""
        return self.calibration.center(
            self.predicted, self.c_factor, self.m_below, self.loss_gap, self.n_factor
        )

    def at(self, level: float) -> Interval:
        """The interval at another level, from the same bootstrap spread and distance."""
        return self.calibration.interval(
            self.predicted, self.sd_log, self.c_factor, level, self.m_below, self.loss_gap, self.n_factor
        )


def _sd_log(samples: np.ndarray) -> float:
    return float(log_spread(np.asarray(samples, dtype=float)[:, None])[0])


def loss_samples(loss_fit, point) -> np.ndarray | None:
    if not loss_fit.bootstrap:
        return None
    values = point.inputs()
    return loss_fit.predict_samples(**{k: np.array([values[k]]) for k in loss_fit.law_obj.inputs})[:, 0]


def _factors(loss_fit, point) -> tuple[float, float, float]:
    """(C / C_fit, N / N_fit, M_fit,min / M) of ``point``."""
    factors = extrapolation_factors(loss_fit, point)
    return (
        float(factors.get("flops", 1.0)),
        float(factors.get("n_params", 1.0)),
        m_below_factor(loss_fit, point),
    )


def center_shift(loss_fit, point, cal: Calibration | None = None) -> float:
    """ln(center / law) of the loss at ``point``: the shift of the loss calibration ``cal`` (default:
    the fit's own, :func:`of_fit`) when ``point`` lies beyond the fitted runs, else 0."""
    cal = of_fit(loss_fit, "loss") if cal is None else for_fit(cal, loss_fit)
    if not cal.shift:
        return 0.0
    c_factor, n_factor, m_below = _factors(loss_fit, point)
    return math.log(cal.center(1.0, c_factor, m_below, 0.0, n_factor))


def calibrated(
    loss_fit, point, level: float, cal: Calibration, error_fit=None, loss_cal: Calibration | None = None
) -> CalibratedPrediction:
    """Calibrated interval of the loss at ``point`` or, with ``error_fit``, of the chained error —
    the error law asked at the loss's center by ``loss_cal`` (default: the loss fit's own
    calibration). The bootstrap part needs bootstrap samples on the fit(s); without them it is 0 and
    the interval rests on the extrapolation term alone."""
    shift = 0.0 if error_fit is None else center_shift(loss_fit, point, loss_cal)
    cal = for_fit(cal, loss_fit if error_fit is None else error_fit)  # an error's: never shifted
    chain = predict_chain(loss_fit, error_fit, point, shift)
    c_factor, n_factor, m_below = _factors(loss_fit, point)
    ls = loss_samples(loss_fit, point)
    if ls is not None:
        ls = ls * math.exp(shift)
    gap = 0.0
    if error_fit is None:
        pred, sd = chain.loss, (_sd_log(ls) if ls is not None else float("nan"))
    else:
        assert chain.error is not None
        pred, sd = chain.error, float("nan")
        fitted = error_fit.x_arrays.get("loss")
        if fitted is not None and len(fitted):
            gap = float(loss_gap(loss_fit, float(np.min(fitted)), chain.loss)[0])
        if ls is not None and error_fit.bootstrap:
            ep = np.asarray(error_fit.bootstrap)
            k = min(len(ep), len(ls))
            with np.errstate(over="ignore", invalid="ignore"):  # far-off loss samples overflow e^(−γL)
                sd = _sd_log(error_fit.law_obj.evaluate_vector(ep[:k], {"loss": ls[:k, None]})[:, 0])
    iv = cal.interval(pred, sd, c_factor, level, m_below, gap, n_factor)
    return CalibratedPrediction(pred, iv, sd, c_factor, cal, m_below, gap, n_factor)


def calibrate_fit(result, n_resamples: int = 200, seed: int = 0):
    """Attach a calibration to a fit: for a loss law of N and M, a backtest of its own runs with its
    method (own scores when there are enough, else the reference); for other laws, the reference
    of the chained error (error law) or of the loss. Returns the fit with ``calibration`` set."""
    if result.law == "error":
        return replace(result, calibration=reference("error").to_dict())
    ref = for_fit(reference("loss"), result)
    x = result.x_arrays
    points = []
    if result.law == "overtrain":
        points = backtest_arrays(
            x["n_params"],
            x["multiplier"],
            result.y,
            method=result.method,
            run_ids=result.run_ids,
            n_resamples=n_resamples,
            seed=seed,
        )
    return replace(result, calibration=choose(points, "loss", ref).to_dict())


def of_fit(result, quantity: str = "loss") -> Calibration:
    """The calibration a fit carries (of ``quantity``: an edited file may hold another's), or the
    shipped reference when it carries none; either with its shift only for the default's loss law
    (:func:`for_fit`: a shift in another fit's file moves nothing)."""
    if not result.calibration:
        return for_fit(reference(quantity), result)
    cal = Calibration.from_dict(result.calibration, "fit calibration")
    if cal.quantity != quantity:
        raise InputError(f"fit calibration: of {cal.quantity!r}, but this fit predicts {quantity!r}")
    return for_fit(cal, result)
