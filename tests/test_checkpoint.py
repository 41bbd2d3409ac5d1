"""Checkpoints (lmscale.train.checkpoint): a save and load keep the weights, the step and every
RNG, refuse another configuration's file and a damaged one; a run killed with SIGKILL resumes
bit-identically; sharded saves resume exactly and survive a kill between their two renames."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs torch (pip install torch==2.13.0 tokenizers)")
pytest.importorskip("tokenizers", reason="training needs tokenizers")

from lmscale.errors import InputError  # noqa: E402
from lmscale.train import data as tdata  # noqa: E402
from lmscale.train.checkpoint import (  # noqa: E402
    CheckpointManager,
    load_checkpoint,
    load_sharded,
    read_sharded_meta,
    save_checkpoint,
)
from lmscale.train.config import TrainState  # noqa: E402
from lmscale.train.loop import train  # noqa: E402
from lmscale.train.model import ModelConfig, Transformer  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _state(path):
    return load_checkpoint(path)["model"]


def test_a_saved_checkpoint_loads_back_with_its_step_and_random_state(tmp_path, train_config):
    import random

    import numpy as np

    cfg = train_config(300)
    model = Transformer(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    save_checkpoint(tmp_path / "checkpoint.pt", model, opt, 5, cfg, TrainState(2.5, 12.0))
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(10), np.random.rand(10), random.random()  # move every generator on
    state = CheckpointManager(tmp_path).load(cfg.digest())
    assert (
        state is not None
        and state["step"] == 5
        and TrainState.from_dict(state["extra"]) == TrainState(2.5, 12.0)
    )
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    from lmscale.train.checkpoint import _set_rng_state

    _set_rng_state(state["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]
    other = train_config(300, seed=4)
    with pytest.raises(InputError, match="different configuration"):
        CheckpointManager(tmp_path).load(other.digest())
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="unreadable checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert CheckpointManager(tmp_path / "empty").load(cfg.digest()) is None


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


def _load_any(folder, vocab):
    """The model weights of a run folder's checkpoint, full or sharded."""
    if (folder / "checkpoint.pt").is_file():
        return _state(folder / "checkpoint.pt")
    m = Transformer(ModelConfig(32, 2, 2, vocab, seq_len=16))
    load_sharded(folder, m)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_sharded_checkpoints_resume_exactly(tokens, tmp_path, train_config):
    packed = tdata.PackedSequences(tokens.train, 16, 0)
    whole = train(train_config(tokens.vocab_size), packed, tmp_path / "whole")
    cfg = train_config(tokens.vocab_size, checkpoint_format="sharded")
    first = train(cfg, packed, tmp_path / "cut", stop_after=3)
    assert not first.finished and (tmp_path / "cut" / "checkpoint.dcp" / "meta.json").is_file()
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()
    again = train(cfg, packed, tmp_path / "cut")
    assert again.finished and again.train_loss == whole.train_loss
    a, b = _state(tmp_path / "whole" / "checkpoint.pt"), _load_any(tmp_path / "cut", tokens.vocab_size)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished run with only a sharded checkpoint is still evaluable
    assert read_sharded_meta(tmp_path / "cut")["step"] == cfg.n_steps


def test_a_kill_between_the_renames_of_a_sharded_save_keeps_a_checkpoint(tokens, tmp_path, train_config):
    cfg = train_config(tokens.vocab_size, checkpoint_format="sharded")
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
