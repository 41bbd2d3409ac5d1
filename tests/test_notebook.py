"""The notebook API (issue 21): curated names never shadowed by submodules, run tables from a
DataFrame or a path, short reprs, text and HTML summaries, predictions from D, figures on a given
Axes, the error law inferred from an error target."""

import importlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import lmscale
from lmscale.errors import InputError
from lmscale.laws import OVERTRAIN

TRUTH = {"A": 150.0, "B": 300.0, "c": -0.26, "E": 1.9}


def _frame(seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for n in (2e7, 6e7, 1.5e8, 4e8, 1e9):
        for m in (5, 10, 20, 40, 80):
            loss = OVERTRAIN(TRUTH, n_params=n, multiplier=m) * (1 + 0.002 * rng.standard_normal())
            rows.append({"run_id": f"r-{n:.0e}-{m}", "dataset": "web", "model": f"{n:.0e}", "n_params": n,
                         "n_tokens": m * n, "loss_c4": loss, "acc_arc": 0.2 + 0.5 / loss})  # fmt: skip
    return pd.DataFrame(rows)


def test_api_names_are_never_submodules():
    code = (
        "import lmscale.backtest, lmscale.fit.core, lmscale.fit.runs, lmscale; "
        "assert callable(lmscale.backtest) and callable(lmscale.fit), (lmscale.backtest, lmscale.fit); "
        "import lmscale.study; assert callable(lmscale.backtest); "
        "from lmscale.backtest import BacktestResult; from lmscale.fit import core; "
        "print(lmscale.plot.__name__)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "lmscale.plot"
    importlib.import_module("lmscale.backtest")
    assert callable(lmscale.backtest) and callable(lmscale.fit)


def test_fit_runs_and_backtest_take_frames_and_paths(tmp_path):
    df = _frame()
    fit = lmscale.fit_runs(df, None, "loss_c4", where="n_params < 900M")
    path = tmp_path / "runs.csv"
    lmscale.RunTable.from_frame(df).write(path)
    again = lmscale.fit_runs(str(path), "overtrain", "loss_c4", where="n_params < 900M")
    assert fit.params == pytest.approx(again.params, rel=1e-9)  # the CSV keeps every float exactly
    assert lmscale.fit_table(lmscale.load_runs(path), "overtrain", "loss_c4").method == fit.method
    bt = lmscale.backtest(df, "loss_c4", methods=("default",), n_resamples=0)
    assert len(bt.points) > 0
    with pytest.raises(InputError, match="DataFrame"):
        lmscale.fit_runs(42, None, "loss_c4")


def test_reprs_summaries_and_predict_from_tokens():
    df = _frame()
    fit = lmscale.fit_runs(df, None, "loss_c4", where="n_params < 900M", n_boot=20)
    r = repr(fit)
    assert len(r) < 250 and r.startswith("FitResult(overtrain on loss_c4: 20 runs") and "bootstrap=20" in r
    s = fit.summary()
    assert "M* (compute-optimal)" in s and "90% bootstrap interval" in s and "starts converged" in s
    assert fit._repr_html_().startswith("<div>") and "<table>" in fit._repr_html_()
    assert fit.predict(n_params=1e9, n_tokens=2e10) == pytest.approx(fit.predict(n_params=1e9, multiplier=20))
    bt = lmscale.backtest(df, "loss_c4", methods=("default",), n_resamples=0)
    assert len(repr(bt)) < 200 and "predictions" in repr(bt)
    assert "C factor" in bt.summary() and "<table>" in bt._repr_html_()
    assert isinstance(bt.summary_frame(), pd.DataFrame)


def test_error_target_gets_the_error_law_or_a_refusal():
    df = _frame()
    fit = lmscale.fit_runs(df, None, "error_arc", loss_column="loss_c4")
    assert fit.law == "error"
    with pytest.raises(InputError, match="downstream error"):
        lmscale.fit_runs(df, "overtrain", "error_arc", loss_column="loss_c4")


def test_figures_on_a_given_axes():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    df = _frame()
    fit = lmscale.fit_runs(df, None, "loss_c4", where="n_params < 900M", n_boot=20)
    fig = Figure()
    axes = fig.subplots(2, 2).ravel()
    assert lmscale.plot.fit(fit, ax=axes[0]) is axes[0] and axes[0].collections
    assert lmscale.plot.runs(df, "loss_c4", ax=axes[1]) is axes[1]
    bt = lmscale.backtest(df, "loss_c4", methods=("default",), n_resamples=0)
    assert lmscale.plot.backtest(bt, ax=axes[2]) is axes[2] and axes[2].get_xscale() == "log"
    fc = lmscale.forecast(fit, lmscale.ScalePoint.make(1e9, multiplier=20))
    assert lmscale.plot.forecast(fc, fit, ax=axes[3]) is axes[3]
    err = lmscale.fit_runs(df, None, "error_arc", loss_column="loss_c4")
    assert lmscale.plot.fit(err) is not None  # a new Axes when none is given
