"""One training run's configuration and its learning-rate schedule (torch-free)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

from lmscale.errors import InputError
from lmscale.train.model import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    model: ModelConfig
    #: D: training tokens, exactly (the last step is partial when needed)
    n_tokens: int
    #: global batch in sequences
    batch_size: int
    warmup_steps: int
    lr: float = 3e-3
    final_lr: float = 3e-5
    weight_decay: float = 0.033
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    z_loss: float = 1e-4
    seed: int = 0
    #: steps between checkpoints (0: only at the end)
    checkpoint_every: int = 50
    log_every: int = 10
    #: ``auto``: bf16 autocast on CUDA, float32 on CPU
    precision: str = "auto"
    compile: bool = False
    #: sequences per forward/backward on each rank (0: the whole per-rank batch at once); the
    #: gradients of a step's micro-batches are accumulated, synchronised across ranks only on the last
    micro_batch: int = 0
    #: recompute each block's activations in the backward pass instead of storing them
    activation_checkpointing: bool = False
    #: tokens per chunk of the output layer's cross-entropy (memory: chunk × V float32 logits)
    loss_chunk: int = 8192
    #: ``full`` (one file from rank 0), ``sharded`` (torch.distributed.checkpoint: every rank its
    #: shard; resumable at another world size) or ``auto`` (sharded under FSDP)
    checkpoint_format: str = "auto"
    #: weight decay on every parameter (the open_lm recipe), else on matrices only
    decay_all: bool = False
    #: data parallelism under torchrun: ``ddp``, ``fsdp`` (FSDP2, parameters sharded), or ``auto``
    #: (FSDP2 from 1B parameters, where replicas stop fitting comfortably)
    parallel: str = "auto"

    def __post_init__(self):
        if self.n_tokens <= 0:
            raise InputError(f"train config: n_tokens must be positive, got {self.n_tokens}")
        if self.batch_size <= 0 or self.warmup_steps < 0:
            raise InputError("train config: batch_size must be positive and warmup_steps non-negative")
        if not (self.lr > 0 and 0 <= self.final_lr <= self.lr):
            raise InputError(
                f"train config: need lr > 0 and 0 <= final_lr <= lr, got {self.lr}, {self.final_lr}"
            )
        if self.checkpoint_format not in ("auto", "full", "sharded"):
            raise InputError(
                f"train config: checkpoint_format must be auto, full or sharded, got {self.checkpoint_format!r}"
            )
        if self.micro_batch < 0 or self.loss_chunk < 1:
            raise InputError("train config: micro_batch must be >= 0 (0: whole batch) and loss_chunk >= 1")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.seq_len

    @property
    def n_steps(self) -> int:
        return math.ceil(self.n_tokens / self.tokens_per_step)

    def digest(self) -> str:
        d = asdict(self)
        # how a step is computed (not what it computes) may change between a run and its resume
        for k in (
            "checkpoint_every",
            "log_every",
            "parallel",
            "compile",
            "micro_batch",
            "activation_checkpointing",
            "loss_chunk",
            "checkpoint_format",
        ):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainState:
    """What a checkpoint keeps besides tensors, step and random state, so a resumed run reports what
    it trained with. Stored in the checkpoint as a plain mapping (``extra``)."""

    #: train loss at the checkpoint's step (NaN before the first logged step)
    train_loss: float = math.nan
    #: seconds spent training up to the checkpoint, summed over every resume
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, float | None]:
        """Strict-JSON-safe (a sharded checkpoint writes it into ``meta.json``): NaN becomes null."""
        loss = self.train_loss if math.isfinite(self.train_loss) else None
        return {"train_loss": loss, "wall_seconds": self.wall_seconds}

    @classmethod
    def from_dict(cls, d: object) -> TrainState:
        """From a checkpoint's ``extra`` (an older or foreign one may lack a field: its default)."""
        if not isinstance(d, dict):
            return cls()

        def num(key: str, default: float) -> float:
            v = d.get(key, default)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default

        return cls(num("train_loss", math.nan), num("wall_seconds", 0.0))


def parallel_mode(cfg: TrainConfig) -> str:
    if cfg.parallel not in ("auto", "ddp", "fsdp"):
        raise InputError(f"train config: parallel must be auto, ddp or fsdp, got {cfg.parallel!r}")
    if cfg.parallel == "auto":
        return "fsdp" if cfg.model.n_params >= 1e9 else "ddp"
    return cfg.parallel


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``final_lr`` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(cfg.n_steps - 1 - cfg.warmup_steps, 1)
    t = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1 + math.cos(math.pi * t))
