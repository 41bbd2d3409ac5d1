"""The accuracy benchmark's goals on the paper testbed: the default method against the paper's,
and calibrated coverage of the 5-run default fit (the numbers are in docs/benchmarks.md's table)."""

import pytest

from lmscale.benchmark import accuracy


@pytest.fixture(scope="module")
def error_rows(testbed_runs):
    methods = [m for m in accuracy.METHODS_COMPARED if m.name in ("paper", "default")]
    rows = accuracy.run(testbed_runs, methods=methods, n_resamples=0)
    return {(r["fit_set"], r["method"]): r for r in rows}


@pytest.mark.slow
def test_default_is_no_worse_than_the_paper_on_every_fit_set(error_rows):
    for fs in accuracy.fit_sets():
        d, p = error_rows[(fs, "default")], error_rows[(fs, "paper")]
        assert d["n_loss_predictions"] == p["n_loss_predictions"] == 48
        assert d["mean_rel_error"] <= p["mean_rel_error"] * (1 + 1e-3), fs


@pytest.mark.slow
def test_default_cuts_the_error_at_the_small_caps(error_rows):
    """0.32×, 0.51× and 0.57× the paper method's error; the center shift, measured on other labs'
    ladders, costs the testbed (whose backtests under-predict) 0.02–0.03 of that ratio."""
    for fs, bound in (("cap-1e19", 0.4), ("cap-3e19", 0.55), ("cap-1e20", 0.6)):
        ratio = error_rows[(fs, "default")]["mean_rel_error"] / error_rows[(fs, "paper")]["mean_rel_error"]
        assert ratio <= bound, (fs, ratio)


@pytest.mark.slow
def test_calibrated_coverage_of_the_paper_default_fit(testbed_runs):
    """Leave-one-training-set-out reference, 5 fit runs (no own backtest possible): 80% and 90%
    intervals cover within 7 points of nominal."""
    methods = [m for m in accuracy.METHODS_COMPARED if m.name == "default"]
    rows = accuracy.run(testbed_runs, methods=methods, n_resamples=100, fit_set_names=("paper-default",))
    r = rows[0]
    assert r["calibration"] == "reference"
    assert abs(r["coverage_80"] - 0.8) <= 0.07, r
    assert abs(r["coverage_90"] - 0.9) <= 0.07, r
    assert 0 < r["median_interval_width"] < 0.4
