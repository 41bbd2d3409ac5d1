"""Calibrated intervals: the conformal rule, the shipped reference, saved fits, and coverage on
the paper testbed."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lmscale import calibration as cal
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.fit.result import FitResult


def test_conformal_quantile_is_the_ceil_rank():
    c = cal.Calibration("loss", tuple(float(v) for v in range(1, 20)), "own", "test")
    assert c.quantile(0.9) == 18.0  # ceil(20 * 0.9) = 18th of 19
    assert c.quantile(0.5) == 10.0
    assert c.quantile(0.99) == 19.0  # past the end: the largest
    with pytest.raises(InputError):
        c.quantile(1.0)


def test_interval_widens_with_extrapolation_and_bootstrap_spread():
    c = cal.Calibration("loss", (1.0,) * 30, "own", "test")
    near = c.interval(3.0, 0.0, 1.0, 0.9)
    far = c.interval(3.0, 0.0, 100.0, 0.9)
    noisy = c.interval(3.0, 0.05, 1.0, 0.9)
    assert near.low < 3.0 < near.high
    assert far.high - far.low > near.high - near.low
    assert noisy.high - noisy.low > near.high - near.low
    # u = sqrt(sd² + (τ(1 + ln C-factor))²): at sd = 0, factor 1 the half-width is τ in log units
    assert np.log(near.high / 3.0) == pytest.approx(cal.TAU)


def test_a_larger_model_at_no_more_compute_is_an_extrapolation():
    """A loss target 8× larger than any fitted run but under-trained (compute inside the fitted
    range) lies ln 8 e-folds out, not 0; a target larger in both counts the larger of the two."""
    assert cal.distance(0.5, n_factor=8.0) == pytest.approx(np.log(8.0))
    assert cal.distance(100.0, n_factor=8.0) == pytest.approx(np.log(100.0))
    assert cal.distance(1.0, n_factor=0.5) == 0.0
    c = cal.Calibration("loss", (1.0,) * 30, "own", "test")
    inside, bigger = c.interval(3.0, 0.0, 0.5, 0.9), c.interval(3.0, 0.0, 0.5, 0.9, n_factor=8.0)
    assert np.log(bigger.high / 3.0) == pytest.approx(cal.TAU * (1 + np.log(8.0)))
    assert bigger.high - bigger.low > inside.high - inside.low
    # a calibration saved before the size term keeps the distance its scores were measured with
    saved = {k: v for k, v in c.to_dict().items() if k != "distance"}
    legacy = cal.Calibration.from_dict(saved)
    assert legacy.distance == cal.COMPUTE_DISTANCE
    assert legacy.interval(3.0, 0.0, 0.5, 0.9, n_factor=8.0) == inside
    assert cal.Calibration.from_dict(c.to_dict()).distance == cal.DISTANCE
    # a chained error's distance is compute's: its loss gap follows the larger model's lower loss
    e = cal.Calibration("error", (1.0,) * 30, "own", "test")
    assert e.distance == cal.COMPUTE_DISTANCE
    assert e.interval(3.0, 0.0, 0.5, 0.9, n_factor=8.0) == inside
    with pytest.raises(InputError, match="distance"):
        cal.Calibration.from_dict({**c.to_dict(), "distance": "sum of everything"})


def test_calibration_round_trips_and_rejects_garbage():
    c = cal.reference("loss")
    assert cal.Calibration.from_dict(c.to_dict()) == c
    for bad in (
        {},
        {"quantity": "loss", "source": "elsewhere", "scores": [1.0]},
        {"quantity": "loss", "source": "own", "scores": [float("nan")]},
        {"quantity": "loss", "source": "own", "scores": "abc"},
    ):
        with pytest.raises(InputError):
            cal.Calibration.from_dict(bad)


@pytest.mark.slow
def test_shipped_reference_is_what_the_public_ladders_give(testbed_runs, public_ladders):
    """benchmarks/calibrate.py --write regenerates the file: the loss reference from the five public
    ladders (each lab weighing the same), the chained error's from the testbed's chained backtests.

    To 1e-4 relative, not to the last digits: each score is a quantile of ~1,500 backtest errors
    over bootstrap spreads, every one from a fit that stops at its solver's tolerance, and the lowest
    quantiles (values near 0.01) move by up to 1.4e-5 relative from one CPU to another (an AMD EPYC
    machine against the file's). An interval moves by that fraction of its width."""
    from lmscale.benchmark import ladders
    from lmscale.benchmark.references import build_reference

    shipped = {q: cal.reference(q) for q in ("loss", "error")}
    loss = ladders.multi_lab_reference(public_ladders)
    fresh = {"loss": loss, "error": build_reference(testbed_runs, shift=loss.shift)["error"]}
    assert shipped["loss"].shift == pytest.approx(loss.shift, abs=1e-6) and loss.shift < 0
    assert shipped["error"].shift == 0.0
    for q, ref in shipped.items():
        assert len(ref.scores) == len(fresh[q].scores)
        assert np.allclose(ref.scores, fresh[q].scores, rtol=1e-4, atol=0)
        assert ref.description == fresh[q].description
    assert "labs weighted equally" in shipped["loss"].description


def test_weighted_quantiles_weigh_groups_equally():
    values = np.array([1.0, 1.0, 1.0, 1.0, 10.0])
    # four points of one group at 1, one of another at 10: equal group weights put half the mass at 10
    q = cal.weighted_quantiles(values, np.array([0.25, 0.25, 0.25, 0.25, 1.0]), [0.4, 0.6])
    assert q.tolist() == [1.0, 10.0]
    rng = np.random.default_rng(0)
    v = rng.lognormal(size=101)
    plain = cal.weighted_quantiles(v, np.ones(101), cal._REF_LEVELS)
    assert np.array_equal(plain, np.quantile(v, cal._REF_LEVELS, method="inverted_cdf"))


def test_saved_fit_predicts_calibrated_intervals_by_default(tmp_path, testbed_dir):
    runner = CliRunner()
    fit_file, efit_file = tmp_path / "fit.json", tmp_path / "efit.json"
    res = runner.invoke(
        cli,
        [
            "fit",
            str(testbed_dir),
            "--target",
            "loss_c4_val",
            "--dataset",
            "rpj",
            "--where",
            "n_params <= 5e8",
            "--bootstrap",
            "300",
            "-o",
            str(fit_file),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "conformal scores from this ladder's own backtest" in res.output
    saved = FitResult.load(fit_file)
    assert saved.calibration["source"] == "own"
    res = runner.invoke(
        cli,
        [
            "fit",
            str(testbed_dir),
            "--law",
            "error",
            "--target",
            "error_17",
            "--loss-column",
            "loss_c4_val",
            "--dataset",
            "rpj",
            "--where",
            "n_params <= 2e9 and multiplier == 20",
            "--bootstrap",
            "300",
            "-o",
            str(efit_file),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        cli,
        [
            "predict",
            str(fit_file),
            "--n-params",
            "6.9e9",
            "--multiplier",
            "20",
            "--error-fit",
            str(efit_file),
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    lo, hi = out["loss_interval"]
    assert lo < out["loss"] < hi and "own backtest" in out["loss_interval_method"]
    elo, ehi = out["error_interval"]
    assert elo < out["error"] < ehi and "from the reference (" in out["error_interval_method"]
    # the observed 6.9B loss of RedPajama on C4-eval lies inside
    from lmscale import testbed

    runs = testbed.load(testbed_dir)
    big = runs.subset((runs.column("dataset") == "rpj") & (runs.column("n_params") > 5e9))
    assert lo <= float(big.loss("loss_c4_val")[0]) <= hi
    # a fit saved without a calibration (an older file) falls back to the reference, and says so
    d = json.loads(fit_file.read_text())
    d["calibration"] = None
    fit_file.write_text(json.dumps(d))
    res = runner.invoke(cli, ["predict", str(fit_file), "--n-params", "6.9e9", "--multiplier", "20"])
    assert res.exit_code == 0 and "from the reference (" in res.output


def test_tampered_calibration_in_a_fit_file_is_a_clear_error(tmp_path, testbed_dir):
    out = tmp_path / "fit.json"
    CliRunner().invoke(
        cli,
        [
            "fit",
            str(testbed_dir),
            "--target",
            "loss_c4_val",
            "--dataset",
            "rpj",
            "--where",
            "n_params <= 5e8",
            "--bootstrap",
            "50",
            "-o",
            str(out),
        ],
    )
    d = json.loads(out.read_text())
    d["calibration"] = {"quantity": "loss", "source": "own", "scores": ["x"]}
    out.write_text(json.dumps(d))
    res = CliRunner().invoke(cli, ["predict", str(out), "--n-params", "1e9", "--multiplier", "20"])
    assert (
        res.exit_code == 2 and "malformed calibration" in res.output and isinstance(res.exception, SystemExit)
    )


def test_own_calibration_is_floored_by_the_reference():
    from lmscale.backtest import BacktestPoint

    def pt(i, log_error):
        return BacktestPoint(
            "default",
            "size",
            f"o{i % 3}",
            f"r{i}",
            "loss",
            1e8,
            20.0,
            1e18,
            3.0,
            3.0,
            0.0,
            log_error,
            0.0,
            2.0,
            1.0,
            2.0,
            1.0,
            10,
        )

    tiny = [pt(i, 1e-5) for i in range(30)]  # a ladder whose backtest is (too) good
    ref = cal.reference("loss")
    own = cal.choose(tiny, "loss")
    assert own.source == "own" and "never narrower" in own.description
    assert own.quantile(0.9) == pytest.approx(ref.quantile(0.9))
    assert cal.Calibration.from_dict(own.to_dict()) == own
    wild = [pt(i, 0.5) for i in range(30)]  # a ladder whose backtest misses by 50%: wider than the reference
    assert cal.choose(wild, "loss").quantile(0.9) > ref.quantile(0.9)
    assert cal.choose(tiny[:5], "loss").source == "reference"  # too few: the reference itself


@pytest.mark.parametrize(
    "bad",
    [
        {"quantity": "loss", "source": "reference", "scores": [1.0, 2.0]},
        {"quantity": "loss", "source": "own", "scores": [1.0, -2.0]},
        {"quantity": "loss", "source": "own", "scores": [1.0], "tau": float("nan")},
        {"quantity": "loss", "source": "own", "scores": [1.0], "floor": [1.0]},
    ],
)
def test_malformed_calibrations_are_refused(bad):
    with pytest.raises(InputError, match="malformed calibration"):
        cal.Calibration.from_dict(bad)


def _error_ladder():
    """An exact Eq. 4 ladder and an Eq. 5 error of its loss."""
    from lmscale.laws import ERROR, OVERTRAIN

    n = np.repeat(np.geomspace(1e7, 4e8, 5), 4)
    m = np.tile([5.0, 10.0, 20.0, 40.0], 5)
    params = {"A": 8e2, "B": 1.2e3, "c": -0.3, "E": 1.8}
    loss = OVERTRAIN.formula(params, {"n_params": n, "multiplier": m})
    err = ERROR.formula({"epsilon": 0.9, "k": 6.0, "gamma": 1.2}, {"loss": loss})
    return n, m, loss, err, params


def test_loss_gap_counts_the_error_laws_extrapolation_in_compute_efolds():
    from lmscale.fit.core import fit
    from lmscale.laws import OVERTRAIN
    from lmscale.predict import MAX_LOSS_GAP, loss_gap

    n, m, loss, _err, params = _error_ladder()
    lf = fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss)
    e, eta = lf.params["E"], -lf.params["c"] / 2
    low = float(loss.min())
    assert eta == pytest.approx(-params["c"] / 2, rel=1e-3)
    gaps = loss_gap(lf, low, [low + 0.1, low, (low + e) / 2, e, e - 1])
    assert gaps[0] == gaps[1] == 0.0  # inside the fitted losses: no gap
    # halving the reducible loss costs ln 2 / η e-folds of compute at a fixed M
    assert gaps[2] == pytest.approx(np.log(2) / eta, rel=1e-9)
    assert gaps[3] == gaps[4] == MAX_LOSS_GAP  # at or below the floor: as far as it counts


def test_chained_interval_widens_when_the_error_law_extrapolates_in_loss():
    from lmscale.fit.core import fit
    from lmscale.laws import ERROR, OVERTRAIN
    from lmscale.predict import ScalePoint

    n, m, loss, err, _ = _error_ladder()
    lf = fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss, target="loss_x")
    point = ScalePoint.make(3e9, multiplier=20.0)
    ref = cal.Calibration("error", tuple(np.linspace(0.5, 2.0, 40).tolist()), "own", "test")
    # one error law fitted on every run, one on the small runs only (its losses stop higher up)
    wide = fit(ERROR, {"loss": loss}, err, input_columns={"loss": "loss_x"})
    small = n < 5e7
    narrow_runs = fit(ERROR, {"loss": loss[small]}, err[small], input_columns={"loss": "loss_x"})
    near = cal.calibrated(lf, point, 0.9, ref, error_fit=wide)
    far = cal.calibrated(lf, point, 0.9, ref, error_fit=narrow_runs)
    assert 0 < near.loss_gap < far.loss_gap
    assert (far.interval.high - far.interval.low) > (near.interval.high - near.interval.low)
    assert far.at(0.8).high - far.at(0.8).low < far.interval.high - far.interval.low
    # the loss interval has no gap
    assert cal.calibrated(lf, point, 0.9, ref).loss_gap == 0.0


def test_chained_backtest_points_carry_the_loss_gap():
    from lmscale.backtest import backtest_arrays

    n, m, loss, err, _ = _error_ladder()
    pts = backtest_arrays(n, m, loss, errors=err, n_resamples=0)
    loss_pts = [p for p in pts if p.quantity == "loss"]
    err_pts = [p for p in pts if p.quantity == "error"]
    assert loss_pts and err_pts
    assert all(p.loss_gap == 0.0 for p in loss_pts)
    assert all(p.loss_gap >= 0 for p in err_pts)
    # a target larger and at least as long-trained as every fit run lies below the fitted losses
    beyond = [p for p in err_pts if p.n_factor > 1 and p.m_factor >= 1]
    assert beyond and all(p.loss_gap > 0 for p in beyond)


def test_a_power_law_in_compute_counts_its_compute_extrapolation():
    """A power law L(C) has no n_params, so its fit gave no extrapolation factors at all: every
    target — even 10⁴× beyond the fitted compute — lay at distance 0, its interval had no
    extrapolation term and its prediction no warning."""
    from lmscale.fit.core import fit
    from lmscale.laws.power import POWER
    from lmscale.predict import ScalePoint, extrapolation_factors, extrapolation_warnings

    c = np.geomspace(1e15, 1e18, 12)
    lf = fit(POWER, {"flops": c}, 1.7 + 40.0 * c**-0.1, target="loss_x")
    ref = cal.reference("loss")
    inside, far = ScalePoint.make(5e6, multiplier=20.0), ScalePoint.make(5e8, multiplier=20.0)
    assert extrapolation_factors(lf, far) == {"flops": pytest.approx(far.flops / 1e18)}
    near, beyond = cal.calibrated(lf, inside, 0.9, ref), cal.calibrated(lf, far, 0.9, ref)
    assert near.c_factor < 1 and beyond.c_factor == pytest.approx(far.flops / 1e18)
    assert np.log(beyond.interval.high / beyond.predicted) == pytest.approx(
        ref.quantile(0.9) * ref.tau * (1 + np.log(far.flops / 1e18))
    )
    assert any("compute C" in w for w in extrapolation_warnings(lf, far))
    assert not extrapolation_warnings(lf, inside)


@pytest.mark.parametrize("value", ["", None, "C", ["C+M"]])
def test_a_tampered_distance_in_a_fit_file_is_refused_naming_the_file(tmp_path, value):
    """An empty distance was read as the quantity's (a file saying nothing about it is an old one,
    "C+M"; an empty value is neither): every value but the two known ones is refused."""
    from lmscale.fit.core import fit
    from lmscale.laws import OVERTRAIN

    n, m, loss, _err, _ = _error_ladder()
    lf = fit(OVERTRAIN, {"n_params": n, "multiplier": m}, loss, target="loss_x")
    d = {**cal.reference("loss").to_dict(), "distance": value}
    with pytest.raises(InputError, match="malformed calibration"):
        cal.Calibration.from_dict(d)
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({**lf.to_dict(), "calibration": d}))
    res = CliRunner().invoke(cli, ["predict", str(path), "--n-params", "1e9", "--multiplier", "20"])
    assert res.exit_code == 2 and str(path) in res.output and "distance" in res.output, res.output


def test_an_own_calibration_takes_its_floors_distance():
    """A floor's quantiles bound scores measured the same way only: an own loss calibration floored
    by a calibration saved before the size term ("C+M") measures its scores without it too, so a
    larger model at no more compute gets the interval the floor's scores were measured for."""
    from lmscale.backtest import backtest_arrays

    n, m, loss, _err, _ = _error_ladder()
    noisy = loss * np.exp(0.01 * np.sin(np.arange(len(loss))))
    pts = backtest_arrays(n, m, noisy, n_resamples=0)
    assert any(p.n_factor > p.c_factor and p.n_factor > 1 for p in pts)  # size counts for some
    legacy = cal.Calibration.from_dict(
        {k: v for k, v in cal.reference("loss").to_dict().items() if k != "distance"}
    )
    own = cal.choose(pts, "loss", legacy)
    assert own.source == "own" and own.floor == legacy.scores and own.distance == cal.COMPUTE_DISTANCE
    assert cal.Calibration.from_dict(own.to_dict()) == own
    assert own.interval(3.0, 0.0, 0.5, 0.9, n_factor=8.0) == own.interval(3.0, 0.0, 0.5, 0.9)
    assert cal.choose(pts, "loss").distance == cal.DISTANCE  # the shipped floor counts size
    assert "per e-fold of compute)" in cal.describe(own)
    assert "per e-fold of compute or size" in cal.describe(cal.reference("loss"))


def test_saved_distances_round_trip_through_fit_and_predict(tmp_path):
    """``lmscale fit --bootstrap`` saves the loss calibration's distance; ``lmscale predict`` reads it
    back (a target 6× larger than any fitted run, under-trained, counts its size), and the same file
    without the field (an older one) gives the compute-only interval its scores were measured for."""
    from pathlib import Path

    runs = Path(__file__).parent.parent / "examples" / "cpu-small" / "runs.jsonl"
    fit_file = tmp_path / "fit.json"
    args = ["fit", str(runs), "--target", "loss_python", "--bootstrap", "50", "-o", str(fit_file)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    d = json.loads(fit_file.read_text())
    assert d["calibration"]["distance"] == cal.DISTANCE

    def predict() -> dict:
        point = ["--n-params", "2M", "--multiplier", "2", "--format", "json"]
        res = CliRunner().invoke(cli, ["predict", str(fit_file), *point])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    new = predict()
    assert "compute or size" in new["loss_interval_method"]
    lf = FitResult.load(fit_file)
    from lmscale.predict import ScalePoint

    cp = cal.calibrated(lf, ScalePoint.make(2e6, multiplier=2.0), 0.9, cal.of_fit(lf))
    assert cp.n_factor > cp.c_factor > 1 and list(new["loss_interval"]) == [cp.interval.low, cp.interval.high]
    d["calibration"].pop("distance")
    fit_file.write_text(json.dumps(d))
    old = predict()
    compute_only = cp.calibration.interval(cp.predicted, cp.sd_log, cp.c_factor, 0.9, cp.m_below)
    assert list(old["loss_interval"]) == [compute_only.low, compute_only.high]
    assert (
        old["loss_interval"][1] - old["loss_interval"][0] < new["loss_interval"][1] - new["loss_interval"][0]
    )


def test_a_fit_carrying_another_quantitys_calibration_is_refused():
    """Found by the hostile-input campaign: an edited fit file whose loss fit carries the chained
    error's calibration (other units) was used as it was."""
    from types import SimpleNamespace

    loss_fit = SimpleNamespace(calibration=cal.reference("error").to_dict())
    with pytest.raises(InputError, match="of 'error', but this fit predicts 'loss'"):
        cal.of_fit(loss_fit, "loss")
    default_fit = SimpleNamespace(calibration=None, method="rel-ls-size", law="overtrain")
    assert cal.of_fit(default_fit, "loss") == cal.reference("loss")
    assert cal.of_fit(SimpleNamespace(calibration=None, method="paper", law="overtrain"), "loss").shift == 0.0
    assert cal.of_fit(SimpleNamespace(calibration=cal.reference("loss").to_dict()), "loss").quantity == "loss"
