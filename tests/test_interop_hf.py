"""Hugging Face bridge (lmscale.interop.hf): an exported ladder run loads with
AutoModelForCausalLM and gives lmscale's logits; lmscale's evaluator scores any local causal LM."""

import json
import os
import sysconfig
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
transformers = pytest.importorskip(
    "transformers", reason="needs the interop extra (pip install 'lmscale[interop]')"
)
pytest.importorskip("safetensors", reason="needs the interop extra")

from click.testing import CliRunner  # noqa: E402

from lmscale.cli import cli  # noqa: E402
from lmscale.errors import InputError  # noqa: E402
from lmscale.evaluate.icl import TaskConfig, load_items, score  # noqa: E402
from lmscale.interop.hf import export_run, load_hf_model  # noqa: E402
from lmscale.ladder_eval import load_run  # noqa: E402
from lmscale.ladder_run import run_ladder  # noqa: E402
from lmscale.train.data import CorpusConfig  # noqa: E402
from lmscale.train.ladder import LadderConfig, ShapeSpec  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    corpus = CorpusConfig("json", (str(STDLIB / "json" / "*.py"),), val_permille=200)
    cfg = LadderConfig(
        "hf",
        (ShapeSpec("a", 32, 2, 4, 16, 2),),
        (0.5,),
        corpus,
        vocab_size=300,
        seq_len=32,
        checkpoint_every=0,
    )
    root = tmp_path_factory.mktemp("hf") / "ladder"
    run_ladder(cfg, root)
    return next((root / "runs").iterdir())


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    res = CliRunner().invoke(cli, ["export", str(run_dir), "--to", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _suite(tmp_path):
    items = tmp_path / "mc.jsonl"
    items.write_text(
        "".join(
            json.dumps(
                {"query": f"def f{i}(x):\n   ", "choices": [" return x", " zzz qqq", " import"], "gold": 0}
            )
            + "\n"
            for i in range(12)
        )
    )
    return TaskConfig("mc", str(items), "multiple_choice", num_fewshot=1)


def test_export_loads_with_automodel_and_matches_logits(run_dir, exported):
    files = {p.name for p in exported.iterdir()}
    mask = os.umask(0o022)
    os.umask(mask)
    for p in exported.iterdir():  # teammates can read the export: the umask's mode, not 0600
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p.name
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "modeling_lmscale.py",
    } <= files
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        exported, trust_remote_code=True, local_files_only=True
    ).eval()
    tok = transformers.AutoTokenizer.from_pretrained(exported, trust_remote_code=True, local_files_only=True)
    model, ltok, _ = load_run(run_dir)
    model.eval()
    text = "import json\ndef load(path):\n    with open(path) as fh:\n        return json.load(fh)\n"
    ids = ltok.encode(text).ids[:32]
    assert tok(text, add_special_tokens=False)["input_ids"][:32] == ids  # the same tokenizer
    x = torch.tensor([ids])
    with torch.no_grad():
        ours, theirs = model(x), hf(input_ids=x).logits
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-5, rtol=0)
    assert hf.config.n_params == model.cfg.n_params == sum(p.numel() for p in hf.parameters())
    with pytest.raises(InputError, match="not empty"):
        export_run(run_dir, exported)


def test_evaluator_scores_an_export_as_it_scores_the_run(run_dir, exported, tmp_path):
    task = _suite(tmp_path)
    model, tok, _ = load_run(run_dir)
    native = score(model, tok, task, load_items(task))
    hf_model, hf_tok = load_hf_model(exported, trust_remote_code=True)
    via_hf = score(hf_model, hf_tok, task, load_items(task))
    assert (via_hf.n_correct, via_hf.n_items) == (native.n_correct, native.n_items)
    with pytest.raises(InputError, match="trust-remote-code"):
        load_hf_model(exported)


def test_eval_cli_scores_a_tiny_gpt_neox(run_dir, tmp_path):
    """A model of an architecture transformers ships (GPT-NeoX, Pythia's), built and saved here."""
    src = load_run(run_dir)[2].tokenizer_at(run_dir)  # the record stores it relative to the run folder
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(src), eos_token="<|endoftext|>")
    cfg = transformers.GPTNeoXConfig(
        vocab_size=hf_tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model_dir = tmp_path / "neox"
    transformers.GPTNeoXForCausalLM(cfg).save_pretrained(model_dir)
    hf_tok.save_pretrained(model_dir)
    task = _suite(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        "icl_tasks:\n- {label: mc, dataset_uri: mc.jsonl, num_fewshot: [1], icl_task_type: multiple_choice}\n"
    )
    res = CliRunner().invoke(
        cli,
        ["eval", "--hf-model", str(model_dir), "--suite", str(tmp_path / "suite.yaml"), "--format", "json"],
    )
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    m, t = load_hf_model(model_dir)
    assert got == {"acc_mc": score(m, t, task, load_items(task)).accuracy}
    res = CliRunner().invoke(cli, ["eval", "--suite", str(tmp_path / "suite.yaml")])
    assert res.exit_code == 2 and "RUN_DIR or --hf-model" in res.output


@pytest.fixture(scope="module")
def harness_tasks(tmp_path_factory):
    from lmscale.interop.harness import jsonl_task_yaml

    folder = tmp_path_factory.mktemp("harness")
    items = folder / "mc.jsonl"
    items.write_text(
        "".join(
            json.dumps(
                {
                    "query": f"def f{i}(x):\n   ",
                    "choices": [" return x", " zzz qqq", " import"],
                    "gold": i % 2,
                }
            )
            + "\n"
            for i in range(10)
        )
    )
    jsonl_task_yaml("lmscale_mc", items, folder / "tasks")
    return folder / "tasks"


@pytest.mark.slow
def test_lm_eval_cli_scores_an_export_offline(exported, harness_tasks, tmp_path):
    """`lm_eval --model hf --model_args pretrained=EXPORT,trust_remote_code=True` on a local JSONL
    task, with no network; its results file merges into a run table with `lmscale import lm-eval`."""
    import os
    import subprocess
    import sys

    pytest.importorskip("lm_eval", reason="needs the interop extra")
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={exported},trust_remote_code=True",
        "--tasks",
        "lmscale_mc",
        "--include_path",
        str(harness_tasks),
        "--output_path",
        str(tmp_path / "out"),
        "--device",
        "cpu",
        "--batch_size",
        "4",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from lmscale.interop.lm_eval_results import results_files

    doc = json.loads(results_files(tmp_path / "out")[0].read_text())
    assert 0 <= doc["results"]["lmscale_mc"]["acc_norm,none"] <= 1


@pytest.mark.slow
def test_ladder_eval_with_the_harness_writes_records(run_dir, harness_tasks, tmp_path):
    import shutil

    pytest.importorskip("lm_eval", reason="needs the interop extra")
    pytest.importorskip("accelerate", reason="needs the interop extra")
    ladder = tmp_path / "ladder"
    shutil.copytree(run_dir.parent.parent, ladder, ignore=shutil.ignore_patterns(".lock"))
    res = CliRunner().invoke(
        cli,
        [
            "ladder",
            "eval",
            str(ladder),
            "--harness",
            "lmscale_mc",
            "--include-path",
            str(harness_tasks),
            "--batch-size",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    from lmscale.interop.harness import harness_scores
    from lmscale.run_table import RunTable

    table = RunTable.read(ladder / "runs.jsonl")
    got = table.accuracy("lmscale_mc")
    assert len(got) == 1 and 0 <= got[0] <= 1
    # the record holds what the harness gives for the exported run
    direct = harness_scores(
        ladder / "hf" / table.run_ids[0], ["lmscale_mc"], include_path=harness_tasks, batch_size=4
    )
    assert direct["acc_lmscale_mc"] == got[0]
    res = CliRunner().invoke(
        cli,
        [
            "ladder",
            "eval",
            str(ladder),
            "--harness",
            "no_such_task_xyz",
            "--include-path",
            str(harness_tasks),
        ],
    )
    assert res.exit_code == 2 and "no_such_task_xyz" in res.output


def test_training_logs_to_tensorboard_read_back_by_the_importer(tmp_path):
    """`ladder run --log tensorboard` writes event files that `lmscale import tensorboard` turns back
    into the same validation losses as runs.jsonl."""
    pytest.importorskip("tensorboard", reason="needs the interop extra")
    from lmscale.run_table import RunTable

    corpus = CorpusConfig("json", (str(STDLIB / "json" / "*.py"),), val_permille=200)
    cfg = LadderConfig(
        "tb",
        (ShapeSpec("a", 16, 1, 2, 16, 2),),
        (0.25, 0.5),
        corpus,
        vocab_size=300,
        seq_len=16,
        checkpoint_every=0,
    )
    path = run_ladder(cfg, tmp_path / "l", log_to=("tensorboard",))
    out = tmp_path / "tb.csv"
    res = CliRunner().invoke(
        cli,
        [
            "import",
            "tensorboard",
            str(tmp_path / "l" / "logs" / "tensorboard"),
            "--map",
            "val/*=loss_*",
            "--map",
            "train/tokens=n_tokens",
            "--name-pattern",
            "{model}-M{m}",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    ours, theirs = RunTable.read(path), RunTable.read(out)
    assert sorted(theirs.run_ids) == sorted(ours.run_ids)
    for rid in ours.run_ids:
        i, j = ours.run_ids.index(rid), theirs.run_ids.index(rid)
        assert theirs.loss("loss_json")[j] == pytest.approx(ours.loss("loss_json")[i], rel=1e-6)
        assert theirs.column("n_tokens")[j] == ours.column("n_tokens")[i]


@pytest.mark.slow
def test_training_logs_to_wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="needs the interop extra")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    corpus = CorpusConfig("json", (str(STDLIB / "json" / "*.py"),), val_permille=200)
    cfg = LadderConfig(
        "wb",
        (ShapeSpec("a", 16, 1, 2, 16, 2),),
        (0.25,),
        corpus,
        vocab_size=300,
        seq_len=16,
        checkpoint_every=0,
    )
    run_ladder(cfg, tmp_path / "l", log_to=("wandb",))
    runs = list((tmp_path / "l" / "logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # the offline run's record log (protobuf; `wandb sync` uploads it) holds every metric's key
    data = next(runs[0].glob("*.wandb")).read_bytes()
    for key in (b"train/loss", b"train/lr", b"train/tokens_per_second", b"val/json", b"n_params"):
        assert key in data, key


def test_export_of_an_open_lm_recipe_run_keeps_its_qk_gains(tmp_path):
    corpus = CorpusConfig("json", (str(STDLIB / "json" / "*.py"),), val_permille=200)
    cfg = LadderConfig(
        "ol",
        (ShapeSpec("a", 32, 2, 4, 16, 2),),
        (0.25,),
        corpus,
        vocab_size=300,
        seq_len=16,
        checkpoint_every=0,
        recipe="open_lm",
    )
    run_ladder(cfg, tmp_path / "l")
    rd = next((tmp_path / "l" / "runs").iterdir())
    model, tok, _ = load_run(rd)
    assert model.cfg.qk_gains and model.cfg.vocab_size == 512  # 300 padded to a multiple of 256
    out = export_run(rd, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        out, trust_remote_code=True, local_files_only=True
    ).eval()
    x = torch.tensor([tok.encode("def f(x):\n    return x\n").ids[:16]])
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), hf(input_ids=x).logits, atol=1e-5, rtol=0)
