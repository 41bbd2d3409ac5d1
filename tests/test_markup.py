"""The output layer cannot be injected (issue 23): user data in a message (a file name, a run id,
a header, a metric or target name, cell text) prints as typed. Every command's error path is fed
inputs whose names hold rich markup; the message must show it literally, exit 2, no traceback."""

import json

import pytest
from click.testing import CliRunner

from conftest import ROOT
from lmscale.cli import cli

#: a closing tag with nothing open crashed the printer; a bold pair swallowed its brackets
MARK = "in[/red][bold]x[/bold]"
EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"


def _bad_json(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{not json\n")
    return p


def _runs(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(EXAMPLE.read_text())
    return p


# command → arguments built in a folder whose name holds markup (m), with a bad input there
COMMANDS = {
    "fit": lambda m: ["fit", _bad_json(m / "runs.jsonl"), "--target", "loss_python"],
    "fit --target": lambda m: ["fit", _runs(m / "r.jsonl"), "--target", "loss_[/red][bold]x[/bold]"],
    "fit --where": lambda m: [
        "fit",
        _runs(m / "r.jsonl"),
        "--target",
        "loss_python",
        "--where",
        "[/red] < 1",
    ],
    "predict": lambda m: ["predict", _bad_json(m / "fit.json"), "--n-params", "1e9", "--multiplier", "20"],
    "backtest": lambda m: ["backtest", _bad_json(m / "runs.jsonl"), "--target", "loss_x", "--out", m / "o"],
    "backtest --target": lambda m: [
        "backtest",
        _runs(m / "r.jsonl"),
        "--target",
        "loss_[/red]",
        "--out",
        m / "o",
    ],
    "plan": lambda m: [
        "plan",
        "--target-params",
        "1e9",
        "--target-multiplier",
        "20",
        "--evidence",
        _bad_json(m / "runs.jsonl"),
    ],
    "plan --method": lambda m: [
        "plan",
        "--target-params",
        "1e9",
        "--target-multiplier",
        "20",
        "--evidence",
        _runs(m / "r.jsonl"),
        "--method",
        "[/red]",
    ],
    "report": lambda m: [
        "report",
        _bad_json(m / "runs.jsonl"),
        "--val-set",
        "x",
        "--split",
        "y",
        "--out",
        m / "o",
    ],
    "reproduce": lambda m: ["reproduce", "--testbed", _mk(m), "--out", m / "o"],
    "benchmark accuracy": lambda m: ["benchmark", "accuracy", "--testbed", _mk(m)],
    "benchmark speed": lambda m: ["benchmark", "speed", "--testbed", _mk(m)],
    "testbed tasks": lambda m: ["testbed", "tasks", "--testbed", _mk(m)],
    "ladder plan": lambda m: ["ladder", "plan", _bad_json(m / "ladder.json")],
    "ladder run": lambda m: ["ladder", "run", _bad_json(m / "ladder.json"), "--out", m / "o"],
    "ladder eval": lambda m: ["ladder", "eval", _mk(m), "--suite", _suite(m)],
    "eval": lambda m: ["eval", _mk(m), "--suite", _suite(m)],
    "loop": lambda m: ["loop", _bad_json(m / "ladder.json"), "--out", m / "o"],
    "data prepare": lambda m: ["data", "prepare", m / "none.txt", "--out", m / "o"],
    "import wandb-csv": lambda m: ["import", "wandb-csv", _mk(m), "--map", "a=loss_a", "-o", m / "o.csv"],
    "import lm-eval": lambda m: [
        "import",
        "lm-eval",
        _runs(m / "r.jsonl"),
        _bad_json(m / "results.json"),
        "-o",
        m / "o.csv",
    ],
    "import tensorboard": lambda m: ["import", "tensorboard", _mk(m), "--map", "a=loss_a", "-o", m / "o.csv"],
    "export": lambda m: ["export", _mk(m), "--to", m / "o"],
}


def _mk(m):
    m.mkdir(parents=True, exist_ok=True)
    return m


def _suite(m):
    p = _mk(m) / "suite.yaml"
    p.write_text("icl_tasks: []\n")
    return p


def run(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_markup_in_user_data_prints_literally(tmp_path, name):
    m = tmp_path / MARK
    args = COMMANDS[name](m)
    res = run(args)
    assert res.exception is None or isinstance(res.exception, SystemExit), (name, repr(res.exception))
    assert res.exit_code == 2, (name, res.output)
    assert "error" in res.output.lower(), res.output
    literal = "[/red]" if name.endswith(("--target", "--where", "--method")) else MARK
    assert literal in res.output, (name, res.output)
    assert "Traceback" not in res.output


def test_markup_in_warnings_and_cells(tmp_path):
    """A skipped file's reason quotes the cell: ``[bold]`` there is shown, not applied."""
    d = tmp_path / "wb"
    d.mkdir()
    good = "_step,eval/loss\n0,3.0\n10,2.5\n"
    (d / "20M_1B.csv").write_text(good)
    (d / "60M_1B.csv").write_text(good)
    (d / "150M_1B.csv").write_text("_step,eval/loss\n0,[bold]abc[/bold]\n")
    res = run(["import", "wandb-csv", d, "--map", "eval/loss=loss_x", "--name-pattern", "{model}_{tokens}.csv",
               "-o", tmp_path / "out.csv"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "'[bold]abc[/bold]' is not a number" in res.output


def test_markup_in_a_run_id_of_a_table(tmp_path):
    rows = [json.loads(x) for x in EXAMPLE.read_text().splitlines() if x.strip()]
    rows[0]["run_id"] = "[/red]r"
    rows[1]["run_id"] = "[/red]r"  # a duplicate: the error names it
    p = tmp_path / "runs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run(["fit", p, "--target", "loss_python"])
    assert res.exit_code == 2 and "[/red]r" in res.output, res.output
