"""The paper's transformer (PAPER.md §6) in one file.

Decoder-only, pre-norm, no biases anywhere, gain-only LayerNorm before attention and MLP and at
the end, qk-LayerNorm (parameter-free, so the parameter count is the paper's), SwiGLU with hidden
size h = 256·ceil(int(8d/3)/256), rotary position embeddings, untied input and output embeddings,
depth-scaled initialisation, and ``scaled_dot_product_attention``.

Shapes in comments: B batch, T sequence length, d width, H heads, k = d/H head size, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmscale.errors import InputError
from lmscale.train.shapes import count_params, swiglu_hidden


@dataclass(frozen=True)
class ModelConfig:
    """One model shape."""

    #: width d
    d_model: int
    #: number of transformer blocks
    n_layers: int
    #: attention heads; d_model must be divisible by it
    n_heads: int
    #: vocabulary size V (the tokenizer's)
    vocab_size: int
    #: maximum sequence length (rotary tables are built for it)
    seq_len: int = 2048
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    #: initialisation of the output projections: ``depth`` (× 1/√(2·layers)) or ``open_lm``
    #: (× 1/√(2·(layer+1))), see :mod:`lmscale.train.recipes`
    init: str = "depth"
    #: learnable gains on the qk-LayerNorm (not counted in N)
    qk_gains: bool = False

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise InputError(f"model config: {name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise InputError(
                f"model config: d_model {self.d_model} is not divisible by n_heads {self.n_heads}"
            )
        if self.init not in ("depth", "open_lm"):
            raise InputError(f"model config: init must be depth or open_lm, got {self.init!r}")
        if (self.d_model // self.n_heads) % 2:
            raise InputError(
                f"model config: head size {self.d_model // self.n_heads} must be even for rotary embeddings"
            )

    @property
    def n_params(self) -> int:
        return count_params(self.d_model, self.n_layers, self.vocab_size)


class GainNorm(nn.Module):
    """LayerNorm with a gain and no bias."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, None, self.eps)


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv)  # (T, k/2)
    return ang.cos().float(), ang.sin().float()


def apply_rotary(x, cos, sin):
    """x (B, H, T, k): rotate channel pairs (first half, second half) by position angles."""
    t = x.shape[-2]
    c, s = cos[:t].to(x.dtype), sin[:t].to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.eps = cfg.norm_eps
        # qk-LayerNorm over the full width: parameter-free, or with gains (the open_lm recipe)
        self.q_norm = GainNorm(cfg.d_model, cfg.norm_eps) if cfg.qk_gains else None
        self.k_norm = GainNorm(cfg.d_model, cfg.norm_eps) if cfg.qk_gains else None

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)  # 3 × (B, T, d)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        else:
            q = F.layer_norm(q, (d,), eps=self.eps)
            k = F.layer_norm(k, (d,), eps=self.eps)
        q, k, v = (
            z.view(b, t, self.n_heads, self.head_dim).transpose(1, 2) for z in (q, k, v)
        )  # (B, H, T, k)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, k)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h = swiglu_hidden(cfg.d_model)
        self.gate_up = nn.Linear(cfg.d_model, 2 * h, bias=False)
        self.down = nn.Linear(h, cfg.d_model, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # 2 × (B, T, h)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = GainNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = GainNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = GainNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)  # untied from the embedding
        cos, sin = rotary_tables(cfg.seq_len, cfg.d_model // cfg.n_heads, cfg.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        #: per-block activation checkpointing in training (TrainConfig.activation_checkpointing)
        self.checkpoint_blocks = False
        self.reset_parameters()

    def reset_parameters(self):
        """Normal(0, 1/√d) weights truncated at 3σ; the projections that write into the residual
        stream (attention out, MLP down) are further scaled so the stream's variance does not grow
        with depth: by 1/√(2·layers) (``depth``) or, as open_lm does, by 1/√(2·(layer+1))."""
        std = self.cfg.d_model**-0.5
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue
            s = std
            if name.endswith(("out.weight", "down.weight")):
                layer = int(name.split(".")[1])
                depth = self.cfg.n_layers if self.cfg.init == "depth" else layer + 1
                s = std / math.sqrt(2 * depth)
            nn.init.trunc_normal_(p, std=s, a=-3 * s, b=3 * s)

    # -- the evaluator's interface (lmscale.evaluate.icl.ScoringModel) ---------------------------
    @property
    def max_length(self) -> int:
        return self.cfg.seq_len

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) → logits (B, T, V) in inference mode (the training mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self(tokens)
        finally:
            self.train(was_training)

    def forward(
        self,
        tokens: torch.Tensor,
        targets: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        z_loss: float = 0.0,
        loss_chunk: int = 8192,
    ):
        """tokens (B, T) → logits (B, T, V); with ``targets`` (B, T) → the loss sums
        (cross-entropy sum, z-loss sum, counted tokens) over ``mask``, computed by
        :func:`chunked_loss_sums` so the full (B, T, V) logits never exist at once. The loss is part
        of ``forward`` so that DDP and FSDP wrappers see one call."""
        if tokens.shape[1] > self.cfg.seq_len:
            raise InputError(
                f"sequence of {tokens.shape[1]} tokens is longer than the model's {self.cfg.seq_len}"
            )
        x = self.embed(tokens)  # (B, T, d)
        for block in self.blocks:
            if self.checkpoint_blocks and self.training and torch.is_grad_enabled():
                # per-block activation checkpointing: keep the block's input, recompute the rest
                x = torch.utils.checkpoint.checkpoint(block, x, self.cos, self.sin, use_reentrant=False)
            else:
                x = block(x, self.cos, self.sin)
        h = self.norm(x)
        if targets is None:
            return self.head(h)
        return chunked_loss_sums(h, self.head.weight, targets, mask, loss_chunk)


def _chunk_sums(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    logits = (h @ w.t()).float()  # (n, V): one chunk's logits, in float32
    lse = torch.logsumexp(logits, dim=-1)
    ce = lse - logits.gather(-1, t.unsqueeze(-1)).squeeze(-1)
    return torch.stack([(ce * m).sum(), (lse.pow(2) * m).sum()])


def chunked_loss_sums(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Σ cross-entropy, Σ logsumexp², Σ mask) of the output layer ``h @ weight.T`` against
    ``targets``, ``chunk`` tokens at a time. Each chunk's logits are recomputed in the backward pass
    (activation checkpointing), so memory holds one chunk's (chunk, V) float32 logits, not (B·T, V):
    at the paper's V = 50432 and the default chunk that is 1.65 GB instead of 6.6 GB for 2048 × 16
    tokens per GPU, and it stays 1.65 GB however many tokens a micro-batch holds."""
    d = h.shape[-1]
    hf, tf = h.reshape(-1, d), targets.reshape(-1)
    mf = (
        torch.ones(tf.shape, device=h.device, dtype=torch.float32)
        if mask is None
        else mask.reshape(-1).float()
    )
    # two separate accumulators: returning views of one stacked tensor (sums[0], sums[1]) would
    # hand FSDP2 view outputs, on which an in-place op silently skips its pre-backward hook
    ce_sum = h.new_zeros((), dtype=torch.float32)
    z_sum = h.new_zeros((), dtype=torch.float32)
    for i in range(0, hf.shape[0], chunk):
        sl = slice(i, i + chunk)
        if torch.is_grad_enabled() and (hf.requires_grad or weight.requires_grad):
            part = torch.utils.checkpoint.checkpoint(
                _chunk_sums, hf[sl], weight, tf[sl], mf[sl], use_reentrant=False
            )
        else:
            part = _chunk_sums(hf[sl], weight, tf[sl], mf[sl])
        ce_sum = ce_sum + part[0]
        z_sum = z_sum + part[1]
    return ce_sum, z_sum, mf.sum()


def lm_loss(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None, z_loss: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the counted tokens, plus ``z_loss``·mean(logsumexp²). Returns
    (total loss to optimise, cross-entropy alone)."""
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1)  # (B, T)
    ce = lse - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    if mask is None:
        mask = torch.ones_like(ce)
    n = mask.sum().clamp(min=1)
    ce_mean = (ce * mask).sum() / n
    return ce_mean + z_loss * (lse.pow(2) * mask).sum() / n, ce_mean
