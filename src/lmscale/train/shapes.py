"""Parameter counts of the paper's architecture (PAPER.md §3), without torch: the analyses of the
paper's hyper-parameter grid and the ladder planner need them, the model reuses them."""

from __future__ import annotations

import math


def swiglu_hidden(d_model: int) -> int:
    """The paper's SwiGLU hidden size: 256·ceil(int(8d/3)/256)."""
    return 256 * math.ceil(int(8 * d_model / 3) / 256)


def count_params(d_model: int, n_layers: int, vocab_size: int) -> int:
    """N = 2·V·d + l·(4d² + 3·d·h + 2d) + d: embeddings, attention, SwiGLU, two norms per layer,
    final norm. Equals ``sum(p.numel())`` of :class:`Transformer`."""
    h = swiglu_hidden(d_model)
    return (
        2 * vocab_size * d_model
        + n_layers * (4 * d_model * d_model + 3 * d_model * h + 2 * d_model)
        + d_model
    )


def model_flops_per_token(d_model: int, n_layers: int, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs per token for model-FLOP utilisation: 6·(N − V·d) + 6·layers·d·T.

    N − V·d drops the input embedding (a lookup, no multiplications) and keeps the output layer;
    6·layers·d·T is causal attention's scores and weighted values (2·d·T per layer forward for a
    full T×T attention, halved by the causal mask, ×3 for forward and backward)."""
    n = count_params(d_model, n_layers, vocab_size)
    return 6.0 * (n - vocab_size * d_model) + 6.0 * n_layers * d_model * seq_len
