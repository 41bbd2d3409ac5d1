"""The multi-lab ladder benchmark (lmscale.benchmark.ladders): loaders, the one split rule, the
leave-one-lab-out references, and its CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from lmscale.benchmark import ladder_tables as T
from lmscale.benchmark import ladders as L
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.laws import OVERTRAIN


def _synthetic(tmp_path, name="lab_x", seed=0):
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(1e7, 1.6e9, 10)
    rows = []
    for n in sizes:
        for m in (5, 10, 20, 40, 80):
            loss = OVERTRAIN.formula(
                {"A": 8e2, "B": 1.2e3, "c": -0.3, "E": 1.8}, {"n_params": n, "multiplier": m}
            )
            rows.append(
                dict(
                    run_id=f"{name}-{n:.3g}-{m}",
                    dataset="x",
                    model=f"m{n:.3g}",
                    n_params=int(n),
                    n_tokens=int(n * m),
                    multiplier=float(m),
                    flops=6 * n * n * m,
                    loss_val=loss * (1 + 0.002 * rng.standard_normal()),
                )
            )
    path = tmp_path / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_splits_follow_the_rule(tmp_path):
    (lad,) = L.load(_synthetic(tmp_path))
    sp = {s.name: s for s in L.splits(lad)}
    size = sp["size"]
    assert lad.n_params[size.fit].max() <= lad.n_params.max() / L.SIZE_FIT_RATIO
    assert lad.n_params[size.heldout].min() >= L.SIZE_GAP * lad.n_params[size.fit].max()
    assert not np.any(size.fit & size.heldout)
    comp = sp["compute"]
    assert lad.flops[comp.heldout].min() >= 0.999 * L.COMPUTE_GAP * lad.flops[comp.fit].max()


def test_a_law_ladder_is_predicted_well_and_scored(tmp_path):
    (lad,) = L.load(_synthetic(tmp_path))
    rows = L.run([lad], L.METHODS[:2], n_resamples=30, references="shipped")
    for r in rows:
        assert r["mean_abs_error"] < 0.01, r  # a ladder that follows Eq. 4 is extrapolated to ~noise
        assert 0 <= r["coverage_90"] <= 1 and r["median_width_90"] > 0
    assert "| lab_x | size |" in T.markdown_table(rows)
    assert T.summary(rows)[0]["ratio"] > 0


def test_leave_one_lab_out_references_never_use_their_own_lab(tmp_path):
    a = L.load(_synthetic(tmp_path, "lab_a", 1))[0]
    b = L.load(_synthetic(tmp_path, "lab_b", 2))[0]
    refs = L.lab_references([a, b], n_resamples=0)
    assert set(refs) == {"lab_a", "lab_b"}
    assert "lab_b" in refs["lab_a"].description and "lab_a" not in refs["lab_a"].description
    assert refs["lab_a"].source == "reference"


def test_bad_ladders_are_named(tmp_path):
    p = tmp_path / "few.csv"
    pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "dataset": "x",
            "model": "m",
            "n_params": [1e7, 2e7],
            "n_tokens": [1e8, 2e8],
            "loss_x": [3.0, 2.9],
        }
    ).to_csv(p, index=False)
    with pytest.raises(InputError, match="usable runs"):
        L.load(p)
    with pytest.raises(InputError, match="no such ladder"):
        L.load(tmp_path / "nope.csv")


def test_cli_benchmark_on_ladders(tmp_path):
    path = _synthetic(tmp_path)
    res = CliRunner().invoke(
        cli, ["benchmark", "accuracy", "--ladder", str(path), "--resamples", "0", "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout[res.stdout.index("[") :])
    assert {r["method"] for r in rows} == {m.name for m in L.METHODS}
    assert all(r["coverage_90"] is None for r in rows)  # no intervals without resamples: null, not NaN
    res = CliRunner().invoke(cli, ["benchmark", "accuracy"])
    assert res.exit_code == 2 and "--ladder" in res.output


def test_public_ladders_load_with_their_splits(shared_ladders, epoch_csv):
    lads = {lad.name: lad for p in [*shared_ladders.values(), epoch_csv] for lad in L.load(p)}
    assert {"porian_owt2", "porian_rw", "gemstones", "chinchilla"} <= set(lads)
    assert lads["porian_rw"].lab == lads["porian_owt2"].lab == "porian"
    sp = {s.name: s for s in L.splits(lads["porian_owt2"])}
    # the split: fit N ≤ 0.11B (52 runs), predict the 0.15–0.9B runs (36)
    assert int(sp["size"].fit.sum()) == 52 and int(sp["size"].heldout.sum()) == 36
    assert {s.name for s in L.splits(lads["gemstones"])} == {"size", "compute"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00garbage\n\x80", "not UTF-8"),
        (b"", "empty file"),
        (b"Model Size,Training FLOP,loss\n1e9,1e20,3\nabc,1e20,2\n", "line 3, column 'Model Size': 'abc'"),
    ],
)
def test_hostile_ladder_files_are_named_errors(tmp_path, content, message):
    p = tmp_path / "ladder.csv"
    p.write_bytes(content)
    with pytest.raises(InputError, match=message):
        L.load(p)
    res = CliRunner().invoke(cli, ["benchmark", "accuracy", "--ladder", str(p), "--resamples", "0"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_rows_left_out_are_counted_and_said(tmp_path):
    path = _synthetic(tmp_path)
    df = pd.read_csv(path)
    df.loc[3, "loss_val"] = float("nan")
    df.to_csv(path, index=False)
    (lad,) = L.load(path)
    assert lad.n_dropped == 1 and len(lad.loss) == len(df) - 1
    rows = L.run([lad], L.METHODS[:1], n_resamples=0)
    assert all(r["n_dropped_runs"] == 1 for r in rows)
    assert "lab_x: 1 row(s) left out" in T.markdown_table(rows)


def _with_errors(lad):
    """The synthetic ladder with an Eq. 5 downstream error of its loss."""
    from dataclasses import replace

    from lmscale.laws import ERROR

    err = ERROR.formula({"epsilon": 0.9, "k": 6.0, "gamma": 1.2}, {"loss": lad.loss})
    return replace(lad, name="lab_e", lab="lab_e", errors={"error_x": err})


def test_chained_errors_are_scored_with_their_own_rows(tmp_path):
    (lad,) = L.load(_synthetic(tmp_path))
    rows = L.run([_with_errors(lad)], L.METHODS[:2], n_resamples=30, references="shipped")
    assert {r["quantity"] for r in rows} == {"loss", "error_x"}
    errs = [r for r in rows if r["quantity"] == "error_x"]
    assert len(errs) == len([r for r in rows if r["quantity"] == "loss"])
    for r in errs:
        assert r["mean_abs_error"] < 0.02, r  # an exact chain is predicted to about the loss noise
        assert 0 <= r["coverage_90"] <= 1 and r["median_width_90"] > 0
    assert T.quantities(rows) == ["loss", "error_x"]
    assert "| lab_e | size |" in T.markdown_table(rows, "error_x")
    assert "| lab_e | size |" in T.summary_markdown(rows, "error_x")


def test_error_references_leave_the_ladder_out(tmp_path):
    a = _with_errors(L.load(_synthetic(tmp_path, "lab_a", 1))[0])
    b = _with_errors(L.load(_synthetic(tmp_path, "lab_b", 2))[0])
    from dataclasses import replace

    a, b = replace(a, name="ladder_a"), replace(b, name="ladder_b")
    refs = L.error_references([a, b], n_resamples=0)
    assert set(refs) == {"ladder_a", "ladder_b"}
    assert "ladder_b" in refs["ladder_a"].description and "ladder_a" not in refs["ladder_a"].description
    assert refs["ladder_a"].quantity == "error"


def test_per_ladder_pools_the_splits_by_predictions():
    base = {"lab": "x", "n_fit": 10, "split_rule": "", "n_dropped_runs": 0, "quantity": "loss"}

    def row(split, method, n, err, cov):
        return {
            **base,
            "ladder": "x",
            "split": split,
            "method": method,
            "n_predictions": n,
            "mean_abs_error": err,
            "median_abs_error": err,
            "max_abs_error": err,
            "mean_signed_error": err,
            "share_over_predicted": 1.0,
            "coverage_80": cov,
            "coverage_90": cov,
            "median_width_90": 0.1,
        }

    rows = [
        row("size", "paper", 30, 0.02, 1.0),
        row("size", "default", 30, 0.01, 0.9),
        row("compute", "paper", 10, 0.04, 1.0),
        row("compute", "default", 10, 0.05, 0.5),
    ]
    (x, total) = T.per_ladder(rows)
    assert x["n_predictions"] == 40 == total["n_predictions"]
    assert x["default_mean_abs_error"] == pytest.approx((30 * 0.01 + 10 * 0.05) / 40)
    assert x["baseline_mean_abs_error"] == pytest.approx((30 * 0.02 + 10 * 0.04) / 40)
    assert x["coverage_90"] == pytest.approx((30 * 0.9 + 10 * 0.5) / 40)
    goals = {g["goal"]: g for g in T.goals(rows)}
    assert goals["loss: x default error ≤ paper's"]["holds"]  # 0.020 against 0.025
    # the 30-prediction split: 90% coverage 0.9 is in its band, 80% coverage 0.9 too, but the
    # width is 10× its median error; the 10-prediction split is scored too, and misses
    assert not goals["loss: x size coverage and width"]["holds"]
    assert not goals["loss: x compute coverage and width"]["holds"]


@pytest.mark.slow
def test_leave_one_lab_out_coverage_over_the_public_ladders(public_ladders):
    """The acceptance check of the cross-lab calibration, leave one lab out: on every split with at
    least 10 held-out losses, the default's 90% intervals cover at least 80% and its 80% intervals
    at least 70% — the lower edges of the goal's bands. Before the interval distance counted size
    (a larger model at no more compute than the fitted runs sat at distance 0), Porian's size
    splits were covered 67% at 80%. The upper edges do not hold: the compute splits are covered
    100% (docs/accuracy.md states it), so pooled over all 267 held-out losses the coverage is
    95% / 97%; the test asserts the 90% pooled coverage lies between 80% and 98% (measured 97.0%,
    259 of 267).

    And the accuracy goal, with the default's predictions centered by the other labs' shift: its
    mean error is at most the paper method's on every ladder (ratios 0.52–0.92) and 0.78× of it
    on average (goal: 0.85×); before the center it lost on both Porian ladders (1.12×, 1.20×)."""
    methods = [m for m in L.METHODS if m.name in ("paper", "default")]
    rows = L.run(public_ladders, methods, n_resamples=100)  # as `lmscale benchmark accuracy` runs it
    big = [
        r
        for r in rows
        if r["method"] == "default" and r["quantity"] == "loss" and r.get("n_predictions", 0) >= 10
    ]
    assert len(big) == 7
    for r in big:
        assert r["coverage_90"] >= 0.80 and r["coverage_80"] >= 0.70, r
    *per, total = T.per_ladder(rows)
    ratios = [x["default_mean_abs_error"] / x["baseline_mean_abs_error"] for x in per]
    assert len(ratios) == 7 and max(ratios) <= 1.0 and sum(ratios) / len(ratios) <= 0.85, ratios
    assert total["n_predictions"] == 267
    assert 0.80 <= total["coverage_90"] <= 0.98, total
    # every chained error is predicted and covered at 90% pooled over the testbed's ladders
    for q in ("error_46", "error_17"):
        err = T.per_ladder(rows, q)[-1]
        assert err["n_predictions"] == 14 and err["coverage_90"] >= 0.8, err


def test_a_run_table_with_task_accuracies_is_scored_on_its_chained_error(tmp_path):
    from lmscale.laws import ERROR

    path = _synthetic(tmp_path, "lab_t")
    df = pd.read_csv(path)
    err = ERROR.formula({"epsilon": 0.9, "k": 6.0, "gamma": 1.2}, {"loss": df["loss_val"].to_numpy()})
    df["acc_one"] = 1 - err + 0.01
    df["acc_two"] = 1 - err - 0.01
    df.loc[0, "acc_two"] = float("nan")  # a run without this task: left out of the error, not of the loss
    df.to_csv(path, index=False)
    (lad,) = L.load(path)
    assert set(lad.errors) == {"error_2task"} and np.isnan(lad.errors["error_2task"][0])
    rows = L.run([lad], L.METHODS[:2], n_resamples=20, references="shipped")
    errs = [r for r in rows if r["quantity"] == "error_2task"]
    assert errs and all(r["mean_abs_error"] < 0.02 and r["n_predictions"] > 0 for r in errs)


def test_odd_ladders_are_scored_without_a_traceback(tmp_path):
    """Found by review: a 3-size ladder (no size split to hold out), a task no run has, and a
    held-out error of 0 (accuracy 1) are scored or left out, never a crash or an infinite error."""
    rows = []
    for n in (1e7, 2e7, 4e7):
        for m in (10, 20, 40):
            loss = OVERTRAIN.formula(
                {"A": 8e2, "B": 1.2e3, "c": -0.3, "E": 1.8}, {"n_params": n, "multiplier": m}
            )
            rows.append(
                dict(run_id=f"r{n:.0e}-{m}", dataset="x", model="m", n_params=n, n_tokens=n * m, loss_x=loss)
            )
    three = tmp_path / "three.csv"
    pd.DataFrame(rows).to_csv(three, index=False)
    res = CliRunner().invoke(cli, ["benchmark", "accuracy", "--ladder", str(three), "--resamples", "0"])
    # no split holds runs out: nothing to score is said, never an empty report with exit code 0
    assert res.exit_code == 2 and "three.csv" in res.output and "no split" in res.output, res.output
    assert "Traceback" not in res.output

    path = _synthetic(tmp_path, "lab_z")
    df = pd.read_csv(path)
    df["acc_none"] = float("nan")  # a task no run has: no error target
    df["acc_all"] = 1.0  # perfect accuracy: an error of 0 cannot be scored relatively
    df.loc[df.n_params < df.n_params.max() / 8, "acc_all"] = 0.5
    df.to_csv(path, index=False)
    (lad,) = L.load(path)
    assert list(lad.errors) == ["error_1task"]  # the task no run has is left out
    out = L.run([lad], L.METHODS[:2], n_resamples=10, references="shipped")
    for r in out:
        if r["quantity"] != "loss" and "failed" not in r:
            assert r["n_predictions"] == 0 or np.isfinite(r["mean_abs_error"]), r
    T.per_ladder(out, "error_1task")  # no division by zero on an empty or perfect quantity


def test_a_calibration_that_overflows_gives_no_infinite_interval():
    from lmscale import calibration as cal

    c = cal.Calibration("loss", (709.0,) * 25, "own", "tampered", tau=1.0)
    with pytest.raises(OverflowError):
        c.interval(3.0, 0.0, 1.0, 0.9)


def test_loss_gap_of_the_power_law():
    from lmscale.fit.core import fit
    from lmscale.laws import POWER
    from lmscale.predict import loss_gap

    c = np.geomspace(1e17, 1e20, 8)
    loss = POWER.formula({"K": 3e3, "eta": 0.2, "E": 1.9}, {"flops": c})
    pf = fit(POWER, {"flops": c}, loss)
    low = float(loss.min())
    half = (low + pf.params["E"]) / 2  # half the reducible loss: ln 2 / η e-folds
    assert loss_gap(pf, low, half)[0] == pytest.approx(np.log(2) / pf.params["eta"], rel=1e-6)


def test_two_ladders_with_one_name_are_refused(tmp_path):
    """Found by fuzzing: two tables with the same file name (or one given twice) became two
    ladders of one name, whose backtests overwrote each other in the references and whose rows
    the tables could not tell apart."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _synthetic(tmp_path / "a", "x"), _synthetic(tmp_path / "b", "x", seed=1)
    with pytest.raises(InputError, match=r"'x'.*a/x\.csv.*b/x\.csv"):
        L.run([*L.load(a), *L.load(b)], L.METHODS[:1], n_resamples=0)
    for args in ([a, b], [a, a]):
        cmd = ["benchmark", "accuracy", "--resamples", "0"]
        res = CliRunner().invoke(cli, [*cmd, *(x for p in args for x in ("--ladder", str(p)))])
        assert res.exit_code == 2 and "x.csv" in res.output and "Traceback" not in res.output, res.output


def test_a_ladder_without_a_split_is_named_beside_the_others(tmp_path):
    """Found by fuzzing: a ladder whose grid allows no split (here two sizes) was left out of the
    report without a word."""
    good = _synthetic(tmp_path, "lab_g")
    df = pd.read_csv(_synthetic(tmp_path, "lab_s"))
    small = tmp_path / "lab_s.csv"
    df[df.n_params <= df.n_params.min() * 2].to_csv(small, index=False)
    (lad,) = L.load(small)
    assert not L.splits(lad) and "no split" in L.split_problem(lad)
    assert L.split_problem(L.load(good)[0]) is None
    cmd = ["benchmark", "accuracy", "--resamples", "0", "--format", "json", "--method", "default"]
    res = CliRunner().invoke(cli, [*cmd, "--ladder", str(good), "--ladder", str(small)])
    assert res.exit_code == 0, res.output
    assert "lab_s.csv" in res.stderr and "not scored" in res.stderr
    rows = json.loads(res.stdout[res.stdout.index("[") :])
    assert rows and {r["ladder"] for r in rows} == {"lab_g"}


def test_a_model_size_of_zero_is_left_out_without_a_warning(tmp_path):
    import warnings

    rows = ["Model Size,Training FLOP,loss", "0,1e20,3.0"]
    for n in np.geomspace(4e7, 1e10, 9):
        rows += [f"{n},{6 * n * n * m},{1.7 + 400 / n**0.34 + 410 / (n * m) ** 0.28}" for m in (5, 20, 80)]
    p = tmp_path / "epoch.csv"
    p.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # found by fuzzing: numpy's divide-by-zero warning was printed
        (lad,) = L.load(p)
    assert lad.n_dropped == 1 and len(lad.loss) == 27


def test_the_ladder_benchmark_draws_each_prediction_and_its_interval(tmp_path):
    path = _synthetic(tmp_path, "lab_p")
    png = tmp_path / "figs" / "ladders.png"
    cmd = ["benchmark", "accuracy", "--ladder", str(path), "--resamples", "20", "--method", "paper"]
    res = CliRunner().invoke(cli, [*cmd, "--method", "default", "--plot", str(png), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [r for r in json.loads(res.stdout) if r["quantity"] == "loss"]
    for r in rows:  # each held-out prediction, inside its own interval's bounds
        assert len(r["points"]) == r["n_predictions"] > 0
        assert all(p["low_90"] < p["predicted"] < p["high_90"] for p in r["points"])
    plain = CliRunner().invoke(cli, [*cmd, "--format", "json"])
    assert all("points" not in r for r in json.loads(plain.stdout))  # only when a figure is drawn
    for bad in (
        ["--testbed", str(tmp_path)],
        [*cmd[2:4], "--references", "none"],
        [*cmd[2:4], "--resamples", "0"],
    ):
        res = CliRunner().invoke(cli, ["benchmark", "accuracy", *bad, "--plot", str(tmp_path / "x.png")])
        assert res.exit_code == 2 and "--plot draws the ladder benchmark" in res.output, res.output
        assert not (tmp_path / "x.png").exists()
    from lmscale.report import ladder_figure

    only = [r for r in rows if r["method"] == "paper"]  # without the default: the first method's bars
    assert ladder_figure.save(only, tmp_path / "paper.png").stat().st_size > 10_000
    assert (
        ladder_figure.save(only, tmp_path / "paper.svg")
        .read_text(encoding="utf-8")
        .lstrip()
        .startswith("<?xml")
    )
    with pytest.raises(InputError, match=r"\.docx is not one of"):
        ladder_figure.save(only, tmp_path / "paper.docx")
    assert not (tmp_path / "paper.docx").exists()
    with pytest.raises(InputError, match="cannot write the figure"):
        ladder_figure.save(rows, "/proc/no/such/place.png")
    with pytest.raises(InputError, match="no held-out predictions"):
        ladder_figure.figure([{"quantity": "loss", "method": "default", "ladder": "x", "points": []}])


def test_the_benchmark_scores_the_intervals_a_user_gets(tmp_path):
    """What `benchmark accuracy --references shipped` scores is what `lmscale fit --bootstrap` then
    `lmscale predict` gives a user for the same runs: the same interval for every held-out run."""
    path = _synthetic(tmp_path, "lab_u")
    (lad,) = L.load(path)
    split = next(s for s in L.splits(lad) if s.name == "size")
    table = pd.read_csv(path)
    fit_runs = tmp_path / "fit_runs.csv"
    table[table.run_id.isin(np.asarray(lad.run_ids)[split.fit])].to_csv(fit_runs, index=False)
    fit_file = tmp_path / "fit.json"
    res = CliRunner().invoke(
        cli, ["fit", str(fit_runs), "--target", "loss_val", "--bootstrap", "20", "-o", str(fit_file)]
    )
    assert res.exit_code == 0, res.output
    (row,) = [
        r
        for r in L.run([lad], [L.METHODS[1]], n_resamples=20, references="shipped", keep_points=True)
        if r["split"] == "size"
    ]
    assert len(row["points"]) == split.heldout.sum() > 0
    for p in row["points"]:
        args = ["--n-params", repr(p["n_params"]), "--multiplier", repr(p["multiplier"])]
        res = CliRunner().invoke(cli, ["predict", str(fit_file), *args, "--format", "json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["loss"] == pytest.approx(p["predicted"], rel=1e-6)
        assert out["loss_interval"] == pytest.approx([p["low_90"], p["high_90"]], rel=1e-6)
