"""Peak GPU memory of one training rank, estimated before paying for it, and the micro-batch that
fits a given GPU. Torch-free (``ladder plan`` runs anywhere).

The estimate, per rank, with N the parameter count, b the micro-batch, T the sequence length, d the
width, L the layers, V the vocabulary and W the ranks:

- parameters, gradients and AdamW's two moments in float32: 16·N bytes (÷ W under FSDP, plus two
  blocks gathered at once in float32);
- activations kept for the backward pass under bf16 autocast with flash attention: about 64·d bytes
  per token per layer (b·T·L·64·d); with per-block activation checkpointing, the float32 residual
  stream at each block's input (b·T·L·4·d) plus one block's 64·d per token. Measured on an H200
  (``benchmarks/gpu_check.sh``, ``benchmarks/results/gpu_check_h200.json``): 63–66·d eager for the
  paper's 0.154B and 0.411B shapes, 30–42·d under ``torch.compile``; 64·d keeps the estimate from
  under-stating an eager run (48·d, the earlier figure, under-stated the measured peaks by 17%);
- the chunked output layer: one chunk of float32 logits and their gradient plus its bf16 copy
  (10·chunk·V bytes), and the final hidden states (8·b·T·d);
- 1.5 GiB for the CUDA context, the allocator's slack and communication buffers.

It is an estimate (±30% in our reading of the terms), meant to choose between micro-batch sizes and
to warn; ``lmscale ladder plan`` prints it, and a run records its measured peak on GPUs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lmscale._io import read_json
from lmscale.errors import InputError
from lmscale.train.shapes import count_params

GIB = 1024**3
OVERHEAD_BYTES = 1.5 * GIB
ACT_BYTES_PER_TOKEN_LAYER = 64  # × d (measured on an H200: see the module docstring)
#: use at most this share of the GPU (fragmentation)
USABLE = 0.9


def parse_bytes(text: str | float | int) -> float:
    """80GB, 80GiB, 141e9, 24 GB → bytes (GB and GiB both read as 2^30: GPU memory is sold so)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(|[kmgt]i?b?)\s*", str(text), re.I)
        if not m:
            raise InputError(f"GPU memory {text!r}: expected a size such as 80GB or 141e9")
        unit = m.group(2).lower().rstrip("b").rstrip("i")
        value = float(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": GIB, "t": 1024**4}[unit]
    if not value > 0:
        raise InputError(f"GPU memory {text!r} must be positive")
    return value


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per rank, by part."""

    states: float
    activations: float
    output_layer: float
    overhead: float

    @property
    def total(self) -> float:
        return self.states + self.activations + self.output_layer + self.overhead

    def describe(self) -> str:
        return (
            f"{self.total / GIB:.1f} GiB (states {self.states / GIB:.1f}, activations "
            f"{self.activations / GIB:.1f}, output layer {self.output_layer / GIB:.1f}, overhead "
            f"{self.overhead / GIB:.1f})"
        )


def estimate(
    d_model: int,
    n_layers: int,
    vocab_size: int,
    seq_len: int,
    micro_batch: int,
    *,
    world: int = 1,
    sharded: bool = False,
    checkpointing: bool = False,
    loss_chunk: int = 8192,
) -> MemoryEstimate:
    """Peak bytes of one rank training this shape with ``micro_batch`` sequences per forward."""
    n = count_params(d_model, n_layers, vocab_size)
    states = 16.0 * n / (world if sharded else 1)
    if sharded:  # FSDP2 without a mixed-precision policy gathers float32 blocks, one ahead
        states += 2 * 4.0 * (n - 2 * vocab_size * d_model) / max(n_layers, 1)
    tokens = micro_batch * seq_len
    per_layer = ACT_BYTES_PER_TOKEN_LAYER * d_model * tokens
    acts = (n_layers * 4 * d_model * tokens + per_layer) if checkpointing else n_layers * per_layer
    output = 10.0 * min(loss_chunk, tokens) * vocab_size + 8.0 * tokens * d_model
    return MemoryEstimate(states, float(acts), output, OVERHEAD_BYTES)


def fit_micro_batch(
    d_model: int,
    n_layers: int,
    vocab_size: int,
    seq_len: int,
    per_rank_batch: int,
    gpu_bytes: float,
    *,
    world: int = 1,
    sharded: bool = False,
    loss_chunk: int = 8192,
) -> tuple[int, bool, MemoryEstimate]:
    """(micro-batch, activation checkpointing, estimate): the largest divisor of the per-rank batch
    that fits ``gpu_bytes``, without checkpointing when that fits, else with it."""
    divisors = [k for k in range(per_rank_batch, 0, -1) if per_rank_batch % k == 0]
    for ckpt in (False, True):
        for k in divisors:
            est = estimate(
                d_model,
                n_layers,
                vocab_size,
                seq_len,
                k,
                world=world,
                sharded=sharded,
                checkpointing=ckpt,
                loss_chunk=loss_chunk,
            )
            if est.total <= USABLE * gpu_bytes:
                return k, ckpt, est
    est = estimate(
        d_model,
        n_layers,
        vocab_size,
        seq_len,
        1,
        world=world,
        sharded=sharded,
        checkpointing=True,
        loss_chunk=loss_chunk,
    )
    raise InputError(
        f"a {count_params(d_model, n_layers, vocab_size) / 1e9:.2f}B model does not fit {gpu_bytes / GIB:.0f} GiB "
        f"per rank even one sequence at a time with activation checkpointing (estimate {est.describe()}); "
        "shard it over more GPUs (FSDP) or use larger ones"
    )


@dataclass(frozen=True)
class RunResources:
    """What one planned run needs: steps, warm-up, passes over the corpus, memory per rank."""

    run_id: str
    n_steps: int
    warmup_steps: int
    #: D ÷ training tokens of the corpus (None when the corpus size is not known)
    epochs: float | None
    #: sequences per forward on each rank, and whether activations are recomputed
    micro_batch: int
    checkpointing: bool
    memory: MemoryEstimate | None


def run_resources(
    cfg,
    runs,
    *,
    gpu_bytes: float | None = None,
    world: int = 1,
    corpus_tokens: float | None = None,
    micro_batch: int = 0,
    checkpointing: bool = False,
) -> list[RunResources]:
    """Per run of a ladder plan (:func:`lmscale.train.ladder.plan`): with ``gpu_bytes`` the
    micro-batch (and checkpointing) that fits, else the one given (0: the whole per-rank batch)."""
    out = []
    for r in runs:
        s = r.shape
        if s.batch_size % world:
            raise InputError(
                f"shape {s.name!r}: global batch {s.batch_size} does not split over {world} ranks"
            )
        per_rank = s.batch_size // world
        sharded = world > 1 and r.n_params >= 1e9
        if gpu_bytes is not None:
            mb, ck, est = fit_micro_batch(
                s.d_model,
                s.n_layers,
                cfg.vocab_size,
                cfg.seq_len,
                per_rank,
                gpu_bytes,
                world=world,
                sharded=sharded,
            )
        else:
            mb, ck = micro_batch or per_rank, checkpointing
            est = estimate(
                s.d_model,
                s.n_layers,
                cfg.vocab_size,
                cfg.seq_len,
                mb,
                world=world,
                sharded=sharded,
                checkpointing=ck,
            )
        n_steps = -(-r.n_tokens // (s.batch_size * cfg.seq_len))
        epochs = r.n_tokens / corpus_tokens if corpus_tokens else None
        out.append(RunResources(r.run_id, n_steps, s.warmup_steps, epochs, mb, ck, est))
    return out


def resource_warnings(resources: list[RunResources]) -> list[str]:
    """Runs that never leave warm-up, and runs that see their corpus more than once (the paper
    trains one epoch: repeated tokens bend the scaling law)."""
    out = []
    for r in resources:
        if r.n_steps <= r.warmup_steps:
            out.append(
                f"run {r.run_id}: {r.n_steps} steps, all inside the {r.warmup_steps}-step warm-up: it never "
                "trains at its full learning rate; lower the warm-up or the batch size"
            )
        if r.epochs is not None and r.epochs > 1:
            out.append(
                f"run {r.run_id}: {r.epochs:.2f} epochs over the corpus: tokens repeat, which the paper's one-epoch "
                "laws do not model; use a larger corpus or a smaller M"
            )
    return out


def cached_corpus_tokens(ladder_dir: str | Path) -> float | None:
    """Training tokens of the ladder's corpus, from the token cache a ``ladder run`` left in
    ``ladder_dir`` (None when there is no single cached training set)."""

    metas = sorted((Path(ladder_dir) / "cache" / "tokens").glob("*-train.json"))
    if len(metas) != 1:
        return None
    try:
        return float(read_json(metas[0])["n_tokens"])
    except (InputError, KeyError, TypeError, ValueError):
        return None
