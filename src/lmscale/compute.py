"""Training compute: C = 6·N·D FLOPs for a model of N parameters trained on D tokens (the paper's
approximation, PAPER.md §2: 2·N·D forward, 4·N·D backward), written once. With D = M·N (a token
multiplier M) that is 6·N²·M."""

from __future__ import annotations

from typing import Any, overload

import numpy as np

#: training FLOPs per parameter per token
FLOPS_PER_PARAM_TOKEN = 6.0


@overload
def flops(n_params: float, n_tokens: float | None = None, *, multiplier: float | None = None) -> float: ...


@overload
def flops(n_params: np.ndarray, n_tokens: Any = None, *, multiplier: Any = None) -> np.ndarray: ...


def flops(n_params, n_tokens=None, *, multiplier=None):
    """C = 6·N·D for ``n_tokens`` D, or 6·N·N·M for a token ``multiplier`` M (give one of the two).
    Numbers or numpy arrays; the products are taken in this order, so results are the same to the
    bit wherever this was written out by hand before."""
    if (n_tokens is None) == (multiplier is None):
        raise ValueError("flops: give n_tokens or multiplier, not both or neither")
    if multiplier is not None:
        return FLOPS_PER_PARAM_TOKEN * n_params * n_params * multiplier
    return FLOPS_PER_PARAM_TOKEN * n_params * n_tokens
