"""Hostile and careless input (issue 15, first part): names that would escape the output folder,
markup in run ids, YAML alias bombs, huge selections, two processes on one ladder folder."""

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.ladder_run import folder_lock
from lmscale.run_table import RunTable
from lmscale.selection import Selection
from lmscale.train.ladder import LadderConfig

EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"
BASE = {
    "shapes": [{"name": "a", "d_model": 16, "n_layers": 1, "n_heads": 2, "batch_size": 4, "warmup_steps": 1}],
    "multipliers": [1, 2],
    "corpus": {"name": "c", "sources": ["x.txt"]},
    "name": "t",
}


def config(**over):
    d = json.loads(json.dumps(BASE))
    for k, v in over.items():
        if k == "shape_name":
            d["shapes"][0]["name"] = v
        elif k == "corpus_name":
            d["corpus"]["name"] = v
        else:
            d[k] = v
    return d


@pytest.mark.parametrize(
    "over",
    [
        {"shape_name": "../../x"},
        {"shape_name": "/etc"},
        {"corpus_name": "a/b"},
        {"corpus_name": ".."},
        {"name": "x y"},
        {"shape_name": ""},
    ],
)
def test_names_that_would_escape_the_folder_are_refused(over):
    with pytest.raises(InputError, match="not a safe file name"):
        LadderConfig.from_json(config(**over))


@pytest.mark.parametrize(
    "mults,needle",
    [
        ([1, 1], "repeat"),
        ([1, 1.0000001], "repeat"),
        ("12", "list of numbers"),
        (["abc"], "list of numbers"),
        ([True, 2], "list of numbers"),
    ],
)
def test_multipliers_are_checked_before_any_work(mults, needle):
    with pytest.raises(InputError, match=needle):
        LadderConfig.from_json(config(multipliers=mults))


def test_two_validation_corpora_with_one_name_are_refused():
    vals = [{"name": "v", "sources": ["a.txt"]}, {"name": "v", "sources": ["b.txt"]}]
    with pytest.raises(InputError, match="share a name"):
        LadderConfig.from_json(config(val_corpora=vals))


def test_yaml_alias_bomb_and_non_utf8_configs(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    bomb.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="aliases"):
        LadderConfig.read(bomb)
    assert time.perf_counter() - t0 < 5
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        LadderConfig.read(latin)


def test_huge_selection_is_refused_quickly():
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="at most"):
        Selection.parse("n_params <= 5e8 and " * 5000 + "multiplier == 20")
    assert time.perf_counter() - t0 < 1
    with pytest.raises(InputError, match="selection is text"):
        Selection.parse(None)


def test_markup_in_run_ids_is_not_rendered(tmp_path):
    rows = [json.loads(line) for line in EXAMPLE.read_text().splitlines() if line.strip()]
    evil = "<img src=x onerror=alert(1)>|[a](javascript:alert(2))"
    biggest = max(r["n_params"] for r in rows)
    for r in rows:
        if r["n_params"] == biggest:
            r["run_id"] = evil + r["run_id"]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = CliRunner().invoke(
        cli,
        [
            "report",
            str(path),
            "--val-set",
            "python",
            "--split",
            "cloze,next_line",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript:' not in html
    md = (tmp_path / "r" / "report.md").read_text()
    heldout = [line for line in md.splitlines() if "onerror" in line and line.startswith("|")]
    assert heldout and all(line.count(" | ") == heldout[0].count(" | ") for line in heldout)
    assert RunTable.read(path).run_ids  # the table itself still reads


def test_one_ladder_folder_one_process(tmp_path):
    with folder_lock(tmp_path), pytest.raises(InputError, match="in use by process"), folder_lock(tmp_path):
        pass
    with folder_lock(tmp_path):  # released
        pass


def test_eval_limit_must_be_positive(tmp_path):
    res = CliRunner().invoke(cli, ["eval", str(tmp_path), "--limit", "0"])
    assert res.exit_code == 2 and "--limit" in res.output and isinstance(res.exception, SystemExit)


def test_report_refuses_runs_that_are_both_fitted_and_held_out(tmp_path):
    res = CliRunner().invoke(
        cli,
        [
            "report",
            str(EXAMPLE),
            "--val-set",
            "python",
            "--split",
            "cloze",
            "--fit-runs",
            "n_params > 0",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 2 and "also fit runs" in res.output, res.output


def test_an_interrupted_report_leaves_the_old_one_whole(tmp_path, monkeypatch):
    from lmscale.report import writer

    out = tmp_path / "r"
    args = ["report", str(EXAMPLE), "--val-set", "python", "--split", "cloze", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def killed(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_html", killed)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    assert CliRunner().invoke(cli, args).exit_code == 0  # and the next run replaces it cleanly
    assert not list(tmp_path.glob(".r.*"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    res = CliRunner().invoke(cli, args[:-1] + [str(tmp_path / "mine")])
    assert res.exit_code == 2 and "no lmscale report" in res.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------- silently wrong answers
def test_unidentifiable_fits_are_refused_with_the_reason():
    import numpy as np

    from lmscale.errors import FitError
    from lmscale.fit import fit

    n = np.array([1e7, 3e7, 8e7, 1.5e8, 4e8, 6e8])
    with pytest.raises(FitError, match="same token multiplier M.*A and B"):
        fit("overtrain", {"n_params": n, "multiplier": np.full(6, 20.0)}, 3.0 - 0.1 * np.log10(n))
    with pytest.raises(FitError, match="same size N.*A and E"):
        fit(
            "overtrain",
            {"n_params": np.full(6, 1e8), "multiplier": np.arange(1.0, 7.0) * 10},
            np.linspace(3, 2.5, 6),
        )


def test_bad_numbers_are_refused_not_computed(tmp_path):
    from lmscale.fit import fit
    from lmscale.predict import ScalePoint, relative_error

    with pytest.raises(InputError, match="Huber threshold"):
        fit(
            "overtrain",
            {"n_params": [1e7, 2e7, 4e7, 8e7, 1e7], "multiplier": [20, 20, 20, 20, 80]},
            [4.0, 3.8, 3.6, 3.4, 3.7],
            method="huber-log",
            huber_delta=0,
        )
    with pytest.raises(InputError, match="out of floating-point range"):
        ScalePoint.make(1e200, multiplier=1e200)
    with pytest.raises(InputError, match="non-zero finite observed"):
        relative_error(1.0, 0.0)
    with pytest.raises(InputError, match="sequence of mappings"):
        RunTable.from_records(None)
    with pytest.raises(InputError, match="out of floating-point range"):
        RunTable.from_records(
            [
                {
                    "run_id": "a",
                    "dataset": "d",
                    "model": "m",
                    "n_params": 1e-200,
                    "n_tokens": 1e-200,
                    "loss_x": 3.0,
                }
            ]
        )
    res = CliRunner().invoke(cli, ["fit", str(EXAMPLE), "--target", "loss_python", "--huber-delta", "-1"])
    assert res.exit_code == 2


@pytest.mark.parametrize("value", [float("nan"), 0, -1, float("inf")])
def test_error_law_predict_refuses_impossible_losses(tmp_path, value):
    out = tmp_path / "e.json"
    res = CliRunner().invoke(
        cli,
        [
            "fit",
            str(EXAMPLE),
            "--law",
            "error",
            "--target",
            "error:cloze,next_line",
            "--loss-column",
            "loss_python",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["predict", str(out), "--loss", str(value)])
    assert res.exit_code == 2 and "--loss" in res.output


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda d: d["params"].update(A=float("nan")), "NaN is not JSON"),
        (lambda d: d.update(x=[1, 2]), "'x' must be an object"),
        (lambda d: d.update(bootstrap=[[1.0, 2.0]]), "bootstrap row"),
        (lambda d: d.update(noise_sd=-1.0), "noise_sd"),
    ],
)
def test_tampered_fit_files_are_refused(tmp_path, edit, needle):
    out = tmp_path / "f.json"
    assert (
        CliRunner()
        .invoke(cli, ["fit", str(EXAMPLE), "--target", "loss_python", "--bootstrap", "20", "-o", str(out)])
        .exit_code
        == 0
    )
    d = json.loads(out.read_text())
    edit(d)
    out.write_text(json.dumps(d, allow_nan=True))
    res = CliRunner().invoke(cli, ["predict", str(out), "--n-params", "1e6", "--multiplier", "20"])
    assert res.exit_code == 2 and needle in res.output, res.output


def test_run_table_quirks_are_named(tmp_path):
    import pandas as pd

    csv = tmp_path / "r.csv"
    csv.write_text("run_id,dataset,model,n_params,n_tokens,loss_x,loss_x\na,d,m,1e6,2e7,3.1,3.2\n")
    with pytest.raises(InputError, match="more than once"):
        RunTable.read(csv)
    pq = tmp_path / "r.parquet"
    pd.DataFrame(
        {
            "run_id": ["a"],
            "dataset": ["d"],
            "model": ["m"],
            "n_params": [True],
            "n_tokens": [2e7],
            "loss_x": [3.0],
        }
    ).to_parquet(pq)
    with pytest.raises(InputError, match="must hold numbers"):
        RunTable.read(pq)


def test_literal_nan_in_a_testbed_file_is_an_error(tmp_path):
    from lmscale._io import read_json

    f = tmp_path / "m.json"
    f.write_text('{"results": [{"loss": NaN}]}')
    with pytest.raises(InputError, match="NaN is not JSON"):
        read_json(f)


def test_loop_checks_before_training(tmp_path):
    from lmscale.pipeline import run_loop
    from lmscale.train.ladder import preset

    with pytest.raises(InputError, match="unknown fitting method 'bogus'"):
        run_loop(preset("cpu-tiny"), tmp_path / "l", method="bogus")
    two = LadderConfig.from_json(
        {
            "preset": "cpu-tiny",
            "shapes": [
                {"name": "a", "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 8, "warmup_steps": 2},
                {"name": "b", "d_model": 48, "n_layers": 1, "n_heads": 2, "batch_size": 8, "warmup_steps": 2},
            ],
        }
    )
    with pytest.raises(InputError, match="at least 3"):
        run_loop(two, tmp_path / "l")
    assert not (tmp_path / "l").exists()  # nothing trained, nothing written


def test_suite_quirks_are_named(tmp_path):
    from lmscale.evaluate.icl import TaskConfig, load_items, read_suite

    (tmp_path / "t.jsonl").write_text('{"query": "q", "choices": ["a", "b"], "gold": true}\n')
    for body, needle in (
        (
            "- {label: a, dataset_uri: t.jsonl, num_fewshot: [1.7], icl_task_type: multiple_choice}",
            "num_fewshot",
        ),
        (
            "- {label: a, dataset_uri: t.jsonl, icl_task_type: multiple_choice}\n"
            "- {label: a, dataset_uri: t.jsonl, icl_task_type: schema}",
            "more than once",
        ),
    ):
        (tmp_path / "s.yaml").write_text("icl_tasks:\n" + body + "\n")
        with pytest.raises(InputError, match=needle):
            read_suite(tmp_path / "s.yaml", tmp_path)
    with pytest.raises(InputError, match="gold index True"):
        load_items(TaskConfig("a", str(tmp_path / "t.jsonl"), "multiple_choice"))
    (tmp_path / "t.jsonl").write_text('{"query": null, "choices": ["a", "b"], "gold": 0}\n')
    with pytest.raises(InputError, match="must be text"):
        load_items(TaskConfig("a", str(tmp_path / "t.jsonl"), "multiple_choice"))


def test_ladder_eval_keeps_runs_jsonl_in_step_when_a_run_fails(tmp_path, monkeypatch):
    """A failing evaluation of one run leaves runs.jsonl rebuilt from the records that did update."""
    from lmscale import ladder_eval as evruns

    ladder = tmp_path / "l"
    for i in range(2):
        d = ladder / "runs" / f"r{i}"
        d.mkdir(parents=True)
        row = {
            "run_id": f"r{i}",
            "dataset": "x",
            "model": "m",
            "n_params": 1e6 * (i + 1),
            "n_tokens": 2e7,
            "loss_x": 3.0,
        }
        (d / "record.json").write_text(json.dumps({"status": "done", "row": row}))
    (ladder / "runs.jsonl").write_text("stale\n")
    calls = []

    def fake_eval(run_dir, tasks, limit=None, progress=None, device=None):
        calls.append(run_dir)
        if len(calls) == 2:
            raise InputError("evaluation failed")
        rec = json.loads((Path(run_dir) / "record.json").read_text())
        rec["row"]["acc_t"] = 0.5
        (Path(run_dir) / "record.json").write_text(json.dumps(rec))

    monkeypatch.setattr(evruns, "eval_run", fake_eval)
    with pytest.raises(InputError):
        evruns.ladder_eval(ladder, [])
    rows = [json.loads(line) for line in (ladder / "runs.jsonl").read_text().splitlines()]
    assert [r.get("acc_t") for r in rows] == [0.5, None]
