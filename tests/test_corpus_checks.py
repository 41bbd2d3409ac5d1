"""The paper preset on a real corpus (issue 22): it names no training data, so training refuses
it with how to prepare one; runs that would repeat the corpus beyond ``max_epochs`` are refused
before any training (1 epoch by default at paper scale, no limit for the small CPU ladders)."""

import json
import math
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.train.corpus_checks import default_max_epochs, epoch_limit_errors, require_corpus
from lmscale.train.data import CorpusConfig
from lmscale.train.ladder import LadderConfig, ShapeSpec, plan, preset
from lmscale.train.memory import run_resources

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def test_the_paper_preset_names_no_corpus_and_training_refuses_it(tmp_path):
    cfg = preset("paper")
    with pytest.raises(InputError, match="names no training corpus") as exc:
        require_corpus(cfg.corpus, cfg.name)
    assert "lmscale data prepare" in str(exc.value) and "prepared: DIR" in str(exc.value)
    res = CliRunner().invoke(cli, ["ladder", "run", "--preset", "paper", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "names no training corpus" in res.output
    assert not (tmp_path / "p").exists()  # refused before anything is written
    res = CliRunner().invoke(cli, ["ladder", "plan", "--preset", "paper"])
    assert res.exit_code == 0 and "names no training corpus" in res.output  # plan warns, still plans
    named = LadderConfig.from_json({"preset": "paper", "corpus": {"name": "web", "prepared": str(tmp_path)}})
    require_corpus(named.corpus, named.name)  # a prepared corpus is a stated data set
    assert plan(named)[0].run_id.startswith("web-0.011B")


def test_default_epoch_limit_is_one_at_paper_scale_and_none_for_the_cpu_ladders():
    assert default_max_epochs([1e6, 2e8]) == 1.0
    for name in ("cpu-tiny", "cpu-small"):
        assert default_max_epochs([r.n_tokens for r in plan(preset(name))]) == math.inf
    cfg = preset("paper")
    runs = plan(cfg)
    res = run_resources(cfg, runs, corpus_tokens=10e6)  # the Python standard library's size
    errors = epoch_limit_errors(res, None, [r.n_tokens for r in runs])
    assert len(errors) == 1 and "32 run(s) would repeat the training data beyond 1 epoch(s)" in errors[0]
    assert "--allow-repeat" in errors[0]
    assert epoch_limit_errors(res, math.inf, [r.n_tokens for r in runs]) == []
    assert epoch_limit_errors(run_resources(cfg, runs, corpus_tokens=None), 1.0, [1e9]) == []  # unknown size


def _small(tmp_path, multipliers) -> Path:
    corpus = CorpusConfig("json", (str(STDLIB / "json" / "*.py"),), val_permille=200)
    cfg = LadderConfig(
        "e", (ShapeSpec("a", 16, 1, 2, 16, 2),), multipliers, corpus, vocab_size=300, seq_len=32
    )
    path = tmp_path / "e.json"
    path.write_text(json.dumps(cfg.to_json()))
    return path


def test_runs_that_repeat_the_corpus_beyond_max_epochs_are_refused_before_training(tmp_path):
    config = _small(tmp_path, [20.0])  # about 460k tokens from a corpus of far fewer
    out = tmp_path / "ladder"
    res = CliRunner().invoke(cli, ["ladder", "run", str(config), "--out", str(out), "--max-epochs", "2"])
    assert res.exit_code == 2 and "1 run(s) would repeat the training data beyond 2 epoch(s)" in res.output
    assert "json-a-M20" in res.output and not (out / "runs").exists()
    res = CliRunner().invoke(
        cli, ["ladder", "run", str(config), "--out", str(out), "--max-epochs", "2", "--allow-repeat"]
    )
    assert res.exit_code == 2 and "not both" in res.output
    config.write_text(json.dumps(json.loads(config.read_text()) | {"execution": {"max_epochs": 0}}))
    res = CliRunner().invoke(cli, ["ladder", "run", str(config), "--out", str(out)])
    assert res.exit_code == 2 and "max_epochs must be a positive number" in res.output


def test_ladder_plan_reads_a_prepared_corpus_size_from_its_manifest(tmp_path):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "manifest.json").write_text(json.dumps({"train": [{"n_tokens": 6e8}, {"n_tokens": 4e8}]}))
    config = tmp_path / "paper.json"
    config.write_text(json.dumps({"preset": "paper", "corpus": {"name": "web", "prepared": str(prepared)}}))
    res = CliRunner().invoke(cli, ["ladder", "plan", str(config), "--format", "json"])
    assert res.exit_code == 0
    epochs = {r["run_id"]: r["epochs"] for r in json.loads(res.stdout)}
    assert epochs["web-0.011B-M5"] == pytest.approx(5 * 10_569_312 / 1e9, rel=1e-3)  # 0.053 epochs
    assert "web-0.011B-M640: 6.76 epochs over the corpus" in res.stderr
    (prepared / "manifest.json").write_text("{broken")
    res = CliRunner().invoke(cli, ["ladder", "plan", str(config), "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["epochs"] is None  # unknown, not a crash
