"""Evaluation throughput: in-context-learning examples scored per second, batched against one at a
time, for a model of the paper's architecture (random weights: speed does not depend on them).

    python benchmarks/eval_throughput.py [--task ../shared/icl/llm-foundry/commonsense_reasoning/copa.jsonl]
        [--type multiple_choice] [--d 64 --layers 2 --vocab 512 --seq 128 --items 200]

Without ``--task`` it scores a generated multiple-choice task. Prints examples/s for batch sizes 1
and 16 and their ratio.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from lmscale.evaluate.icl import TaskConfig, load_items, score
from lmscale.train.data import train_tokenizer
from lmscale.train.model import ModelConfig, Transformer

ap = argparse.ArgumentParser()
ap.add_argument("--task", default=None)
ap.add_argument("--type", default="multiple_choice")
ap.add_argument("--d", type=int, default=64)
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--vocab", type=int, default=512)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--items", type=int, default=200)
args = ap.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    path = Path(args.task) if args.task else Path(tmp) / "mc.jsonl"
    if not args.task:
        words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
        path.write_text(
            "".join(
                json.dumps(
                    {
                        "query": f"Question {i}: which word comes next after {words[i % 8]}?",
                        "choices": [" " + w for w in words[:4]],
                        "gold": i % 4,
                    }
                )
                + "\n"
                for i in range(args.items)
            )
        )
    task = TaskConfig("bench", str(path), args.type)
    items = load_items(task)[: args.items]
    text = [json.dumps(i) for i in items] * 3
    tok = train_tokenizer(text, args.vocab)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(args.d, args.layers, 4, tok.get_vocab_size(), seq_len=args.seq))
    rates = {}
    for bs in (1, 16, 1, 16):  # interleaved twice; the best of each is kept
        t0 = time.perf_counter()
        score(model, tok, task, items, batch_size=bs)
        rates[bs] = max(rates.get(bs, 0.0), len(items) / (time.perf_counter() - t0))
print(
    f"task {path.name} ({args.type}), {len(items)} examples, model N = {model.cfg.n_params:,}, T = {args.seq}"
)
print(f"batch 1:  {rates[1]:,.1f} examples/s")
print(f"batch 16: {rates[16]:,.1f} examples/s")
print(f"speed-up from batching: {rates[16] / rates[1]:.2f}x")
