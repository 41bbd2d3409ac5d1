"""Model shapes without torch: :class:`ShapeSpec`, the paper's named shapes, and the parameter counts
of the paper's architecture (PAPER.md §3). The analyses of the paper's hyper-parameter grid and the
ladder planner need them, the model reuses them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lmscale import paper_constants
from lmscale.errors import InputError
from lmscale.train.tokens import _int_in


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


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive(v) -> bool:
    return _number(v) and v > 0


@dataclass(frozen=True)
class ShapeSpec:
    """A model shape and its per-shape hyper-parameters (the paper's table, PAPER.md §6)."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    batch_size: int
    warmup_steps: int
    lr: float | None = None  # default: the ladder's

    def __post_init__(self):
        for f in ("d_model", "n_layers", "n_heads", "batch_size"):
            if not _int_in(getattr(self, f), 1, None):
                raise InputError(
                    f"shape {self.name!r}: {f} must be a whole number ≥ 1, got {getattr(self, f)!r}"
                )
        if not _int_in(self.warmup_steps, 0, None):
            raise InputError(
                f"shape {self.name!r}: warmup_steps must be a whole number ≥ 0, got {self.warmup_steps!r}"
            )
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise InputError(
                f"shape {self.name!r}: d_model {self.d_model} must split into {self.n_heads} heads of an "
                "even width (rotary embeddings)"
            )
        if self.lr is not None and not _positive(self.lr):
            raise InputError(f"shape {self.name!r}: lr must be a positive number, got {self.lr!r}")


#: the paper's named shapes (PAPER.md §6), as :class:`ShapeSpec`
PAPER_SHAPES = {name: ShapeSpec(name, *spec) for name, spec in paper_constants.PAPER_SHAPES.items()}
