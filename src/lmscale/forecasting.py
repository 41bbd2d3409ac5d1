"""Forecasts: what ``lmscale predict`` reports for one point — the chained prediction, its
calibrated intervals and the bootstrap-only ones beside them, and the extrapolation warnings.

(Named ``forecasting`` so that the module never shadows the ``lmscale.forecast`` function.) Sits
above :mod:`lmscale.calibration` (which sits above :mod:`lmscale.predict` and
:mod:`lmscale.backtest`): the prediction stack imports one way, fit → predict → backtest →
calibration → forecast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmscale import calibration as cal
from lmscale.errors import InputError
from lmscale.fit.result import FitResult
from lmscale.predict import (
    ScalePoint,
    extrapolation_warnings,
    loss_gap,
    predict_chain,
    predict_with_intervals,
)


@dataclass(frozen=True)
class Forecast:
    """What ``lmscale predict`` reports for one point: the chained prediction, its calibrated
    intervals (fits saved with a bootstrap) and the bootstrap-only intervals beside them, and the
    extrapolation warnings."""

    #: the configuration predicted (None for an error-law fit given a loss)
    point: ScalePoint | None
    #: predicted validation loss (nats), or the loss given to an error-law fit: for the default
    #: method beyond its fitted runs, the loss law's value moved by the calibration's center shift
    loss: float
    #: predicted downstream error (None without an error fit)
    error: float | None
    #: the loss law's target column (e.g. ``loss_c4_val``); None for an error-law fit alone
    target: str | None = None
    #: interval level of every interval below
    level: float = 0.9
    #: calibrated loss interval (low, high) and how it was calibrated
    loss_interval: tuple[float, float] | None = None
    loss_interval_method: str | None = None
    #: bootstrap-only loss interval (parameter uncertainty + the fit's residual noise)
    loss_bootstrap_interval: tuple[float, float] | None = None
    error_interval: tuple[float, float] | None = None
    error_interval_method: str | None = None
    error_bootstrap_interval: tuple[float, float] | None = None
    warnings: tuple[str, ...] = ()
    #: the loss law's own value where ``loss`` is centered away from it (else None), and the shift
    law_loss: float | None = None
    center_shift: float = 0.0

    @property
    def center_note(self) -> str | None:
        """One line on the center for outputs (None where ``loss`` is the law's own value)."""
        if self.law_loss is None:
            return None
        return (
            f"loss = law_loss · exp(center_shift), moved by {100 * np.expm1(self.center_shift):+.2f}%: the "
            "default method's mean error beyond its fitted runs in the shipped loss reference's backtests "
            "(public ladders), not this ladder's own"
        )

    def to_dict(self) -> dict:
        d: dict = {**(self.point.inputs() if self.point else {}), "loss": self.loss, "error": self.error}
        if self.point is not None:
            d["target"] = self.target
        if self.law_loss is not None:
            d["law_loss"], d["center_shift"] = self.law_loss, self.center_shift
        for k in (
            "loss_interval",
            "loss_interval_method",
            "loss_bootstrap_interval",
            "error_interval",
            "error_interval_method",
            "error_bootstrap_interval",
        ):
            v = getattr(self, k)
            if v is not None:
                d[k] = list(v) if isinstance(v, tuple) else v
        if self.point is not None:
            d["warnings"] = list(self.warnings)
        return d


def forecast(
    loss_fit: FitResult,
    point: ScalePoint | None = None,
    *,
    error_fit: FitResult | None = None,
    loss: float | None = None,
    level: float = 0.9,
) -> Forecast:
    """Predict from saved fits as the CLI does. A loss-law fit needs ``point``; an error-law fit
    alone needs ``loss`` (the validation loss it maps). Intervals are added when the loss fit
    carries a bootstrap (``lmscale fit --bootstrap``)."""
    if loss_fit.law == "error":
        if loss is None:
            raise InputError("an error-law fit predicts from a validation loss: give loss=")
        if not (isinstance(loss, (int, float)) and np.isfinite(loss) and loss > 0):
            raise InputError(f"--loss (loss=) must be a positive finite validation loss (nats), got {loss!r}")
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
            error = float(loss_fit.predict(loss=loss))
        _check_error(loss_fit, error, float(loss))
        return Forecast(None, float(loss), error, level=level)
    if point is None:
        raise InputError("a loss-law fit predicts at a point: give N and one of D or M")
    lc = cal.of_fit(loss_fit, "loss")
    shift = cal.center_shift(loss_fit, point, lc)
    pred = predict_chain(loss_fit, error_fit, point, shift)
    if not (np.isfinite(pred.loss) and pred.loss > 0):
        raise InputError(
            f"the loss law of {loss_fit.target!r} predicts a loss of {pred.loss:.4g} at N = "
            f"{point.n_params:.4g}, D = {point.n_tokens:.4g}: a loss is a positive number, so the "
            f"law does not hold at this point (its parameters: {_params(loss_fit)})"
        )
    if error_fit is not None:
        assert pred.error is not None
        _check_error(error_fit, pred.error, pred.loss)
    extra: dict = {}
    if shift:
        extra.update(law_loss=pred.loss / float(np.exp(shift)), center_shift=shift)
    if loss_fit.bootstrap:
        li = _finite_interval(lambda: cal.calibrated(loss_fit, point, level, lc).interval)
        up = predict_with_intervals(loss_fit, error_fit, point, level=level, loss_shift=shift)
        extra.update(
            loss_interval=(li.low, li.high),
            loss_interval_method=cal.describe(lc),
            loss_bootstrap_interval=(up.loss_prediction.low, up.loss_prediction.high),
        )
        if error_fit is not None:
            ec = cal.of_fit(error_fit, "error")
            ei = _finite_interval(
                lambda: cal.calibrated(loss_fit, point, level, ec, error_fit=error_fit, loss_cal=lc).interval
            )
            # an error is a share of wrong answers: an interval's ends beyond [0, 1] are cut there
            extra.update(error_interval=_share(ei.low, ei.high), error_interval_method=cal.describe(ec))
            if up.error_prediction is not None:
                extra["error_bootstrap_interval"] = _share(up.error_prediction.low, up.error_prediction.high)
    warnings = extrapolation_warnings(loss_fit, point)
    if error_fit is not None:
        warnings += _error_law_warnings(loss_fit, error_fit, pred.loss)
    return Forecast(
        point,
        pred.loss,
        pred.error,
        target=loss_fit.target,
        level=level,
        warnings=tuple(warnings),
        **extra,
    )


def _error_law_warnings(loss_fit: FitResult, error_fit: FitResult, predicted_loss: float) -> list[str]:
    """A warning when the error law is asked below the losses it was fitted on."""
    fitted = error_fit.x_arrays.get("loss")
    if fitted is None or not len(fitted) or predicted_loss >= float(np.min(fitted)):
        return []
    gap = float(loss_gap(loss_fit, float(np.min(fitted)), predicted_loss)[0])
    return [
        f"the error law extrapolates: the predicted loss {predicted_loss:.4g} lies below its lowest "
        f"fitted loss {float(np.min(fitted)):.4g} ({gap:.2g} e-folds of compute by the loss law)"
    ]


def _params(fit: FitResult) -> str:
    return ", ".join(f"{k} = {v:.4g}" for k, v in fit.params.items())


def _share(low: float, high: float) -> tuple[float, float]:
    return (min(max(low, 0.0), 1.0), min(max(high, 0.0), 1.0))


def _check_error(error_fit: FitResult, error: float, loss: float) -> None:
    """A downstream error is a share of wrong answers: a law that predicts one at or below 0 (the
    error law ε − k·e^(−γL) far below the losses it was fitted on), above 1 or a non-finite one is
    refused."""
    if np.isfinite(error) and 0 < error <= 1:
        return
    fitted = error_fit.x_arrays.get("loss")
    lowest = (
        f"; its lowest fitted loss is {float(np.min(fitted)):.4g}"
        if fitted is not None and len(fitted)
        else ""
    )
    raise InputError(
        f"the error law of {error_fit.target!r} predicts an error of {error:.4g} at loss {loss:.4g}: "
        f"an error is a share of wrong answers, in (0, 1], so the law does not hold at this loss{lowest} "
        f"({_params(error_fit)}); predict the loss alone, without the error fit"
    )


def _finite_interval(compute):
    """A calibrated interval, or a clear error when the fit's calibration makes it overflow."""
    try:
        return compute()
    except OverflowError:
        raise InputError(
            "the fit's calibration gives no finite interval at this point (its scores or tau are "
            "beyond any backtest's): refit with --bootstrap"
        ) from None
