"""Chained prediction: (N, M) or (N, D) → loss → downstream error, and relative errors against
observed values."""

from __future__ import annotations

from dataclasses import dataclass

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
    def make(cls, n_params: float, *, multiplier: float | None = None, n_tokens: float | None = None) -> ScalePoint:
        if (multiplier is None) == (n_tokens is None):
            raise InputError("give exactly one of the token multiplier M or the token count D")
        for name, v in (("n_params", n_params), ("multiplier", multiplier), ("n_tokens", n_tokens)):
            if v is not None and not (np.isfinite(v) and v > 0):
                raise InputError(f"{name} must be a positive number, got {v!r}")
        return cls(float(n_params), float(n_tokens) if n_tokens is not None else float(multiplier) * float(n_params))

    def inputs(self) -> dict[str, float]:
        return {"n_params": self.n_params, "n_tokens": self.n_tokens, "multiplier": self.multiplier,
                "flops": self.flops}


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


def predict_chain(loss_fit: FitResult, error_fit: FitResult | None, point: ScalePoint) -> ChainedPrediction:
    """Predict the loss of ``point`` and, with an error fit, the error at that predicted loss."""
    if error_fit is not None and loss_fit.target != error_fit.input_columns.get("loss", loss_fit.target):
        raise InputError(f"the error law was fitted on {error_fit.input_columns.get('loss')!r} but the loss law "
                         f"predicts {loss_fit.target!r}; chain fits of the same validation loss")
    loss = predict_loss(loss_fit, point)
    return ChainedPrediction(point, loss, None if error_fit is None else predict_error(error_fit, loss))


def relative_error(predicted: float, observed: float) -> float:
    """|pred − true| / true."""
    return abs(predicted - observed) / abs(observed)
