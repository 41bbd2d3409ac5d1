"""The center of a prediction (lmscale.calibration): the default method's loss beyond its fitted runs
is moved by the reference's shift — the mean signed error of the backtests it was built from — and
its interval is centered there; other methods, and predictions inside the fitted runs, keep the law's
value."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmscale import calibration as cal
from lmscale.backtest import BacktestPoint
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.fit.core import fit
from lmscale.forecasting import forecast
from lmscale.laws import ERROR, OVERTRAIN
from lmscale.predict import ScalePoint

RUNS = Path(__file__).parent.parent / "examples" / "cpu-small" / "runs.jsonl"


def _point(log_error, c_factor=4.0, n_factor=1.0):
    return BacktestPoint(
        method="rel-ls-size",
        origin_kind="size",
        origin="N ≤ 1",
        run_id="r",
        quantity="loss",
        n_params=1.0,
        multiplier=20.0,
        flops=1.0,
        predicted=1.0,
        observed=float(math.exp(log_error)),
        rel_error=abs(math.expm1(log_error)),
        log_error=log_error,
        sd_log=0.0,
        n_factor=n_factor,
        m_factor=1.0,
        c_factor=c_factor,
        m_below_factor=1.0,
        n_fit_runs=10,
    )


def test_the_reference_shift_is_the_mean_signed_error_with_labs_weighing_the_same():
    # lab a: 30 predictions 2% over the truth; lab b: 10 predictions exactly right
    pts = [_point(-0.02) for _ in range(30)] + [_point(0.0) for _ in range(10)]
    ref = cal.reference_from_backtest(pts, "loss", "test", ["a"] * 30 + ["b"] * 10)
    assert ref.shift == pytest.approx(-0.01)  # each lab weighs the same, not each prediction
    assert cal.reference_from_backtest(pts, "loss", "test").shift == pytest.approx(-0.015)
    # scores are measured from the center: every error now lies 0.01 from it
    assert np.allclose(cal._point_scores(pts, cal.DISTANCE, ref.shift), 0.01 / (0.01 * (1 + math.log(4))))
    assert cal.reference_from_backtest(pts, "loss", "test", shift=0.0).shift == 0.0
    errors = [replace(p, quantity="error") for p in pts]
    assert cal.reference_from_backtest(errors, "error", "test").shift == 0.0  # the chained error: none


def test_the_center_moves_only_beyond_the_fitted_runs():
    c = replace(cal.reference("loss"), shift=-0.01)
    assert c.center(3.0, 0.5, 1.0, 0.0, 0.9) == 3.0  # inside the fitted compute, size and M
    assert c.center(3.0, 2.0) == pytest.approx(3.0 * math.exp(-0.01))
    assert c.center(3.0, 0.5, 1.0, 0.0, 2.0) == pytest.approx(3.0 * math.exp(-0.01))  # larger N
    assert c.center(3.0, 0.5, 2.0) == pytest.approx(3.0 * math.exp(-0.01))  # below the fitted M
    iv = c.interval(3.0, 0.0, 8.0, 0.9)
    assert math.sqrt(iv.low * iv.high) == pytest.approx(3.0 * math.exp(-0.01))  # centered in ln
    from types import SimpleNamespace

    default, paper = (
        SimpleNamespace(method="rel-ls-size", law="overtrain"),
        SimpleNamespace(method="paper", law="overtrain"),
    )
    assert cal.for_fit(c, paper).shift == 0.0 and cal.for_fit(c, default) is c
    assert cal.for_fit(c, SimpleNamespace(method="rel-ls-size", law="power")).shift == 0.0


def test_shift_round_trips_and_absurd_ones_are_refused():
    c = replace(cal.reference("loss"), shift=-0.006)
    assert cal.Calibration.from_dict(c.to_dict()) == c
    old = c.to_dict()
    old.pop("shift")  # a fit saved before the shift keeps the law's value
    assert cal.Calibration.from_dict(old).shift == 0.0
    for bad in (float("nan"), 0.5, "x"):
        with pytest.raises(InputError, match="calibration"):
            cal.Calibration.from_dict({**c.to_dict(), "shift": bad})


def _ladder():
    n = np.repeat(np.geomspace(1e7, 4e8, 5), 4)
    m = np.tile([5.0, 10.0, 20.0, 40.0], 5)
    loss = OVERTRAIN.formula({"A": 8e2, "B": 1.2e3, "c": -0.3, "E": 1.8}, {"n_params": n, "multiplier": m})
    return n, m, loss * (1 + 0.003 * np.sin(np.arange(len(n))))


def test_a_default_forecast_beyond_the_fit_is_centered_and_says_so():
    n, m, loss = _ladder()
    shift = cal.reference("loss").shift
    assert shift < 0  # the public ladders' backtests over-predict on average
    far, inside = ScalePoint.make(4e9, multiplier=20.0), ScalePoint.make(1e8, multiplier=10.0)
    for method, moved in (("default", True), ("paper", False)):
        lf = fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss, method=method, target="loss_x")
        law = float(lf.predict(n_params=4e9, multiplier=20.0))
        got = forecast(lf, far)
        assert got.loss == pytest.approx(law * math.exp(shift) if moved else law, rel=1e-12)
        assert (got.law_loss is not None) == moved and (got.law_loss or law) == pytest.approx(law)
        assert forecast(lf, inside).loss == pytest.approx(float(lf.predict(n_params=1e8, multiplier=10.0)))
    # the chained error is asked at the centered loss
    lf = fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss, target="loss_x")
    ef = fit(ERROR, {"loss": loss}, 0.9 - 6.0 * np.exp(-1.2 * loss), input_columns={"loss": "loss_x"})
    got = forecast(lf, far, error_fit=ef)
    assert got.error == pytest.approx(float(ef.predict(loss=got.loss)))


def test_predict_centers_the_interval_of_a_saved_fit(tmp_path):
    fit_file = tmp_path / "fit.json"
    args = ["fit", str(RUNS), "--target", "loss_python", "--bootstrap", "40", "-o", str(fit_file)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    saved = json.loads(fit_file.read_text())
    assert saved["calibration"]["shift"] == cal.reference("loss").shift  # inherited from the floor
    res = CliRunner().invoke(cli, ["predict", str(fit_file), "--n-params", "2M", "--multiplier", "20"])
    assert res.exit_code == 0 and "moved by" in res.output and "centered" in res.output, res.output
    # the shift is the shipped reference's (own calibrations inherit it), not this ladder's backtest's
    assert "reference's backtests" in " ".join(res.output.split()), res.output
    res = CliRunner().invoke(
        cli, ["predict", str(fit_file), "--n-params", "2M", "--multiplier", "20", "--format", "json"]
    )
    out = json.loads(res.stdout)
    low, high = out["loss_interval"]
    assert math.sqrt(low * high) == pytest.approx(out["loss"], rel=1e-9)
    assert out["loss"] == pytest.approx(out["law_loss"] * math.exp(out["center_shift"]))


def test_for_method_knows_the_default_by_any_of_its_names():
    c = replace(cal.reference("loss"), shift=-0.01)
    for name in ("default", "recommended", "rel-ls-size", "rel-ls-size+varpro"):
        assert cal.for_method(c, name) is c
    for name in ("paper", "paper+varpro", "rel-ls"):
        assert cal.for_method(c, name).shift == 0.0
    assert cal.for_method(c, "default", "chinchilla").shift == 0.0


def test_backtest_of_the_paper_method_does_not_claim_the_center(tmp_path):
    base = ["backtest", str(RUNS), "--target", "loss_python", "--bootstrap", "10", "--out", str(tmp_path)]
    res = CliRunner().invoke(cli, [*base, "--method", "paper"])
    assert res.exit_code == 0, res.output
    assert "paper:" in res.output and "centered" not in res.output  # the paper's law keeps its value
    res = CliRunner().invoke(cli, [*base, "--method", "default"])
    assert res.exit_code == 0 and "centered" in res.output, res.output


def test_report_figures_show_the_held_out_table_s_centered_predictions():
    """`lmscale report` (method default) prints the held-out table from the Study and Figure 1 and
    the heat maps from the analyses: the same run must show the same predicted loss and error."""
    from lmscale.analyses import headline
    from lmscale.analyses.context import Context, Setting
    from lmscale.pipeline import holdout_spec
    from lmscale.run_table import RunTable

    runs = RunTable.read(RUNS)
    split = "cloze,brackets,next_line,first_word"
    ctx = Context(runs, Setting(spec=holdout_spec(runs), val_set="python", split=split, method="default"))
    ts = ctx.train_sets[0]
    held = {(r.run_id, r.target): r.predicted for r in ctx.study.heldout(ts, "python")}
    assert held and all(np.isfinite(list(held.values())))
    pts = headline.figure1(ctx).tables["figure1_points"]
    shown = {(r.run_id, "loss"): r.predicted_loss for r in pts.itertuples()}
    shown |= {(r.run_id, ctx.target): r.predicted_error for r in pts.itertuples()}
    heat = headline.heatmaps(ctx).tables["heatmaps"]
    shown_heat = {
        (r.run_id, "loss" if r.target == "loss_python" else r.target): r.predicted for r in heat.itertuples()
    }
    for key, predicted in held.items():
        assert shown[key] == pytest.approx(predicted, rel=1e-12), key
        assert shown_heat[key] == pytest.approx(predicted, rel=1e-12), key


def test_a_shift_in_a_non_default_fit_s_file_moves_nothing():
    """Only the default's loss is centered: a shift found in an error fit's or a paper fit's saved
    calibration (edited, or from elsewhere) neither moves the interval nor is claimed in its line."""
    from lmscale.fit.bootstrap import bootstrap

    n, m, loss = _ladder()
    lf = bootstrap(fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss, target="loss_x"), 40, 0)
    ef = fit(ERROR, {"loss": loss}, 0.9 - 6.0 * np.exp(-1.2 * loss), input_columns={"loss": "loss_x"})
    ef = bootstrap(ef, 40, 1)
    edited = replace(ef, calibration={**cal.reference("error").to_dict(), "shift": 0.1})
    far = ScalePoint.make(4e9, multiplier=20.0)
    got = forecast(lf, far, error_fit=edited)
    assert got.error == pytest.approx(forecast(lf, far, error_fit=ef).error)
    low, high = got.error_interval
    assert math.sqrt(low * high) == pytest.approx(got.error, rel=1e-9)
    assert "centered" not in got.error_interval_method
    paper = bootstrap(
        fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss, method="paper", target="loss_x"), 40, 0
    )
    paper = replace(paper, calibration={**cal.reference("loss").to_dict(), "shift": -0.05})
    got = forecast(paper, far)
    assert got.law_loss is None and "centered" not in got.loss_interval_method
    assert math.sqrt(got.loss_interval[0] * got.loss_interval[1]) == pytest.approx(got.loss, rel=1e-9)


def test_an_older_fit_file_keeps_the_law_and_one_without_a_calibration_is_centered():
    from lmscale.fit.bootstrap import bootstrap

    n, m, loss = _ladder()
    far = ScalePoint.make(4e9, multiplier=20.0)
    lf = bootstrap(fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss, target="loss_x"), 40, 0)
    law = float(lf.predict(n_params=4e9, multiplier=20.0))
    old = cal.reference("loss").to_dict()
    old.pop("shift")  # a calibration saved before the center
    got = forecast(replace(lf, calibration=old), far)
    assert got.loss == pytest.approx(law, rel=1e-12) and got.law_loss is None
    assert math.sqrt(got.loss_interval[0] * got.loss_interval[1]) == pytest.approx(law, rel=1e-9)
    # no calibration at all (a fit without --bootstrap): the shipped reference's center, as a fresh fit
    got = forecast(replace(lf, calibration=None, bootstrap=None), far)
    assert got.loss == pytest.approx(law * math.exp(cal.reference("loss").shift), rel=1e-12)


def test_the_library_backtest_chains_errors_at_the_centered_loss_as_the_cli_does():
    from lmscale.backtest import backtest
    from lmscale.run_table import RunTable

    runs = RunTable.read(RUNS)
    args = dict(loss_column="python", methods=("default",), n_resamples=0)
    shipped = cal.reference("loss").shift

    def errors(res):
        return [p.predicted for p in res.points if p.quantity == "error"]

    lib = errors(backtest(runs, "error:cloze,brackets", **args))
    assert lib and lib == errors(backtest(runs, "error:cloze,brackets", loss_shift=shipped, **args))
    assert lib != errors(backtest(runs, "error:cloze,brackets", loss_shift=0.0, **args))  # the law's loss
