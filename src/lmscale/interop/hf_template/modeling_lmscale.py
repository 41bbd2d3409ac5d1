"""An lmscale ladder model for Hugging Face transformers (``AutoModelForCausalLM`` with
``trust_remote_code=True``): the paper's decoder (pre-norm, gain-only LayerNorm, parameter-free
qk-LayerNorm over the full width, rotary embeddings on channel halves, SwiGLU, untied embeddings).
No Hugging Face architecture has this combination, so the export ships this file. Parameter names
equal lmscale's, so the weights load unchanged. There is no key/value cache: generation recomputes
the prefix, which is fine for scoring (what lm-evaluation-harness's loglikelihood tasks do)."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

try:
    from .configuration_lmscale import LmscaleConfig
except ImportError:  # loaded as a plain module
    from configuration_lmscale import LmscaleConfig


class GainNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, None, self.eps)


def _rotate(x, cos, sin):
    t = x.shape[-2]
    c, s = cos[:t].to(x.dtype), sin[:t].to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden_size
        self.n_heads, self.head_dim, self.eps = (
            cfg.num_attention_heads,
            d // cfg.num_attention_heads,
            cfg.norm_eps,
        )
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        gains = getattr(cfg, "qk_norm_gains", False)
        self.q_norm = GainNorm(d, cfg.norm_eps) if gains else None
        self.k_norm = GainNorm(d, cfg.norm_eps) if gains else None

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        else:
            q = F.layer_norm(q, (d,), eps=self.eps)
            k = F.layer_norm(k, (d,), eps=self.eps)
        q, k, v = (z.view(b, t, self.n_heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_up = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = GainNorm(cfg.hidden_size, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = GainNorm(cfg.hidden_size, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class LmscaleForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = LmscaleConfig
    base_model_prefix = ""
    _no_split_modules = ["Block"]

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = GainNorm(config.hidden_size, config.norm_eps)
        self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _rotary(self, t, device):
        """cos, sin (t, head_dim/2) of the rotary angles, computed in float64 then cast, as lmscale does
        (computed per call, not stored: no buffer to initialise when weights are loaded)."""
        head = self.config.hidden_size // self.config.num_attention_heads
        inv = 1.0 / self.config.rope_theta ** (
            torch.arange(0, head, 2, dtype=torch.float64, device=device) / head
        )
        ang = torch.outer(torch.arange(t, dtype=torch.float64, device=device), inv)
        return ang.cos().float(), ang.sin().float()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.hidden_size**-0.5)
        elif isinstance(module, GainNorm):
            nn.init.ones_(module.weight)

    def get_input_embeddings(self):
        return self.embed

    def set_input_embeddings(self, value):
        self.embed = value

    def get_output_embeddings(self):
        return self.head

    def set_output_embeddings(self, value):
        self.head = value

    def forward(self, input_ids=None, attention_mask=None, labels=None, inputs_embeds=None, **kwargs):
        # right padding only: a causal model's scores of the real tokens do not see later padding
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        if x.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {x.shape[1]} tokens is longer than the model's {self.config.max_position_embeddings}"
            )
        cos, sin = self._rotary(x.shape[1], x.device)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.head(self.norm(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
            )
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids}
