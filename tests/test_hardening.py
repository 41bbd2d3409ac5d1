"""Hostile and careless input (issue 15, first part): names that would escape the output folder,
markup in run ids, YAML alias bombs, huge selections, two processes on one ladder folder."""

import json
import time

import pytest
from click.testing import CliRunner

from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.records import RunTable
from lmscale.selection import Selection
from lmscale.train.ladder import LadderConfig, folder_lock

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"
BASE = {"shapes": [{"name": "a", "d_model": 16, "n_layers": 1, "n_heads": 2, "batch_size": 4, "warmup_steps": 1}],
        "multipliers": [1, 2], "corpus": {"name": "c", "sources": ["x.txt"]}, "name": "t"}


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


@pytest.mark.parametrize("over", [{"shape_name": "../../x"}, {"shape_name": "/etc"}, {"corpus_name": "a/b"},
                                  {"corpus_name": ".."}, {"name": "x y"}, {"shape_name": ""}])
def test_names_that_would_escape_the_folder_are_refused(over):
    with pytest.raises(InputError, match="not a safe file name"):
        LadderConfig.from_json(config(**over))


@pytest.mark.parametrize("mults,needle", [([1, 1], "repeat"), ([1, 1.0000001], "repeat"), ("12", "list of numbers"),
                                          (["abc"], "list of numbers"), ([True, 2], "list of numbers")])
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
    evil = '<img src=x onerror=alert(1)>|[a](javascript:alert(2))'
    biggest = max(r["n_params"] for r in rows)
    for r in rows:
        if r["n_params"] == biggest:
            r["run_id"] = evil + r["run_id"]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = CliRunner().invoke(cli, ["report", str(path), "--val-set", "python", "--split", "cloze,next_line",
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript:' not in html
    md = (tmp_path / "r" / "report.md").read_text()
    heldout = [line for line in md.splitlines() if "onerror" in line and line.startswith("|")]
    assert heldout and all(line.count(" | ") == heldout[0].count(" | ") for line in heldout)
    assert RunTable.read(path).run_ids  # the table itself still reads


def test_one_ladder_folder_one_process(tmp_path):
    with folder_lock(tmp_path):
        with pytest.raises(InputError, match="in use by process"):
            with folder_lock(tmp_path):
                pass
    with folder_lock(tmp_path):  # released
        pass


def test_eval_limit_must_be_positive(tmp_path):
    res = CliRunner().invoke(cli, ["eval", str(tmp_path), "--limit", "0"])
    assert res.exit_code == 2 and "--limit" in res.output and isinstance(res.exception, SystemExit)


def test_report_refuses_runs_that_are_both_fitted_and_held_out(tmp_path):
    res = CliRunner().invoke(cli, ["report", str(EXAMPLE), "--val-set", "python", "--split", "cloze",
                                   "--fit-runs", "n_params > 0", "--out", str(tmp_path / "r")])
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
