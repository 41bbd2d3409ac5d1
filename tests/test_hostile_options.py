"""Plan, backtest and data prepare answer sanely on careless options (issue 23): a NaN MFU, an
unknown fitting method, evidence without a validation loss, an empty target column and odd
``--sample-bytes`` are refused with one clear message and exit 2, before any work."""

import json

import pytest
from click.testing import CliRunner

from conftest import ROOT
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.plan import plan
from lmscale.predict import ScalePoint
from lmscale.run_table import RunTable

EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"
ROWS = [json.loads(x) for x in EXAMPLE.read_text().splitlines() if x.strip()]


def run(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def write(tmp_path, rows, name="runs.jsonl"):
    p = tmp_path / name
    if name.endswith(".csv"):
        RunTable.from_records(rows).frame.to_csv(p, index=False)
    else:
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def check_error(res, *words):
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in res.output, (w, res.output)


PLAN = ["plan", "--target-params", "1e7", "--target-multiplier", "20", "--evidence", EXAMPLE]


@pytest.mark.parametrize("mfu", ["nan", "inf", "-nan", "0", "1.5"])
def test_plan_refuses_a_bad_mfu(mfu):
    check_error(run([*PLAN, "--mfu", mfu]), "--mfu")


@pytest.mark.parametrize("option", ["--target-params", "--budget", "--target-multiplier"])
def test_plan_refuses_non_finite_numbers(option):
    check_error(run([*PLAN, option, "nan"]), option)  # the last of a repeated option counts


def test_plan_refuses_an_unknown_method_before_work():
    check_error(run([*PLAN, "--method", "defualt"]), "--method", "'defualt'", "is not one of")
    with pytest.raises(InputError, match="unknown fitting method 'nope'"):
        plan(RunTable.read(EXAMPLE), ScalePoint.make(1e7, multiplier=20), method="nope")


def test_plan_on_evidence_without_a_validation_loss(tmp_path):
    rows = [{k: v for k, v in r.items() if not k.startswith("loss_")} for r in ROWS]
    check_error(run([*PLAN[:-1], write(tmp_path, rows)]), "no validation loss", "loss_<set>")
    nan_rows = [{**r, **{k: None for k in r if k.startswith("loss_")}} for r in ROWS]
    check_error(run([*PLAN[:-1], write(tmp_path, nan_rows, "nan.jsonl")]), "no validation loss")
    with pytest.raises(InputError, match="no validation loss"):
        plan(RunTable.from_records(rows), ScalePoint.make(1e7, multiplier=20))


@pytest.mark.parametrize("name", ["runs.jsonl", "runs.csv"])
def test_backtest_on_an_empty_target_column(tmp_path, name):
    rows = [{**r, "loss_python": None} for r in ROWS]
    out = tmp_path / "out"
    res = run(
        ["backtest", write(tmp_path, rows, name), "--target", "loss_python", "--bootstrap", "5", "--out", out]
    )
    check_error(res, "'loss_python' holds no value")
    assert not out.exists()


@pytest.mark.parametrize(
    ("size", "why"),
    [
        ("1e999", "1e999"),
        ("abc", "expected a size"),
        ("nan", "expected a size"),
        ("0", "'0'"),
        ("-5", "'-5'"),
    ],
)
def test_data_prepare_sample_bytes_is_a_checked_size(tmp_path, size, why):
    src = tmp_path / "a.txt"
    src.write_text("hello\n")
    res = run(["data", "prepare", src, "--out", tmp_path / "out", "--sample-bytes", size])
    check_error(res, "--sample-bytes", why)
    assert not (tmp_path / "out").exists()


def test_byte_sizes_read():
    from lmscale.cli._common import byte_size

    assert byte_size(None, None, "256MB") == 256 * 2**20
    assert byte_size(None, None, "1e9") == 10**9
    assert byte_size(None, None, 4096) == 4096
