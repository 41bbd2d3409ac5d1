"""Validation losses of a trained model, with bootstrap bounds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lmscale.errors import InputError


def evaluate_losses(
    model,
    val: Mapping[str, np.ndarray],
    seq_len: int,
    *,
    max_sequences: int | None = 64,
    max_tokens: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    device=None,
) -> dict[str, float]:
    """Token-averaged validation loss per set on up to ``max_sequences`` windows (evenly spread over
    the set; ``max_tokens`` sets the budget in tokens instead, e.g. 10M on a GPU), with 95% bootstrap bounds over the per-sequence mean losses (``loss_lower_<set>``,
    ``loss_upper_<set>``, the testbed's convention) and over single tokens
    (``token_bound_lower_<set>``, ``token_bound_upper_<set>``: narrower, they ignore that tokens
    of one sequence are correlated)."""
    import torch

    model.eval()
    out = {}
    dev = device or next(model.parameters()).device
    rng = np.random.default_rng(seed)
    for name, tokens in val.items():
        n = (len(tokens) - 1) // seq_len
        if n < 1:
            raise InputError(
                f"validation set {name!r} has {len(tokens)} tokens, fewer than one sequence of {seq_len}"
            )
        budget = max_tokens // seq_len if max_tokens else (max_sequences or n)
        idx = np.unique(np.linspace(0, n - 1, max(1, min(n, budget))).astype(int))
        rank, world = _ranks()
        # under torchrun each rank scores every world-th sequence; all make the same number of
        # forward calls (a sharded model's forward is collective), the short ones on a repeat
        mine = idx[rank::world]
        share = -(-len(idx) // world)
        padded = np.concatenate([mine, np.full(share - len(mine), idx[0])]).astype(int)
        seqs = np.stack(
            [np.asarray(tokens[i * seq_len : i * seq_len + seq_len + 1], dtype=np.int64) for i in padded]
        )
        chunks: list[np.ndarray] = []
        dev = torch.device(dev)
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            for i in range(0, len(seqs), 16):
                b = torch.from_numpy(seqs[i : i + 16]).to(dev, non_blocking=True)
                logits = model(b[:, :-1]).float()
                ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), b[:, 1:], reduction="none")
                chunks.append(ce.cpu().numpy())  # (16, T) per-token losses: small
        per_tok = np.concatenate(chunks)[: len(mine)]
        if world > 1:
            import torch.distributed as dist

            parts: list = [None] * world
            dist.all_gather_object(parts, (mine, per_tok))  # one float per token scored
            order = np.concatenate([p[0] for p in parts])
            per_tok = np.concatenate([p[1] for p in parts])[np.argsort(order, kind="stable")]
        per_seq = per_tok.mean(axis=1)
        boots = per_seq[rng.integers(0, len(per_seq), (n_boot, len(per_seq)))].mean(axis=1)
        flat = per_tok.ravel()
        tboots = np.array(
            [flat[rng.integers(0, flat.size, flat.size)].mean() for _ in range(min(n_boot, 200))]
        )
        out[f"loss_{name}"] = float(flat.mean())
        out[f"loss_lower_{name}"] = float(np.percentile(boots, 2.5))
        out[f"loss_upper_{name}"] = float(np.percentile(boots, 97.5))
        out[f"token_bound_lower_{name}"] = float(np.percentile(tboots, 2.5))
        out[f"token_bound_upper_{name}"] = float(np.percentile(tboots, 97.5))
    model.train()
    return out


def _ranks() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
