"""The reading layer (lmscale._io) refuses what is not a regular file of the expected kind, in
bounded time and memory (issue 23): FIFOs, devices, symlinks to /dev/zero, folders named like
files; JSON/YAML nested beyond MAX_DEPTH; integers beyond float range. Tests that could hang
if a reader regressed run under an alarm."""

import json
import os
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT, deadline
from lmscale._io import (
    MAX_DEPTH,
    check_regular_file,
    check_tree,
    iter_json_lines,
    parse_json,
    read_json,
    read_text,
    read_yaml,
)
from lmscale.cli import cli
from lmscale.errors import InputError

WANDB = ROOT / "examples" / "wandb-export"
EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"


@pytest.fixture
def specials(tmp_path):
    """A FIFO, a symlink to /dev/zero and a folder, each named like a data file."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    return {"a FIFO": fifo, "a device": zero, "a folder": folder}


def test_readers_refuse_what_is_not_a_regular_file(specials):
    with deadline():
        for kind, p in specials.items():
            for read in (check_regular_file, read_text, read_json, read_yaml):
                with pytest.raises(InputError, match=f"{p.name}.*{kind}"):
                    read(p)


def test_missing_and_regular_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_text(tmp_path / "nope.txt")
    p = tmp_path / "a.json"
    p.write_text('{"a": [1, 2]}')
    link = tmp_path / "link.json"
    link.symlink_to(p)  # a symlink to a regular file is read
    assert read_json(link) == {"a": [1, 2]}
    with pytest.raises(InputError, match="at most 4 are read"):
        read_text(p, max_bytes=4)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 200_000])
def test_nesting_depth_is_bounded(tmp_path, depth):
    text = "[" * depth + "]" * depth
    with pytest.raises(InputError, match="nested"):
        parse_json(text, "doc")
    with pytest.raises(InputError, match="nested"):
        list(iter_json_lines([text], "runs.jsonl"))
    if depth < 100_000:  # over 1 MB the config size cap answers first
        (tmp_path / "c.yaml").write_text("a: " + text + "\n")
        with pytest.raises(InputError, match="nested"):
            read_yaml(tmp_path / "c.yaml")
        (tmp_path / "m.yaml").write_text("{a: " * depth + "1" + "}" * depth + "\n")
        with pytest.raises(InputError, match="nested"):
            read_yaml(tmp_path / "m.yaml")
    assert parse_json("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), "doc")  # at the limit: read


def test_integers_beyond_float_range(tmp_path):
    big = "1" + "0" * 400
    with pytest.raises(InputError, match="beyond float range"):
        parse_json('{"n": ' + big + "}", "doc")
    with pytest.raises(InputError, match="beyond float range"):
        parse_json('{"n": ' + big + "}", "doc", allow_nan=True)
    with pytest.raises(InputError, match=r"runs.jsonl, line 1: .*beyond float range"):
        list(iter_json_lines(['{"n": ' + big + "}"], "runs.jsonl"))
    (tmp_path / "c.yaml").write_text(f"n: {big}\n")
    with pytest.raises(InputError, match="beyond float range"):
        read_yaml(tmp_path / "c.yaml")
    with pytest.raises(InputError, match="beyond float range"):
        check_tree({"a": [10**400]}, "x")
    assert parse_json('{"n": ' + "9" * 300 + "}", "doc")["n"] == int("9" * 300)  # within range: kept
    assert check_tree({"a": [sys.maxsize, True, 1.5]}, "x")


def _cli(args):
    with deadline():
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def _wandb(tmp_path, n=6):
    d = tmp_path / "wb"
    d.mkdir()
    for f in sorted(WANDB.glob("*.csv"))[:n]:
        (d / f.name).write_bytes(f.read_bytes())
    return d


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir"])
def test_import_wandb_csv_skips_special_files_without_hanging(tmp_path, kind):
    d = _wandb(tmp_path)
    p = d / "20M_9B.csv"  # a name the pattern matches
    {"fifo": lambda: os.mkfifo(p), "zero": lambda: p.symlink_to("/dev/zero"), "dir": p.mkdir}[kind]()
    res = _cli(
        [
            "import",
            "wandb-csv",
            d,
            "--map",
            "eval/val/c4/ce_loss=loss_c4",
            "--name-pattern",
            "{model}_{tokens}.csv",
            "-o",
            tmp_path / "out" / "runs.csv",
        ]
    )
    assert res.exit_code == 0, res.output
    assert "skipped 20M_9B.csv" in res.output and "not a regular file" in res.output, res.output


def test_cli_readers_refuse_fifos_with_exit_2(tmp_path):
    """Run tables, map files, lm-eval results and ladder configs named by the user."""
    d = _wandb(tmp_path)
    cases = {
        "runs.jsonl": lambda p: ["fit", p, "--target", "loss_python"],
        "runs.csv": lambda p: ["backtest", p, "--target", "loss_python", "--out", tmp_path / "o"],
        "map.yaml": lambda p: ["import", "wandb-csv", d, "--map-file", p, "-o", tmp_path / "o.csv"],
        "results.json": lambda p: ["import", "lm-eval", EXAMPLE, p, "-o", tmp_path / "o.csv"],
        "ladder.yaml": lambda p: ["ladder", "plan", p],
    }
    for name, args in cases.items():
        p = tmp_path / name
        os.mkfifo(p)
        res = _cli(args(p))
        assert res.exit_code == 2, (name, res.output)
        assert "FIFO" in res.output and name in res.output, (name, res.output)


def test_cli_deep_and_huge_numbers(tmp_path):
    runs = tmp_path / "runs.jsonl"
    text = EXAMPLE.read_text().replace('"loss_python": 4.494800090789795', '"loss_python": 1' + "0" * 400, 1)
    runs.write_text(text)
    res = _cli(["fit", runs, "--target", "loss_python"])
    assert res.exit_code == 2 and "line 1" in res.output and "beyond float range" in res.output, res.output
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"results": {"arc": {"acc,none": 0.5}}}).replace("0.5", "1" + "0" * 400))
    res = _cli(
        ["import", "lm-eval", EXAMPLE, results, "--run-id", "python-d32-l1-M10", "-o", tmp_path / "o.csv"]
    )
    assert res.exit_code == 2 and "beyond float range" in res.output, res.output
    results.write_text("[" * 5000 + "]" * 5000)
    res = _cli(
        ["import", "lm-eval", EXAMPLE, results, "--run-id", "python-d32-l1-M10", "-o", tmp_path / "o.csv"]
    )
    assert res.exit_code == 2 and "nested" in res.output, res.output
    cfg = tmp_path / "ladder.json"
    cfg.write_text('{"name": ' + "[" * 5000 + "]" * 5000 + "}")
    res = _cli(["ladder", "plan", cfg])
    assert res.exit_code == 2 and "nested" in res.output, res.output
    res = _cli(["import", "lm-eval", EXAMPLE, results, "--run-id", "nope", "-o", tmp_path / "o.csv"])
    assert res.exit_code == 2 and "--run-id 'nope' is not a run" in res.output, res.output


def test_data_prepare_refuses_special_tokenizer_and_token_files(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("hello world\n")
    tok = tmp_path / "tok.json"
    os.mkfifo(tok)
    res = _cli(["data", "prepare", src, "--tokenizer", tok, "--out", tmp_path / "o"])
    assert res.exit_code == 2 and "tok.json: tokenizer file is a FIFO" in res.output, res.output
    res = _cli(["data", "prepare", "--pretokenized", src, "--tokenizer", tok, "--out", tmp_path / "o"])
    assert res.exit_code == 2 and "FIFO" in res.output, res.output
    fifo_src = tmp_path / "b.txt"
    os.mkfifo(fifo_src)
    res = _cli(["data", "prepare", fifo_src, "--out", tmp_path / "o2"])
    assert res.exit_code == 2 and "b.txt: corpus source is a FIFO" in res.output, res.output


def test_data_prepare_deep_jsonl_line(tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text('{"text": "hello"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    res = _cli(["data", "prepare", src, "--out", tmp_path / "o", "--vocab-size", "300"])
    assert res.exit_code == 2 and "c.jsonl, line 2: JSON nested too deeply" in res.output, res.output
