"""Running a ladder (lmscale.ladder_run): a finished ladder is not trained again and its records
read as a run table, evaluations land in it, another configuration is refused; a diverging run is
recorded as failed and retried; a record lost after the final checkpoint is rebuilt with the same
numbers; damaged caches are rebuilt; run settings come from a file with command-line overrides."""

import json
import shutil
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (pip install torch==2.13.0 tokenizers)")
pytest.importorskip("tokenizers", reason="training needs tokenizers")

from lmscale.errors import InputError  # noqa: E402
from lmscale.ladder_run import execution_from, run_ladder  # noqa: E402
from lmscale.run_table import RunTable  # noqa: E402
from lmscale.train import data as tdata  # noqa: E402
from lmscale.train.ladder import LadderConfig, ShapeSpec, plan  # noqa: E402
from lmscale.train.shapes import count_params  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def test_ladder_end_to_end(ladder_copy, tmp_path):
    from lmscale.fit.runs import fit_table

    cfg, folder = ladder_copy
    assert [r.n_params for r in plan(cfg)][:1] == [count_params(16, 1, 300)]
    t0 = time.perf_counter()
    path = run_ladder(cfg, folder)  # every run is finished: nothing is trained again
    assert time.perf_counter() - t0 < 10
    table = RunTable.read(path)
    assert len(table) == 9 and set(table.val_sets) == {"json", "csv"}
    assert np.all(table.loss("loss_json") > 0)
    lo, hi = table.column("loss_lower_json"), table.column("loss_upper_json")
    assert np.all(lo <= table.loss("loss_json")) and np.all(table.loss("loss_json") <= hi)
    fit_table(table, "chinchilla", "loss_json", method="varpro")  # the records fit without conversion
    # evaluate on a small suite in LLM-Foundry's YAML form: accuracies land in the run table
    from lmscale.evaluate.icl import read_suite
    from lmscale.ladder_eval import ladder_eval

    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mc.jsonl").write_text(
        "".join(
            json.dumps({"query": f"def f{i}(x):", "choices": ["    return x", "zzzz qqqq"], "gold": 0}) + "\n"
            for i in range(6)
        )
    )
    (tmp_path / "tasks" / "lm.jsonl").write_text(
        "".join(json.dumps({"context": f"import os{i}", "continuation": "\n"}) + "\n" for i in range(6))
    )
    (tmp_path / "suite.yaml").write_text(
        "icl_tasks:\n- {label: mc, dataset_uri: local_data/mc.jsonl, num_fewshot: [1], icl_task_type: multiple_choice}\n"
        "- {label: lm, dataset_uri: local_data/lm.jsonl, num_fewshot: [0], icl_task_type: language_modeling}\n"
    )
    ladder_eval(folder, read_suite(tmp_path / "suite.yaml", tmp_path / "tasks"))
    table = RunTable.read(folder / "runs.jsonl")
    assert set(table.tasks) == {"mc", "lm"} and np.all(
        (table.accuracy("mc") >= 0) & (table.accuracy("mc") <= 1)
    )
    with pytest.raises(InputError, match="different ladder"):
        run_ladder(
            LadderConfig("t2", cfg.shapes, (1.0,), cfg.corpus, vocab_size=300, seq_len=32),
            folder,
        )


def _tiny_ladder(**over):
    corpus = tdata.CorpusConfig("json", (str(STDLIB / "json" / "*.py"),), val_permille=200)
    kw = dict(vocab_size=300, seq_len=16, checkpoint_every=0)
    kw.update(over)
    return LadderConfig("t", (ShapeSpec("a", 16, 1, 2, 16, 2),), (0.25,), corpus, **kw)


def test_diverging_run_is_recorded_failed_and_retried(tmp_path):
    from lmscale.errors import TrainingDiverged

    cfg = _tiny_ladder(lr=1e6, final_lr=1e5)
    with pytest.raises(TrainingDiverged, match="diverged at step"):
        run_ladder(cfg, tmp_path / "l")
    rec = json.loads(next((tmp_path / "l" / "runs").glob("*/record.json")).read_text())
    assert rec["status"] == "failed" and "diverged" in rec["reason"]
    assert not (tmp_path / "l" / "runs.jsonl").exists()  # nothing half-done is published
    with pytest.raises(TrainingDiverged):  # not skipped as if done: tried again
        run_ladder(cfg, tmp_path / "l")


def test_rerecording_after_the_final_checkpoint_keeps_loss_and_time(tmp_path):
    cfg = _tiny_ladder()
    run_ladder(cfg, tmp_path / "l")
    rec_path = next((tmp_path / "l" / "runs").glob("*/record.json"))
    first = json.loads(rec_path.read_text())["row"]
    rec_path.write_text('{"status": "do')  # a crash mid-write of the record (or before it)
    run_ladder(cfg, tmp_path / "l")
    again = json.loads(rec_path.read_text())["row"]
    assert np.isfinite(again["train_loss"]) and again["train_loss"] == first["train_loss"]
    assert again["wall_seconds"] == pytest.approx(first["wall_seconds"], rel=0.5)
    assert again["loss_json"] == first["loss_json"]


def test_damaged_caches_are_rebuilt_not_fatal(tmp_path):
    cfg = _tiny_ladder()
    first = _read_runs(run_ladder(cfg, tmp_path / "l"))
    cache = tmp_path / "l" / "cache"
    for meta in cache.rglob("*.json"):
        if meta.with_suffix(".bin").is_file():
            meta.unlink()  # a kill between the token file and its metadata
    for tok in (cache / "tokenizers").glob("*.json"):
        tok.write_text("garbage")
    (tmp_path / "l" / "runs" / first.run_ids[0] / ".checkpoint.pt.x1.tmp").write_bytes(b"partial")
    shutil.rmtree(tmp_path / "l2", ignore_errors=True)
    shutil.copytree(tmp_path / "l", tmp_path / "l2")
    for rec in (tmp_path / "l2" / "runs").glob("*/record.json"):
        rec.unlink()
    again = _read_runs(run_ladder(cfg, tmp_path / "l2"))
    assert again.loss("loss_json")[0] == pytest.approx(first.loss("loss_json")[0])
    assert not list((tmp_path / "l2" / "runs").glob("*/.checkpoint.pt.*.tmp"))


def _read_runs(path):
    return RunTable.read(path)


def test_execution_settings_come_from_a_file_with_overrides_on_top(tmp_path):
    from lmscale.ladder_run import Execution

    assert execution_from(None) == Execution()  # no file, no overrides: the defaults
    (tmp_path / "run.yaml").write_text("execution:\n  micro_batch: 2\n  compile: true\n  gpu_memory: 80GB\n")
    ex = execution_from(tmp_path / "run.yaml", micro_batch=4, loss_chunk=None)
    assert ex.micro_batch == 4 and ex.compile and ex.gpu_memory == 80 * 2**30 and ex.loss_chunk == 8192
    (tmp_path / "bad.yaml").write_text("execution:\n  no_such_setting: 1\n")
    with pytest.raises(InputError, match="no_such_setting"):
        execution_from(tmp_path / "bad.yaml")
