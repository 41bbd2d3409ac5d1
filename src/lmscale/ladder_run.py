"""Ladder orchestration: train every run of a ladder (skipping finished ones, resuming interrupted
ones), measure its validation losses, and write one :class:`~lmscale.run_record.RunRecord` per run
and the ladder's ``runs.jsonl``. It sits above :mod:`lmscale.train` and :mod:`lmscale.evaluate`,
which do not import each other."""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import lmscale
from lmscale._io import atomic_write_text, read_json, read_yaml
from lmscale.errors import InputError, TrainingDiverged
from lmscale.evaluate.losses import evaluate_losses
from lmscale.run_record import DONE, FAILED, RunRecord, finished, relative_to_run
from lmscale.train.data import PackedSequences, prepare
from lmscale.train.ladder import LadderConfig, RunPlan, plan
from lmscale.train.loggers import make_loggers
from lmscale.train.memory import fit_micro_batch, parse_bytes
from lmscale.train.recipes import recipe


def _versions() -> dict:
    import tokenizers
    import torch

    return {
        "lmscale": lmscale.__version__,
        "torch": torch.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


#: validation tokens per set on a GPU: the 95% interval of a loss measured on 10M tokens is far
#: narrower than the paper's 0.7% prediction errors (64 CPU windows give 5–7%)
GPU_VAL_TOKENS = 10_000_000


@dataclass(frozen=True)
class Execution:
    """How the runs are computed, not what they compute (none of it changes a run's identity, so
    a ladder may resume with other settings)."""

    #: sequences per forward on each rank (0: the whole per-rank batch)
    micro_batch: int = 0
    activation_checkpointing: bool = False
    #: torch.compile the model
    compile: bool = False
    #: GPU memory per rank in bytes: each run's micro-batch (and checkpointing) is chosen to fit
    gpu_memory: float | None = None
    #: tokens per chunk of the output layer's cross-entropy
    loss_chunk: int = 8192
    #: validation tokens per set (None: 10M on a GPU, 64 sequences on a CPU)
    val_tokens: int | None = None

    def for_run(self, r: RunPlan, cfg: LadderConfig) -> dict:
        """TrainConfig fields of run ``r``."""
        mb, ck = self.micro_batch, self.activation_checkpointing
        if self.gpu_memory is not None:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            mb, ck, _ = fit_micro_batch(
                r.shape.d_model,
                r.shape.n_layers,
                cfg.vocab_size,
                cfg.seq_len,
                r.shape.batch_size // world,
                self.gpu_memory,
                world=world,
                sharded=world > 1 and r.n_params >= 1e9,
                loss_chunk=self.loss_chunk,
            )
        return {
            "micro_batch": mb,
            "activation_checkpointing": ck,
            "compile": self.compile,
            "loss_chunk": self.loss_chunk,
        }


def execution_from(config_path: str | Path | None, **overrides) -> Execution:
    """The ``execution:`` block of a ladder config file (micro_batch, activation_checkpointing,
    compile, gpu_memory such as 80GB, loss_chunk, val_tokens), with ``overrides`` (from the command
    line) on top; the defaults without a file."""

    block: dict = {}
    if config_path:
        p = Path(config_path)
        data = read_yaml(p, what="ladder config") if p.suffix in (".yaml", ".yml") else read_json(p)
        raw = data.get("execution") if isinstance(data, dict) else None
        if raw is not None and not isinstance(raw, dict):
            raise InputError(f"{p}: 'execution' must be a mapping")
        block = dict(raw or {})
    block.update({k: v for k, v in overrides.items() if v is not None})
    known = set(Execution.__dataclass_fields__)
    unknown = sorted(set(block) - known)
    if unknown:
        raise InputError(
            f"execution: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if block.get("gpu_memory") is not None:
        block["gpu_memory"] = parse_bytes(block["gpu_memory"])
    for k in ("micro_batch", "loss_chunk", "val_tokens"):
        v = block.get(k)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            raise InputError(f"execution: {k} must be a whole number ≥ 0, got {v!r}")
    for k in ("activation_checkpointing", "compile"):
        if k in block and not isinstance(block[k], bool):
            raise InputError(f"execution: {k} must be true or false, got {block[k]!r}")
    return Execution(**block)


def run_ladder(
    cfg: LadderConfig,
    out_dir: str | Path,
    *,
    device: str | None = None,
    on_run: Callable[[int, int, RunPlan], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    log_to: Sequence[str] = (),
    execution: Execution | None = None,
) -> Path:
    """Train every run of ``cfg`` in ``out_dir`` (skipping finished ones, resuming interrupted
    ones) and write ``runs.jsonl``; returns its path. Holds the folder's lock (:func:`folder_lock`).

    Under ``torchrun`` every rank calls it: rank 0 holds the lock, prepares the data first (the
    others then find it cached), and alone writes configs, records and ``runs.jsonl``; the ranks
    meet at a barrier after each of those writes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranks = _Ranks.start()
    lock = folder_lock(out) if ranks.rank == 0 else contextlib.nullcontext()
    with lock:
        return _run_ladder(cfg, out, device, on_run, on_step, tuple(log_to), execution or Execution(), ranks)


@dataclass(frozen=True)
class _Ranks:
    rank: int = 0
    world: int = 1

    @classmethod
    def start(cls) -> _Ranks:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from lmscale.train.distributed import rank_and_world

        return cls(*rank_and_world())

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


@contextlib.contextmanager
def folder_lock(folder: Path):
    """Hold an exclusive lock on ``folder`` (its ``.lock`` file) for this process: a second
    ``ladder run`` on the same folder stops at once and says which process holds it, instead of
    training every run twice and interleaving the logs. The lock dies with its process."""
    import fcntl
    import os

    path = folder / ".lock"
    try:
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block's duration
    except OSError as exc:
        raise InputError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise InputError(
                f"{folder} is in use by {holder}; wait for it to finish or use another folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} on {platform.node()}")
        fh.flush()
        yield
    finally:
        fh.close()


def _train_config(cfg: LadderConfig, r: RunPlan, rec, execution: Execution):
    """The training configuration of run ``r``."""
    from lmscale.train.loop import TrainConfig
    from lmscale.train.model import ModelConfig

    s = r.shape
    model = ModelConfig(
        s.d_model,
        s.n_layers,
        s.n_heads,
        r.vocab_size,
        seq_len=cfg.seq_len,
        init=rec.init,
        qk_gains=rec.qk_gains,
    )
    return TrainConfig(
        model,
        n_tokens=r.n_tokens,
        batch_size=s.batch_size,
        warmup_steps=s.warmup_steps,
        lr=s.lr or cfg.lr,
        final_lr=cfg.final_lr,
        weight_decay=cfg.weight_decay,
        decay_all=rec.decay_all,
        seed=cfg.seed,
        checkpoint_every=cfg.checkpoint_every,
        **execution.for_run(r, cfg),
    )


def _run_ladder(
    cfg: LadderConfig,
    out: Path,
    device,
    on_run,
    on_step,
    log_to: tuple[str, ...],
    execution: Execution,
    ranks: _Ranks,
) -> Path:
    from lmscale.train.loop import train

    cfg_path = out / "ladder.json"
    cfg_json = json.dumps(cfg.to_json(), indent=1, sort_keys=True)
    if cfg_path.is_file() and cfg_path.read_text() != cfg_json:
        raise InputError(f"{out} holds a different ladder (see {cfg_path}); use another folder")
    if not cfg_path.is_file() and ranks.rank == 0:
        atomic_write_text(cfg_path, cfg_json)
    if ranks.rank == 0:  # rank 0 tokenises (or finds the cache); the others then read what it wrote
        data = prepare(cfg.corpus, cfg.val_corpora, out / "cache", cfg.vocab_size, cfg.tokenizer_file)
    ranks.barrier()
    if ranks.rank != 0:
        data = prepare(cfg.corpus, cfg.val_corpora, out / "cache", cfg.vocab_size, cfg.tokenizer_file)
    runs = plan(cfg, data.vocab_size)
    tok_file = _tokenizer_inside(out, data, ranks.rank)
    rec = recipe(cfg.recipe)
    packed = PackedSequences(data.train, cfg.seq_len, cfg.seed)
    rows = []
    for k, r in enumerate(runs):
        if on_run is not None:
            on_run(k, len(runs), r)
        rdir = out / "runs" / r.run_id
        rec_path = rdir / "record.json"
        done = finished(rec_path)
        if done is not None:
            rows.append(dict(done.row))
            continue
        s = r.shape
        tc = _train_config(cfg, r, rec, execution)
        loggers = (
            make_loggers(log_to, out / "logs", r.run_id, cfg.name, r.row())
            if log_to and ranks.rank == 0
            else []
        )
        try:
            res = train(tc, packed, rdir, device=device, progress=on_step, loggers=loggers)
            on_gpu = next(res.model.parameters()).device.type == "cuda"
            budget = execution.val_tokens or (GPU_VAL_TOKENS if on_gpu else None)
            losses = evaluate_losses(res.model, data.val, cfg.seq_len, seed=cfg.seed, max_tokens=budget)
            val = {
                f"val/{k[5:]}": v
                for k, v in losses.items()
                if k.startswith("loss_") and "_lower_" not in k and "_upper_" not in k
            }
            for lg in loggers:
                lg.log(res.steps, val)
        except TrainingDiverged as exc:
            # recorded as failed with the reason (never 'done' with NaN losses); the next run retries it
            if ranks.rank == 0:
                RunRecord(FAILED, r.run_id, cfg.name, reason=str(exc), step=exc.step).write(rec_path)
                (rdir / "checkpoint.pt").unlink(missing_ok=True)
            raise TrainingDiverged(f"run {r.run_id}: {exc} (recorded in {rec_path})", exc.step) from None
        finally:
            for lg in loggers:
                lg.close()
        row = {
            "run_id": r.run_id,
            "dataset": cfg.corpus.name,
            "model": s.name,
            "n_params": r.n_params,
            "n_tokens": r.n_tokens,
            "multiplier": r.multiplier,
            "flops": r.flops,
            **losses,
            "train_loss": res.train_loss,
            "seed": cfg.seed,
            "wall_seconds": round(res.wall_seconds, 3),
            "data_epochs": round(r.n_tokens / max(len(data.train), 1), 4),
        }
        record = RunRecord(
            DONE,
            r.run_id,
            cfg.name,
            row=row,
            train_config=asdict(tc),
            versions=_versions(),
            tokenizer_hash=data.tokenizer_hash,
            tokenizer_file=relative_to_run(tok_file, rdir) if tok_file else None,
        )
        if ranks.rank == 0:
            record.write(rec_path)
        ranks.barrier()
        rows.append(record.to_json()["row"])
    path = out / "runs.jsonl"
    if ranks.rank == 0:
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    ranks.barrier()
    return path


def _tokenizer_inside(out: Path, data, rank: int) -> Path | None:
    """The tokenizer's file inside the ladder folder (a copy of one from elsewhere, e.g. a prepared
    corpus or ``tokenizer_file``), so records point into the folder and it can be moved."""
    if data.tokenizer_path is None:
        return None
    src = Path(data.tokenizer_path).resolve()
    if out.resolve() in src.parents:
        return src
    copy = out / "cache" / "tokenizers" / f"{data.tokenizer_hash}.json"
    if rank == 0 and not copy.is_file():
        atomic_write_text(copy, data.tokenizer.to_str())
    return copy
