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


def test_an_impossible_loss_or_error_is_refused_not_printed():
    """Found by fuzzing: far below its fitted losses the error law ε − k·e^(−γL) turns negative,
    and a fit file with an edited floor E predicts a negative loss; both were printed as valid
    numbers, with an interval whose low end lay above its high end."""
    from dataclasses import replace

    lf, ef = _fits()
    with pytest.raises(InputError, match="error_17.*predicts an error of -"):
        forecast(ef, loss=0.5)
    low_floor = replace(lf, params={**lf.params, "E": 0.5})  # the chained loss ends below ε's root
    with pytest.raises(InputError, match="lowest fitted loss"):
        forecast(low_floor, ScalePoint.make(1e15, multiplier=20), error_fit=ef)
    negative = replace(lf, params={**lf.params, "E": -5.0})
    with pytest.raises(InputError, match="loss_c4_val.*predicts a loss of -"):
        forecast(negative, ScalePoint.make(1e12, multiplier=20))
    assert forecast(lf, ScalePoint.make(1e12, multiplier=20), error_fit=ef).error > 0


def test_bootstrap_error_intervals_never_go_below_zero():
    runs = RunTable.read(EXAMPLE)
    lf = fit_runs(runs, "overtrain", "loss_python", n_boot=30)
    ef = fit_runs(runs, "error", "error:cloze,next_line", n_boot=30, loss_column="loss_python")
    for n in (1e6, 1e8, 1e10):
        try:
            f = forecast(lf, ScalePoint.make(n, multiplier=20), error_fit=ef)
        except InputError:
            continue  # the point error itself is impossible there: refused
        assert f.error_bootstrap_interval is not None and f.error_bootstrap_interval[0] >= 0
        assert f.error_interval is not None and 0 < f.error_interval[0] <= f.error_interval[1]


def test_cli_names_the_fit_file_whose_prediction_is_impossible(tmp_path):
    import json

    from click.testing import CliRunner

    from lmscale.cli import cli

    fit_file, err_file = tmp_path / "loss.json", tmp_path / "err.json"
    run = CliRunner().invoke
    assert run(cli, ["fit", str(EXAMPLE), "--target", "loss_python", "-o", str(fit_file)]).exit_code == 0
    args = ["--target", "error:cloze,next_line", "--loss-column", "loss_python", "-o", str(err_file)]
    assert run(cli, ["fit", str(EXAMPLE), "--law", "error", *args]).exit_code == 0
    res = run(cli, ["predict", str(err_file), "--loss", "0.01"])
    assert res.exit_code == 2 and "err.json" in res.output and "predicts an error of -" in res.output
    d = json.loads(fit_file.read_text())
    d["params"]["E"] = -5.0  # tampered
    fit_file.write_text(json.dumps(d))
    res = run(cli, ["predict", str(fit_file), "--n-params", "1e6", "--multiplier", "20"])
    assert res.exit_code == 2 and "loss.json" in res.output and "predicts a loss of -" in res.output
    assert "Traceback" not in res.output


def test_options_that_do_not_apply_to_the_fit_are_refused(tmp_path):
    """Found by fuzzing: a loss fit given as --error-fit failed with "law 'overtrain' needs input(s)
    n_params, multiplier"; --loss with a loss-law fit, and --n-params or --error-fit with an
    error-law fit, were silently ignored."""
    from click.testing import CliRunner

    from lmscale.cli import cli

    lf, ef = _fits()
    with pytest.raises(InputError, match="not an error law"):
        predict_chain(lf, lf, ScalePoint.make(1e9, multiplier=20))
    loss_file, err_file = str(lf.save(tmp_path / "loss.json")), str(ef.save(tmp_path / "err.json"))
    point = ["--n-params", "1e9", "--multiplier", "20"]
    for args, needle in [
        ([loss_file, *point, "--error-fit", loss_file], "not an error law"),
        ([loss_file, *point, "--loss", "2.0"], "--loss"),
        ([err_file, "--loss", "2.0", *point], "--n-params"),
        ([err_file, "--loss", "2.0", "--error-fit", err_file], "--error-fit"),
    ]:
        res = CliRunner().invoke(cli, ["predict", *args])
        assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output, res.output


def test_error_intervals_stay_within_a_share_and_under_training_is_warned():
    """Found by fuzzing: at N = 1e12 with D = 1000 (M = 1e-9) the calibrated error interval
    reached 1.73, an impossible share of wrong answers, and nothing said that the token multiplier
    lay far below every fitted run's; a badly fitted law's negative loss was blamed on tampering."""
    import warnings
    from dataclasses import replace

    runs = RunTable.read(EXAMPLE)
    lf = fit_runs(runs, "overtrain", "loss_python", n_boot=30)
    ef = fit_runs(runs, "error", "error:cloze,next_line", n_boot=30, loss_column="loss_python")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning leaks out either
        for n, d in ((1e12, 1e3), (1e30, 1e12), (2e5, 4e6)):
            f = forecast(lf, ScalePoint.make(n, n_tokens=d), error_fit=ef)
            for iv in (f.error_interval, f.error_bootstrap_interval):
                assert iv is not None and 0 <= iv[0] <= iv[1] <= 1, (n, d, iv)
        wild = replace(lf, bootstrap=tuple((*b[:3], -1e4) for b in lf.bootstrap))
        forecast(wild, ScalePoint.make(1e6, multiplier=20), error_fit=ef)  # e^(−γL) overflows there
        with pytest.raises(InputError, match="predicts an error of -inf"):
            forecast(replace(ef, params={**ef.params, "gamma": -1.0}), loss=1000.0)
    f = forecast(lf, ScalePoint.make(1e12, n_tokens=1e3), error_fit=ef)
    assert any("token multiplier M 1e-09" in w and "below the smallest fitted" in w for w in f.warnings)
    over = replace(ef, params={**ef.params, "epsilon": 5.0})
    with pytest.raises(InputError, match="predicts an error of 4.*in \\(0, 1\\]"):
        forecast(over, loss=3.0)
    bad = replace(lf, params={**lf.params, "E": -50.0})
    with pytest.raises(InputError, match="does not hold at this point"):
        forecast(bad, ScalePoint.make(1e12, multiplier=20))
