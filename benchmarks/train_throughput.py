"""Training throughput: lmscale's training loop against a minimal plain-PyTorch loop of the same
model, same batch and same optimiser, in one process.

    python benchmarks/train_throughput.py [--d 64 --layers 2 --heads 4 --vocab 512 --seq 128 --batch 32 --steps 30]

Prints tokens/s of both and their ratio (lmscale ÷ plain; 1.0 means the loop's extras — exact-D
masking, z-loss, LR schedule, clipping, logging, checkpoints — cost nothing). With ``--device cuda``
and ``--bf16`` it also prints model-FLOP utilisation against ``--peak-tflops``, counting
6·(N − V·d) + 6·layers·d·T FLOPs per token (``lmscale.train.shapes.model_flops_per_token``).
"""

import argparse
import tempfile
import time

import numpy as np
import torch

from lmscale.train.data import PackedSequences
from lmscale.train.loop import TrainConfig, train
from lmscale.train.model import ModelConfig, Transformer
from lmscale.train.shapes import model_flops_per_token

ap = argparse.ArgumentParser()
ap.add_argument("--d", type=int, default=64)
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--vocab", type=int, default=512)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--steps", type=int, default=30)
ap.add_argument("--warm", type=int, default=5, help="steps not timed")
ap.add_argument("--device", default="cpu")
ap.add_argument("--bf16", action="store_true")
ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100 SXM: 989)")
args = ap.parse_args()

mcfg = ModelConfig(args.d, args.layers, args.heads, args.vocab, seq_len=args.seq)
tokens = np.random.default_rng(0).integers(0, args.vocab, (args.steps + 2) * args.batch * (args.seq + 1) + 1)
tokens = tokens.astype(np.uint16 if args.vocab <= 65536 else np.uint32)
n_tok = args.steps * args.batch * args.seq
dev = torch.device(args.device)


def plain() -> float:
    torch.manual_seed(0)
    model = Transformer(mcfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.033)
    data = PackedSequences(tokens, args.seq, 0)
    t0 = None
    for step in range(args.steps):
        if step == args.warm:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        b = torch.from_numpy(data.batch(step * args.batch, args.batch)).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(b[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), b[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (args.steps - args.warm) * args.batch * args.seq / (time.perf_counter() - t0)


def ours() -> float:
    cfg = TrainConfig(
        mcfg,
        n_tokens=n_tok,
        batch_size=args.batch,
        warmup_steps=2,
        checkpoint_every=0,
        precision="bf16" if args.bf16 else "fp32",
    )
    marks = {}

    def progress(step, n_steps, tps):
        if step in (args.warm, args.steps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            marks[step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, PackedSequences(tokens, args.seq, 0), tmp, device=args.device, progress=progress)
    return (args.steps - args.warm) * args.batch * args.seq / (marks[args.steps] - marks[args.warm])


p1, o1 = plain(), ours()
p2, o2 = plain(), ours()  # interleaved twice: the machine's noise hits both alike
p, o = max(p1, p2), max(o1, o2)
print(
    f"model d={args.d} layers={args.layers} V={args.vocab}: N = {mcfg.n_params:,} parameters, "
    f"batch {args.batch}×{args.seq} tokens, {args.steps - args.warm} timed steps, device {args.device}"
)
print(f"plain PyTorch loop: {p:,.0f} tokens/s")
print(f"lmscale train():    {o:,.0f} tokens/s")
print(f"ratio lmscale / plain: {o / p:.3f}")
fpt = model_flops_per_token(args.d, args.layers, args.vocab, args.seq)
print(f"model FLOPs per token: {fpt:.4g} (6·(N − V·d) + 6·layers·d·T; 6·N would say {6 * mcfg.n_params:.4g})")
if dev.type == "cuda":
    mfu = fpt * o / (args.peak_tflops * 1e12)
    print(
        f"model-FLOP utilisation (FLOPs per token × tokens/s ÷ {args.peak_tflops:g} TFLOP/s): {100 * mfu:.1f}%"
    )
