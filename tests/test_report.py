"""The paper analyses (issue 3): numbers of PAPER.md §5 to their printed precision, the report's
files, and changed settings."""

import json

import numpy as np
import pandas as pd
import pytest

from lmscale import testbed
from lmscale.analyses import downstream, headline, hparams, sweeps
from lmscale.analyses.context import Context, Setting
from lmscale.errors import InputError
from lmscale.selection import Selection, preset
from lmscale.train.shapes import count_params

TS = ("c4_original", "rpj", "rw_original")


@pytest.fixture(scope="module")
def ctx(testbed_runs, testbed_dir):
    from lmscale import testbed

    return Context(
        testbed_runs, metadata=testbed.load_task_metadata(testbed_dir), grid_path=testbed_dir / "grid.json"
    )


def _printed(value, printed, decimals):
    """``value`` rounds to ``printed`` at the paper's precision."""
    return abs(value - printed) <= 0.5 * 10.0 ** (-decimals) + 1e-12


# ---------------------------------------------------------------------------- items 2–7
def test_table6(ctx):
    df = headline.table6(ctx).tables["table6"].set_index("train_set")
    paper = {
        "c4_original": (1.51, 141, 190, 0.121, 0.850, 2.08, 0.756, 3.36),
        "rpj": (1.84, 212, 367, 0.136, 0.857, 2.21, 0.715, 7.42),
        "rw_original": (1.73, 157, 246, 0.127, 0.865, 2.21, 0.707, 5.85),
    }
    for ts, (e, a, b, eta, eps, k, gamma, mstar) in paper.items():
        r = df.loc[ts]
        for ours, theirs, dec in (
            (r.E, e, 2),
            (r.a, a, 0),
            (r.b, b, 0),
            (r.eta, eta, 3),
            (r.epsilon, eps, 3),
            (r.k, k, 2),
            (r.gamma, gamma, 3),
            (r.M_star, mstar, 2),
        ):
            assert _printed(ours, theirs, dec), (ts, ours, theirs)


def test_heatmap_c4_eval_cells(ctx):
    a = headline.heatmaps(ctx)
    df = a.tables["heatmaps"]
    assert set(df.target) == {*("loss_" + v for v in ctx.runs.val_sets), "error_46", "error_17"}
    # every run of every training set, for every target
    assert len(df) == len(ctx.runs) * (len(ctx.runs.val_sets) + 2)
    paper = {  # PAPER.md §5, percent: 1.4B M=20, 1.4B max M, 6.9B
        "loss_c4_val": {
            "c4_original": (0.8, 1.5, 4.3),
            "rpj": (0.1, 0.7, 0.7),
            "rw_original": (0.6, 0.0, 1.6),
        },
        "error_17": {
            "c4_original": (None, 9.6, 0.1),
            "rpj": (None, 3.6, 0.0),
            "rw_original": (None, 5.6, 2.9),
        },
        "error_46": {
            "c4_original": (None, 3.1, 0.1),
            "rpj": (None, 3.4, 2.1),
            "rw_original": (None, 4.3, 2.8),
        },
    }
    for target, per_ts in paper.items():
        for ts, cells in per_ts.items():
            d = df[(df.train_set == ts) & (df.target == target)]
            big = d[d.n_params > 1e9]
            one = big[big.n_params < 2e9]
            got = (
                100 * one[one.multiplier == 20].rel_error.iloc[0],
                100 * one.sort_values("multiplier").rel_error.iloc[-1],
                100 * big[big.n_params > 5e9].rel_error.iloc[0],
            )
            for g, p in zip(got, cells):
                if p is not None:
                    assert _printed(g, p, 1), (target, ts, got, cells)
    # fit points are marked: 5 loss-fit runs per training set and validation loss
    assert df[df.target == "loss_c4_val"].groupby("train_set").fit_point.sum().tolist() == [5, 5, 5]
    assert df[df.target == "error_17"].groupby("train_set").fit_point.sum().tolist() == [6, 6, 6]


def test_per_task_highlighted(ctx):
    df = downstream.per_task(ctx).tables["per_task"]
    assert df.task.nunique() == 47  # 46 tasks and the 17-task average
    paper = {
        "arc_easy": (29.0, 5.2, 26.1),
        "lambada_openai": (15.0, 14.4, 16.6),
        "openbook_qa": (16.8, 8.4, 1.9),
        "hellaswag_zeroshot": (79.6, 25.7, 82.0),
        "17-task average": (0.14, 0.05, 2.94),
    }
    for task, vals in paper.items():
        for ts, p in zip(TS, vals):
            got = 100 * df[(df.train_set == ts) & (df.task == task)].rel_error.iloc[0]
            dec = 2 if task.endswith("average") else 1
            # RefinedWeb LAMBADA is 16.548%: the paper's 16.6 rounds a value already rounded to 16.55
            tol = 0.5 * 10.0**-dec + (0.005 if (task, ts) == ("lambada_openai", "rw_original") else 0)
            assert abs(got - p) <= tol + 1e-12, (task, ts, got, p)


def test_table7(ctx):
    df = downstream.table7(ctx).tables["table7"].set_index("train_set")
    for ts, (w, wo) in {
        "c4_original": (0.14, 0.42),
        "rpj": (0.05, 10.64),
        "rw_original": (2.94, 15.79),
    }.items():
        assert _printed(100 * df.loc[ts, "rel_error_with"], w, 2)
        assert _printed(100 * df.loc[ts, "rel_error_without"], wo, 2)
        assert df.loc[ts, "n_error_fit_runs"] - df.loc[ts, "n_without"] == 1


def test_rank_correlation(ctx):
    from scipy import stats

    a = downstream.rank_correlation(ctx)
    runs = a.tables["rank_correlation_runs"]
    assert len(runs) == 9 and (runs.n_params >= 1.4e9).all()
    assert _printed(a.numbers["spearman"], 0.88, 2)
    assert a.numbers["kendall"] == pytest.approx(stats.kendalltau(runs.predicted, runs.observed)[0])


def test_threshold_sweep(ctx):
    df = downstream.threshold_sweep(ctx).tables["threshold_sweep"]
    n = df.groupby("threshold_points").n_tasks.first()
    assert n.loc[10.0] == 17 and n.is_monotonic_decreasing
    at10 = df[df.threshold_points == 10.0].set_index("train_set").rel_error
    t7 = downstream.table7(ctx).tables["table7"].set_index("train_set").rel_error_with
    for ts in TS:  # the 10-point suite is the paper's 17 tasks: same prediction as Table 7
        assert at10[ts] == pytest.approx(t7[ts], rel=1e-9)


# ------------------------------------------------------------------------- items 8–12
def test_exponent_vs_m_and_undertraining(ctx):
    df = sweeps.exponent_vs_m(ctx, n_resamples=200).tables["exponent_vs_m"]
    assert set(df.multiplier) == {5, 10, 20, 40, 80, 160, 320, 640}
    ok = df.dropna(subset=["eta_low"])
    assert ((ok.eta_low <= ok.eta + 1e-9) & (ok.eta <= ok.eta_high + 1e-9)).all()
    at20 = df[df.multiplier == 20]
    assert np.allclose(at20.eta, at20.eta_default_fit, rtol=0.3)  # same runs dominate both fits
    u = sweeps.undertraining(ctx)
    s = u.tables["undertraining_summary"].set_index(["train_set", "group"])["mean"]
    for ts in TS:  # the paper: M = 5 breaks the trend
        assert s[(ts, "M=5")] > 2 * s[(ts, "M≥20")]


def test_compute_sweep(ctx):
    a = sweeps.compute_sweep(ctx)
    df = a.tables["compute_sweep"]
    assert df["default"].any() and len(df.fit_set.unique()) > 50
    for key, rho in a.numbers.items():
        if key.endswith("spearman"):
            assert rho < 0, key  # more fitting compute, lower error
    for key in ("loss/1.4B max M", "error/largest"):
        assert a.numbers[f"{key}/median_high"] < a.numbers[f"{key}/median_low"]


def test_tied_vs_untied(ctx):
    df = sweeps.tied_vs_untied(ctx).tables["tied_vs_untied"]
    tied = df[(df.law == "overtrain") & (df.fit_runs == "spec loss-fit runs")]
    for r in tied.itertuples():  # the tied exponent is the headline fit's: alpha = beta = -c
        assert r.alpha == r.beta == pytest.approx(-ctx.loss_fit(r.train_set).params["c"], rel=1e-6)
    untied = df[(df.law == "chinchilla") & (df.fit_runs.str.startswith("all"))]
    assert (untied.alpha != untied.beta).all() and (untied.n_runs >= 31).all()


def test_hparam_search(ctx):
    a = hparams.hparam_search(ctx)
    df = a.tables["hparam_search"]
    assert len(df) == 435
    fr = df[df.frontier].sort_values("flops")
    assert fr.loss.is_monotonic_decreasing and 5 <= len(fr) < 435
    assert 0 < a.numbers["eta"] < 1


def test_shape_params_and_pareto():
    for d, l, n in (
        (96, 8, 10569312),
        (512, 8, 78914048),
        (576, 24, 153677376),
        (1024, 24, 411616256),
        (2048, 24, 1439795200),
        (4096, 32, 6889410560),
    ):
        assert count_params(d, l, testbed.PAPER_VOCAB) == n
    f, loss = np.array([1.0, 2, 3, 3, 4]), np.array([5.0, 4, 4.5, 3.9, 4.0])
    assert hparams.pareto_mask(f, loss).tolist() == [True, True, False, True, False]


def test_read_grid_errors(tmp_path):
    bad = tmp_path / "grid.json"
    bad.write_text('{"d=96_l=8_h=4-64-0.003-0.033-64-2e8-100-3e-05": -1}')
    with pytest.raises(InputError, match="non-positive"):
        testbed.read_grid(bad)
    bad.write_text('{"garbage": 3.0}')
    with pytest.raises(InputError, match="does not parse"):
        testbed.read_grid(bad)
    bad.write_text("{")
    with pytest.raises(InputError, match="malformed JSON"):
        testbed.read_grid(bad)


# ------------------------------------------------------------------------------ settings
def test_changed_settings(testbed_runs):
    spec = preset("paper-default")
    custom = Setting(spec=spec, val_set="paloma_ptb", split="46-task", train_sets=("rpj",))
    c = Context(testbed_runs, custom)
    t6 = headline.table6(c).tables["table6"]
    assert list(t6.train_set) == ["rpj"]
    f1 = headline.figure1(c)
    assert "paloma_ptb" in f1.text and "46-task" in f1.text
    # a custom task list as the split
    c2 = Context(testbed_runs, Setting(split="arc_easy,piqa,copa", train_sets=("c4_original",)))
    assert downstream.table7(c2).tables["table7"].rel_error_with.notna().all()
    # other fit runs change the laws
    wider = Setting(
        spec=type(spec)(
            "wider", Selection.parse("n_params <= 5e8 and multiplier <= 80"), spec.error_fit, spec.heldout
        ),
        train_sets=("rpj",),
    )
    assert headline.table6(Context(testbed_runs, wider)).numbers["rpj/eta"] != pytest.approx(t6.eta.iloc[0])
    with pytest.raises(InputError, match="unknown task"):
        Context(testbed_runs, Setting(split="arc_easy,nope"))
    with pytest.raises(InputError, match="unknown validation set"):
        Context(testbed_runs, Setting(val_set="wiki"))
    with pytest.raises(InputError, match="unknown training set"):
        Context(testbed_runs, Setting(train_sets=("pile",)))


# --------------------------------------------------------------------------------- report
def test_report_files(ctx, tmp_path):
    from lmscale.report.writer import build_report

    only = ["figure1", "table6", "heatmaps", "rank_correlation", "hparam_search"]
    path, analyses, skipped, _seconds = build_report(ctx, tmp_path / "rep", only)
    assert not skipped and [a.key for a in analyses] == only
    md = path.read_text()
    assert "0.7103%" in md and "7.42" in md and "Spearman ρ = 0.88" in md
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 + 3 + 1 + 1  # figure1 ×3, heat maps ×3, rank, hparam
    assert "<table>" in html
    for png in (tmp_path / "rep" / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    t = pd.read_csv(tmp_path / "rep" / "tables" / "table6.csv")
    assert list(t.train_set) == list(TS)
    j = json.loads((tmp_path / "rep" / "tables" / "heatmaps.json").read_text())
    assert len(j) == len(ctx.runs) * 10
    numbers = json.loads((tmp_path / "rep" / "numbers.json").read_text())
    assert numbers["figure1"]["rpj/6.9B M=20/error"] == pytest.approx(0.000464459, rel=1e-4)


def test_report_cli(testbed_dir, tmp_path):
    from click.testing import CliRunner

    from lmscale.cli import cli

    out = tmp_path / "r"
    res = CliRunner().invoke(
        cli,
        [
            "reproduce",
            "--testbed",
            str(testbed_dir),
            "--out",
            str(out),
            "--only",
            "table6",
            "--only",
            "table7",
            "--train-set",
            "rpj",
            "--split",
            "46-task",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "report.md").is_file() and (out / "tables" / "table7.csv").is_file()
    assert "46-task" in (out / "report.md").read_text()
    res = CliRunner().invoke(
        cli, ["reproduce", "--testbed", str(testbed_dir), "--out", str(out), "--only", "nope"]
    )
    assert res.exit_code == 2 and "unknown analysis" in res.output
    res = CliRunner().invoke(
        cli, ["reproduce", "--testbed", str(testbed_dir), "--out", str(out), "--split", "arc_easy,banana"]
    )
    assert res.exit_code == 2 and "banana" in res.output
