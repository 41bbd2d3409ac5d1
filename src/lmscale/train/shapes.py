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
