"""Predicting from fitted laws (lmscale.predict): a scale point from N with D or M, the loss law
chained into the error law at the predicted loss, relative errors, and the forecast a saved fit
gives (intervals only with a bootstrap, warnings when it extrapolates)."""

from pathlib import Path

import numpy as np
import pytest

from lmscale.calibrated_fit import fit_runs
from lmscale.compute import flops
from lmscale.errors import InputError
from lmscale.fit import fit
from lmscale.forecasting import forecast
from lmscale.laws import ERROR, OVERTRAIN
from lmscale.predict import ScalePoint, extrapolation_factors, predict_chain, relative_error
from lmscale.run_table import RunTable

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cpu-small" / "runs.jsonl"
TRUTH = {"A": 120.0, "B": 300.0, "c": -0.25, "E": 1.7}
ERR_TRUTH = {"epsilon": 0.85, "k": 2.0, "gamma": 0.75}


def _fits():
    n = np.repeat([1e7, 3e7, 8e7, 1.5e8], 3)
    m = np.tile([10.0, 20.0, 80.0], 4)
    loss = OVERTRAIN(TRUTH, n_params=n, multiplier=m)
    lf = fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss, method="varpro", target="loss_c4_val")
    ef = fit(
        ERROR,
        {"loss": loss},
        ERROR(ERR_TRUTH, loss=loss),
        method="varpro",
        target="error_17",
        input_columns={"loss": "loss_c4_val"},
    )
    return lf, ef


def test_a_point_from_tokens_or_multiplier_is_the_same_point():
    a = ScalePoint.make(1.4e9, multiplier=20)
    b = ScalePoint.make(1.4e9, n_tokens=28e9)
    assert a == b and a.multiplier == pytest.approx(20.0)
    assert a.flops == flops(1.4e9, 28e9)
    for bad in (dict(), dict(multiplier=20, n_tokens=1e9)):
        with pytest.raises(InputError, match="exactly one"):
            ScalePoint.make(1e9, **bad)
    for n, m in ((-1.0, 20.0), (1e9, 0.0), (True, 20.0), (float("nan"), 20.0)):
        with pytest.raises(InputError, match="positive number"):
            ScalePoint.make(n, multiplier=m)
    with pytest.raises(InputError, match="out of floating-point range"):
        ScalePoint.make(1e200, multiplier=1e200)


def test_the_error_law_is_evaluated_at_the_predicted_loss():
    lf, ef = _fits()
    point = ScalePoint.make(6.9e9, multiplier=20)
    chained = predict_chain(lf, ef, point)
    assert chained.loss == pytest.approx(OVERTRAIN(TRUTH, n_params=6.9e9, multiplier=20.0), rel=1e-9)
    assert chained.error == pytest.approx(ERROR(ERR_TRUTH, loss=chained.loss), rel=1e-9)
    assert predict_chain(lf, None, point).error is None
    other = fit(ERROR, ef.x, ef.y, method="varpro", input_columns={"loss": "loss_paloma"})
    with pytest.raises(InputError, match="same validation loss"):
        predict_chain(lf, other, point)


def test_relative_error_needs_an_observed_value():
    assert relative_error(2.2, 2.0) == pytest.approx(0.1)
    assert relative_error(1.8, 2.0) == pytest.approx(0.1)
    for observed in (0.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="non-zero finite"):
            relative_error(1.0, observed)


def test_forecast_without_a_bootstrap_has_no_interval_and_warns_when_it_extrapolates():
    lf, ef = _fits()
    far = ScalePoint.make(6.9e9, multiplier=20)
    f = forecast(lf, far, error_fit=ef)
    assert f.loss == predict_chain(lf, ef, far).loss and f.error == predict_chain(lf, ef, far).error
    assert f.loss_interval is None and f.error_interval is None
    assert extrapolation_factors(lf, far)["n_params"] == pytest.approx(6.9e9 / 1.5e8)
    assert any("parameters N" in w for w in f.warnings)
    assert any("the error law extrapolates" in w and "e-folds" in w for w in f.warnings)
    assert forecast(lf, ScalePoint.make(3e7, multiplier=20)).warnings == ()
    inside = forecast(lf, ScalePoint.make(3e7, multiplier=20), error_fit=ef)
    assert not any("error law" in w for w in inside.warnings)
    assert forecast(ef, loss=2.5).error == pytest.approx(ERROR(ERR_TRUTH, loss=2.5), rel=1e-9)
    with pytest.raises(InputError, match="give loss="):
        forecast(ef)
    with pytest.raises(InputError, match="give N"):
        forecast(lf)


def test_forecast_with_a_bootstrap_brackets_its_prediction():
    runs = RunTable.read(EXAMPLE)
    lf = fit_runs(runs, "overtrain", "loss_python", n_boot=30)
    f = forecast(lf, ScalePoint.make(2e5, multiplier=20), level=0.8)
    assert f.loss_interval is not None and f.loss_interval[0] < f.loss < f.loss_interval[1]
    wider = forecast(lf, ScalePoint.make(2e5, multiplier=20), level=0.95)
    assert wider.loss_interval is not None
    assert wider.loss_interval[0] <= f.loss_interval[0] and f.loss_interval[1] <= wider.loss_interval[1]
