import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lmscale.cli import cli


def run(*args):
    """Invoke the CLI in-process. CliRunner swallows exceptions into ``res.exception``: anything but
    a clean exit (click's SystemExit) is a crash the user would have seen as a traceback."""
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def test_reproduce_table_and_json(testbed_dir):
    res = run("reproduce", "--testbed", testbed_dir, "--val-set", "c4_val")
    assert res.exit_code == 0, res.output
    for number in ("0.7103%", "0.7320%", "3.6365%", "0.0464%"):
        assert number in res.output
    res = run(
        "reproduce", "--testbed", testbed_dir, "--val-set", "c4_val", "--train-set", "rpj", "--format", "json"
    )
    rows = json.loads(res.output)
    assert {r["target"] for r in rows} == {"loss", "error_46", "error_17"}
    need = {"train_set", "val_set", "n_params", "multiplier", "target", "predicted", "observed", "rel_error"}
    assert all(need <= set(r) for r in rows)
    r = next(r for r in rows if r["multiplier"] == 640 and r["target"] == "loss")
    assert round(100 * r["rel_error"], 4) == 0.7103


def test_fit_then_predict(tmp_path, testbed_dir):
    out = tmp_path / "fit.json"
    res = run(
        "fit",
        testbed_dir,
        "--law",
        "overtrain",
        "--target",
        "loss_c4_val",
        "--dataset",
        "rpj",
        "--where",
        "n_params <= 5e8 and multiplier == 20",
        "--where",
        "n_params < 2e7 and multiplier == 320",
        "--method",
        "paper",
        "-o",
        out,
    )
    assert res.exit_code == 0, res.output
    assert "7.419" in res.output  # M* for RedPajama
    res = run("predict", out, "--n-params", 6889410560, "--multiplier", 20, "--format", "json")
    pred = json.loads(res.output)
    assert pred["loss"] == pytest.approx(2.4427, abs=1e-4)
    err = tmp_path / "err.json"
    res = run(
        "fit",
        testbed_dir,
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
        "--where",
        "n_params < 2e7 and multiplier == 320",
        "--method",
        "paper",
        "-o",
        err,
    )
    assert res.exit_code == 0, res.output
    res = run(
        "predict",
        out,
        "--n-params",
        6889410560,
        "--tokens",
        20 * 6889410560,
        "--error-fit",
        err,
        "--format",
        "json",
    )
    assert json.loads(res.output)["error"] == pytest.approx(0.4719, abs=1e-4)


def test_fit_from_csv(tmp_path, testbed_runs):
    path = testbed_runs.write(tmp_path / "runs.csv")
    res = run(
        "fit",
        path,
        "--target",
        "loss_c4_val",
        "--dataset",
        "rw_original",
        "--where",
        "n_params <= 5e8 and multiplier == 20",
        "--where",
        "n_params < 2e7 and multiplier == 320",
        "--method",
        "paper",
    )
    assert res.exit_code == 0, res.output
    assert "5.846" in res.output  # M* for RefinedWeb (5.85 in the paper)


def test_fit_default_is_the_default_method(tmp_path, testbed_dir):
    out = tmp_path / "fit.json"
    res = run(
        "fit",
        testbed_dir,
        "--target",
        "loss_c4_val",
        "--dataset",
        "rpj",
        "--where",
        "n_params <= 5e8",
        "-o",
        out,
    )
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["method"] == "rel-ls-size"
    res = run(
        "fit",
        testbed_dir,
        "--law",
        "error",
        "--target",
        "error_17",
        "--loss-column",
        "loss_c4_val",
        "--dataset",
        "rpj",
        "--where",
        "n_params <= 2e9",
        "-o",
        out,
    )
    assert json.loads(out.read_text())["method"] == "varpro"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["fit", "{tb}", "--target", "loss_nope"], "unknown validation set 'nope'"),
        (["fit", "{tb}", "--target", "error_nonsense_task"], "unknown target 'error_nonsense_task'"),
        (["fit", "{tb}", "--target", "loss_c4_val", "--where", "n_params < 1"], "empty selection"),
        (
            ["fit", "{tb}", "--target", "loss_c4_val", "--where", "multiplier == 640 and n_params < 2e7"],
            "too few runs",
        ),
        (["fit", "{tb}", "--target", "loss_c4_val", "--where", "banana >= 3"], "unknown field 'banana'"),
        (["fit", "{tb}", "--target", "loss_c4_val", "--law", "kaplan"], "unknown law 'kaplan'"),
        (["reproduce", "--testbed", "{tb}", "--val-set", "wiki"], "unknown validation set"),
    ],
)
def test_cli_errors_are_clean(args, needle, testbed_dir):
    res = run(*[a.format(tb=testbed_dir) for a in args])
    assert res.exit_code == 2
    assert needle in res.output.replace("\n", " ")


def test_bad_file_via_subprocess(tmp_path):
    bad = tmp_path / "runs.csv"
    bad.write_text("run_id,dataset,model,n_params,n_tokens,loss_val\na,w,s,1e7,2e8,-3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "lmscale.cli", "fit", str(bad), "--target", "loss_val"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "line 2 (run 'a'): field 'loss_val' is a loss and must be positive" in proc.stderr


def test_report_from_a_run_table(tmp_path, testbed_runs):
    from lmscale.selection import Selection

    path = Selection.parse("dataset == rpj").apply(testbed_runs).write(tmp_path / "rpj.jsonl")
    res = run(
        "report",
        path,
        "--val-set",
        "c4_val",
        "--split",
        "17-task",
        "--out",
        tmp_path / "r",
        "--method",
        "paper",
        "--fit-runs",
        "n_params <= 5e8 and multiplier == 20",
        "--fit-runs",
        "n_params < 2e7 and multiplier == 320",
        "--heldout",
        "n_params >= 1e9 and multiplier == 640",
    )
    assert res.exit_code == 0, res.output
    assert "0.71%" in res.output  # the paper's 1.4B M=640 loss prediction, fitted on the loss-fit runs only
    assert (tmp_path / "r" / "report.md").is_file() and (
        tmp_path / "r" / "figures" / "figure1_rpj.png"
    ).is_file()
    res = run(
        "report",
        testbed_runs.write(tmp_path / "all.jsonl"),
        "--val-set",
        "c4_val",
        "--split",
        "17-task",
        "--out",
        tmp_path / "r2",
    )
    assert res.exit_code == 2 and "one training set" in res.output


def test_fit_never_writes_over_its_own_run_table(tmp_path):
    """Found by fuzzing: ``lmscale fit runs.jsonl -o runs.jsonl`` replaced the run table with the
    fit."""
    import shutil
    from pathlib import Path

    runs = tmp_path / "runs.jsonl"
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "cpu-small" / "runs.jsonl", runs)
    before = runs.read_bytes()
    for out in (runs, tmp_path / "." / "runs.jsonl"):
        res = run("fit", runs, "--target", "loss_python", "-o", out)
        assert res.exit_code == 2 and "runs.jsonl" in res.output and "RUNS" in res.output, res.output
    assert runs.read_bytes() == before
