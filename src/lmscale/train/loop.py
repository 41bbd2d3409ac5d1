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

import hashlib
import io
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lmscale._io import atomic_write, atomic_write_text
from lmscale.errors import InputError, TrainingDiverged
from lmscale.train.data import PackedSequences
from lmscale.train.model import ModelConfig, Transformer, lm_loss


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

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.seq_len

    @property
    def n_steps(self) -> int:
        return math.ceil(self.n_tokens / self.tokens_per_step)

    def digest(self) -> str:
        d = asdict(self)
        d.pop("checkpoint_every"), d.pop("log_every"), d.pop("parallel"), d.pop("compile")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


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


def _dist():
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        import atexit

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # tear the group down before the interpreter exits: a gloo group still alive at exit can
        # abort the process ("terminate called without an active exception")
        atexit.register(_shutdown_group)
    return dist.get_rank(), world


def _shutdown_group():
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _rng_state() -> dict:
    """RNG states as tensors and plain Python values, so ``torch.load(weights_only=True)`` reads them."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def _set_rng_state(s: dict):
    torch.set_rng_state(s["torch"])
    name, keys, pos, has_gauss, gauss = s["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(tuple(s["python"][:1]) + (tuple(s["python"][1]),) + tuple(s["python"][2:]))


def save_checkpoint(
    path: Path, model, opt, step: int, cfg: TrainConfig, extra: dict, *, sharded: bool = False, rank: int = 0
):
    """Write a full (unsharded) checkpoint from rank 0. With FSDP every rank must call it: the
    shards are gathered first."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        msd, osd = get_state_dict(
            model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    else:
        msd, osd = model.state_dict(), opt.state_dict()
    if rank != 0:
        return
    state = {
        "model": msd,
        "optimizer": osd,
        "step": step,
        "config_digest": cfg.digest(),
        "rng": _rng_state(),
        "extra": extra,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()), binary=True)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which, do not guess
        raise InputError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {exc})") from None


def train(
    cfg: TrainConfig,
    data: PackedSequences,
    out_dir: str | Path,
    *,
    device: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume) one run in ``out_dir``; returns a summary with the final train loss.

    Writes ``checkpoint.pt`` every ``checkpoint_every`` steps and at the end, and appends one JSON
    line per logged step to ``train_log.jsonl``. ``stop_after`` stops after that many steps (for
    tests of resume); ``progress(step, n_steps, tokens_per_second)`` is called after each step.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rank, world = _dist()
    if rank == 0:  # temporary files of checkpoint writes cut short by a kill
        for stale in out.glob(".checkpoint.pt.*.tmp"):
            stale.unlink(missing_ok=True)
    if cfg.batch_size % world:
        raise InputError(f"global batch {cfg.batch_size} is not divisible by {world} processes")
    if device not in (None, "cpu", "cuda"):
        raise InputError(f"unknown device {device!r}; use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda, but PyTorch sees no CUDA GPU here (use --device cpu)")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if data.seq_len != cfg.model.seq_len:
        raise InputError(
            f"data windows of {data.seq_len} tokens but the model's sequence length is {cfg.model.seq_len}"
        )

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    model = Transformer(cfg.model).to(dev)
    ckpt, log_path = out / "checkpoint.pt", out / "train_log.jsonl"
    state = None
    if ckpt.is_file():
        state = load_checkpoint(ckpt)
        if state.get("config_digest") != cfg.digest():
            raise InputError(f"{ckpt} belongs to a different configuration; remove it or use another folder")
        model.load_state_dict(state["model"])
    sharded = world > 1 and parallel_mode(cfg) == "fsdp"
    net = model
    if sharded:  # FSDP2: every block and the root are sharded across the ranks
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(dev.type, (world,))
        for block in model.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    elif world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=1e-8,
        foreach=False,
    )
    step = 0
    if state is not None:
        if sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(
                model, opt, state["optimizer"], options=StateDictOptions(full_state_dict=True)
            )
        else:
            opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        _set_rng_state(state["rng"])
        if rank == 0 and log_path.is_file():  # drop log lines written after the checkpoint
            keep = [
                ln
                for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                if _log_step(ln) is not None and _log_step(ln) <= step
            ]  # a line cut by a kill is dropped
            atomic_write_text(log_path, "".join(k + "\n" for k in keep))
    if cfg.compile:
        net = torch.compile(net)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and dev.type == "cuda")
    per_rank = cfg.batch_size // world
    t_seq = cfg.model.seq_len
    extra = (state or {}).get("extra") or {}
    # a run resumed after its last step still reports the loss and the time it trained with
    last_loss = float(extra.get("train_loss", float("nan")))
    wall_before = float(extra.get("wall_seconds", 0.0))
    t_start = t_last = time.perf_counter()
    steps_done = 0
    while step < cfg.n_steps:
        # the tokens of this step: all of B·T, except the last step, which stops at exactly D
        remaining = cfg.n_tokens - step * cfg.tokens_per_step
        batch = torch.from_numpy(data.batch(step * cfg.batch_size + rank * per_rank, per_rank))
        mask = torch.ones(per_rank, t_seq)
        if remaining < cfg.tokens_per_step:
            flat = torch.arange(per_rank * t_seq).view(per_rank, t_seq) + rank * per_rank * t_seq
            mask = (flat < remaining).float()
        batch, mask = batch.to(dev), mask.to(dev)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = net(batch[:, :-1])
        # every rank's loss is a sum over its tokens divided by the global token count, so the
        # averaged DDP gradient equals the single-process one
        n_global = min(remaining, cfg.tokens_per_step)
        local_n = mask.sum()
        total, ce = lm_loss(logits, batch[:, 1:], mask, cfg.z_loss)
        scale = local_n / n_global * world
        opt.zero_grad(set_to_none=True)
        (total * scale).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        steps_done += 1
        last_loss = float(ce.detach()) if world == 1 else _global_mean(ce.detach() * local_n, local_n)
        if not math.isfinite(last_loss) or not math.isfinite(float(total.detach())):
            raise TrainingDiverged(
                f"training diverged at step {step} of {cfg.n_steps}: loss {last_loss!r} "
                f"(lr {lr_at(cfg, step - 1):.3g}); lower the learning rate",
                step,
            )
        now = time.perf_counter()
        tps = min(remaining, cfg.tokens_per_step) / max(now - t_last, 1e-9)
        t_last = now
        if rank == 0 and (step % cfg.log_every == 0 or step == cfg.n_steps):
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(
                    json.dumps(
                        {
                            "step": step,
                            "tokens": min(step * cfg.tokens_per_step, cfg.n_tokens),
                            "lr": lr_at(cfg, step - 1),
                            "loss": last_loss,
                        }
                    )
                    + "\n"
                )
        if step == cfg.n_steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
            save_checkpoint(
                ckpt,
                model,
                opt,
                step,
                cfg,
                {"train_loss": last_loss, "wall_seconds": wall_before + time.perf_counter() - t_start},
                sharded=sharded,
                rank=rank,
            )
        if progress is not None and rank == 0:
            progress(step, cfg.n_steps, tps)
        if stop_after is not None and steps_done >= stop_after:
            break
    return {
        "steps": step,
        "n_steps": cfg.n_steps,
        "finished": step >= cfg.n_steps,
        "train_loss": last_loss,
        "wall_seconds": wall_before + time.perf_counter() - t_start,
        "model": model,
    }


def _log_step(line: str) -> int | None:
    try:
        step = json.loads(line).get("step")
    except (json.JSONDecodeError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def _global_mean(sum_loss: torch.Tensor, count: torch.Tensor) -> float:
    import torch.distributed as dist

    t = torch.stack([sum_loss.float().cpu(), count.float().cpu()])
    dist.all_reduce(t)
    return float(t[0] / t[1])
