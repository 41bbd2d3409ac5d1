"""A run's batches, prepared a step ahead."""

from __future__ import annotations

from typing import Any

import torch

from lmscale.train.config import TrainConfig
from lmscale.train.data import PackedSequences


class Batches:
    """The rank's batch and token mask of each step, prepared one step ahead on a background
    thread (page-locked on GPUs, so the copy to the device overlaps the previous step)."""

    def __init__(self, cfg: TrainConfig, data: PackedSequences, rank: int, world: int, pin: bool):
        from concurrent.futures import ThreadPoolExecutor

        self.cfg, self.data, self.rank, self.world, self.pin = cfg, data, rank, world, pin
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="lmscale-batches")
        self.ahead: dict[int, Any] = {}

    def _make(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, per_rank, t_seq = self.cfg, self.cfg.batch_size // self.world, self.cfg.model.seq_len
        batch = torch.from_numpy(self.data.batch(step * cfg.batch_size + self.rank * per_rank, per_rank))
        mask = torch.ones(per_rank, t_seq)
        remaining = cfg.n_tokens - step * cfg.tokens_per_step
        if remaining < cfg.tokens_per_step:
            flat = torch.arange(per_rank * t_seq).view(per_rank, t_seq) + self.rank * per_rank * t_seq
            mask = (flat < remaining).float()
        if self.pin:
            batch, mask = batch.pin_memory(), mask.pin_memory()
        return batch, mask

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        fut = self.ahead.pop(step, None)
        out = fut.result() if fut is not None else self._make(step)
        if step + 1 < self.cfg.n_steps:
            self.ahead[step + 1] = self.pool.submit(self._make, step + 1)
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
