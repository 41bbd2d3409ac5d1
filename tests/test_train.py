"""Ladder training (issue 5): parameter counts, determinism, kill -9 and resume, data-parallel
runs on gloo, bad configurations, and a tiny ladder end to end."""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (pip install torch==2.13.0 tokenizers)")
pytest.importorskip("tokenizers", reason="training needs tokenizers")


from lmscale.errors import InputError  # noqa: E402
from lmscale.ladder_run import run_ladder  # noqa: E402
from lmscale.train import data as tdata  # noqa: E402
from lmscale.train.ladder import LadderConfig, ShapeSpec, plan, preset  # noqa: E402
from lmscale.train.loop import TrainConfig, lr_at, train  # noqa: E402
from lmscale.train.model import ModelConfig, Transformer, count_params  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_parameter_counts():
    for (d, l), n in {
        (96, 8): 10569312,
        (512, 8): 78914048,
        (576, 24): 153677376,
        (1024, 24): 411616256,
        (2048, 24): 1439795200,
        (4096, 32): 6889410560,
    }.items():
        assert count_params(d, l, 50432) == n
    for d, l, h, v in ((96, 8, 4, 50432), (64, 2, 4, 512), (48, 3, 2, 1000)):
        m = Transformer(ModelConfig(d, l, h, v, seq_len=32))
        assert sum(p.numel() for p in m.parameters()) == count_params(d, l, v)


def test_lr_schedule():
    cfg = TrainConfig(
        ModelConfig(32, 1, 2, 300, seq_len=16), n_tokens=16 * 4 * 100, batch_size=4, warmup_steps=10
    )
    assert cfg.n_steps == 100
    assert lr_at(cfg, 0) == pytest.approx(3e-4) and lr_at(cfg, 9) == pytest.approx(3e-3)
    assert lr_at(cfg, 99) == pytest.approx(3e-5, rel=1e-2)
    lrs = [lr_at(cfg, s) for s in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    corpus = tdata.CorpusConfig(
        "json", (str(STDLIB / "json" / "*.py"), str(STDLIB / "email" / "*.py")), val_permille=200
    )
    return tdata.prepare(corpus, (), cache, 300)


def _cfg(vocab, **kw):
    base = dict(n_tokens=16 * 4 * 6 - 10, batch_size=4, warmup_steps=2, checkpoint_every=2, seed=3)
    base.update(kw)
    return TrainConfig(ModelConfig(32, 2, 2, vocab, seq_len=16), **base)


def _state(path):
    return torch.load(path, weights_only=True)["model"]


def test_training_is_deterministic_and_exact_in_tokens(tokens, tmp_path):
    cfg = _cfg(tokens.vocab_size)
    packed = tdata.PackedSequences(tokens.train, 16, 0)
    a = train(cfg, packed, tmp_path / "a")
    train(cfg, packed, tmp_path / "b")
    sa, sb = _state(tmp_path / "a" / "checkpoint.pt"), _state(tmp_path / "b" / "checkpoint.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.finished and a.steps == 6
    log = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["tokens"] == cfg.n_tokens  # exactly D tokens, the last step partial


WORKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {src!r})
    from lmscale.train import data as tdata
    from lmscale.train.loop import TrainConfig, train
    from lmscale.train.model import ModelConfig
    tok = tdata.open_tokens(__import__("pathlib").Path({tokfile!r}))
    cfg = TrainConfig(ModelConfig(32, 2, 2, {vocab}, seq_len=16), n_tokens=16 * 4 * 12 - 5, batch_size=4,
                      warmup_steps=2, checkpoint_every=3, seed=3)
    train(cfg, tdata.PackedSequences(tok, 16, 0), {out!r}, progress=lambda s, n, t: time.sleep({pause}))
""")


@pytest.mark.slow
def test_kill_9_and_resume_is_bit_identical(tokens, tmp_path):
    tokfile = next(p for p in Path(tokens.train.filename).parent.glob("*-train.bin"))
    script = tmp_path / "w.py"
    for name, pause in (("full", 0.0), ("killed", 0.25)):
        script.write_text(
            WORKER.format(
                src=SRC, tokfile=str(tokfile), vocab=tokens.vocab_size, out=str(tmp_path / name), pause=pause
            )
        )
        proc = subprocess.Popen([sys.executable, str(script)])
        if name == "killed":
            ckpt = tmp_path / name / "checkpoint.pt"
            deadline = time.time() + 120
            while not ckpt.is_file() and time.time() < deadline and proc.poll() is None:
                time.sleep(0.05)
            time.sleep(0.3)  # land somewhere after the first checkpoint, mid-run
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
            step_at_kill = torch.load(ckpt, weights_only=True)["step"]
            assert 3 <= step_at_kill < 12
            script.write_text(
                WORKER.format(
                    src=SRC,
                    tokfile=str(tokfile),
                    vocab=tokens.vocab_size,
                    out=str(tmp_path / name),
                    pause=0.0,
                )
            )
            proc = subprocess.Popen([sys.executable, str(script)])
        assert proc.wait(timeout=300) == 0
    full, resumed = _state(tmp_path / "full" / "checkpoint.pt"), _state(tmp_path / "killed" / "checkpoint.pt")
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert (tmp_path / "full" / "train_log.jsonl").read_text() == (
        tmp_path / "killed" / "train_log.jsonl"
    ).read_text()


def _torchrun(script, nproc: int) -> None:
    """Run ``script`` under torchrun with ``nproc`` CPU processes (gloo); fail with its stderr."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(script),
    ]
    res = subprocess.run(
        cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]


DDP_WORKER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {src!r})
    torch.set_num_threads(1)
    from lmscale.train import data as tdata
    from lmscale.train.loop import TrainConfig, train
    from lmscale.train.model import ModelConfig
    tok = tdata.open_tokens(__import__("pathlib").Path({tokfile!r}))
    cfg = TrainConfig(ModelConfig(32, 2, 2, {vocab}, seq_len=16), n_tokens=16 * 4 * 5 - 7, batch_size=4,
                      warmup_steps=2, checkpoint_every=0, seed=3, parallel={parallel!r}, log_every=3,
                      micro_batch={micro}, activation_checkpointing={ckpt}, loss_chunk=40)
    train(cfg, tdata.PackedSequences(tok, 16, 0), {out!r}, device="cpu")
""")

#: data-parallel and single-process runs agree to this (float32 sums in another order)
DDP_ATOL = 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_gloo_two_processes_match_one(tokens, tmp_path, parallel):
    tokfile = next(p for p in Path(tokens.train.filename).parent.glob("*-train.bin"))
    outs = {}
    for name, nproc in (("one", 1), ("two", 2)):
        script = tmp_path / f"{name}.py"
        script.write_text(
            DDP_WORKER.format(
                src=SRC,
                tokfile=str(tokfile),
                vocab=tokens.vocab_size,
                out=str(tmp_path / name),
                parallel=parallel,
                # the two-process run also takes micro-batches of one sequence (gradient sync on the
                # last only) and recomputes activations: the same step, computed another way
                micro=0 if nproc == 1 else 1,
                ckpt=nproc == 2,
            )
        )
        _torchrun(script, nproc)
        outs[name] = _load_any(tmp_path / name, tokens.vocab_size)  # FSDP saves sharded checkpoints
    diff = max(float((outs["one"][k] - outs["two"][k]).abs().max()) for k in outs["one"])
    assert diff <= DDP_ATOL, diff


def test_bad_configs(tmp_path):
    with pytest.raises(InputError, match="unknown shape"):
        LadderConfig.from_json({"preset": "cpu-tiny", "shapes": ["0.5B"]})
    with pytest.raises(InputError, match="must be positive"):
        LadderConfig.from_json({"preset": "cpu-tiny", "multipliers": [20, 0]})
    with pytest.raises(InputError, match="unknown ladder preset"):
        preset("gpu-huge")
    with pytest.raises(InputError, match="no file matches"):
        list(tdata.documents(tdata.CorpusConfig("x", (str(tmp_path / "nope*.txt"),))))
    (tmp_path / "empty.txt").write_text("   \n")
    with pytest.raises(InputError, match="empty"):
        tdata.split_documents(tdata.CorpusConfig("x", (str(tmp_path / "empty.txt"),)))
    (tmp_path / "small.txt").write_text("abc abc abc")
    texts = ["abc abc abc"]
    with pytest.raises(InputError, match="supports only"):
        tdata.train_tokenizer(texts, 5000)
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": 3}\n')
    with pytest.raises(InputError, match="line 2"):
        list(tdata.documents(tdata.CorpusConfig("x", (str(bad),), format="jsonl")))
    with pytest.raises(InputError, match="not divisible"):
        ModelConfig(30, 1, 4, 100)
    with pytest.raises(InputError, match="lacks field"):
        LadderConfig.from_json({"name": "x", "shapes": []})
    cfg = tmp_path / "l.yaml"
    cfg.write_text("name: [unclosed")
    with pytest.raises(InputError, match="malformed"):
        LadderConfig.read(cfg)


def _shared_cfg():
    corpus = tdata.CorpusConfig(
        "json", (str(STDLIB / "json" / "*.py"), str(STDLIB / "email" / "*.py")), val_permille=200
    )
    val = tdata.CorpusConfig("csv", (str(STDLIB / "csv.py"), str(STDLIB / "textwrap.py")), val_permille=1000)
    return LadderConfig(
        "t",
        (ShapeSpec("a", 16, 1, 2, 16, 2), ShapeSpec("b", 32, 1, 2, 16, 2), ShapeSpec("c", 48, 1, 2, 16, 2)),
        (0.25, 0.5, 1.0),
        corpus,
        (val,),
        vocab_size=300,
        seq_len=32,
        checkpoint_every=0,
    )


@pytest.fixture(scope="module")
def trained_ladder(tmp_path_factory):
    """One 3-size × 3-M ladder trained once for the tests that need finished runs; each test works
    on a copy (run_ladder skips the finished runs of the copy)."""
    cfg = _shared_cfg()
    folder = tmp_path_factory.mktemp("shared") / "ladder"
    run_ladder(cfg, folder)
    return cfg, folder


def _copy(trained_ladder, dest):
    cfg, folder = trained_ladder
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(".lock"))
    return cfg


def test_ladder_end_to_end(trained_ladder, tmp_path):
    from lmscale.fit.runs import fit_table
    from lmscale.run_table import RunTable

    cfg = _copy(trained_ladder, tmp_path / "ladder")
    assert [r.n_params for r in plan(cfg)][:1] == [count_params(16, 1, 300)]
    t0 = time.perf_counter()
    path = run_ladder(cfg, tmp_path / "ladder")  # every run is finished: nothing is trained again
    assert time.perf_counter() - t0 < 10
    table = RunTable.read(path)
    assert len(table) == 9 and set(table.val_sets) == {"json", "csv"}
    assert np.all(table.loss("loss_json") > 0)
    lo, hi = table.column("loss_lower_json"), table.column("loss_upper_json")
    assert np.all(lo <= table.loss("loss_json")) and np.all(table.loss("loss_json") <= hi)
    fit_table(table, "chinchilla", "loss_json", method="varpro")  # the records fit without conversion
    # evaluate on a small suite in LLM-Foundry's YAML form: accuracies land in the run table
    from lmscale.evaluate.icl import read_suite
    from lmscale.evaluate.runs import ladder_eval

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
    ladder_eval(tmp_path / "ladder", read_suite(tmp_path / "suite.yaml", tmp_path / "tasks"))
    table = RunTable.read(tmp_path / "ladder" / "runs.jsonl")
    assert set(table.tasks) == {"mc", "lm"} and np.all(
        (table.accuracy("mc") >= 0) & (table.accuracy("mc") <= 1)
    )
    with pytest.raises(InputError, match="different ladder"):
        run_ladder(
            LadderConfig("t2", cfg.shapes, (1.0,), cfg.corpus, vocab_size=300, seq_len=32),
            tmp_path / "ladder",
        )


def test_the_whole_loop(trained_ladder, tmp_path):
    """Evaluate a 3-size ladder on the built-in suite, fit on the two smaller sizes and predict the
    largest: predicted vs observed with a report."""
    from lmscale.pipeline import run_loop

    cfg = _copy(trained_ladder, tmp_path / "loop")
    res = run_loop(cfg, tmp_path / "loop", n_items=30)
    df = res.heldout
    assert len(df) == 6 and set(df.target) == {"loss", "error:cloze,brackets,next_line,first_word"}
    assert (df.n_params == df.n_params.max()).all()  # only the largest size is predicted
    assert np.all(np.isfinite(df.rel_error))
    assert np.all(df.interval_low < df.predicted) and np.all(df.predicted < df.interval_high)
    md = res.report_path.read_text()
    assert "Held-out predictions" in md and "figures/figure1_json.png" in md
    assert "4-task custom error (chained)" in md and "90% interval" in md
    assert (tmp_path / "loop" / "report" / "report.html").is_file()


def test_loss_bounds_on_a_known_distribution():
    """Tokens drawn i.i.d. from p and a model that predicts exactly p: the expected loss is the
    entropy H(p); the mean lands near it and the 95% bounds contain it."""
    from lmscale.evaluate.losses import evaluate_losses

    p = np.array([0.5, 0.2, 0.2, 0.05, 0.05])
    entropy = float(-(p * np.log(p)).sum())

    class Known(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.log(torch.tensor(p, dtype=torch.float32)).expand(*x.shape, len(p)) + 0 * self.w

    tokens = np.random.default_rng(7).choice(len(p), size=64 * 64 + 1, p=p).astype(np.uint16)
    out = evaluate_losses(Known(), {"iid": tokens}, 64, max_sequences=64)
    se = float(np.sqrt((p * np.log(p) ** 2).sum() - entropy**2) / np.sqrt(64 * 64))
    assert abs(out["loss_iid"] - entropy) < 3 * se
    assert out["loss_lower_iid"] <= entropy <= out["loss_upper_iid"]
    assert out["token_bound_lower_iid"] <= out["loss_iid"] <= out["token_bound_upper_iid"]
    width = out["token_bound_upper_iid"] - out["token_bound_lower_iid"]
    assert width == pytest.approx(2 * 1.96 * se, rel=0.3)  # i.i.d. tokens: the textbook interval


def test_ladder_cli_plan_run_eval(tmp_path):
    from click.testing import CliRunner

    from lmscale.cli import cli

    res = CliRunner().invoke(cli, ["ladder", "plan", "--preset", "cpu-tiny", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 9 and {"shape", "n_params", "n_tokens", "multiplier", "flops"} <= set(rows[0])
    assert all(r["n_tokens"] == round(r["multiplier"] * r["n_params"]) for r in rows)
    cfg = tmp_path / "ladder.yaml"
    cfg.write_text(
        textwrap.dedent(f"""
        name: cli
        shapes: [{{name: a, d_model: 16, n_layers: 1, n_heads: 2, batch_size: 16, warmup_steps: 2}}]
        multipliers: [0.25, 0.5]
        corpus: {{name: json, sources: ["{STDLIB / "json" / "*.py"}", "{STDLIB / "email" / "*.py"}"], val_permille: 200}}
        vocab_size: 300
        seq_len: 32
        checkpoint_every: 0
    """)
    )
    res = CliRunner().invoke(cli, ["ladder", "run", str(cfg), "--out", str(tmp_path / "l")])
    assert res.exit_code == 0, res.output
    assert "2 runs" in res.output
    (tmp_path / "t.jsonl").write_text(
        "".join(
            json.dumps({"query": "def f(x):", "choices": [" return", " zzz"], "gold": 0}) + "\n"
            for _ in range(4)
        )
    )
    (tmp_path / "s.yaml").write_text(
        "icl_tasks:\n- {label: mc, dataset_uri: t.jsonl, icl_task_type: multiple_choice}\n"
    )
    run_dir = next((tmp_path / "l" / "runs").iterdir())
    res = CliRunner().invoke(cli, ["eval", str(run_dir), "--suite", str(tmp_path / "s.yaml")])
    assert res.exit_code == 0, res.output
    assert "acc_mc" in (run_dir / "record.json").read_text()
    res = CliRunner().invoke(
        cli, ["eval", str(run_dir), "--suite", str(tmp_path / "s.yaml"), "--task", "nope"]
    )
    assert res.exit_code == 2 and "unknown task" in res.output
    res = CliRunner().invoke(cli, ["ladder", "plan", "--preset", "gpu-huge"])
    assert res.exit_code == 2 and "unknown ladder preset" in res.output


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
    from lmscale.run_table import RunTable

    return RunTable.read(path)


def test_family_warning_for_a_largest_shape_outside_the_family():
    from lmscale.train.ladder import family_warnings

    old = LadderConfig.from_json(
        {
            "preset": "cpu-tiny",
            "shapes": [
                {
                    "name": "d32-l1",
                    "d_model": 32,
                    "n_layers": 1,
                    "n_heads": 2,
                    "batch_size": 32,
                    "warmup_steps": 20,
                },
                {
                    "name": "d48-l1",
                    "d_model": 48,
                    "n_layers": 1,
                    "n_heads": 2,
                    "batch_size": 32,
                    "warmup_steps": 20,
                },
                {
                    "name": "d64-l2",
                    "d_model": 64,
                    "n_layers": 2,
                    "n_heads": 4,
                    "batch_size": 32,
                    "warmup_steps": 30,
                },
            ],
        }
    )
    (w,) = family_warnings(old)
    assert "'d64-l2'" in w and "leaves the family" in w
    for name in ("cpu-tiny", "cpu-small", "paper"):
        assert family_warnings(preset(name)) == [], name
    from click.testing import CliRunner

    from lmscale.cli import cli

    res = CliRunner().invoke(cli, ["ladder", "plan", "--preset", "cpu-tiny"])
    assert res.exit_code == 0 and "warning" not in res.output


def test_shape_family_rules():
    fixed = LadderConfig.from_json(
        {"preset": "cpu-tiny", "shapes": {"family": {"widths": [32, 48, 64], "layers": 2}}}
    )
    assert [(s.name, s.n_layers, s.n_heads) for s in fixed.shapes] == [
        ("d32-l2", 2, 2),
        ("d48-l2", 2, 3),
        ("d64-l2", 2, 4),
    ]
    # the same shapes as the cpu-tiny preset, up to warm-up (the preset's largest warms up longer)
    assert [(s.d_model, s.n_layers) for s in fixed.shapes] == [
        (s.d_model, s.n_layers) for s in preset("cpu-tiny").shapes
    ]
    aspect = LadderConfig.from_json(
        {"preset": "cpu-tiny", "shapes": {"family": {"widths": [64, 128, 256], "aspect": 64}}}
    )
    assert [s.n_layers for s in aspect.shapes] == [1, 2, 4]
    from lmscale.train.ladder import family_warnings

    assert family_warnings(fixed) == [] and family_warnings(aspect) == []
    for bad in (
        {"widths": [32]},
        {"widths": [32, 48], "layers": 2, "aspect": 16},
        {"widths": [30, 48], "layers": 2},
        {"widths": [32, 48]},
        "x",
    ):
        with pytest.raises(InputError):
            LadderConfig.from_json({"preset": "cpu-tiny", "shapes": {"family": bad}})


def test_chunked_loss_equals_the_full_logits_loss():
    from lmscale.train.model import lm_loss

    torch.manual_seed(0)
    m = Transformer(ModelConfig(32, 2, 2, 97, seq_len=16))
    x = torch.randint(0, 97, (3, 17))
    mask = (torch.rand(3, 16) > 0.2).float()
    total, ce = lm_loss(m(x[:, :-1]), x[:, 1:], mask, 1e-4)
    total.backward()
    g_full = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    ce_sum, z_sum, n = m(x[:, :-1], targets=x[:, 1:], mask=mask, loss_chunk=7)  # 48 tokens in 7 chunks
    ((ce_sum + 1e-4 * z_sum) / n).backward()
    assert float(ce_sum.detach() / n) == pytest.approx(float(ce.detach()), rel=1e-6)
    for a, b in zip(g_full, (p.grad for p in m.parameters())):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-5)


def test_micro_batches_and_activation_checkpointing_compute_the_same_step(tokens, tmp_path):
    """Accumulated micro-batches with recomputed activations give the whole-batch step's weights."""
    packed = tdata.PackedSequences(tokens.train, 16, 0)
    base = train(_cfg(tokens.vocab_size), packed, tmp_path / "a")
    other = train(
        _cfg(tokens.vocab_size, micro_batch=1, activation_checkpointing=True, loss_chunk=24),
        packed,
        tmp_path / "b",
    )
    sa, sb = _state(tmp_path / "a" / "checkpoint.pt"), _state(tmp_path / "b" / "checkpoint.pt")
    assert max(float((sa[k] - sb[k]).abs().max()) for k in sa) <= DDP_ATOL
    assert base.train_loss == pytest.approx(other.train_loss, rel=1e-5)
    with pytest.raises(InputError, match="does not divide"):
        train(_cfg(tokens.vocab_size, micro_batch=3), packed, tmp_path / "c")


def test_the_loss_leaves_the_device_only_on_logged_and_saved_steps(tokens, tmp_path, monkeypatch):
    from lmscale.train import loop

    reads = []
    real = loop._loss_values
    monkeypatch.setattr(loop, "_loss_values", lambda *a: reads.append(1) or real(*a))
    cfg = _cfg(tokens.vocab_size, n_tokens=16 * 4 * 12, log_every=5, checkpoint_every=0)
    loop.train(cfg, tdata.PackedSequences(tokens.train, 16, 0), tmp_path / "r")
    assert cfg.n_steps == 12 and len(reads) == 3  # steps 5, 10 and the last


def test_global_sums_reduce_on_the_tensors_device(monkeypatch):
    """Under NCCL a CPU tensor cannot be all-reduced: the reduction must take (and give back) a
    tensor on the model's device. Checked here with a stand-in all_reduce that records the device."""
    import torch.distributed as dist

    from lmscale.train.distributed import global_sums

    seen = []
    monkeypatch.setattr(dist, "all_reduce", lambda t, *a, **k: seen.append(t.device))
    t = torch.tensor([1.0, 2.0], device="meta")
    out = global_sums(t)
    assert seen == [torch.device("meta")] and out.device == t.device


def test_model_flops_per_token_formula():
    from lmscale.train.shapes import model_flops_per_token

    d, layers, v, t = 512, 8, 50432, 2048
    n = count_params(d, layers, v)
    assert model_flops_per_token(d, layers, v, t) == 6 * (n - v * d) + 6 * layers * d * t
    assert (
        model_flops_per_token(d, layers, v, t) < 6 * n
    )  # the input embedding's 6·V·d dominates attention here


def test_prefetched_batches_are_the_steps_batches(tokens):
    from lmscale.train.batches import Batches

    cfg = _cfg(tokens.vocab_size, n_tokens=16 * 4 * 3 - 5)
    packed = tdata.PackedSequences(tokens.train, 16, 0)
    b = Batches(cfg, packed, rank=1, world=2, pin=False)
    try:
        for step in range(cfg.n_steps):
            batch, mask = b.get(step)
            assert torch.equal(batch, torch.from_numpy(packed.batch(step * 4 + 2, 2)))
        # the last step is partial: rank 1 holds the tokens past rank 0's 32
        assert float(mask.sum()) == max(0, min(16 * 2, cfg.n_tokens - (cfg.n_steps - 1) * 64 - 32))
    finally:
        b.close()


def _load_any(folder, vocab):
    """The model weights of a run folder's checkpoint, full or sharded."""
    from lmscale.train.checkpoint import load_sharded

    if (folder / "checkpoint.pt").is_file():
        return _state(folder / "checkpoint.pt")
    m = Transformer(ModelConfig(32, 2, 2, vocab, seq_len=16))
    load_sharded(folder, m)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_sharded_checkpoints_resume_exactly(tokens, tmp_path):
    packed = tdata.PackedSequences(tokens.train, 16, 0)
    whole = train(_cfg(tokens.vocab_size), packed, tmp_path / "whole")
    cfg = _cfg(tokens.vocab_size, checkpoint_format="sharded")
    first = train(cfg, packed, tmp_path / "cut", stop_after=3)
    assert not first.finished and (tmp_path / "cut" / "checkpoint.dcp" / "meta.json").is_file()
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()
    again = train(cfg, packed, tmp_path / "cut")
    assert again.finished and again.train_loss == whole.train_loss
    a, b = _state(tmp_path / "whole" / "checkpoint.pt"), _load_any(tmp_path / "cut", tokens.vocab_size)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished run with only a sharded checkpoint is still evaluable
    from lmscale.train.checkpoint import read_sharded_meta

    assert read_sharded_meta(tmp_path / "cut")["step"] == cfg.n_steps


def test_ranks_that_disagree_on_the_step_stop(monkeypatch):
    from lmscale.train import loop

    s = loop._Setup(
        rank=0, world=2, device=torch.device("cpu"), model=None, net=None, opt=None, sharded=False
    )
    monkeypatch.setattr(loop, "global_max", lambda t: torch.tensor([8.0, -4.0], dtype=torch.float64))
    with pytest.raises(InputError, match="ranks resume from different steps \\(4 to 8\\)"):
        loop._ranks_agree(4, s)
    monkeypatch.setattr(loop, "global_max", lambda t: t)
    loop._ranks_agree(4, s)


RESHARD_WORKER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {src!r})
    torch.set_num_threads(1)
    from lmscale.train import data as tdata
    from lmscale.train.loop import TrainConfig, train
    from lmscale.train.model import ModelConfig
    tok = tdata.open_tokens(__import__("pathlib").Path({tokfile!r}))
    cfg = TrainConfig(ModelConfig(32, 2, 2, {vocab}, seq_len=16), n_tokens=16 * 4 * 5 - 7, batch_size=4,
                      warmup_steps=2, checkpoint_every=1, seed=3, parallel="fsdp", checkpoint_format="sharded")
    train(cfg, tdata.PackedSequences(tok, 16, 0), {out!r}, device="cpu", stop_after={stop})
""")


@pytest.mark.slow
def test_sharded_fsdp_checkpoint_resumes_on_another_world_size(tokens, tmp_path):
    """Two FSDP ranks write sharded checkpoints and stop; one process resumes from them (the shards
    re-split) and ends where an uninterrupted run ends."""
    tokfile = next(p for p in Path(tokens.train.filename).parent.glob("*-train.bin"))

    def launch(nproc, out, stop):
        script = tmp_path / f"w{nproc}-{stop}.py"
        script.write_text(
            RESHARD_WORKER.format(
                src=SRC, tokfile=str(tokfile), vocab=tokens.vocab_size, out=str(out), stop=stop
            )
        )
        _torchrun(script, nproc)

    launch(2, tmp_path / "run", 2)  # two ranks, stopped after 2 of 5 steps
    assert (tmp_path / "run" / "checkpoint.dcp" / "meta.json").is_file()
    launch(1, tmp_path / "run", None)  # one process finishes it
    launch(1, tmp_path / "ref", None)  # uninterrupted, one process
    a, b = _load_any(tmp_path / "ref", tokens.vocab_size), _load_any(tmp_path / "run", tokens.vocab_size)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= DDP_ATOL


def test_gpu_process_group_binds_the_device_first_and_mixes_backends(monkeypatch):
    """Under torchrun on GPUs: cuda:LOCAL_RANK is made current before the group starts, and the
    group serves CPU tensors over gloo and GPU tensors over NCCL (checked with stand-ins: no GPU here)."""
    import torch.distributed as dist

    from lmscale.train import distributed

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr("atexit.register", lambda f: None)
    assert distributed.rank_and_world() == (1, 2)
    assert calls == [("set_device", 1), ("init", "cpu:gloo,cuda:nccl")]


LADDER_WORKER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {src!r})
    torch.set_num_threads(1)
    from lmscale.ladder_run import run_ladder
    from lmscale.train.data import CorpusConfig
    from lmscale.train.ladder import LadderConfig, ShapeSpec
    corpus = CorpusConfig("json", ({pattern!r},), val_permille=200)
    cfg = LadderConfig("t", (ShapeSpec("a", 16, 1, 2, 4, 2), ShapeSpec("b", 32, 1, 2, 4, 2)), (0.25,), corpus,
                       vocab_size=300, seq_len=16, checkpoint_every=0)
    run_ladder(cfg, {out!r}, device="cpu")
""")


@pytest.mark.slow
def test_a_whole_ladder_under_torchrun_matches_one_process(tmp_path):
    """`torchrun -m lmscale.cli ladder run` semantics: every rank runs the ladder; rank 0 locks,
    prepares the data and writes the records; the losses match a one-process ladder."""
    from lmscale.run_table import RunTable

    for name, nproc in (("one", 1), ("two", 2)):
        script = tmp_path / f"{name}.py"
        script.write_text(
            LADDER_WORKER.format(src=SRC, pattern=str(STDLIB / "json" / "*.py"), out=str(tmp_path / name))
        )
        _torchrun(script, nproc)
    one, two = RunTable.read(tmp_path / "one" / "runs.jsonl"), RunTable.read(tmp_path / "two" / "runs.jsonl")
    assert one.run_ids == two.run_ids and len(one) == 2
    assert np.allclose(one.loss("loss_json"), two.loss("loss_json"), rtol=1e-4)


def test_fsdp_gathers_bf16_parameters_and_reduces_in_float32():
    from lmscale.train.loop import fsdp_options

    cfg = _cfg(300)
    opts = fsdp_options(cfg, torch.device("cuda"))  # auto precision on a GPU: bf16
    assert opts["mp_policy"].param_dtype == torch.bfloat16 and opts["mp_policy"].reduce_dtype == torch.float32
    assert fsdp_options(cfg, torch.device("cpu")) == {}


def test_validation_loss_is_shared_over_ranks_with_equal_forward_calls(monkeypatch):
    """Each of 3 ranks scores every third sequence, all make the same number of forward calls, and
    the gathered losses equal one process's (stand-in collectives, one process plays every rank)."""
    import torch.distributed as dist

    from lmscale.evaluate import losses as L

    torch.manual_seed(0)
    model = Transformer(ModelConfig(32, 1, 2, 97, seq_len=16)).eval()
    tokens = np.random.default_rng(0).integers(0, 97, 16 * 50 + 1).astype(np.uint16)
    whole = L.evaluate_losses(model, {"v": tokens}, 16, max_sequences=40)
    calls, gathered = [], []

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            calls[-1] += 1
            return self.m(x)

    for rank in range(3):
        calls.append(0)
        monkeypatch.setattr(L, "_ranks", lambda r=rank: (r, 3))
        monkeypatch.setattr(
            dist,
            "all_gather_object",
            lambda parts, obj: gathered.append(obj) or parts.__setitem__(slice(None), [obj] * 3),
        )
        L.evaluate_losses(Counting(), {"v": tokens}, 16, max_sequences=40)
    assert len(set(calls)) == 1  # equal forward calls on every rank
    order = np.concatenate([g[0] for g in gathered])
    per_tok = np.concatenate([g[1] for g in gathered])[np.argsort(order, kind="stable")]
    assert sorted(order.tolist()) == sorted(set(order.tolist())) and len(order) == 40
    assert float(per_tok.mean()) == pytest.approx(whole["loss_v"], rel=1e-6)


def test_a_kill_between_the_renames_of_a_sharded_save_keeps_a_checkpoint(tokens, tmp_path):
    from lmscale.train.checkpoint import CheckpointManager, read_sharded_meta

    cfg = _cfg(tokens.vocab_size, checkpoint_format="sharded")
    packed = tdata.PackedSequences(tokens.train, 16, 0)
    train(cfg, packed, tmp_path / "r", stop_after=2)
    run = tmp_path / "r"
    (run / "checkpoint.dcp").rename(run / ".checkpoint.dcp.old")  # killed after the first rename
    CheckpointManager(run).clean()
    assert read_sharded_meta(run)["step"] == 2
    shutil.copytree(run / "checkpoint.dcp", run / ".checkpoint.dcp.tmp")
    (run / "checkpoint.dcp").rename(run / ".checkpoint.dcp.old")  # the new one was complete: it wins
    CheckpointManager(run).clean()
    assert (run / "checkpoint.dcp" / "meta.json").is_file() and not (run / ".checkpoint.dcp.old").exists()
    assert train(cfg, packed, run).finished
