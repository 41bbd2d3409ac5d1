"""Model recipes: the choices beside the shape that make a ladder a given codebase's models.

``lmscale`` (the default): depth-scaled initialisation (output projections × 1/√(2·layers)),
parameter-free qk-LayerNorm, weight decay on matrices only, the tokenizer's vocabulary as is.

``open_lm`` (the paper's models, and the ``paper`` preset's): open_lm's initialisation (every weight
N(0, 1/d) truncated at 3σ, and the attention and MLP output projections of layer l further scaled by
1/√(2·(l+1))), qk-LayerNorm with learnable gains, weight decay on every parameter, and the
vocabulary padded to a multiple of 256 (GPT-NeoX's 50,277 tokens become the paper's V = 50,432).

How N is counted, in both: N = 2·V·d + layers·(4d² + 3·d·h + 2d) + d with V the padded vocabulary,
which is the paper's N (its Table 1: 0.011B = 10,569,312 at V = 50,432). The qk-norm gains
(2·d per layer with ``open_lm``, 0.015% of N at 0.011B) are not counted, so N is the same number
for both recipes and the paper's laws apply unchanged."""

from __future__ import annotations

from dataclasses import dataclass

from lmscale.errors import InputError


@dataclass(frozen=True)
class Recipe:
    name: str
    #: ``depth`` (1/√(2·layers) on output projections) or ``open_lm`` (1/√(2·(layer+1)))
    init: str
    #: learnable gains on the qk-LayerNorm
    qk_gains: bool
    #: weight decay on every parameter (else on matrices only)
    decay_all: bool
    #: vocabulary padded up to a multiple of this
    vocab_multiple: int


RECIPES = {
    "lmscale": Recipe("lmscale", "depth", qk_gains=False, decay_all=False, vocab_multiple=1),
    "open_lm": Recipe("open_lm", "open_lm", qk_gains=True, decay_all=True, vocab_multiple=256),
}


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise InputError(f"unknown model recipe {name!r}; known: {', '.join(RECIPES)}") from None


def padded_vocab(vocab_size: int, multiple: int) -> int:
    """``vocab_size`` rounded up to a multiple of ``multiple`` (the extra rows are never a target)."""
    return -(-vocab_size // multiple) * multiple
