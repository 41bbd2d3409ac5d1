"""Memory planning (lmscale.train.memory) and what `ladder plan` shows with it."""

import json

import pytest
from click.testing import CliRunner

from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.train.ladder import plan, preset
from lmscale.train.memory import GIB, estimate, fit_micro_batch, parse_bytes, resource_warnings, run_resources

PAPER_SHAPES = {
    "0.011B": (96, 8, 64),
    "0.079B": (512, 8, 512),
    "0.154B": (576, 24, 512),
    "0.411B": (1024, 24, 512),
    "1.4B": (2048, 24, 256),
    "6.9B": (4096, 32, 2048),
}


def test_sizes_parse():
    assert parse_bytes("80GB") == parse_bytes("80GiB") == 80 * GIB
    assert parse_bytes("141e9") == 141e9 and parse_bytes(24 * GIB) == 24 * GIB
    with pytest.raises(InputError, match="80GB"):
        parse_bytes("lots")


def test_estimate_grows_with_the_micro_batch_and_shrinks_with_checkpointing():
    a = estimate(1024, 24, 50432, 2048, 8)
    b = estimate(1024, 24, 50432, 2048, 16)
    c = estimate(1024, 24, 50432, 2048, 16, checkpointing=True)
    assert a.total < b.total and c.total < b.total and a.states == b.states
    assert b.activations == pytest.approx(2 * a.activations)
    # the chunked output layer is bounded by the chunk, not by the tokens in the micro-batch
    chunked, whole = estimate(512, 8, 50432, 2048, 64), estimate(512, 8, 50432, 2048, 64, loss_chunk=10**9)
    assert chunked.output_layer < 0.2 * whole.output_layer
    # FSDP divides the 16 bytes/parameter of states over the ranks
    assert (
        estimate(4096, 32, 50432, 2048, 1, world=8, sharded=True).states
        < estimate(4096, 32, 50432, 2048, 1).states / 4
    )


@pytest.mark.parametrize("name", list(PAPER_SHAPES))
def test_every_paper_shape_fits_an_80gb_gpu_at_the_paper_batch_on_8(name):
    d, layers, batch = PAPER_SHAPES[name]
    mb, ckpt, est = fit_micro_batch(d, layers, 50432, 2048, batch // 8, 80 * GIB, world=8, sharded=d >= 2048)
    assert (batch // 8) % mb == 0 and est.total <= 0.9 * 80 * GIB
    # the chosen micro-batch is the largest that fits: the next divisor up does not
    bigger = [k for k in range(mb + 1, batch // 8 + 1) if (batch // 8) % k == 0]
    if bigger and not ckpt:
        assert estimate(d, layers, 50432, 2048, bigger[0], world=8, sharded=d >= 2048).total > 0.9 * 80 * GIB


def test_a_model_that_cannot_fit_says_so():
    with pytest.raises(InputError, match="does not fit 16 GiB.*FSDP"):
        fit_micro_batch(4096, 32, 50432, 2048, 256, 16 * GIB)


def test_warm_up_and_epoch_warnings():
    cfg = preset("paper")
    res = run_resources(cfg, plan(cfg), gpu_bytes=80 * GIB, world=8, corpus_tokens=3e9)
    text = "\n".join(resource_warnings(res))
    assert "corpus-0.079B-M5: 377 steps, all inside the 400-step warm-up" in text
    assert "corpus-0.011B-M640: 2.25 epochs" in text and "corpus-0.011B-M5" not in text


def test_ladder_plan_cli_shows_memory_and_micro_batches():
    res = CliRunner().invoke(
        cli,
        ["ladder", "plan", "--preset", "paper", "--gpu-memory", "80GB", "--gpus", "8", "--format", "json"],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 32 and all(r["peak_bytes_per_rank"] <= 0.9 * 80 * GIB for r in rows)
    assert {r["micro_batch"] for r in rows} <= {1, 2, 4, 8, 16, 32, 64}
    res = CliRunner().invoke(cli, ["ladder", "plan", "--preset", "paper", "--gpus", "3"])
    assert res.exit_code == 2 and "does not split over 3 ranks" in res.output


def test_ladder_plan_says_measure_does_not_time_a_gpu_plan():
    args = ["ladder", "plan", "--preset", "paper", "--gpus", "8", "--format", "json"]
    res = CliRunner().invoke(cli, [*args, "--measure"])
    assert res.exit_code == 0, res.output
    assert "--measure times CPU steps" in res.stderr and "--gpus" in res.stderr
    assert (
        json.loads(res.stdout)[0]["time_assumption"]
        == json.loads(CliRunner().invoke(cli, args).stdout)[0]["time_assumption"]
    )
    assert "--measure" not in CliRunner().invoke(cli, args).stderr


def test_execution_settings_from_a_config_file_and_the_command_line(tmp_path):
    from lmscale.ladder_run import Execution, execution_from
    from lmscale.train.ladder import LadderConfig

    cfg = tmp_path / "ladder.yaml"
    cfg.write_text(
        "preset: cpu-tiny\nexecution: {micro_batch: 8, compile: true, gpu_memory: 80GB, activation_checkpointing: false}\n"
    )
    assert LadderConfig.read(cfg).name == "cpu-tiny"  # how to run it is not part of what it is
    ex = execution_from(cfg)
    assert (ex.micro_batch, ex.compile, ex.gpu_memory, ex.activation_checkpointing) == (
        8,
        True,
        80 * GIB,
        False,
    )
    ex = execution_from(cfg, micro_batch=2, compile=None)  # the command line overrides what it gives
    assert ex.micro_batch == 2 and ex.compile
    assert execution_from(None) == Execution()
    cfg.write_text("preset: cpu-tiny\nexecution: {micro_batches: 8}\n")
    with pytest.raises(InputError, match=r"unknown setting\(s\) micro_batches"):
        execution_from(cfg)
