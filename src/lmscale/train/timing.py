"""How long a ladder will take, said with its assumption.

- **Measured** (a CPU, or a GPU you are on): a few real optimiser steps of each shape (random
  tokens, the run's batch and sequence length, AdamW, gradient clipping) are timed on the device,
  and each run's time is its step count × its shape's step time. torch is imported only here.
- **Assumed** (GPUs you are planning for): FLOPs ÷ (GPUs × peak FLOP/s × MFU). The defaults are an
  H100's dense bf16 peak, 989 TFLOP/s, at 40% model-FLOPs utilisation, a common figure for
  well-tuned dense pre-training; ``--gpu-peak-tflops`` and ``--mfu`` state yours.

FLOPs are the 6·N·D of the run table; the attention and vocabulary terms it leaves out weigh most
in the smallest models, which is why a CPU estimate is measured rather than derived from FLOPs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

#: an H100 SXM's dense bf16 peak (TFLOP/s) and the model-FLOPs utilisation assumed by default
H100_BF16_PEAK_TFLOPS = 989.0
DEFAULT_MFU = 0.4


@dataclass(frozen=True)
class TimeEstimate:
    """Seconds per run, and the assumption they rest on (printed beside the total)."""

    #: estimated wall seconds of each run, in plan order
    seconds: tuple[float, ...]
    #: how: "measured …" or "assumed …", in words
    assumption: str

    @property
    def total_hours(self) -> float:
        return sum(self.seconds) / 3600.0


def gpu_estimate(
    flops: Sequence[float], gpus: int, peak_tflops: float = H100_BF16_PEAK_TFLOPS, mfu: float = DEFAULT_MFU
) -> TimeEstimate:
    """FLOPs ÷ (gpus × peak × MFU) per run."""
    rate = gpus * peak_tflops * 1e12 * mfu
    return TimeEstimate(
        tuple(f / rate for f in flops),
        f"assumes {gpus} GPU(s) × {peak_tflops:g} TFLOP/s peak × {100 * mfu:g}% MFU "
        f"(= {rate:.3g} FLOP/s on 6ND FLOPs)",
    )


def step_seconds(
    shape,
    vocab_size: int,
    seq_len: int,
    batch_size: int,
    device: str = "cpu",
    steps: int = 3,
    warmup: int = 2,
) -> float:
    """Median wall seconds of one optimiser step of ``shape`` on ``device``, after ``warmup`` steps
    (the first steps pay for allocation and kernel selection)."""
    import torch

    from lmscale.train.model import ModelConfig, Transformer

    dev = torch.device(device)
    cfg = ModelConfig(shape.d_model, shape.n_layers, shape.n_heads, vocab_size, seq_len=seq_len)
    model = Transformer(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, vocab_size, (batch_size, seq_len + 1), generator=gen).to(dev)
    times = []
    for i in range(steps + warmup):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        ce, _z, n = model(batch[:, :-1], targets=batch[:, 1:])
        (ce / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def measured_estimate(runs, n_steps: Sequence[int], seq_len: int, device: str = "cpu") -> TimeEstimate:
    """Step count × the measured step time of each run's shape (each shape timed once)."""
    cache: dict[tuple, float] = {}
    out = []
    for r, k in zip(runs, n_steps):
        s = r.shape
        key = (s.d_model, s.n_layers, s.n_heads, s.batch_size, r.vocab_size)
        if key not in cache:
            cache[key] = step_seconds(s, r.vocab_size, seq_len, s.batch_size, device)
        out.append(k * cache[key])
    return TimeEstimate(
        tuple(out), f"measured: step times of {len(cache)} shape(s) timed on {device} here × each run's steps"
    )
