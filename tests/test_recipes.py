"""The model recipes (lmscale.train.recipes): the paper preset's choices, each pinned."""

import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")

from lmscale.train.ladder import plan, preset  # noqa: E402
from lmscale.train.loop import TrainConfig, _setup  # noqa: E402
from lmscale.train.model import ModelConfig, Transformer  # noqa: E402
from lmscale.train.recipes import RECIPES, padded_vocab, recipe  # noqa: E402
from lmscale.train.shapes import count_params  # noqa: E402


def test_the_paper_preset_uses_open_lm():
    cfg = preset("paper")
    assert cfg.recipe == "open_lm"
    r = recipe("open_lm")
    assert (r.init, r.qk_gains, r.decay_all, r.vocab_multiple) == ("open_lm", True, True, 256)
    assert preset("cpu-tiny").recipe == "lmscale" and set(RECIPES) == {"lmscale", "open_lm"}


def test_gpt_neox_vocabulary_pads_to_the_papers_and_n_is_the_papers():
    assert padded_vocab(50277, 256) == 50432 and padded_vocab(512, 1) == 512
    runs = plan(preset("paper"), vocab_size=50277)  # the GPT-NeoX tokenizer's 50,277 tokens
    n = {r.shape.name: r.n_params for r in runs}
    assert n["0.011B"] == 10_569_312 and n["0.079B"] == 78_914_048 and n["0.411B"] == 411_616_256
    assert {r.vocab_size for r in runs} == {50432}


def test_qk_norm_gains_are_learnable_and_not_counted_in_n():
    cfg = ModelConfig(96, 8, 4, 1000, seq_len=32, qk_gains=True)
    m = Transformer(cfg)
    names = dict(m.named_parameters())
    assert "blocks.0.attn.q_norm.weight" in names and "blocks.7.attn.k_norm.weight" in names
    assert (
        sum(p.numel() for p in m.parameters())
        == count_params(96, 8, 1000) + 2 * 96 * 8
        == cfg.n_params + 2 * 96 * 8
    )
    plain = Transformer(ModelConfig(96, 8, 4, 1000, seq_len=32))
    assert sum(p.numel() for p in plain.parameters()) == plain.cfg.n_params


def test_open_lm_initialisation_scales_output_projections_by_layer():
    torch.manual_seed(0)
    d, layers = 256, 8
    m = Transformer(ModelConfig(d, layers, 4, 300, seq_len=16, init="open_lm"))
    depth = Transformer(ModelConfig(d, layers, 4, 300, seq_len=16))
    trunc = 0.9866  # std of a normal truncated at ±3σ, in σ
    for layer in (0, 3, 7):
        for name in ("attn.out.weight", "mlp.down.weight"):
            w = dict(m.named_parameters())[f"blocks.{layer}.{name}"]
            expected = d**-0.5 / (2 * (layer + 1)) ** 0.5 * trunc
            assert float(w.detach().std()) == pytest.approx(expected, rel=0.03), (layer, name)
            w2 = dict(depth.named_parameters())[f"blocks.{layer}.{name}"]
            assert float(w2.detach().std()) == pytest.approx(d**-0.5 / (2 * layers) ** 0.5 * trunc, rel=0.03)
    q = dict(m.named_parameters())["blocks.5.attn.qkv.weight"]
    assert float(q.detach().std()) == pytest.approx(d**-0.5 * trunc, rel=0.03)


def test_weight_decay_on_every_parameter_with_open_lm():
    mc = ModelConfig(32, 2, 2, 300, seq_len=16, qk_gains=True)
    for decay_all, expect_plain in ((True, 0), (False, 2 * 4 + 1)):
        tc = TrainConfig(mc, n_tokens=1000, batch_size=2, warmup_steps=1, decay_all=decay_all)
        s = _setup(tc, torch.device("cpu"), 0, 1, None)
        no_decay = [p for g in s.opt.param_groups if g["weight_decay"] == 0 for p in g["params"]]
        assert len(no_decay) == expect_plain  # per layer 2 norm gains + 2 qk gains, the final norm
        assert all(
            g["weight_decay"] == tc.weight_decay
            for g in s.opt.param_groups
            if g["params"] and g["weight_decay"]
        )
