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
from typing import Any

import numpy as np

from lmscale._io import atomic_write_text
from lmscale.errors import InputError, TrainingDiverged
from lmscale.ladder_folder import folder_lock
from lmscale.run_record import DONE, FAILED, RunRecord, finished, relative_to_run
from lmscale.train.ladder import LadderConfig, RunPlan, plan
from lmscale.train.loggers import make_loggers
from lmscale.train.recipes import recipe


def _versions() -> dict:
    import tokenizers
    import torch

    import lmscale

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
    #: refuse runs that would pass over the training corpus more often than this (None: 1.0 for a
    #: ladder whose largest run trains on 1e8 tokens or more, no limit below; inf: allow any)
    max_epochs: float | None = None

    def for_run(self, r: RunPlan, cfg: LadderConfig) -> dict:
        """TrainConfig fields of run ``r``."""
        mb, ck = self.micro_batch, self.activation_checkpointing
        if self.gpu_memory is not None:
            from lmscale.train.memory import fit_micro_batch

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
    compile, gpu_memory such as 80GB, loss_chunk, val_tokens, max_epochs), with ``overrides`` (from the command
    line) on top; the defaults without a file."""
    from lmscale._io import read_json, read_yaml
    from lmscale.train.memory import parse_bytes

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
    me = block.get("max_epochs")
    if me is not None and not (isinstance(me, (int, float)) and not isinstance(me, bool) and me > 0):
        raise InputError(f"execution: max_epochs must be a positive number (.inf: no limit), got {me!r}")
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
    ones) and write ``runs.jsonl``; returns its path. Holds the folder's lock (:func:`folder_lock`:
    one ``ladder run`` per folder) and each run's lock while it trains it: a run that a submitted job
    (``ladder submit``) is training is left to it and waited for at the end.

    Under ``torchrun`` every rank calls it: rank 0 holds the locks, prepares the data first (the
    others then find it cached), and alone writes configs, records and ``runs.jsonl``; the ranks
    meet at a barrier after each of those writes."""
    from lmscale.ladder_folder import write_runs_table
    from lmscale.train.corpus_checks import require_corpus

    require_corpus(cfg.corpus, cfg.name)  # before the folder is made
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranks = _Ranks.start()
    execution = execution or Execution()
    lock = folder_lock(out) if ranks.rank == 0 else contextlib.nullcontext()
    with lock:
        lad = open_ladder(cfg, out, execution, ranks)
        held = []
        for k, r in enumerate(lad.runs):
            if on_run is not None:
                on_run(k, len(lad.runs), r)
            if (
                train_run(
                    lad, r, execution, device=device, on_step=on_step, log_to=log_to, ranks=ranks, wait=False
                )
                == HELD
            ):
                held.append(r)
        for r in held:  # another process had it: wait for it, then finish what it left undone
            train_run(lad, r, execution, device=device, on_step=on_step, log_to=log_to, ranks=ranks)
        path = out / "runs.jsonl"
        if ranks.rank == 0:
            write_runs_table(out, [r.run_id for r in lad.runs])
        ranks.barrier()
        return path


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

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank."""
        if self.world <= 1:
            return flag
        import torch.distributed as dist

        box = [flag]
        dist.broadcast_object_list(box, src=0)
        return bool(box[0])


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


@dataclass(frozen=True)
class OpenLadder:
    """A ladder opened in its folder: the configuration written, the data prepared, the runs planned."""

    cfg: LadderConfig
    out: Path
    data: Any
    runs: tuple[RunPlan, ...]
    packed: Any
    #: the tokenizer's file inside the ladder folder (records point at it, relative to the run)
    tokenizer_file: Path | None = None


def open_ladder(
    cfg: LadderConfig, out: Path, execution: Execution, ranks: _Ranks | None = None
) -> OpenLadder:
    """Write (or check) ``ladder.json``, prepare the data (rank 0 first; the others then find it
    cached), plan the runs, and refuse runs that would repeat the corpus beyond
    ``execution.max_epochs`` (:mod:`lmscale.train.corpus_checks`) before any training.
    Safe when several workers open one folder at once (every write is atomic and the same)."""
    from lmscale.train.corpus_checks import epoch_limit_errors, require_corpus
    from lmscale.train.data import PackedSequences, prepare
    from lmscale.train.memory import run_resources

    ranks = ranks or _Ranks()
    require_corpus(cfg.corpus, cfg.name)
    cfg_path = out / "ladder.json"
    cfg_json = json.dumps(cfg.to_json(), indent=1, sort_keys=True)
    if cfg_path.is_file() and cfg_path.read_text() != cfg_json:
        raise InputError(f"{out} holds a different ladder (see {cfg_path}); use another folder")
    if not cfg_path.is_file() and ranks.rank == 0:
        atomic_write_text(cfg_path, cfg_json)
    if ranks.rank == 0:
        data = prepare(cfg.corpus, cfg.val_corpora, out / "cache", cfg.vocab_size, cfg.tokenizer_file)
    ranks.barrier()
    if ranks.rank != 0:
        data = prepare(cfg.corpus, cfg.val_corpora, out / "cache", cfg.vocab_size, cfg.tokenizer_file)
    runs = plan(cfg, data.vocab_size)
    res = run_resources(cfg, runs, corpus_tokens=len(data.train))
    errors = epoch_limit_errors(res, execution.max_epochs, [r.n_tokens for r in runs])
    if errors:
        raise InputError(
            f"ladder {cfg.name!r} on corpus {cfg.corpus.name!r} ({len(data.train):,} training tokens): "
            + "; ".join(errors)
        )
    packed = PackedSequences(data.train, cfg.seq_len, cfg.seed)
    return OpenLadder(cfg, out, data, tuple(runs), packed, _tokenizer_inside(out, data, ranks.rank))


#: what :func:`train_run` did: the run was finished already, it trained it, or another process holds it
ALREADY_DONE, TRAINED, HELD = "done", "trained", "held"


def train_run(
    lad: OpenLadder,
    r: RunPlan,
    execution: Execution,
    *,
    device: str | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    log_to: Sequence[str] = (),
    ranks: _Ranks | None = None,
    wait: bool = True,
    job_id: str | None = None,
) -> str:
    """Train (or resume) run ``r`` under its lock (:func:`lmscale.ladder_folder.run_lock`) and write
    its record; :data:`ALREADY_DONE`, :data:`TRAINED`, or :data:`HELD` when another process holds the
    run and ``wait`` is False."""
    from lmscale.ladder_folder import note_worker, run_lock

    ranks = ranks or _Ranks()
    rdir = lad.out / "runs" / r.run_id
    lock = run_lock(rdir, wait=wait) if ranks.rank == 0 else contextlib.nullcontext(True)
    with lock as held:
        if not ranks.agree(bool(held)):
            return HELD
        if finished(rdir / "record.json") is not None:
            return ALREADY_DONE
        if ranks.rank == 0:
            note_worker(rdir, job_id)
        _train_and_record(lad, r, rdir, execution, device, on_step, tuple(log_to), ranks)
    return TRAINED


def _train_and_record(
    lad: OpenLadder, r: RunPlan, rdir: Path, execution: Execution, device, on_step, log_to, ranks
):
    from lmscale.evaluate.losses import evaluate_losses
    from lmscale.train.loop import train

    cfg, data = lad.cfg, lad.data
    rec_path = rdir / "record.json"
    tc = _train_config(cfg, r, recipe(cfg.recipe), execution)
    loggers = (
        make_loggers(log_to, lad.out / "logs", r.run_id, cfg.name, r.row())
        if log_to and ranks.rank == 0
        else []
    )
    try:
        res = train(tc, lad.packed, rdir, device=device, progress=on_step, loggers=loggers)
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
        "model": r.shape.name,
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
        tokenizer_file=relative_to_run(lad.tokenizer_file, rdir) if lad.tokenizer_file else None,
    )
    if ranks.rank == 0:
        record.write(rec_path)
    ranks.barrier()


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
