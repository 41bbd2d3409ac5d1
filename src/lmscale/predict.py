"""Chained prediction: (N, M) or (N, D) → loss → downstream error, and relative errors against
observed values."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lmscale.errors import InputError
from lmscale.fit.result import FitResult


@dataclass(frozen=True)
class ScalePoint:
    """A training configuration: N parameters, D tokens, M = D/N, C = 6·N·D FLOPs."""

    n_params: float
    n_tokens: float

    @property
    def multiplier(self) -> float:
        return self.n_tokens / self.n_params

    @property
    def flops(self) -> float:
        return 6.0 * self.n_params * self.n_tokens

    @classmethod
    def make(
        cls, n_params: float, *, multiplier: float | None = None, n_tokens: float | None = None
    ) -> ScalePoint:
        if (multiplier is None) == (n_tokens is None):
            raise InputError("give exactly one of the token multiplier M or the token count D")
        for name, v in (("n_params", n_params), ("multiplier", multiplier), ("n_tokens", n_tokens)):
            if v is not None and not (
                isinstance(v, (int, float, np.number))
                and not isinstance(v, bool)
                and np.isfinite(v)
                and v > 0
            ):
                raise InputError(f"{name} must be a positive number, got {v!r}")
        d = float(n_tokens) if n_tokens is not None else float(multiplier or 0.0) * float(n_params)
        point = cls(float(n_params), d)
        with np.errstate(all="ignore"):
            derived = (point.n_tokens, point.multiplier, point.flops)
        if not all(np.isfinite(v) and v > 0 for v in derived):
            raise InputError(
                f"N = {n_params!r} with {'M' if multiplier is not None else 'D'} = "
                f"{multiplier if multiplier is not None else n_tokens!r} puts D, M or C = 6·N·D out of "
                "floating-point range"
            )
        return point

    def inputs(self) -> dict[str, float]:
        return {
            "n_params": self.n_params,
            "n_tokens": self.n_tokens,
            "multiplier": self.multiplier,
            "flops": self.flops,
        }


@dataclass(frozen=True)
class ChainedPrediction:
    point: ScalePoint
    loss: float
    error: float | None = None


def predict_loss(loss_fit: FitResult, point: ScalePoint) -> float:
    law = loss_fit.law_obj
    values = point.inputs()
    return float(loss_fit.predict(**{k: values[k] for k in law.inputs}))


def predict_error(error_fit: FitResult, loss: float) -> float:
    return float(error_fit.predict(loss=loss))


def predict_chain(
    loss_fit: FitResult, error_fit: FitResult | None, point: ScalePoint, loss_shift: float = 0.0
) -> ChainedPrediction:
    """Predict the loss of ``point`` (the law's value · exp(``loss_shift``): a calibration's center,
    :func:`lmscale.calibration.center_shift`) and, with an error fit, the error at that loss."""
    if error_fit is not None and "loss" not in error_fit.law_obj.inputs:
        raise InputError(
            f"the error fit of {error_fit.target!r} is not an error law (law {error_fit.law!r} maps "
            f"{', '.join(error_fit.law_obj.inputs)}, not a loss): chain through a fit of --law error"
        )
    if error_fit is not None and loss_fit.target != error_fit.input_columns.get("loss", loss_fit.target):
        raise InputError(
            f"the error law was fitted on {error_fit.input_columns.get('loss')!r} but the loss law "
            f"predicts {loss_fit.target!r}; chain fits of the same validation loss"
        )
    with np.errstate(
        over="ignore", invalid="ignore"
    ):  # an overflow is a non-finite value: forecast refuses it
        loss = predict_loss(loss_fit, point) * float(np.exp(loss_shift))
        error = None if error_fit is None else predict_error(error_fit, loss)
    return ChainedPrediction(point, loss, error)


def relative_error(predicted: float, observed: float) -> float:
    """|pred − true| / true; the observed value must be a non-zero finite number."""
    if not (np.isfinite(observed) and observed != 0):
        raise InputError(f"a relative error needs a non-zero finite observed value, got {observed!r}")
    return abs(predicted - observed) / abs(observed)


# ------------------------------------------------------------------------------ uncertainty
@dataclass(frozen=True)
class Interval:
    level: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class UncertainPrediction:
    """A chained prediction with bootstrap intervals. ``confidence`` covers the law's parameter
    uncertainty; ``prediction`` adds run-to-run noise (the fit's residual scale), so it is the one
    to compare with a single new run."""

    point: ScalePoint
    loss: float
    loss_confidence: Interval
    loss_prediction: Interval
    error: float | None = None
    error_confidence: Interval | None = None
    error_prediction: Interval | None = None
    warnings: tuple[str, ...] = ()


def _noise(fit: FitResult, size: int, rng: np.random.Generator) -> np.ndarray:
    sd = fit.noise_sd
    if sd is None or not np.isfinite(sd):
        sd = float(fit.diagnostics.rmse or 0.0)
    return rng.normal(0.0, sd, size)


def _interval(samples: np.ndarray, level: float) -> Interval:
    lo, hi = np.percentile(samples, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return Interval(level, float(lo), float(hi))


def predict_with_intervals(
    loss_fit: FitResult,
    error_fit: FitResult | None,
    point: ScalePoint,
    *,
    level: float = 0.9,
    seed: int = 0,
    loss_shift: float = 0.0,
) -> UncertainPrediction:
    """Chained prediction with percentile intervals from the fits' bootstrap samples.

    For the error, each bootstrap loss (with run noise for the prediction interval) is mapped
    through an independently drawn bootstrap error law. ``loss_shift``: every loss (the prediction
    and its samples) times exp(loss_shift), as :func:`predict_chain`.
    """
    if not 0 < level < 1:
        raise InputError(f"interval level must lie in (0, 1), got {level!r}")
    rng = np.random.default_rng(seed)
    base = predict_chain(loss_fit, error_fit, point, loss_shift)
    law = loss_fit.law_obj
    values = point.inputs()
    loss_s = loss_fit.predict_samples(**{k: np.array([values[k]]) for k in law.inputs})[:, 0]
    loss_s = loss_s * float(np.exp(loss_shift))
    loss_s = loss_s[np.isfinite(loss_s)]
    loss_noisy = loss_s + _noise(loss_fit, len(loss_s), rng)
    result = UncertainPrediction(
        point=point,
        loss=base.loss,
        loss_confidence=_interval(loss_s, level),
        loss_prediction=_interval(loss_noisy, level),
        warnings=tuple(extrapolation_warnings(loss_fit, point)),
    )
    if error_fit is not None:
        ep = np.asarray(
            error_fit.bootstrap if error_fit.bootstrap else [error_fit.law_obj.vector(error_fit.params)]
        )
        pick = ep[rng.integers(0, len(ep), len(loss_s))]
        elaw = error_fit.law_obj
        with np.errstate(over="ignore", invalid="ignore"):  # far-off loss samples overflow e^(−γL)
            err_conf = elaw.evaluate_vector(pick, {"loss": loss_s[:, None]})[:, 0]
            err_pred = elaw.evaluate_vector(pick, {"loss": loss_noisy[:, None]})[:, 0]
        err_pred = err_pred + _noise(error_fit, len(err_pred), rng)
        # an error is a share of wrong answers: samples outside [0, 1] (the law far below its
        # fitted losses, or run noise) count as its ends, so an interval never reaches beyond them
        err_conf, err_pred = np.clip(err_conf, 0.0, 1.0), np.clip(err_pred, 0.0, 1.0)
        result = replace(
            result,
            error=base.error,
            error_confidence=_interval(err_conf, level),
            error_prediction=_interval(err_pred, level),
        )
    return result


def extrapolation_factors(fit: FitResult, point: ScalePoint) -> dict[str, float]:
    """How far ``point`` lies beyond the fitted runs: target ÷ largest fitted value for N, M (or D)
    and compute (values ≤ 1 are inside the fitted range); a law of compute alone (the power law): of
    compute only."""
    x = fit.x_arrays
    n = x.get("n_params")
    if n is None:
        return {"flops": point.flops / x["flops"].max()} if "flops" in x else {}
    m = x["multiplier"] if "multiplier" in x else x["n_tokens"] / n
    c = 6.0 * n * n * m
    return {
        "n_params": point.n_params / n.max(),
        "multiplier": point.multiplier / m.max(),
        "flops": point.flops / c.max(),
    }


#: the loss gap's largest value in e-folds of compute: a predicted loss at or below the loss law's
#: floor E (where the gap is infinite) counts as this far beyond
MAX_LOSS_GAP = 20.0


def loss_gap(loss_fit: FitResult, lowest_fitted_loss: float, predicted_loss) -> np.ndarray:
    """How far a chained error law extrapolates in loss, as e-folds of compute: the error law was
    fitted on losses down to ``lowest_fitted_loss`` and is asked at ``predicted_loss``; by the loss
    law, at a fixed token multiplier, the reducible loss L − E falls as C^(−η), so the gap is
    ln((L_fit,min − E) / (L_pred − E)) / η (0 when the prediction lies inside the fitted losses).
    η: −c/2 for Eq. 4; the slower of α/2 and β/2 for Chinchilla's form; η for the power law in
    compute. Other laws give 0."""
    pred = np.atleast_1d(np.asarray(predicted_loss, dtype=float))
    p = loss_fit.params
    if loss_fit.law == "overtrain":
        eta = -float(p["c"]) / 2
    elif loss_fit.law == "chinchilla":
        eta = min(float(p["alpha"]), float(p["beta"])) / 2
    elif loss_fit.law == "power":
        eta = float(p["eta"])
    else:
        return np.zeros_like(pred)
    floor, low = float(p["E"]), float(lowest_fitted_loss)
    if not (np.isfinite(eta) and eta > 0 and np.isfinite(low) and low > floor):
        return np.zeros_like(pred)
    with np.errstate(all="ignore"):
        gap = np.log((low - floor) / (pred - floor)) / eta
    gap = np.where(pred - floor > 0, gap, MAX_LOSS_GAP)
    return np.clip(np.nan_to_num(gap, nan=0.0), 0.0, MAX_LOSS_GAP)


def extrapolation_warnings(fit: FitResult, point: ScalePoint) -> list[str]:
    labels = {"n_params": "parameters N", "multiplier": "token multiplier M", "flops": "compute C"}
    out = [
        f"extrapolating {labels[k]} {f:.3g}× beyond the largest fitted run"
        for k, f in extrapolation_factors(fit, point).items()
        if f > 1.0 + 1e-9
    ]
    below = m_below_factor(fit, point)  # under-trained targets lie outside the fitted runs too
    if below > 1.0 + 1e-9:
        out.append(
            f"the token multiplier M {point.multiplier:.3g} lies {below:.3g}× below the smallest fitted run's"
        )
    return out


def m_below_factor(fit: FitResult, point: ScalePoint) -> float:
    """The smallest fitted token multiplier over the target's (above 1: the target is trained on
    fewer tokens per parameter than any fitted run); 1 for a law without N."""
    x = fit.x_arrays
    if "n_params" not in x:
        return 1.0
    m = x["multiplier"] if "multiplier" in x else x["n_tokens"] / x["n_params"]
    with np.errstate(all="ignore"):
        return float(m.min() / point.multiplier)
