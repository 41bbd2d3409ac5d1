"""The one held-out engine (lmscale.study.Study): fits only ever of the runs asked for, each
computed once; held-out predictions of exactly the held-out runs, the error law chained through the
predicted loss; one default method; intervals calibrated by the ladder's own backtest when it is
large enough."""

from pathlib import Path

import pytest

from lmscale.analyses.context import Setting
from lmscale.errors import InputError
from lmscale.fit.method import DEFAULT
from lmscale.pipeline import holdout_spec
from lmscale.run_table import RunTable
from lmscale.study import Study

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cpu-small" / "runs.jsonl"


def test_one_default_method_and_one_message_for_an_unknown_one():
    runs = RunTable.read(EXAMPLE)
    assert Study(runs, holdout_spec(runs), error_targets=()).method == DEFAULT == "default"
    assert Setting().method == "paper"  # the paper report keeps the authors' method
    with pytest.raises(InputError, match="unknown fitting method 'adam'; known: default, recommended, paper"):
        Study(runs, holdout_spec(runs), "adam", error_targets=())
    with pytest.raises(InputError, match="unknown fitting method 'adam'"):
        Study(runs, holdout_spec(runs), error_method="adam", error_targets=())
    with pytest.raises(InputError, match="unknown training set"):
        Study(runs, holdout_spec(runs), train_sets=("c4",), error_targets=())


def test_heldout_predicts_exactly_the_heldout_runs_from_fits_made_once():
    runs = RunTable.read(EXAMPLE)
    st = Study(runs, holdout_spec(runs), error_targets=())
    ts = runs.datasets[0]
    fit = st.loss_fit(ts, "python")
    assert st.loss_fit(ts, "loss_python") is fit  # with or without the prefix: one fit
    held = st.heldout_runs(ts)
    rows = st.heldout(ts, "python")
    assert sorted(r.run_id for r in rows) == sorted(held.run_ids)
    assert not set(held.run_ids) & set(fit.run_ids)  # never fitted on what it predicts
    for r in rows:
        assert r.target == "loss" and r.rel_error == pytest.approx(abs(r.predicted - r.observed) / r.observed)
        assert r.predicted == pytest.approx(st.predict_loss(ts, "python", r.n_params, r.multiplier))
    assert st.heldout(ts, "python") is rows  # computed once


def test_study_never_returns_a_fit_of_other_runs(testbed_runs):
    st = Study(testbed_runs, "paper-default", "varpro", error_targets=("error_17",))
    full = st.error_fit("rpj", "c4_val", "error_17")
    er = st.error_runs("rpj")
    small = er.subset(er.column("n_params") < 1e9)
    without = st.error_fit("rpj", "c4_val", "error_17", runs=small)
    assert set(without.run_ids) == set(small.run_ids) != set(full.run_ids)
    assert st.error_fit("rpj", "c4_val", "error_17") is full  # cached, and the right one
    assert st.error_fit("rpj", "c4_val", "error_17", runs=small) is without


def test_study_interval_uses_own_backtest_when_the_fit_set_is_large(testbed_runs):
    from lmscale.benchmark.accuracy import fit_sets
    from lmscale.predict import ScalePoint

    st = Study(testbed_runs, fit_sets(runs=testbed_runs)["cap-1e20"], "default", error_targets=("error_17",))
    pt = ScalePoint.make(6.9e9, multiplier=20)
    c = st.interval("rpj", "c4_val", "loss", pt, 0.9, n_resamples=100)
    assert c.calibration.source == "own" and c.interval.low < c.predicted < c.interval.high
    e = st.interval("rpj", "c4_val", "error_17", pt, 0.9, n_resamples=100)
    assert e.calibration.quantity == "error" and e.interval.low < e.predicted < e.interval.high
    default = Study(testbed_runs, "paper-default", "default", error_targets=("error_17",))
    assert (
        default.interval("rpj", "c4_val", "loss", pt, 0.9, n_resamples=100).calibration.source == "reference"
    )
