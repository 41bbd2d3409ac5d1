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
The interval at level ℓ is prediction · exp(± q_ℓ · u), q_ℓ the split-conformal ℓ-quantile of the
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
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

import numpy as np

from lmscale.backtest import backtest_arrays, log_spread, weighted_quantiles
from lmscale.errors import InputError
from lmscale.predict import Interval, extrapolation_factors, loss_gap, m_below_factor, predict_chain

#: the extrapolation term's scale per e-fold of compute beyond the fitted runs (ln units). Chosen on
#: the paper testbed's backtests: the narrowest 90% intervals at equal coverage lie at τ ≤ 0.01 for
#: both the loss and the chained error (benchmarks/calibrate.py prints the scan)
TAU = 0.01
#: fewest backtest scores (from at least two origins) for a ladder to calibrate its own intervals
MIN_OWN_SCORES = 20
#: a calibration score larger than this (the truth a thousand units u from the prediction) is not
#: from a backtest: a saved fit holding one is refused when it is read
MAX_SCORE = 1e3
#: a calibration's distance: the loss's counts size and compute; a chained error's, compute (its loss
#: gap follows a larger model's lower loss), as does one saved before the size term (no record)
DISTANCE, COMPUTE_DISTANCE = "max(C,N)+M", "C+M"
#: quantile levels stored for the reference scores
_REF_LEVELS = np.round(np.arange(0.01, 1.0, 0.01), 2)


def _ln_plus(factor, empty: float = 1.0) -> np.ndarray:
    return np.log(np.clip(np.nan_to_num(np.asarray(factor, dtype=float), nan=empty), 1.0, 1e300))


def distance(c_factor, m_below=1.0, gap=0.0, n_factor=1.0):
    """Extrapolation distance in e-folds: max(ln⁺(C / C_fit), ln⁺(N / N_fit)) + ln⁺(M_fit,min / M)
    — beyond the largest fitted compute or, for a larger model at no more compute (an under-trained
    target), beyond the largest fitted size; and below the smallest fitted token multiplier — plus,
    for a chained error, the error law's own extrapolation in loss (``gap``, e-folds of compute:
    :func:`lmscale.predict.loss_gap`). The larger of the compute and size terms, not their sum: a
    target larger in both has its size already in its compute."""
    g = np.clip(np.nan_to_num(np.asarray(gap, dtype=float), nan=0.0), 0.0, None)
    return np.maximum(_ln_plus(c_factor), _ln_plus(n_factor)) + _ln_plus(m_below) + g


def unit(sd_log, c_factor, tau: float = TAU, m_below=1.0, gap=0.0, n_factor=1.0):
    """The uncertainty unit u of a prediction (see the module docstring); NaN sd counts as 0."""
    sd = np.nan_to_num(np.asarray(sd_log, dtype=float), nan=0.0)
    return np.sqrt(sd**2 + (tau * (1.0 + distance(c_factor, m_below, gap, n_factor))) ** 2)


def scores(log_error, sd_log, c_factor, tau: float = TAU, m_below=1.0, gap=0.0, n_factor=1.0) -> np.ndarray:
    """|ln(observed / predicted)| / u for backtest predictions."""
    return np.abs(np.asarray(log_error, dtype=float)) / unit(sd_log, c_factor, tau, m_below, gap, n_factor)


@dataclass(frozen=True)
class Calibration:
    """How many units u the truth fell from the prediction in backtests (sorted scores)."""

    quantity: str  # "loss" or "error"
    scores: tuple[float, ...]
    source: str  # "own" (the user's backtest) or "reference" (the paper testbed's)
    description: str
    tau: float = TAU
    #: own calibrations: the reference's score quantiles (at :data:`_REF_LEVELS`), a floor under
    #: the own quantiles — a ladder's backtest reaches less far than its target, so it may widen
    #: the reference's intervals but not narrow them
    floor: tuple[float, ...] | None = None
    #: which distance the scores were measured with (:data:`DISTANCE`, :data:`COMPUTE_DISTANCE`);
    #: None: the quantity's (:func:`distance_for`)
    distance: str | None = None

    def __post_init__(self):
        if self.distance is None:
            object.__setattr__(self, "distance", distance_for(self.quantity))
        if self.distance not in (DISTANCE, COMPUTE_DISTANCE):
            raise InputError(f"unknown calibration distance {self.distance!r}; known: {DISTANCE}, C+M")
        if not self.scores:
            raise InputError("a calibration needs at least one backtest score")

    def quantile(self, level: float) -> float:
        """Split-conformal quantile: the ⌈(n + 1)·ℓ⌉-th smallest score (the largest past the end)."""
        if not 0 < level < 1:
            raise InputError(f"interval level must lie in (0, 1), got {level!r}")
        s = np.asarray(self.scores)
        if self.source == "reference":  # stored as quantiles already
            return float(np.interp(level, _REF_LEVELS, s))
        k = math.ceil((len(s) + 1) * level)
        own = float(s[min(k, len(s)) - 1])
        return own if self.floor is None else max(own, float(np.interp(level, _REF_LEVELS, self.floor)))

    def interval(
        self,
        predicted: float,
        sd_log: float,
        c_factor: float,
        level: float,
        m_below: float = 1.0,
        gap: float = 0.0,
        n_factor: float = 1.0,
    ) -> Interval:
        if self.distance == COMPUTE_DISTANCE:
            n_factor = 1.0
        half = self.quantile(level) * float(unit(sd_log, c_factor, self.tau, m_below, gap, n_factor))
        low, high = float(predicted * math.exp(-half)), float(predicted * math.exp(half))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise OverflowError(f"no finite interval: half-width {half:g} in ln units")
        return Interval(level, low, high)

    def to_dict(self) -> dict:
        return {
            "quantity": self.quantity,
            "source": self.source,
            "description": self.description,
            "tau": self.tau,
            "scores": list(self.scores),
            "floor": None if self.floor is None else list(self.floor),
            "distance": self.distance,
        }

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "calibration") -> Calibration:
        try:
            s = tuple(float(v) for v in d["scores"])
            floor = None if d.get("floor") is None else tuple(float(v) for v in d["floor"])
            cal = cls(
                str(d["quantity"]),
                s,
                str(d["source"]),
                str(d.get("description", "")),
                float(d.get("tau", TAU)),
                floor,
                str(d.get("distance", COMPUTE_DISTANCE)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed calibration ({exc})") from None
        if cal.floor is not None and (len(cal.floor) != len(_REF_LEVELS) or not _plausible_scores(cal.floor)):
            raise InputError(f"{where}: malformed calibration (floor of {len(cal.floor)} values)")
        if (
            cal.source not in ("own", "reference")
            or not _plausible_scores(cal.scores)
            or not (math.isfinite(cal.tau) and 0 < cal.tau <= 1)
        ):
            raise InputError(
                f"{where}: malformed calibration (source {cal.source!r}, tau {cal.tau!r}, scores must be "
                f"finite, non-negative and at most {MAX_SCORE:g})"
            )
        if cal.source == "reference" and len(cal.scores) != len(_REF_LEVELS):
            raise InputError(
                f"{where}: malformed calibration (a reference holds {len(_REF_LEVELS)} score quantiles, "
                f"found {len(cal.scores)})"
            )
        return replace(cal, scores=tuple(sorted(cal.scores)))


def _plausible_scores(s) -> bool:
    """Finite, non-negative and at most :data:`MAX_SCORE` (a saved fit may have been edited)."""
    return all(np.isfinite(s)) and min(s) >= 0 and max(s) <= MAX_SCORE


def distance_for(quantity: str) -> str:
    """The distance a new calibration of ``quantity`` measures its scores with."""
    return DISTANCE if quantity == "loss" else COMPUTE_DISTANCE


def _point_scores(pts, dist: str) -> np.ndarray:
    size = dist == DISTANCE
    return scores(
        [p.log_error for p in pts],
        [p.sd_log for p in pts],
        [p.c_factor for p in pts],
        m_below=[p.m_below_factor for p in pts],
        gap=[p.loss_gap for p in pts],
        n_factor=[p.n_factor if size else 1.0 for p in pts],
    )


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
    s = _point_scores(pts, dist)
    origins = len({(p.train_set, p.origin) for p in pts})
    return Calibration(
        quantity,
        tuple(np.sort(s).tolist()),
        "own",
        f"this ladder's own backtest: {len(pts)} predictions from {origins} rolling origins"
        + (", never narrower than the reference's" if floor is not None else ""),
        floor=None if floor is None else floor.scores,
        distance=dist,
    )


def reference_from_backtest(
    points: Sequence, quantity: str, description: str, groups: Sequence[str] | None = None
) -> Calibration:
    """A reference calibration: the score quantiles of a (large) backtest. With ``groups`` (one
    label per point, e.g. the lab of each ladder), every group weighs the same in the quantiles,
    however many predictions its backtest made."""
    keep = [i for i, p in enumerate(points) if p.quantity == quantity and np.isfinite(p.log_error)]
    pts = [points[i] for i in keep]
    if not pts:
        raise InputError(f"no backtest predictions of {quantity!r} to build a reference calibration from")
    s = _point_scores(pts, distance_for(quantity))
    if groups is None:
        q = np.quantile(s, _REF_LEVELS, method="higher")
    else:
        g = np.asarray([groups[i] for i in keep])
        _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
        q = weighted_quantiles(s, 1.0 / counts[inverse], _REF_LEVELS)
    return Calibration(quantity, tuple(np.asarray(q, dtype=float).tolist()), "reference", description)


@cache
def _reference_file() -> dict:
    text = resources.files("lmscale").joinpath("data/reference_calibration.json").read_text(encoding="utf-8")
    return json.loads(text)


def reference(quantity: str = "loss") -> Calibration:
    """The shipped reference calibration of ``loss`` (five public ladders' backtests) or ``error``
    (the paper testbed's chained backtests)."""
    data = _reference_file()
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
    return (
        f"calibrated interval: bootstrap ⊕ extrapolation error (τ = {cal.tau:g} per e-fold of {size}), "
        f"conformal scores {where}"
    )


# ------------------------------------------------------------------------- calibrated predictions
@dataclass(frozen=True)
class CalibratedPrediction:
    """A prediction with its calibrated interval and how it was calibrated."""

    predicted: float
    interval: Interval
    sd_log: float
    c_factor: float
    calibration: Calibration
    m_below: float = 1.0
    #: chained errors: the error law's extrapolation in loss, e-folds of compute (0 for a loss)
    loss_gap: float = 0.0
    n_factor: float = 1.0  # the target's N over the largest fitted N

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


def calibrated(loss_fit, point, level: float, cal: Calibration, error_fit=None) -> CalibratedPrediction:
    """Calibrated interval of the loss at ``point`` or, with ``error_fit``, of the chained error.
    The bootstrap part needs bootstrap samples on the fit(s); without them it is 0 and the interval
    rests on the extrapolation term alone."""
    chain = predict_chain(loss_fit, error_fit, point)
    factors = extrapolation_factors(loss_fit, point)
    c_factor, n_factor = float(factors.get("flops", 1.0)), float(factors.get("n_params", 1.0))
    m_below = m_below_factor(loss_fit, point)
    ls = loss_samples(loss_fit, point)
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
    return replace(result, calibration=choose(points, "loss").to_dict())


def of_fit(result, quantity: str = "loss") -> Calibration:
    """The calibration a fit carries (of ``quantity``: an edited file may hold another's), or the
    shipped reference when it carries none."""
    if not result.calibration:
        return reference(quantity)
    cal = Calibration.from_dict(result.calibration, "fit calibration")
    if cal.quantity != quantity:
        raise InputError(f"fit calibration: of {cal.quantity!r}, but this fit predicts {quantity!r}")
    return cal
