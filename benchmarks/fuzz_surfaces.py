"""Hostile and careless inputs for the surfaces added after the first fuzz campaign (issue 23):
``import wandb-csv|lm-eval|tensorboard``, metric map files, run configs, run tables, ``plan``,
``backtest`` and ``data prepare`` options, and rich markup in user data. Used by
``benchmarks/fuzz_campaign.py`` (which counts outcomes per surface) and by ``tests/test_fuzz.py``.

Each case builds its inputs under a fresh folder ``root`` and returns the command line, plus the
text that must appear literally in the output when the command fails (markup cases: the error
message must show ``[/red]`` or ``[bold]`` as typed, not interpret it). Outcomes are judged by
:func:`judge`: ``ok``, ``clean error`` (exit 2, one ``error:`` line), ``traceback``, ``wrong
answer`` (markup swallowed, or a non-finite number written), ``hang`` (past the time limit) and
``write outside`` (a file created outside the output folder)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"
WANDB = ROOT / "examples" / "wandb-export"
MAP = "eval/val/c4/ce_loss=loss_c4"
DEEP = 5000
MARKUP = ("[/red]", "[bold]x[/bold]", "[/]", "[link=file:///etc]y[/link]", "[red")


@dataclass(frozen=True)
class Case:
    surface: str
    label: str
    build: Callable[[Path], list]
    literal: str | None = None  # must appear as typed in a failure message


class Hang(Exception):
    pass


def _alarm(_sig, _frame):
    raise Hang


def run_cli(args, root: Path, out: Path, timeout: float = 20.0):
    """(status, result) of one command run in ``root``; status as in the module docstring."""
    from lmscale.cli import cli

    files = lambda: {p for p in root.rglob("*") if _is_file(p) and out not in p.parents}  # noqa: E731
    before = files()
    cwd = os.getcwd()
    os.chdir(root)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    # a reader blocked in a library's own open() of a FIFO holds the GIL and retries the
    # interrupted call (the tokenizers library), so neither the alarm nor a thread can end it: a
    # separate process opens the FIFOs for writing after the time limit, which releases the open
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _RELEASE, str(root), str(timeout)], stdout=subprocess.PIPE, text=True
    )
    try:
        res = CliRunner().invoke(cli, [str(a) for a in args])
    except Hang:
        return "hang", None
    finally:
        watchdog.kill()
        fired = "released" in watchdog.communicate()[0]
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(cwd)
    if isinstance(res.exception, Hang) or fired:
        return "hang", res
    return outcome(res, wrote_outside=bool(files() - before)), res


def outcome(res, *, wrote_outside: bool) -> str:
    """How a command run went: ``write outside``, ``traceback``, ``ok`` or ``clean error`` (exit 2
    with a message); the fuzz campaign's one rule."""
    if wrote_outside:
        return "write outside"
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        return "traceback"
    if res.exit_code == 0:
        return "ok"
    return "clean error" if res.exit_code == 2 and "error" in res.output.lower() else "traceback"


_RELEASE = """
import os, pathlib, stat, sys, time
time.sleep(float(sys.argv[2]))
for p in pathlib.Path(sys.argv[1]).rglob("*"):
    try:
        if stat.S_ISFIFO(p.lstat().st_mode):
            os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass
print("released", flush=True)
"""


def _is_file(p: Path) -> bool:
    with contextlib.suppress(OSError):
        return p.is_file() and not p.is_symlink()
    return False


def judge(case: Case, root: Path, timeout: float = 20.0):
    args = case.build(root)
    status, res = run_cli(args, root, root / "out", timeout)
    told = status == "clean error" or (status == "ok" and "warning:" in res.output)
    if told and case.literal is not None and case.literal not in res.output:
        status = "wrong answer"
    if status == "ok" and not _sane_table(args):
        status = "wrong answer"
    if status == "ok" and case.surface == "plan" and "nan" in res.output.lower():
        status = "wrong answer"  # a GPU-hour figure from a NaN MFU
    return status, res


def _sane_table(args) -> bool:
    """A run table an import wrote holds finite losses and accuracies in [0, 1]."""
    import math

    import pandas as pd

    if "-o" not in args or not str(args[args.index("-o") + 1]).endswith(".csv"):
        return True
    path = Path(args[args.index("-o") + 1])
    if not path.is_file():
        return True
    frame = pd.read_csv(path)
    for col in frame.columns:
        vals = [v for v in frame[col] if isinstance(v, float) and v == v]  # missing stays missing
        if col.startswith("loss_") and not all(math.isfinite(v) and v > 0 for v in vals):
            return False
        if col.startswith("acc_") and not all(0 <= v <= 1 for v in vals):
            return False
    return True


# ------------------------------------------------------------------------------------ builders
def _wandb(root: Path, n: int = 25) -> Path:
    d = root / "wb"
    d.mkdir(exist_ok=True)
    for f in sorted(WANDB.glob("*.csv"))[:n]:
        (d / f.name).write_bytes(f.read_bytes())
    return d


def _import_csv(d: Path, *extra) -> list:
    return ["import", "wandb-csv", d, "--map", MAP, "--name-pattern", "{model}_{tokens}.csv", *extra,
            "-o", d.parent / "out" / "runs.csv"]  # fmt: skip


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def deep_yaml(depth: int = DEEP) -> str:
    return "a: " + "[" * depth + "]" * depth + "\n"


def _runs(root: Path, edit: Callable[[list[dict]], None] | None = None, name="runs.jsonl") -> Path:
    rows = [json.loads(x) for x in EXAMPLE.read_text().splitlines() if x.strip()]
    if edit:
        edit(rows)
    p = root / name
    if name.endswith(".csv"):
        import pandas as pd

        pd.DataFrame(rows).to_csv(p, index=False)
    else:
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _lm_eval_doc(task="arc_easy", acc="0.5", pretrained="/x/r0") -> str:
    return f'{{"results": {{"{task}": {{"acc,none": {acc}}}}}, "config": {{"model_args": "pretrained={pretrained}"}}}}'


def _event_file(d: Path, records: list[bytes]) -> Path:
    """A TensorBoard event file of raw TFRecord payloads (lengths and CRCs as TFRecord writes them)."""
    from tensorboard.summary.writer.record_writer import masked_crc32c

    d.mkdir(parents=True, exist_ok=True)
    p = d / "events.out.tfevents.1.host"
    with open(p, "wb") as fh:
        for data in records:
            head = struct.pack("<Q", len(data))
            fh.write(head + struct.pack("<I", masked_crc32c(head)) + data)
            fh.write(struct.pack("<I", masked_crc32c(data)))
    return p


def scalar_event(tag: str, value: float, step: int) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    ev = event_pb2.Event(wall_time=1.0, step=step)
    ev.summary.value.extend([summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return ev.SerializeToString()


def _tb(root: Path, tag="val/loss", name="20M-M20", extra: list[bytes] | None = None) -> Path:
    base = root / "tb"
    _event_file(base / name, [scalar_event(tag, 3.0, s) for s in (0, 10)] + (extra or []))
    return base


def _import_tb(base: Path, tag="val/loss") -> list:
    return ["import", "tensorboard", base, "--map", f"{tag}=loss_val", "--name-pattern", "{model}-M{m}",
            "-o", base.parent / "out" / "runs.csv"]  # fmt: skip


def _tb_length_bomb(root: Path) -> list:
    """A record claiming 2^62 bytes, its length CRC valid."""
    from tensorboard.summary.writer.record_writer import masked_crc32c

    base = _tb(root)
    p = next((base / "20M-M20").glob("events*"))
    head = struct.pack("<Q", 1 << 62)
    with open(p, "ab") as fh:
        fh.write(head + struct.pack("<I", masked_crc32c(head)) + b"\0" * 16)
    return _import_tb(base)


# ------------------------------------------------------------------------------------- cases
def _csv_cell(root: Path, cell: str) -> list:
    d = _wandb(root, 6)
    f = sorted(d.glob("*.csv"))[0]
    lines = f.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + "," + cell  # the lr column (not mapped)
    parts = lines[-1].split(",")
    parts[4] = cell  # the mapped loss, last step
    lines[-1] = ",".join(parts)
    f.write_text("\n".join(lines) + "\n")
    return _import_csv(d)


def _csv_header(root: Path, header: str) -> list:
    d = _wandb(root, 6)
    for f in d.glob("*.csv"):
        lines = f.read_text().splitlines()
        lines[0] = lines[0].replace("eval/val/c4/ce_loss", header)
        f.write_text("\n".join(lines) + "\n")
    return ["import", "wandb-csv", d, "--map", f"{header}=loss_c4", "--name-pattern", "{model}_{tokens}.csv",
            "-o", root / "out" / "runs.csv"]  # fmt: skip


def _map_file(root: Path, text: str, suffix=".yaml") -> list:
    d = _wandb(root, 6)
    m = root / f"map{suffix}"
    m.write_text(text)
    return ["import", "wandb-csv", d, "--map-file", m, "--name-pattern", "{model}_{tokens}.csv",
            "-o", root / "out" / "runs.csv"]  # fmt: skip


def _config_beside(root: Path, text: str, suffix=".config.json") -> list:
    d = _wandb(root, 6)
    f = sorted(d.glob("*.csv"))[0]
    f.with_name(f.stem + suffix).write_text(text)
    # N and D from the configs only: the other files are skipped for want of them
    return ["import", "wandb-csv", d, "--map", MAP, "-o", root / "out" / "runs.csv"]


def _lm_eval(root: Path, doc: str, name="results_1.json", run_id: str | None = "python-d32-l1-M10") -> list:
    runs = _runs(root)
    p = root / "res" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text(doc)
    return ["import", "lm-eval", runs, p, *(["--run-id", run_id] if run_id else []),
            "-o", root / "out" / "runs.csv"]  # fmt: skip


def _lm_eval_special(root: Path, kind: str) -> list:
    runs = _runs(root)
    res = root / "res"
    res.mkdir()
    if kind == "fifo":
        p = _fifo(res / "results_1.json")
    elif kind == "dir":
        p = res / "results_1.json"
        p.mkdir()
        p = res
    else:
        p = res / "results_1.json"
        p.symlink_to("/dev/zero")
    return ["import", "lm-eval", runs, p, "--run-id", "python-d32-l1-M10", "-o", root / "out" / "runs.csv"]


def _csv_special(root: Path, kind: str) -> list:
    d = _wandb(root, 6)
    p = d / "20M_9B.csv"  # a name the pattern matches
    if kind == "fifo":
        _fifo(p)
    elif kind == "dir":
        p.mkdir()
    else:
        p.symlink_to(f"/dev/{kind}")
    return _import_csv(d)


def _fit(root: Path, runs: Path, *extra) -> list:
    return ["fit", runs, "--target", "loss_python", *extra, "-o", root / "out" / "fit.json"]


def _backtest(root: Path, runs: Path, target="loss_python") -> list:
    return [
        "backtest",
        runs,
        "--target",
        target,
        "--bootstrap",
        "5",
        "--method",
        "paper",
        "--out",
        root / "out",
    ]


def _plan(root: Path, *extra, runs: Path | None = None) -> list:
    ev = runs or _runs(root)
    return ["plan", "--target-params", "1e7", "--target-multiplier", "20", "--evidence", ev, *extra]


def _prepare(root: Path, sample: str) -> list:
    src = root / "a.txt"
    src.write_text("hello world\n" * 50)
    return ["data", "prepare", src, "--out", root / "out", "--vocab-size", "300", "--sample-bytes", sample]


def _ladder(root: Path, text: str, suffix: str) -> list:
    p = root / f"ladder{suffix}"
    p.write_text(text)
    return ["ladder", "plan", p, "--format", "json"]


def _set(i, key, value):
    def edit(rows):
        rows[i][key] = value

    return edit


def _drop_all(key):
    def edit(rows):
        for r in rows:
            r[key] = None

    return edit


def _huge_int_jsonl(root: Path) -> Path:
    p = _runs(root)
    text = p.read_text().replace('"loss_python": 4.494800090789795', '"loss_python": 1' + "0" * 400, 1)
    p.write_text(text)
    return p


def cases() -> list[Case]:
    out: list[Case] = []
    add = lambda s, label, build, literal=None: out.append(Case(s, label, build, literal))  # noqa: E731
    # W&B CSVs
    for m in MARKUP:
        add("wandb-csv", f"markup cell {m}", lambda r, m=m: _csv_cell(r, m), m)
        add("wandb-csv", f"markup header {m}", lambda r, m=m: _csv_header(r, "eval/" + m), m)
    for kind in ("fifo", "zero", "dir", "urandom"):
        add("wandb-csv", f"{kind} named like a CSV", lambda r, k=kind: _csv_special(r, k))
    add("wandb-csv", "1e400 cell", lambda r: _csv_cell(r, "1" + "0" * 400))
    add("wandb-csv", "BOM", lambda r: _csv_cell(r, "3.0") and _bom(r))
    add("wandb-csv", "random bytes", _junk_csv)
    add("wandb-csv", "one folder named .csv", lambda r: _import_csv(_mkdir(r / "x.csv")))
    # map files and run configs
    add("map-file", "deep JSON", lambda r: _map_file(r, deep_json(), ".json"))
    add("map-file", "deep YAML", lambda r: _map_file(r, deep_yaml()))
    add("map-file", "deep YAML mapping", lambda r: _map_file(r, "{a: " * DEEP + "1" + "}" * DEEP))
    add("map-file", "markup key", lambda r: _map_file(r, '"eval/[/red]": loss_c4\n'))
    add(
        "map-file",
        "markup column",
        lambda r: _map_file(r, '"eval/val/c4/ce_loss": "loss_[/red]"\n'),
        "[/red]",
    )
    add("map-file", "FIFO", _map_file_fifo)
    add("map-file", "2 MB", lambda r: _map_file(r, "a: b\n" * 400_000))
    add("map-file", "huge int", lambda r: _map_file(r, '{"a": ' + "9" * 5000 + "}", ".json"))
    add("run-config", "deep JSON", lambda r: _config_beside(r, deep_json()))
    add("run-config", "deep YAML", lambda r: _config_beside(r, deep_yaml(), ".config.yaml"))
    add(
        "run-config",
        "10**400 params",
        lambda r: _config_beside(r, '{"n_tokens": 1e9, "n_params": 1' + "0" * 400 + "}"),
    )
    add(
        "run-config",
        "markup key",
        lambda r: _config_beside(r, '{"n_tokens": 1e9, "n_params": "[/red]"}'),
        "[/red]",
    )
    # lm-eval results
    add("lm-eval", "deep JSON", lambda r: _lm_eval(r, deep_json()))
    add("lm-eval", "10**400 acc", lambda r: _lm_eval(r, _lm_eval_doc(acc="1" + "0" * 400)))
    add("lm-eval", "1e400 acc", lambda r: _lm_eval(r, _lm_eval_doc(acc="1e400")))
    add("lm-eval", "markup task", lambda r: _lm_eval(r, _lm_eval_doc(task="[/red]", acc='"x"')), "[/red]")
    add(
        "lm-eval",
        "markup model",
        lambda r: _lm_eval(r, _lm_eval_doc(pretrained="[/red]"), run_id=None),
        "[/red]",
    )
    add("lm-eval", "markup run id", lambda r: _lm_eval(r, _lm_eval_doc(), run_id="[/red]"), "[/red]")
    for kind in ("fifo", "dir", "zero"):
        add("lm-eval", kind, lambda r, k=kind: _lm_eval_special(r, k))
    add("lm-eval", "list", lambda r: _lm_eval(r, "[1, 2]"))
    # TensorBoard
    add("tensorboard", "length 2^62", _tb_length_bomb)
    add("tensorboard", "markup tag", lambda r: _import_tb(_tb(r, tag="[/red]"), "nomatch"), "[/red]")
    add("tensorboard", "markup folder", lambda r: _import_tb(_tb(r, name="[/red]-M20")), "[/red]")
    add("tensorboard", "random bytes", lambda r: _import_tb(_tb_raw(r, os.urandom(200))))
    add("tensorboard", "truncated", lambda r: _import_tb(_tb_truncated(r)))
    add("tensorboard", "FIFO event file", lambda r: _import_tb(_tb_fifo(r)))
    # run tables, fit and backtest
    add("run-table", "10**400 in JSONL", lambda r: _fit(r, _huge_int_jsonl(r)))
    add("run-table", "deep JSONL line", lambda r: _fit(r, _write(r / "runs.jsonl", deep_json() + "\n")))
    add("run-table", "FIFO .jsonl", lambda r: _fit(r, _fifo(r / "runs.jsonl")))
    add("run-table", "FIFO .csv", lambda r: _fit(r, _fifo(r / "runs.csv")))
    add("run-table", "/dev/zero .jsonl", lambda r: _fit(r, _symlink(r / "runs.jsonl", "/dev/zero")))
    add("run-table", "markup run id", lambda r: _fit(r, _runs(r, _set(0, "n_params", "[/red]"))), "[/red]")
    add("run-table", "markup target", lambda r: ["fit", _runs(r), "--target", "loss_[/red]"], "[/red]")
    add(
        "run-table",
        "markup where",
        lambda r: ["fit", _runs(r), "--target", "loss_python", "--where", "[/red] < 3"],
        "[/red]",
    )
    add(
        "run-table",
        "[bold] cell",
        lambda r: _fit(
            r,
            _runs(r, _set(0, "n_params", "[bold]abc")),
        ),
        "[bold]abc",
    )
    add("backtest", "empty target column", lambda r: _backtest(r, _runs(r, _drop_all("loss_python"))))
    add(
        "backtest",
        "empty target column (csv)",
        lambda r: _backtest(r, _runs(r, _drop_all("loss_python"), "runs.csv")),
    )
    add("backtest", "markup target", lambda r: _backtest(r, _runs(r), "loss_[/red]"), "[/red]")
    # plan
    add("plan", "--mfu nan", lambda r: _plan(r, "--mfu", "nan"))
    add("plan", "--method typo", lambda r: _plan(r, "--method", "defualt"))
    add("plan", "--method markup", lambda r: _plan(r, "--method", "[/red]"), "[/red]")
    add("plan", "no validation loss", lambda r: _plan(r, runs=_runs(r, _strip_losses)))
    # data prepare
    for s in ("1e999", "abc", "nan", "-5", "0", "[/red]"):
        add("data-prepare", f"--sample-bytes {s}", lambda r, s=s: _prepare(r, s))
    add(
        "data-prepare",
        "FIFO source",
        lambda r: ["data", "prepare", _fifo(r / "a.txt"), "--out", r / "out", "--vocab-size", "300"],
    )
    add("data-prepare", "FIFO --tokenizer", lambda r: ["data", "prepare", _write(r / "a.txt", "hi\n"), "--tokenizer",
                                                      _fifo(r / "tok.json"), "--out", r / "out"])  # fmt: skip
    add("data-prepare", "deep JSONL line", lambda r: ["data", "prepare", _write(r / "c.jsonl", deep_json(100_000) + "\n"),
                                                     "--out", r / "out", "--vocab-size", "300"])  # fmt: skip
    # ladder configs
    add("ladder-config", "deep JSON", lambda r: _ladder(r, '{"name": ' + deep_json() + "}", ".json"))
    add("ladder-config", "deep YAML", lambda r: _ladder(r, "name: " + "[" * DEEP + "]" * DEEP, ".yaml"))
    add("ladder-config", "FIFO", lambda r: ["ladder", "plan", _fifo(r / "ladder.yaml"), "--format", "json"])
    add("ladder-config", "markup name", lambda r: _ladder(r, '{"name": "[/red]", "shapes": 3}', ".json"))
    return out


def _bom(root: Path) -> list:
    d = root / "wb"
    for f in d.glob("*.csv"):
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    return _import_csv(d)


def _junk_csv(root: Path) -> list:
    d = _wandb(root, 6)
    sorted(d.glob("*.csv"))[0].write_bytes(random.Random(1).randbytes(3000))
    return _import_csv(d)


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def _symlink(p: Path, target: str) -> Path:
    p.symlink_to(target)
    return p


def _map_file_fifo(root: Path) -> list:
    d = _wandb(root, 6)
    return ["import", "wandb-csv", d, "--map-file", _fifo(root / "map.yaml"), "-o", root / "out" / "runs.csv"]


def _strip_losses(rows):
    for r in rows:
        for k in [k for k in r if k.startswith("loss_")]:
            del r[k]


def _tb_raw(root: Path, data: bytes) -> Path:
    d = root / "tb" / "20M-M20"
    d.mkdir(parents=True)
    (d / "events.out.tfevents.1.host").write_bytes(data)
    return root / "tb"


def _tb_truncated(root: Path) -> Path:
    base = _tb(root)
    p = next((base / "20M-M20").glob("events*"))
    p.write_bytes(p.read_bytes()[:-7])
    return base


def _tb_fifo(root: Path) -> Path:
    d = root / "tb" / "20M-M20"
    d.mkdir(parents=True)
    _fifo(d / "events.out.tfevents.1.host")
    return root / "tb"


# ------------------------------------------------------------------------- random cases
ODD_CELLS = ["", "NaN", "nan", "null", "inf", "-inf", "1e400", "1" + "0" * 400, "abc", "0", "-1", "3.25",
             "1e-300", '"', "a,b", "\x00", *MARKUP]  # fmt: skip
ODD_VALUES = [None, True, 0, -1, 0.5, 1.5, 1e300, "abc", "", "[/red]", [], {}, [0.5], {"acc": 0.5}, "NaN"]


def random_cases(rng: random.Random, n: int) -> list[Case]:
    """``n`` generated W&B histories and ``n`` generated lm-eval results (fixed by ``rng``)."""
    out = []
    for i in range(n):
        header = ["_step"] + [
            rng.choice(["eval/loss", "lr", "x__MIN", *MARKUP, "a - eval/loss"]) for _ in range(3)
        ]
        rows = [[str(s)] + [rng.choice(ODD_CELLS) for _ in range(3)] for s in range(rng.randint(0, 5))]
        bom = rng.random() < 0.2
        out.append(Case("wandb-csv (random)", f"history {i}", functools.partial(_random_csv, header=header,
                        rows=rows, bom=bom)))  # fmt: skip
        metrics = {
            rng.choice(["acc,none", "acc_norm,none", "acc", "[/red]"]): rng.choice(ODD_VALUES)
            for _ in range(2)
        }
        task = rng.choice(["arc_easy", "[/red]", "", "x" * 40])
        doc = {"results": {task: metrics}, "config": {"model_args": "pretrained=/x/python-d32-l1-M10"}}
        if rng.random() < 0.3:
            doc = rng.choice(ODD_VALUES)
        text = json.dumps(doc)
        out.append(Case("lm-eval (random)", f"results {i}", lambda r, t=text: _lm_eval(r, t, run_id=None)))
    return out


def _random_csv(root: Path, header, rows, bom) -> list:
    import csv
    import io

    d = root / "wb"
    d.mkdir()
    for name in ("20M_1B.csv", "60M_1B.csv"):
        (d / name).write_text("_step,eval/loss\n0,3.0\n10,2.5\n")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    (d / "150M_1B.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode())
    return ["import", "wandb-csv", d, "--map", "eval/loss=loss_x", "--name-pattern", "{model}_{tokens}.csv",
            "-o", root / "out" / "runs.csv"]  # fmt: skip
