"""A black-box fuzz campaign through the CLI: `python benchmarks/fuzz_campaign.py [N] [--seed S]`.

N hostile or careless inputs per kind (default 200), drawn with a fixed seed: run tables for `fit`,
saved fits (with odd `predict` options) for `predict`, and ladder configs for `ladder plan`. Each
outcome is counted as

- ok: a result, and a sane one (finite JSON, distinct safe run ids, positive N and D);
- clean error: exit code 2 with one `error:` line;
- traceback: any other exception;
- wrong answer: exit 0 with a non-finite number, an unsafe or repeated run id, or N, D ≤ 0;
- write outside: a file created outside the command's output folder.

Then, per surface added since (issue 23: `import wandb-csv|lm-eval|tensorboard`, metric map
files, run configs, run tables, `backtest`, `plan`, `data prepare`, ladder configs), the hostile
cases of `benchmarks/fuzz_surfaces.py` and N/4 generated W&B histories and lm-eval results, each
under a time limit (a case past it counts as a hang) and an address-space limit (a reader of
`/dev/zero` counts as a traceback, not as the machine's memory). `--surfaces` runs only these.

The first three kinds use commands older lmscale versions have too, so the script measures a
before/after (run it with PYTHONPATH pointing at another checkout's `src`).
"""

import json
import math
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from lmscale.cli import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"
ODD = [
    None,
    True,
    False,
    0,
    -1,
    1e-200,
    1e300,
    float("nan"),
    float("inf"),
    -float("inf"),
    10**40,
    "",
    "abc",
    "12",
    "../../x",
    "/etc/passwd",
    "<img src=x onerror=alert(1)>",
    [],
    [1, 2],
    {},
    {"a": 1},
    300.5,
    "1e400",
]


def odd(rng):
    v = rng.choice(ODD)
    if rng.random() < 0.1:  # nesting
        return [v] * rng.randint(1, 3)
    return v


def run(args, root: Path, out: Path):
    before = {p for p in root.rglob("*") if p.is_file() and out not in p.parents}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        res = CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        os.chdir(cwd)
    from fuzz_surfaces import outcome

    after = {p for p in root.rglob("*") if p.is_file() and out not in p.parents}
    return outcome(res, wrote_outside=bool(after - before)), res


def finite_json(text: str) -> bool:
    try:
        data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError:
        return False
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, float) and not math.isfinite(x):
            return False
        if isinstance(x, dict):
            stack += list(x.values())
        elif isinstance(x, list):
            stack += x
    return True


def run_tables(rng, root):
    rows = [json.loads(line) for line in EXAMPLE.read_text().splitlines() if line.strip()]
    for _ in range(rng.randint(1, 4)):
        row = rng.choice(rows)
        key = rng.choice(["run_id", "dataset", "n_params", "n_tokens", "multiplier", "flops", "loss_python"])
        if rng.random() < 0.15:
            row.pop(key, None)
        else:
            row[key] = odd(rng)
    path = root / "runs.jsonl"
    data = "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows).encode()
    if rng.random() < 0.1:
        data += bytes([0xFF, 0xFE, 0x00])
    path.write_bytes(data)
    status, res = run(
        ["fit", path, "--target", "loss_python", "--where", "n_params < 3e5", "-o", root / "out" / "f.json"],
        root,
        root / "out",
    )
    if status == "ok":
        try:
            fit = json.loads((root / "out" / "f.json").read_text(), parse_constant=lambda c: 1 / 0)
            if not all(math.isfinite(v) for v in fit["params"].values()):
                status = "wrong answer"
        except Exception:
            status = "wrong answer"
    return status, res


def saved_fits(rng, root, template):
    d = dict(template)
    key = rng.choice(
        ["law", "params", "x", "y", "run_ids", "bootstrap", "noise_sd", "input_columns", "format"]
    )
    d[key] = (
        odd(rng)
        if rng.random() < 0.7
        else ({k: odd(rng) for k in template["params"]} if key == "params" else [odd(rng)] * 3)
    )
    path = root / "fit.json"
    path.write_text(json.dumps(d, allow_nan=True))
    n = rng.choice([1e9, 6.9e9, -1, 0, float("nan"), 1e200, 1e-200])
    m = rng.choice([20, 640, -5, 0, 1e300, float("inf"), 1e-300])
    status, res = run(
        ["predict", path, "--n-params", n, "--multiplier", m, "--format", "json"], root, root / "out"
    )
    if status == "ok" and not finite_json(res.output):
        status = "wrong answer"
    return status, res


LADDER = {
    "name": "fz",
    "shapes": [
        {"name": "a", "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 8, "warmup_steps": 2},
        "0.011B",
    ],
    "multipliers": [5, 10],
    "corpus": {"name": "c", "sources": ["python"]},
    "vocab_size": 512,
    "seq_len": 64,
    "val_corpora": [{"name": "v", "sources": ["licenses"], "val_permille": 1000}],
}


def ladder_configs(rng, root):
    cfg = json.loads(json.dumps(LADDER))
    where = rng.choice(
        [
            ("name",),
            ("multipliers",),
            ("vocab_size",),
            ("seq_len",),
            ("seed",),
            ("lr",),
            ("corpus",),
            ("corpus", "name"),
            ("corpus", "val_permille"),
            ("corpus", "max_bytes"),
            ("shapes", 0, "name"),
            ("shapes", 0, "d_model"),
            ("shapes", 0, "n_heads"),
            ("val_corpora", 0, "name"),
            ("multipliers", 1),
        ]
    )
    node = cfg
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = (
        odd(rng) if rng.random() < 0.85 else (1e-7 + 5 if where == ("multipliers", 1) else "a b")
    )
    path = root / "ladder.json"
    path.write_text(json.dumps(cfg, allow_nan=True))
    status, res = run(["ladder", "plan", path, "--format", "json"], root, root / "out")
    if status == "ok":
        try:
            plans = json.loads(res.output)
            ids = [p["run_id"] for p in plans]
            if (
                len(set(ids)) != len(ids)
                or any("/" in i or ".." in i or " " in i for i in ids)
                or any(not (p["n_params"] > 0 and p["n_tokens"] > 0) for p in plans)
            ):
                status = "wrong answer"
        except (ValueError, KeyError, TypeError):
            status = "wrong answer"
    return status, res


STATUSES = ("ok", "clean error", "traceback", "wrong answer", "hang", "write outside")


def surfaces(n: int, rng, tmp: Path) -> Counter:
    """The issue-23 surfaces: one line per surface with every outcome's count."""
    import resource
    from collections import defaultdict

    from fuzz_surfaces import cases, judge, random_cases

    limit = 4 << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(
        resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )
    per: dict[str, Counter] = defaultdict(Counter)
    try:
        for i, case in enumerate(cases() + random_cases(rng, max(n // 4, 1))):
            root = tmp / f"s{i}"
            root.mkdir()
            status, res = judge(case, root, timeout=20.0)
            per[case.surface][status] += 1
            if status not in ("ok", "clean error") and "-v" in sys.argv:
                why = (
                    repr(res.exception) if res is not None and res.exception else (res.output if res else "")
                )
                print(f"  {case.surface}: {case.label}: {status}: {why[:200]}")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    print(f"{'surface':20s} " + " ".join(f"{s:>13s}" for s in STATUSES))
    total = Counter()
    for surface, counts in per.items():
        total.update(counts)
        print(f"{surface:20s} " + " ".join(f"{counts[s]:13d}" for s in STATUSES))
    print(f"{'all surfaces':20s} " + " ".join(f"{total[s]:13d}" for s in STATUSES))
    return total


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else 200
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    rng = random.Random(seed)
    totals = Counter()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if "--surfaces" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            surfaces(n, rng, Path(tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp) / "template"
        t.mkdir()
        res = CliRunner().invoke(
            cli,
            ["fit", str(EXAMPLE), "--target", "loss_python", "--bootstrap", "30", "-o", str(t / "fit.json")],
        )
        assert res.exit_code == 0, res.output
        template = json.loads((t / "fit.json").read_text())
        for kind, fn in (
            ("run tables", run_tables),
            ("saved fits", lambda r, d: saved_fits(r, d, template)),
            ("ladder configs", ladder_configs),
        ):
            counts = Counter()
            for i in range(n):
                root = Path(tmp) / f"{kind[:3]}{i}"
                root.mkdir()
                status, _res = fn(rng, root)
                counts[status] += 1
            totals.update(counts)
            print(f"{kind:15s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(
        f"{'all':15s} " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())) + f" (of {3 * n} inputs)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        surfaces(n, rng, Path(tmp))


if __name__ == "__main__":
    main()
