"""One command line (issue 21): size suffixes wherever N, D or FLOPs are given, one name for the
validation loss, the law inferred from the target, a loss-only report, and a planner that says what
one ladder lacks and keeps combined evidence grids apart."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.predict import ScalePoint
from lmscale.run_table import RunTable

EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_size_suffixes_in_predict_where_and_plan(tmp_path):
    fit = tmp_path / "fit.json"
    assert (
        run("fit", EXAMPLE, "--target", "loss_python", "--where", "n_params < 300k", "-o", fit).exit_code == 0
    )
    plain = run("predict", fit, "--n-params", "1000000", "--tokens", "20000000", "--format", "json")
    short = run("predict", fit, "--n-params", "1M", "--tokens", "20M", "--format", "json")
    assert plain.exit_code == short.exit_code == 0
    assert json.loads(plain.stdout)["loss"] == json.loads(short.stdout)["loss"]
    bad = run("predict", fit, "--n-params", "1Q", "--tokens", "20M")
    assert bad.exit_code == 2 and "k/M/B/T" in bad.output
    from lmscale.selection import Selection

    t = RunTable.read(EXAMPLE)
    assert len(Selection.parse("n_params < 300k").apply(t)) == len(Selection.parse("n_params < 3e5").apply(t))
    res = run(
        "plan", "--evidence", EXAMPLE, "--target-params", "1M", "--target-tokens", "20M", "--budget", "1e14"
    )
    assert res.exit_code == 0, res.output


def test_error_target_infers_the_error_law_or_is_refused(tmp_path):
    ok = run(
        "fit",
        EXAMPLE,
        "--target",
        "error:cloze,brackets",
        "--loss-column",
        "python",
        "-o",
        tmp_path / "e.json",
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "e.json").read_text())["law"] == "error"
    bad = run("fit", EXAMPLE, "--target", "error:cloze,brackets", "--law", "overtrain", "--loss-column", "python",
              "-o", tmp_path / "bad.json")  # fmt: skip
    assert bad.exit_code == 2 and "downstream error" in bad.output and not (tmp_path / "bad.json").exists()


def test_one_name_for_the_validation_loss_and_a_loss_only_report(tmp_path):
    t = RunTable.read(EXAMPLE)
    loss_only = tmp_path / "loss_only.csv"
    RunTable.from_frame(t.frame[[c for c in t.frame.columns if not c.startswith("acc_")]]).write(loss_only)
    res = run("report", loss_only, "--loss-column", "loss_python", "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "loss only" in text and "1.46%" in text  # docs/loop.md's loss error on this ladder
    res = run("backtest", EXAMPLE, "--target", "error:cloze,brackets", "--loss-column", "python", "--bootstrap", "0",
              "--method", "default", "--out", tmp_path / "bt")  # fmt: skip
    assert res.exit_code == 0, res.output


def _ladder(name: str, sizes, mults, val_sets=("a",), seed=0) -> RunTable:
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for m in mults:
            row = {"run_id": f"{name}-{n:.3g}-{m}", "dataset": name, "model": f"{n:.3g}", "n_params": n,
                   "n_tokens": n * m}  # fmt: skip
            for v in val_sets:
                row[f"loss_{v}"] = (2 + 300 * n**-0.3 + 400 * (n * m) ** -0.3) * (
                    1 + 0.003 * rng.standard_normal()
                )
            rows.append(row)
    return RunTable.from_records(rows, source=name)


def test_plan_on_one_ladder_says_what_it_lacks():
    from lmscale.plan import plan

    one = _ladder("mine", [1e7, 2e7, 4e7, 8e7], [10, 20, 40])
    with pytest.raises(InputError) as exc:
        plan(one, ScalePoint.make(1e9, multiplier=20))
    msg = str(exc.value)
    assert "could not be backtested" in msg and "1 training set(s) and 1 validation loss(es)" in msg
    assert "raise --budget" not in msg


def test_combined_evidence_keeps_the_grids_apart():
    from lmscale.plan import EVIDENCE_COLUMN, combine, plan

    a = _ladder("web", [1.52e7, 3.1e7, 6.2e7, 1.52e8, 4e8], [10, 20, 40], val_sets=("a", "b", "c"))
    b = _ladder("code", [1.54e7, 3.0e7, 6.0e7, 1.54e8, 4.1e8], [5, 20, 80], val_sets=("a", "b", "c"), seed=1)
    both = combine([a, b])
    assert set(both.column(EVIDENCE_COLUMN)) == {"1: web", "2: code"}
    p = plan(both, ScalePoint.make(2e9, multiplier=20))
    grid_a, grid_b = set(a.column("n_params")), set(b.column("n_params"))
    for c in p.candidates:  # every candidate lies on one table's grid, never on the union
        assert set(c.sizes) <= grid_a or set(c.sizes) <= grid_b, c.sizes
    assert any(set(c.sizes) <= grid_b for c in p.candidates) and any(
        set(c.sizes) <= grid_a for c in p.candidates
    )
