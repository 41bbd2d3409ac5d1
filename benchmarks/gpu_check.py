"""The GPU path, proven in one command: ``bash benchmarks/gpu_check.sh`` (which calls this file).

Sections, each in its own process with its own time limit (one failing section does not stop the
others), run in this order until the time budget (``--budget`` seconds) is spent:

1. ``env``: torch, CUDA, the device, and a measured bf16 matrix-product rate (8192³ on GPUs).
2. ``ladder``: the tiny ladder trained, evaluated, fitted and reported end to end by ``lmscale
   loop`` on the device (``--preset cpu-tiny``; with ``--tiny``, a 3 × 3 ladder of 16–48-wide
   models on a slice of the standard library).
3. ``throughput``: the paper's 0.154B and 0.411B shapes (open_lm recipe, V = 50,432, T = 2048;
   with ``--tiny`` a 64-wide 2-layer model at T = 128) trained on random tokens for a few dozen
   steps through ``lmscale.train.loop.train``: tokens/s, model-FLOP utilisation (FLOPs per token
   6·(N − V·d) + 6·L·d·T, ``model_flops_per_token``, against ``--peak-tflops``), peak memory
   (``torch.cuda.max_memory_allocated``) against ``lmscale.train.memory.estimate``; eager, with
   activation checkpointing, and with ``torch.compile`` (graph breaks counted).
4. ``fsdp``: FSDP2 (``parallel: fsdp``) under ``torchrun --nproc-per-node 1`` with sharded
   checkpoints: an uninterrupted run, and a run killed (SIGKILL) after its second checkpoint and
   resumed; the final losses compared. FSDP's warnings are collected.
5. ``eval``: the largest run of the ladder scored on the built-in tasks on the device (bf16
   autocast on GPUs) and on the CPU in float32: correct counts per task compared.

Prints one table and writes ``summary.json`` (and each section's log) under ``--out`` (default
``$OUT`` when set, else ``gpu_check_out``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
SRC = ROOT / "src"


# ---------------------------------------------------------------------------------------- workers
def worker_env(args) -> dict:
    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda}
    info["device"] = args.device
    if args.device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        info.update(
            name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1)
        )
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
        info["bf16_matmul_tflops"] = round(10 * 2 * n**3 / (time.perf_counter() - t0) / 1e12, 1)
    return info


def worker_throughput(args) -> dict:
    import numpy as np
    import torch

    from lmscale.train.data import PackedSequences
    from lmscale.train.loop import TrainConfig, train
    from lmscale.train.memory import estimate
    from lmscale.train.model import ModelConfig
    from lmscale.train.presets import PAPER_SHAPES
    from lmscale.train.shapes import model_flops_per_token

    if args.tiny:
        d, layers, heads, vocab, seq, micro, batch = 64, 2, 4, 512, 128, 8, 16
    else:
        s = PAPER_SHAPES[args.shape]
        d, layers, heads, vocab, seq = s.d_model, s.n_layers, s.n_heads, 50432, 2048
        micro, batch = args.micro_batch, 2 * args.micro_batch
    mcfg = ModelConfig(d, layers, heads, vocab, seq_len=seq, init="open_lm", qk_gains=True)
    steps, warm = args.steps, args.warm
    n_tok = (steps + 5) * batch * seq  # never reaches its end: no final checkpoint is timed
    tokens = np.random.default_rng(0).integers(0, vocab, n_tok + seq + 2).astype(np.uint32)
    ckpt = args.variant == "checkpointing"
    cfg = TrainConfig(
        mcfg,
        n_tokens=n_tok,
        batch_size=batch,
        warmup_steps=2,
        checkpoint_every=0,
        log_every=10,
        micro_batch=micro,
        activation_checkpointing=ckpt,
        compile=args.variant == "compile",
        decay_all=True,
    )
    cuda = args.device.startswith("cuda")
    marks: dict[int, float] = {}

    prof = None
    if args.profile:  # the timed steps under torch.profiler: where a step's GPU time goes
        acts = [torch.profiler.ProfilerActivity.CPU] + (
            [torch.profiler.ProfilerActivity.CUDA] if cuda else []
        )
        prof = torch.profiler.profile(activities=acts)

    def progress(step, n_steps, tps):
        if step in (warm, steps):
            if cuda:
                torch.cuda.synchronize()
            marks[step] = time.perf_counter()
            if prof is not None:
                (prof.__enter__ if step == warm else lambda: prof.__exit__(None, None, None))()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = train(
        cfg,
        PackedSequences(tokens, seq, 0),
        args.dir,
        device=args.device,
        progress=progress,
        stop_after=steps,
    )
    wall = time.perf_counter() - t0
    tps = (steps - warm) * batch * seq / (marks[steps] - marks[warm])
    fpt = model_flops_per_token(d, layers, vocab, seq)
    out = {
        "shape": "tiny" if args.tiny else args.shape,
        "variant": args.variant,
        "n_params": mcfg.n_params,
        "micro_batch": micro,
        "tokens_per_step": batch * seq,
        "timed_steps": steps - warm,
        "tokens_per_s": round(tps),
        "first_steps_s": round(marks[warm] - t0, 1),
        "wall_s": round(wall, 1),
        "train_loss": res.train_loss,
        "flops_per_token": fpt,
    }
    est = estimate(d, layers, vocab, seq, micro, checkpointing=ckpt, loss_chunk=cfg.loss_chunk)
    out["estimate_gib"] = round(est.total / 2**30, 2)
    if cuda:
        out["mfu"] = round(fpt * tps / (args.peak_tflops * 1e12), 4)
        out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["estimate_over_peak"] = round(est.total / torch.cuda.max_memory_allocated(), 2)
    if prof is not None:
        key = "self_device_time_total" if cuda else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=key, row_limit=30)
        Path(args.json).with_suffix(".profile.txt").write_text(table)
        events = sorted(prof.key_averages(), key=lambda e: -getattr(e, key))
        total = sum(getattr(e, key) for e in events) or 1.0
        out["profile_top"] = [(e.key[:60], round(100 * getattr(e, key) / total, 1)) for e in events[:12]]
    if args.variant == "compile":
        from torch._dynamo.utils import counters

        out["graph_breaks"] = sum(counters["graph_break"].values())
    return out


def worker_fsdp_train(args) -> None:
    """Run under torchrun: one FSDP2 run with sharded checkpoints every few steps."""
    import numpy as np

    from lmscale.train.data import PackedSequences
    from lmscale.train.loop import TrainConfig, train
    from lmscale.train.model import ModelConfig

    vocab, seq, batch = (512, 32, 8) if args.tiny else (8192, 512, 16)
    d, layers, heads = (32, 2, 2) if args.tiny else (256, 4, 4)
    mcfg = ModelConfig(d, layers, heads, vocab, seq_len=seq, init="open_lm", qk_gains=True)
    n_steps = args.steps
    tokens = np.random.default_rng(1).integers(0, vocab, n_steps * batch * seq + seq + 2).astype(np.uint32)
    cfg = TrainConfig(
        mcfg,
        n_tokens=n_steps * batch * seq,
        batch_size=batch,
        warmup_steps=2,
        checkpoint_every=args.every,
        log_every=1,
        parallel="fsdp",
        checkpoint_format="sharded",
        seed=5,
    )
    # a pause per step, so that the kill lands between two checkpoints, not after the last one
    train(
        cfg,
        PackedSequences(tokens, seq, 0),
        args.dir,
        device=args.device,
        progress=lambda *_: time.sleep(0.1 if args.tiny else 0.15),
    )


# ----------------------------------------------------------------------------- the orchestration
def _kill(p: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended by itself
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def _run(cmd, log: Path, timeout: float, env=None) -> tuple[int, float]:
    cmd = [str(c) for c in cmd]
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = p.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            _kill(p)
            fh.write(f"\n[gpu_check] killed after {timeout:.0f} s\n")
            rc = 124
    return rc, time.perf_counter() - t0


def _env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _me(args, *extra) -> list[str]:
    base = [sys.executable, str(HERE), "--device", args.device, "--peak-tflops", str(args.peak_tflops)]
    return base + (["--tiny"] if args.tiny else []) + list(map(str, extra))


def _ladder_config(path: Path, tiny: bool) -> Path:
    """The cpu-tiny ladder (3 shapes × M = 5, 10, 20 on the standard library), or with ``tiny`` a
    3 × 3 ladder of 16–48-wide one-layer models; validation text from the standard library too,
    so the check needs nothing of the machine but Python (cpu-tiny's own validation sets are the
    system's licence texts and man pages, which a bare GPU image may lack)."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    if tiny:
        shapes = [
            {"name": n, "d_model": d, "n_layers": 1, "n_heads": 2, "batch_size": 16, "warmup_steps": 2}
            for n, d in (("a", 16), ("b", 32), ("c", 48))
        ]
        corpus = {
            "name": "json",
            "sources": [str(lib / "json" / "*.py"), str(lib / "email" / "*.py")],
            "val_permille": 200,
        }
        mults, vocab, seq, every = [0.25, 0.5, 1.0], 300, 32, 0
    else:
        from lmscale.train.presets import PRESETS

        ref = PRESETS["cpu-tiny"]
        shapes = [
            {
                "name": s.name,
                "d_model": s.d_model,
                "n_layers": s.n_layers,
                "n_heads": s.n_heads,
                "batch_size": s.batch_size,
                "warmup_steps": s.warmup_steps,
            }
            for s in ref.shapes
        ]
        corpus = {"name": "python", "sources": ["python"]}
        mults, vocab, seq, every = list(ref.multipliers), ref.vocab_size, ref.seq_len, ref.checkpoint_every
    path.write_text(
        json.dumps(
            {
                "name": "gpu-check-tiny" if tiny else "gpu-check-cpu-tiny",
                "shapes": shapes,
                "multipliers": mults,
                "corpus": corpus,
                "val_corpora": [
                    {
                        "name": "csv",
                        "sources": [str(lib / "csv.py"), str(lib / "textwrap.py")],
                        "val_permille": 1000,
                    }
                ],
                "vocab_size": vocab,
                "seq_len": seq,
                "checkpoint_every": every,
            }
        )
    )
    return path


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def section_ladder(args, out: Path, work: Path, budget: float) -> dict:
    ladder = work / "ladder"
    cmd = [
        sys.executable,
        "-m",
        "lmscale.cli",
        "loop",
        "--out",
        str(ladder),
        "--device",
        args.device.split(":")[0],
    ]
    cmd.append(str(_ladder_config(work / "ladder.json", args.tiny)))
    rc, wall = _run(cmd, out / "ladder.log", budget, _env())
    res: dict = {"rc": rc, "wall_s": round(wall, 1)}
    runs = ladder / "runs.jsonl"
    if runs.is_file():
        rows = [json.loads(x) for x in runs.read_text().splitlines() if x.strip()]
        res["runs"] = len(rows)
        res["report"] = (ladder / "report" / "report.md").is_file()
        peaks = [r.get("peak_gpu_memory_gib") or r.get("peak_memory_gib") for r in rows]
        if any(p is not None for p in peaks):
            res["peak_gib_max"] = max(p for p in peaks if p is not None)
    tail = (out / "ladder.log").read_text().splitlines()[-12:]
    res["tail"] = tail
    return res


def _largest_run(ladder: Path) -> Path | None:
    runs = ladder / "runs.jsonl"
    if not runs.is_file():
        return None
    rows = [json.loads(x) for x in runs.read_text().splitlines() if x.strip()]
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["n_params"], r["n_tokens"]))
    cand = ladder / "runs" / best["run_id"]
    return cand if cand.is_dir() else None


def section_eval(args, out: Path, work: Path, budget: float) -> dict:
    run = _largest_run(work / "ladder")
    suite = work / "ladder" / "tasks" / "suite.yaml"
    if run is None or not suite.is_file():
        return {"rc": None, "skipped": "no trained and evaluated ladder"}
    scores = {}
    for dev in dict.fromkeys([args.device, "cpu"]):
        log = out / f"eval_{dev.replace(':', '')}.log"
        res_path = work / f"eval_{dev.replace(':', '')}.json"
        cmd = [sys.executable, "-m", "lmscale.cli", "eval", str(run), "--suite", str(suite)]
        cmd += ["--device", dev, "--format", "json"]
        with open(res_path, "w") as fh, open(log, "w") as errfh:
            t0 = time.perf_counter()
            p = subprocess.run(cmd, stdout=fh, stderr=errfh, env=_env(), timeout=budget / 2, check=False)
        scores[dev] = {"rc": p.returncode, "wall_s": round(time.perf_counter() - t0, 1)}
        scores[dev]["result"] = _read_json(res_path)
    res = {"rc": max(v["rc"] for v in scores.values()), "by_device": scores}
    results = [v["result"] for v in scores.values()]
    if len(results) == 2 and all(isinstance(r, dict) for r in results):
        a, b = results
        res["tasks"] = len(a)
        res["max_accuracy_diff"] = max((abs(a[k] - b.get(k, float("nan"))) for k in a), default=None)
    return res


def _fsdp_step(folder: Path) -> int:
    meta = _read_json(folder / "checkpoint.dcp" / "meta.json")
    return int(meta["step"]) if isinstance(meta, dict) and "step" in meta else -1


def _final_loss(folder: Path) -> float | None:
    log = folder / "train_log.jsonl"
    if not log.is_file():
        return None
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return lines[-1].get("loss") if lines else None


def section_fsdp(args, out: Path, work: Path, budget: float) -> dict:
    steps, every = (12, 4) if args.tiny else (40, 10)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    env = _env()
    res: dict = {}
    whole, killed = work / "fsdp_whole", work / "fsdp_killed"
    for folder in (whole, killed):
        shutil.rmtree(folder, ignore_errors=True)
    fsdp = _me(args, "--worker", "fsdp", "--steps", steps, "--every", every)[1:]  # torchrun takes the script
    rc, wall = _run(torchrun + fsdp + ["--dir", whole], out / "fsdp.log", budget / 3, env)
    res.update(rc_whole=rc, wall_whole_s=round(wall, 1), loss_whole=_final_loss(whole))
    # the same run, killed after its second checkpoint, then resumed
    t0 = time.perf_counter()
    with open(out / "fsdp.log", "a") as fh:
        p = subprocess.Popen(
            [str(c) for c in torchrun + fsdp + ["--dir", killed]],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        while p.poll() is None and _fsdp_step(killed) < 2 * every and time.perf_counter() - t0 < budget / 3:
            time.sleep(0.05)
        res["finished_before_kill"] = p.poll() is not None
        _kill(p)
        fh.write(f"\n[gpu_check] killed at checkpoint step {_fsdp_step(killed)}\n")
    res["killed_at_step"] = _fsdp_step(killed)
    rc2, _ = _run(torchrun + fsdp + ["--dir", killed], out / "fsdp.log", budget / 3, env)
    res.update(rc_resumed=rc2, loss_resumed=_final_loss(killed))
    text = (out / "fsdp.log").read_text()
    res["view_warning"] = "returned a view tensor" in text
    res["resumed_from_checkpoint"] = "resum" in text.lower() or res["killed_at_step"] > 0
    if res["loss_whole"] is not None and res["loss_resumed"] is not None:
        res["resume_rel_diff"] = abs(res["loss_resumed"] - res["loss_whole"]) / abs(res["loss_whole"])
    res["rc"] = max(rc, rc2)
    return res


def section_throughput(args, out: Path, work: Path, shape: str, variant: str, budget: float) -> dict:
    js = work / f"tp_{shape}_{variant}.json"
    cmd = _me(args, "--worker", "throughput", "--shape", shape, "--variant", variant, "--json", js)
    cmd += ["--dir", work / f"tp_{shape}_{variant}", "--steps", args.steps, "--warm", args.warm]
    cmd += ["--micro-batch", args.micro_batch if not args.tiny else 8] + (
        ["--profile"] if args.profile else []
    )
    rc, wall = _run(cmd, out / f"throughput_{shape}_{variant}.log", budget, _env())
    return {"rc": rc, "wall_s": round(wall, 1), **(_read_json(js) or {})}


def main(args) -> int:
    out = Path(args.out or os.environ.get("OUT") or "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or (out / "work"))
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    summary: dict = {"args": {k: v for k, v in vars(args).items() if k != "worker"}, "sections": {}}
    shapes = ["tiny"] if args.tiny else ["0.154B", "0.411B"]
    plan = [("env", 60), ("ladder", 300)]
    plan += [(f"throughput:{s}:eager", 120) for s in shapes] + [("fsdp", 150), ("eval", 120)]
    plan += [(f"throughput:{s}:checkpointing", 120) for s in shapes]
    plan += [(f"throughput:{s}:compile", 240) for s in shapes]
    unknown = [o for o in args.only if not any(name.startswith(o) for name, _ in plan)]
    if unknown:
        print(
            f"[gpu_check] --only {', '.join(unknown)}: no such section; known: {', '.join(n for n, _ in plan)}"
        )
        return 2
    if not (args.budget > 0):  # NaN too
        print(f"[gpu_check] --budget must be a positive number of seconds, got {args.budget!r}")
        return 2
    for name, max_s in plan:
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        left = deadline - time.perf_counter()
        if left < min(max_s, 30):
            summary["sections"][name] = {"skipped": f"time budget spent ({left:.0f} s left)"}
            continue
        limit = min(max_s, left)
        print(f"[gpu_check] {time.strftime('%H:%M:%S')} {name} (limit {limit:.0f} s)", flush=True)
        try:
            if name == "env":
                js = work / "env.json"
                rc, _ = _run(_me(args, "--worker", "env", "--json", js), out / "env.log", limit, _env())
                res = {"rc": rc, **(_read_json(js) or {})}
            elif name == "ladder":
                res = section_ladder(args, out, work, limit)
            elif name == "fsdp":
                res = section_fsdp(args, out, work, limit)
            elif name == "eval":
                res = section_eval(args, out, work, limit)
            else:
                _, shape, variant = name.split(":")
                res = section_throughput(args, out, work, shape, variant, limit)
        except Exception as exc:
            res = {"rc": -1, "error": f"{exc.__class__.__name__}: {exc}"}
        summary["sections"][name] = res
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print(f"[gpu_check]   -> {json.dumps(res, default=str)[:600]}", flush=True)
    print_table(summary)
    failed = [k for k, v in summary["sections"].items() if v.get("rc") not in (0, None)]
    print(f"[gpu_check] sections failed: {failed or 'none'}; summary: {out / 'summary.json'}")
    return 1 if failed else 0


def print_table(summary: dict) -> None:
    s = summary["sections"]
    print("\n| section | result |\n|---|---|")
    for name, r in s.items():
        if "skipped" in r:
            print(f"| {name} | skipped: {r['skipped']} |")
            continue
        if name.startswith("throughput"):
            cells = [f"rc {r.get('rc')}", f"{r.get('tokens_per_s', '?')} tok/s"]
            if "mfu" in r:
                cells += [
                    f"MFU {100 * r['mfu']:.1f}%",
                    f"peak {r['peak_gib']} GiB vs est. {r['estimate_gib']} GiB",
                ]
            if "graph_breaks" in r:
                cells.append(f"{r['graph_breaks']} graph breaks")
            cells.append(f"first steps {r.get('first_steps_s', '?')} s")
        elif name == "env":
            keys = ("torch", "cuda", "name", "memory_gib", "bf16_matmul_tflops")
            cells = [f"{k} {r[k]}" for k in keys if k in r]
        else:
            cells = [f"{k} {v}" for k, v in r.items() if k not in ("tail", "by_device")]
            if "by_device" in r:
                for dev, v in r["by_device"].items():
                    cells.append(f"{dev}: rc {v['rc']}, {v['wall_s']} s")
        print(f"| {name} | {', '.join(map(str, cells))} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes everywhere (the CPU check in CI)")
    ap.add_argument("--out", default=None, help="folder for summary.json and logs (default: $OUT)")
    ap.add_argument("--work", default=None, help="scratch folder (default: OUT/work)")
    ap.add_argument("--budget", type=float, default=480, help="seconds for all sections together")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200 SXM: 989)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warm", type=int, default=None)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--only", action="append", default=[], help="run only sections starting so (repeat)")
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--profile", action="store_true", help="profile the timed steps (throughput sections)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--shape", default="tiny", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="eager", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.device is None:
        import torch

        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.steps is None:
        a.steps = 8 if a.tiny else 40
    if a.warm is None:
        a.warm = 3 if a.tiny else 10
    sys.path.insert(0, str(SRC))
    if a.worker:
        if a.worker == "fsdp":
            worker_fsdp_train(a)
            sys.exit(0)
        result = {"env": worker_env, "throughput": worker_throughput}[a.worker](a)
        Path(a.json).write_text(json.dumps(result, default=str))
        sys.exit(0)
    sys.exit(main(a))
