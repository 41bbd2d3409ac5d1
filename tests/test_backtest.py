"""Backtests (rolling-origin evaluation on a user's own ladder). The held-out engine is in test_study.py."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT
from lmscale.backtest import backtest, backtest_arrays, origins
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.laws import OVERTRAIN
from lmscale.run_table import RunTable

EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"
TRUTH = {"A": 150.0, "B": 400.0, "c": -0.26, "E": 1.8}


def ladder():
    n = np.repeat([1e7, 3e7, 8e7, 1.5e8, 4e8], 4)
    m = np.tile([5.0, 20.0, 80.0, 320.0], 5)
    return n, m, OVERTRAIN(TRUTH, n_params=n, multiplier=m)


def test_origins_fit_smaller_runs_and_predict_larger_ones():
    n, m, _ = ladder()
    got = origins(n, m, 5)
    assert {o.kind for o in got} == {"size", "compute"}
    c = 6 * n * n * m
    for o in got:
        assert not (o.fit & o.predict).any() and o.predict.any()
        if o.kind == "size":
            assert n[o.fit].max() < n[o.predict].min()
        else:
            assert c[o.fit].max() < c[o.predict].min()
        assert len(np.unique(n[o.fit])) >= 2 and o.fit.sum() >= 5
    # the size origins are the k smallest sizes, k = 2 … 4
    assert [int(o.fit.sum()) for o in got if o.kind == "size"] == [8, 12, 16]


def test_backtest_of_an_exact_law_has_no_error_and_records_distances():
    n, m, y = ladder()
    pts = backtest_arrays(n, m, y, method="varpro", n_resamples=50)
    assert pts and max(p.rel_error for p in pts) < 1e-6
    for p in pts:
        assert p.n_factor > 1 or p.c_factor > 1
        assert p.log_error == pytest.approx(np.log(p.observed / p.predicted))


def test_backtest_error_grows_with_extrapolation_on_a_misspecified_ladder():
    n, m, y = ladder()
    y = y + 0.02 * np.log(n / 1e7)  # a drift the law cannot follow
    pts = [p for p in backtest_arrays(n, m, y, method="default", n_resamples=0) if p.origin_kind == "size"]
    near = np.mean([p.rel_error for p in pts if p.n_factor < 3])
    far = np.mean([p.rel_error for p in pts if p.n_factor > 10])
    assert far > near


def test_backtest_needs_runs_and_a_loss_column_for_error_targets():
    runs = RunTable.read(EXAMPLE)
    with pytest.raises(InputError, match="loss-column"):
        backtest(runs, "error:cloze")
    few = runs.subset(runs.column("n_params") == runs.column("n_params").min())  # one size: no origin
    with pytest.raises(InputError, match="too few runs for a backtest"):
        backtest(few, "loss_python")


def test_backtest_cli_prints_table_and_writes_figure(tmp_path):
    res = CliRunner().invoke(
        cli,
        ["backtest", str(EXAMPLE), "--target", "loss_python", "--out", str(tmp_path), "--bootstrap", "50"],
    )
    assert res.exit_code == 0, res.output
    assert res.exception is None
    assert "rel-ls-size" in res.output and "paper" in res.output and "10–100×" in res.output
    for name in ("backtest.csv", "backtest_summary.csv", "backtest.png"):
        assert (tmp_path / name).stat().st_size > 100
    res = CliRunner().invoke(
        cli,
        [
            "backtest",
            str(EXAMPLE),
            "--target",
            "error:cloze,next_line",
            "--loss-column",
            "python",
            "--method",
            "default",
            "--out",
            str(tmp_path),
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)["summary"]
    assert {r["quantity"] for r in summary} == {"error"}


def test_backtest_on_the_testbed(testbed_runs):
    res = backtest(testbed_runs, "loss_c4_val", methods=("default",), n_resamples=0)
    assert {p.train_set for p in res.points} == set(testbed_runs.datasets)
    s = res.summary_frame()
    allrow = s[s.c_factor_bin == "all"].iloc[0]
    assert allrow.n == len(res.points) and 0 < allrow.median_rel_error < 0.05
