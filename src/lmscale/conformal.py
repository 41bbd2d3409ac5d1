"""Conformal scores of lmscale's calibrated intervals: the extrapolation distance d, the
uncertainty unit u, the scores |ln(observed / predicted) − shift| / u, and :class:`Calibration`,
which holds the scores of a backtest and turns them into an interval around a prediction's center.
How they are learned and used is :mod:`lmscale.calibration` (which re-exports every name here)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from lmscale.errors import InputError
from lmscale.predict import Interval

#: the extrapolation term's scale per e-fold of compute beyond the fitted runs (ln units). Chosen on
#: the paper testbed's backtests: the narrowest 90% intervals at equal coverage lie at τ ≤ 0.01 for
#: both the loss and the chained error (benchmarks/calibrate.py prints the scan)
TAU = 0.01
#: fewest backtest scores (from at least two origins) for a ladder to calibrate its own intervals
MIN_OWN_SCORES = 20
#: a calibration score larger than this (the truth a thousand units u from the prediction) is not
#: from a backtest: a saved fit holding one is refused when it is read
MAX_SCORE = 1e3
#: the largest center shift a calibration may hold (ln units): a saved fit with more was edited
MAX_SHIFT = 0.2
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


def scores(
    log_error, sd_log, c_factor, tau: float = TAU, m_below=1.0, gap=0.0, n_factor=1.0, shift: float = 0.0
) -> np.ndarray:
    """|ln(observed / predicted) − shift| / u for backtest predictions (the shift only beyond the
    fitted runs, d > 0, where a prediction is centered by it)."""
    e = np.asarray(log_error, dtype=float)
    if shift:
        e = e - shift * (distance(c_factor, m_below, gap, n_factor) > 0)
    return np.abs(e) / unit(sd_log, c_factor, tau, m_below, gap, n_factor)


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
    #: ln(center / law) of a prediction beyond the fitted runs: the backtests' mean signed error
    #: (module docstring); 0 for a calibration saved before it, and for other methods' fits
    shift: float = 0.0

    def __post_init__(self):
        if self.distance is None:
            object.__setattr__(self, "distance", distance_for(self.quantity))
        if self.distance not in (DISTANCE, COMPUTE_DISTANCE):
            raise InputError(f"unknown calibration distance {self.distance!r}; known: {DISTANCE}, C+M")
        if not self.scores:
            raise InputError("a calibration needs at least one backtest score")
        if not (math.isfinite(self.shift) and abs(self.shift) <= MAX_SHIFT):
            raise InputError(
                f"a calibration's shift must be a number within ±{MAX_SHIFT:g}, got {self.shift!r}"
            )

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

    def center(
        self, predicted: float, c_factor: float, m_below: float = 1.0, gap: float = 0.0, n_factor: float = 1.0
    ) -> float:
        """Where the interval of a prediction is centered: the law's value · exp(shift) beyond the
        fitted runs (d > 0), the law's value inside them."""
        if self.distance == COMPUTE_DISTANCE:
            n_factor = 1.0
        beyond = float(distance(c_factor, m_below, gap, n_factor)) > 0
        return float(predicted * math.exp(self.shift)) if self.shift and beyond else float(predicted)

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
        """The interval at ``level`` of the law's prediction ``predicted``, around its center."""
        mid = self.center(predicted, c_factor, m_below, gap, n_factor)
        if self.distance == COMPUTE_DISTANCE:
            n_factor = 1.0
        half = self.quantile(level) * float(unit(sd_log, c_factor, self.tau, m_below, gap, n_factor))
        low, high = float(mid * math.exp(-half)), float(mid * math.exp(half))
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
            "shift": self.shift,
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
                float(d.get("shift", 0.0)),
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
