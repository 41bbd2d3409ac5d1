import json
import math

import numpy as np
import pandas as pd
import pytest

from lmscale.errors import InputError
from lmscale.run_table import RunTable


def _rows():
    return [
        {
            "run_id": "a",
            "dataset": "web",
            "model": "s",
            "n_params": 1e7,
            "n_tokens": 2e8,
            "loss_val": 4.0,
            "loss_lower_val": 3.9,
            "loss_upper_val": 4.1,
            "acc_copa": 0.55,
            "seed": 1,
        },
        {
            "run_id": "b",
            "dataset": "web",
            "model": "m",
            "n_params": 1e8,
            "n_tokens": 2e9,
            "loss_val": 3.2,
            "loss_lower_val": None,
            "loss_upper_val": None,
            "acc_copa": None,
            "seed": 2,
        },
    ]


def test_derived_columns_and_accessors():
    t = RunTable.from_records(_rows())
    assert np.allclose(t.column("multiplier"), [20, 20])
    assert np.allclose(t.column("flops"), [6 * 1e7 * 2e8, 6 * 1e8 * 2e9])
    assert t.val_sets == ["val"] and t.tasks == ["copa"]
    assert math.isnan(t.accuracy("copa")[1])  # missing stays missing


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_roundtrip_exact(tmp_path, suffix):
    t = RunTable.from_records(_rows())
    path = t.write(tmp_path / f"runs{suffix}")
    back = RunTable.read(path)
    pd.testing.assert_frame_equal(t.frame, back.frame, check_dtype=False, check_exact=True)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temporary file


def _csv(tmp_path, text, name="runs.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


HEADER = "run_id,dataset,model,n_params,n_tokens,loss_val\n"


@pytest.mark.parametrize(
    "body,expected",
    [
        ("a,web,s,1e7,2e8,nan\n", ["line 2", "'loss_val'", "finite"]),
        ("a,web,s,1e7,2e8,inf\n", ["line 2", "finite"]),
        ("a,web,s,1e7,2e8,-1.5\n", ["line 2", "must be positive", "-1.5"]),
        ("a,web,s,1e7,2e8,abc\n", ["line 2", "not a number", "'abc'"]),
        ("a,web,s,-1e7,2e8,3\n", ["line 2", "'n_params'", "positive"]),
        ("a,web,s,1e7,2e8,3\na,web,s,1e8,2e9,2\n", ["line 3", "duplicate run_id 'a'", "line 2"]),
    ],
)
def test_bad_csv_rows_are_named(tmp_path, body, expected):
    with pytest.raises(InputError) as exc:
        RunTable.read(_csv(tmp_path, HEADER + body))
    msg = str(exc.value)
    assert "runs.csv" in msg
    for part in expected:
        assert part in msg


def test_inconsistent_multiplier(tmp_path):
    p = _csv(tmp_path, "run_id,dataset,model,n_params,n_tokens,multiplier\na,web,s,1e7,2e8,40\n")
    with pytest.raises(
        InputError, match=r"line 2 \(run 'a'\): inconsistent multiplier: 40 given, but D/N = 20"
    ):
        RunTable.read(p)


def test_missing_required_column(tmp_path):
    p = _csv(tmp_path, "run_id,dataset,n_params,n_tokens\na,web,1e7,2e8\n")
    with pytest.raises(InputError, match="missing required column.*model"):
        RunTable.read(p)


def test_malformed_csv(tmp_path):
    p = _csv(tmp_path, HEADER + 'a,web,s,1e7,2e8,3,extra,"unterminated\n')
    with pytest.raises(InputError, match="runs.csv"):
        RunTable.read(p)


def test_malformed_jsonl_names_line(tmp_path):
    p = tmp_path / "runs.jsonl"
    good = json.dumps(_rows()[0])
    p.write_text(good + '\n{"run_id": "b", oops}\n')
    with pytest.raises(InputError, match=r"runs.jsonl, line 2: malformed JSON"):
        RunTable.read(p)


def test_jsonl_nan_literal_is_an_error(tmp_path):
    p = tmp_path / "runs.jsonl"
    rec = dict(_rows()[0], loss_val=float("nan"))
    p.write_text(json.dumps(rec) + "\n")
    with pytest.raises(InputError, match=r"line 1 \(run 'a'\): field 'loss_val' must be finite"):
        RunTable.read(p)


def test_parquet_nan_vs_null(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = {"run_id": ["a"], "dataset": ["w"], "model": ["s"], "n_params": [1e7], "n_tokens": [2e8]}
    pq.write_table(pa.table({**base, "loss_val": pa.array([None], pa.float64())}), tmp_path / "ok.parquet")
    assert math.isnan(RunTable.read(tmp_path / "ok.parquet").loss("val")[0])
    pq.write_table(
        pa.table({**base, "loss_val": pa.array([float("nan")], pa.float64())}), tmp_path / "bad.parquet"
    )
    with pytest.raises(InputError, match="must be finite"):
        RunTable.read(tmp_path / "bad.parquet")


def test_accuracy_range_and_bounds_order():
    rows = _rows()
    rows[0]["acc_copa"] = 1.5
    rows[0]["loss_lower_val"] = 4.5
    with pytest.raises(InputError) as exc:
        RunTable.from_records(rows)
    assert "accuracy and must lie in [0, 1]" in str(exc.value)
    assert "loss_lower_val = 4.5 exceeds loss_upper_val" in str(exc.value)


def test_unknown_val_set_and_task():
    t = RunTable.from_records(_rows())
    with pytest.raises(InputError, match="unknown validation set 'c4'.*known: val"):
        t.loss("c4")
    with pytest.raises(InputError, match="unknown task 'piqa'"):
        t.accuracy("piqa")


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="unknown run-table format"):
        RunTable.read(tmp_path / "runs.xlsx")
    with pytest.raises(InputError, match="no such file"):
        RunTable.read(tmp_path / "runs.csv")


def test_sizes_out_of_range_print_as_numbers():
    """Found by fuzzing: the message showed "n_params=np.float64(5.4e+197)"."""
    row = {"run_id": "a", "dataset": "d", "model": "m", "n_params": 1e200, "n_tokens": 1e200, "loss_x": 3.0}
    with pytest.raises(
        InputError, match=r"n_params=1e\+200 and n_tokens=1e\+200 give compute 6·N·D = inf"
    ) as e:
        RunTable.from_records([row])
    assert "np.float64" not in str(e.value)
