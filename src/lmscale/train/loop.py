"""The training loop: exactly D tokens, AdamW (β2 = 0.95, PyTorch's weight decay, which is scaled
by the learning rate), linear warm-up then cosine decay to a floor, gradient clipping, z-loss,
bf16 autocast on GPUs, periodic atomic checkpoints and exact resume.

Resume is exact because everything a step depends on is saved or is a pure function of the step
number: model, optimiser and RNG states are in the checkpoint, the batch is
``PackedSequences.batch(step · B, B)``, and the learning rate is a function of the step. Under
``torchrun`` (``WORLD_SIZE`` > 1) the same loop runs data-parallel: every rank takes its slice of
the global batch; gradients are averaged by DistributedDataParallel, or, for large shapes, the
parameters are sharded with FSDP2 (``fully_shard``) and checkpoints are gathered to full tensors.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from lmscale.errors import InputError, TrainingDiverged
from lmscale.train.batches import Batches
from lmscale.train.checkpoint import (
    CheckpointManager,
    _set_rng_state,
    load_checkpoint,
    load_sharded,
    save_checkpoint,
)
from lmscale.train.config import TrainConfig, TrainState, lr_at, parallel_mode
from lmscale.train.data import PackedSequences
from lmscale.train.distributed import global_max, global_sums, group_ready, local_device, rank_and_world
from lmscale.train.loggers import MetricLogger
from lmscale.train.model import Transformer

__all__ = ["TrainConfig", "TrainResult", "load_checkpoint", "lr_at", "save_checkpoint", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns."""

    #: steps done in total (resumed runs count the steps before the resume)
    steps: int
    #: steps the configuration asks for
    n_steps: int
    #: the run reached its last step (False after ``stop_after``)
    finished: bool
    #: training loss of the last step (NaN when no step ran)
    train_loss: float
    #: wall time of all training, across resumes
    wall_seconds: float
    #: the trained model (unwrapped from DDP/FSDP/compile), on its training device
    model: Transformer


@dataclass
class _Setup:
    """One process's share of a run: device, model (and its parallel wrapper), optimiser."""

    rank: int
    world: int
    device: torch.device
    model: Transformer
    net: Any
    opt: torch.optim.Optimizer
    sharded: bool


def _check(cfg: TrainConfig, data: PackedSequences, device: str | None, world: int) -> None:
    if cfg.batch_size % world:
        raise InputError(f"global batch {cfg.batch_size} is not divisible by {world} processes")
    if device not in (None, "cpu", "cuda"):
        raise InputError(f"unknown device {device!r}; use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda, but PyTorch sees no CUDA GPU here (use --device cpu)")
    if data.seq_len != cfg.model.seq_len:
        raise InputError(
            f"data windows of {data.seq_len} tokens but the model's sequence length is {cfg.model.seq_len}"
        )


def uses_bf16(cfg: TrainConfig, dev: torch.device) -> bool:
    return cfg.precision == "bf16" or (cfg.precision == "auto" and dev.type == "cuda")


def fsdp_options(cfg: TrainConfig, dev: torch.device) -> dict:
    """FSDP2's mixed precision under bf16: parameters gathered and computed in bf16 (half the
    all-gather bytes of float32), gradients reduced in float32, float32 master weights kept."""
    if not uses_bf16(cfg, dev):
        return {}
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return {"mp_policy": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)}


def _setup(cfg: TrainConfig, dev: torch.device, rank: int, world: int, state: dict | None) -> _Setup:
    """Model (from the checkpoint when resuming), its DDP or FSDP2 wrapper, and AdamW with weight
    decay on matrices only."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    model = Transformer(cfg.model).to(dev)
    model.checkpoint_blocks = cfg.activation_checkpointing
    if state is not None:
        model.load_state_dict(state["model"])
    # FSDP2 across the ranks; on one process only when asked for by name (a torchrun of one GPU)
    sharded = parallel_mode(cfg) == "fsdp" and (world > 1 or (cfg.parallel == "fsdp" and group_ready()))
    net: Any = model
    if sharded:  # FSDP2: every block and the root are sharded across the ranks
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(dev.type, (world,))
        for block in model.blocks:
            fully_shard(block, mesh=mesh, **fsdp_options(cfg, dev))
        fully_shard(model, mesh=mesh, **fsdp_options(cfg, dev))
    elif world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    decay = [p for p in model.parameters() if cfg.decay_all or p.dim() >= 2]
    no_decay = [p for p in model.parameters() if not cfg.decay_all and p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=1e-8,
        # one fused kernel per step on GPUs; the plain loop on CPUs keeps resumes bit-identical
        **({"fused": True} if dev.type == "cuda" else {"foreach": False}),
    )
    return _Setup(rank, world, dev, model, net, opt, sharded)


def _start(
    cfg: TrainConfig, ckpt: CheckpointManager, dev: torch.device, rank: int, world: int
) -> tuple[_Setup, int, TrainState]:
    """Model and optimiser, from the latest checkpoint (full or sharded) when there is one:
    (setup, the step to continue from, what the checkpoint remembers of the run)."""
    form = ckpt.latest()
    state = ckpt.load(cfg.digest()) if form == "full" else None
    s = _setup(cfg, dev, rank, world, state)
    extra = TrainState()
    if form == "sharded":
        meta = load_sharded(ckpt.folder, s.model, s.opt)
        if meta.get("config_digest") != cfg.digest():
            raise InputError(
                f"{ckpt.folder / 'checkpoint.dcp'} belongs to a different configuration; remove it or use another folder"
            )
        step, extra = int(meta["step"]), TrainState.from_dict(meta.get("extra"))
        _set_rng_state(meta["rng"])
        ckpt.trim_log(step)
    elif state is not None:
        step, extra = _resume(s, state, ckpt), TrainState.from_dict(state.get("extra"))
    else:
        step = 0
    _ranks_agree(step, s)
    return s, step, extra


def _ranks_agree(step: int, s: _Setup) -> None:
    """Every rank resumes from the same step (a rank that found another checkpoint, e.g. a folder
    not shared between nodes, stops the run with a clear error instead of training apart)."""
    if s.world == 1:
        return
    t = global_max(torch.tensor([step, -step], device=s.device, dtype=torch.float64))
    if int(t[0]) != step or int(-t[1]) != step:
        raise InputError(
            f"ranks resume from different steps ({int(-t[1])} to {int(t[0])}): every rank must see the same "
            "run folder (a filesystem shared by all nodes)"
        )


def _resume(s: _Setup, state: dict, ckpt: CheckpointManager) -> int:
    """Optimiser and RNG states from the checkpoint; the step to continue from."""
    if s.sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(
            s.model, s.opt, state["optimizer"], options=StateDictOptions(full_state_dict=True)
        )
    else:
        s.opt.load_state_dict(state["optimizer"])
    step = int(state["step"])
    _set_rng_state(state["rng"])
    ckpt.trim_log(step)
    return step


def _step(
    cfg: TrainConfig, s: _Setup, batches: Batches, step: int, use_bf16: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimiser step over the rank's share of the global batch, in micro-batches whose
    gradients accumulate (synchronised across ranks on the last one only). Every rank's loss is a
    sum over its tokens divided by the global token count, so the averaged gradient equals the
    single-process one; the last step stops at exactly D tokens. Returns the rank's
    (cross-entropy sum, z-loss sum, token count) as tensors on the device: nothing is copied to the
    host here (see :func:`_loss_values`)."""
    per_rank = cfg.batch_size // s.world
    mb = cfg.micro_batch or per_rank
    if per_rank % mb:
        raise InputError(
            f"micro_batch {mb} does not divide the {per_rank} sequences each rank takes per step"
        )
    remaining = cfg.n_tokens - step * cfg.tokens_per_step
    batch, mask = batches.get(step)
    batch = batch.to(s.device, non_blocking=True)
    mask = mask.to(s.device, non_blocking=True)
    for group in s.opt.param_groups:
        group["lr"] = lr_at(cfg, step)
    n_global = min(remaining, cfg.tokens_per_step)
    s.opt.zero_grad(set_to_none=True)
    sums = torch.zeros(3, device=s.device)
    n_micro = per_rank // mb
    for j in range(n_micro):
        last = j == n_micro - 1
        sl = slice(j * mb, (j + 1) * mb)
        sync = contextlib.nullcontext()
        if s.world > 1 and not s.sharded and not last:
            sync = s.net.no_sync()  # DDP: accumulate locally, all-reduce with the last micro-batch
        if s.sharded:
            cast(Any, s.model).set_requires_gradient_sync(last)  # FSDP2: reduce-scatter on the last one only
        with sync, torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            ce_sum, z_sum, n = s.net(
                batch[sl, :-1], targets=batch[sl, 1:], mask=mask[sl], loss_chunk=cfg.loss_chunk
            )
            ((ce_sum + cfg.z_loss * z_sum) / n_global * s.world).backward()
        sums += torch.stack([ce_sum.detach(), z_sum.detach(), n.detach()])
    torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.grad_clip)
    s.opt.step()
    return sums[0], sums[1], sums[2]


def _loss_values(
    cfg: TrainConfig, s: _Setup, sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> tuple[float, float]:
    """(mean cross-entropy, mean total loss) of a step over all ranks: the one host copy (and, under
    torchrun, the one collective, on the device) per logged step."""
    ce_sum, z_sum, n = sums
    if s.world > 1:
        t = global_sums(torch.stack([ce_sum, z_sum, n]))
        ce_sum, z_sum, n = t[0], t[1], t[2]
    ce = float(ce_sum / n)
    return ce, ce + cfg.z_loss * float(z_sum / n)


def _log(
    cfg: TrainConfig,
    ckpt: CheckpointManager,
    loggers: Sequence[MetricLogger],
    step: int,
    loss: float,
    tps: float,
) -> None:
    """One line of train_log.jsonl (rank 0), and the same to the loggers."""
    entry = {
        "step": step,
        "tokens": min(step * cfg.tokens_per_step, cfg.n_tokens),
        "lr": lr_at(cfg, step - 1),
        "loss": loss,
    }
    ckpt.log(entry)
    for lg in loggers:
        lg.log(
            step,
            {
                "train/loss": loss,
                "train/lr": entry["lr"],
                "train/tokens": entry["tokens"],
                "train/tokens_per_second": tps,
            },
        )


def train(
    cfg: TrainConfig,
    data: PackedSequences,
    out_dir: str | Path,
    *,
    device: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    stop_after: int | None = None,
    loggers: Sequence[MetricLogger] = (),
) -> TrainResult:
    """Train (or resume) one run in ``out_dir``.

    Writes ``checkpoint.pt`` every ``checkpoint_every`` steps and at the end, and appends one JSON
    line per logged step to ``train_log.jsonl``. ``stop_after`` stops after that many steps (for
    tests of resume); ``progress(step, n_steps, tokens_per_second)`` is called after each step;
    ``loggers`` (rank 0) get the train loss, learning rate, tokens and tokens/s at each logged step.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rank, world = rank_and_world()
    ckpt = CheckpointManager(out, rank)
    ckpt.clean()
    _check(cfg, data, device, world)
    dev = local_device(device, world)
    s, step, extra = _start(cfg, ckpt, dev, rank, world)
    save_format = cfg.checkpoint_format
    if save_format == "auto":
        save_format = "sharded" if s.sharded else "full"
    if cfg.compile:
        s.net = torch.compile(s.net)
    use_bf16 = uses_bf16(cfg, dev)
    # a run resumed after its last step still reports the loss and the time it trained with
    last_loss, wall_before = extra.train_loss, extra.wall_seconds
    t_start = t_last = time.perf_counter()
    steps_done = 0
    batches = Batches(cfg, data, rank, world, pin=dev.type == "cuda")
    try:
        while step < cfg.n_steps:
            n_step_tokens = min(cfg.n_tokens - step * cfg.tokens_per_step, cfg.tokens_per_step)
            sums = _step(cfg, s, batches, step, use_bf16)
            step += 1
            steps_done += 1
            logged = step % cfg.log_every == 0 or step == cfg.n_steps
            saving = step == cfg.n_steps or bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
            stopping = stop_after is not None and steps_done >= stop_after
            if not (logged or saving or stopping):
                if progress is not None and rank == 0:
                    now = time.perf_counter()
                    progress(step, cfg.n_steps, n_step_tokens / max(now - t_last, 1e-9))
                    t_last = now
                continue
            # a logged, saved or last step: the loss is reduced (on the device) and read on the host
            last_loss, total = _loss_values(cfg, s, sums)
            if not (math.isfinite(last_loss) and math.isfinite(total)):
                raise TrainingDiverged(
                    f"training diverged at step {step} of {cfg.n_steps}: loss {last_loss!r} "
                    f"(lr {lr_at(cfg, step - 1):.3g}); lower the learning rate",
                    step,
                )
            now = time.perf_counter()
            tps = n_step_tokens / max(now - t_last, 1e-9)
            t_last = now
            if logged:
                _log(cfg, ckpt, loggers if rank == 0 else (), step, last_loss, tps)
            if saving:
                wall = wall_before + time.perf_counter() - t_start
                ckpt.save(
                    s.model,
                    s.opt,
                    step,
                    cfg,
                    TrainState(last_loss, wall),
                    sharded=s.sharded,
                    format=save_format,
                )
            if progress is not None and rank == 0:
                progress(step, cfg.n_steps, tps)
            if stopping:
                break
        return TrainResult(
            steps=step,
            n_steps=cfg.n_steps,
            finished=step >= cfg.n_steps,
            train_loss=last_loss,
            wall_seconds=wall_before + time.perf_counter() - t_start,
            model=s.model,
        )
    finally:
        batches.close()
