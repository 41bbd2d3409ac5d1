"""A fuzz suite (issues 15 and 23): hypothesis generates hostile and careless inputs — run tables,
saved fits, ladder configs, task suites and items, command-line options, W&B history CSVs,
lm-evaluation-harness results, TensorBoard event records, run configs and metric maps (with
FIFOs, devices and folders named like files, under an alarm) — and every one must end in a
result or in one clear error: never a traceback, a non-zero exit that names the input, and no write
outside the output folder. About 750 generated inputs per run (derandomised: the same
inputs every run, so a failure reproduces)."""

import contextlib
import json
import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, deadline
from lmscale.cli import cli
from lmscale.errors import LmscaleError

EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"
ROWS = [json.loads(line) for line in EXAMPLE.read_text().splitlines() if line.strip()]


def fuzz(n: int):
    return settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, max_examples=n)


# any JSON value, the odd ones included (NaN, ±inf, huge and tiny numbers, nesting, wrong types)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "../x", "<img src=x onerror=alert(1)>", "1e400", "NaN", "-1", "0"]),
)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)


def files_outside(root: Path, allowed: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file() and allowed not in p.parents}


def invoke(args, root: Path, out: Path):
    """Run the CLI in ``root``; check the outcome and that nothing was written outside ``out``."""
    before = files_outside(root, out)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
    finally:
        os.chdir(cwd)
    # a traceback is any exception other than click's own exit
    assert res.exception is None or isinstance(res.exception, SystemExit), (
        args,
        repr(res.exception),
        res.output,
    )
    if res.exit_code != 0:
        assert res.exit_code == 2 and ("error" in res.output.lower()), (args, res.output)
    assert files_outside(root, out) - before == set(), args
    return res


def mutate_rows(rows, edits):
    rows = json.loads(json.dumps(rows))
    for i, key, value in edits:
        row = rows[i % len(rows)]
        if value == "<delete>":
            row.pop(key, None)
        else:
            row[key] = value
    return rows


edits = st.lists(
    st.tuples(
        st.integers(0, 40),
        st.sampled_from(
            [
                "run_id",
                "dataset",
                "model",
                "n_params",
                "n_tokens",
                "multiplier",
                "flops",
                "loss_python",
                "acc_cloze",
            ]
        ),
        values | st.just("<delete>"),
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.slow
@fuzz(150)
@given(
    edits=edits,
    fmt=st.sampled_from(["jsonl", "csv"]),
    junk=st.binary(max_size=20),
    cmd=st.sampled_from(["fit", "fit", "backtest", "report"]),
)
def test_fuzz_run_tables(tmp_path_factory, edits, fmt, junk, cmd):
    root = tmp_path_factory.mktemp("rt")
    rows = mutate_rows(ROWS, edits)
    path = root / f"runs.{fmt}"
    if fmt == "jsonl":
        text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows)
        path.write_bytes(text.encode() + (junk if junk and junk[0] % 4 == 0 else b""))
    else:
        import pandas as pd

        pd.DataFrame(
            [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()} for r in rows]
        ).to_csv(path, index=False)
    args = {
        "fit": ["fit", path, "--target", "loss_python", "--where", "n_params < 3e5"],
        "backtest": [
            "backtest",
            path,
            "--target",
            "loss_python",
            "--bootstrap",
            "20",
            "--method",
            "default",
            "--out",
            root / "out",
        ],
        "report": ["report", path, "--val-set", "python", "--split", "cloze", "--out", root / "out"],
    }[cmd]
    res = invoke(args, root, root / "out")
    if res.exit_code != 0:
        # the message says where: the file, or a run by its id, or the field that was edited, or
        # (when the table is valid but the fit is not possible) the law it could not fit
        ids = {r["run_id"] for r in rows if isinstance(r.get("run_id"), str) and r["run_id"]}
        where = [str(path), *(repr(i) for i in ids), *(repr(key) for _, key, _ in edits), "law 'overtrain'"]
        assert any(w in res.output for w in where), (args, res.output)


def saved_fit(root: Path) -> dict:
    out = root / "fit.json"
    res = CliRunner().invoke(
        cli, ["fit", str(EXAMPLE), "--target", "loss_python", "--bootstrap", "30", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def fit_template(tmp_path_factory):
    return saved_fit(tmp_path_factory.mktemp("fit"))


@fuzz(150)
@given(
    key=st.sampled_from(
        [
            "law",
            "method",
            "params",
            "target",
            "input_columns",
            "run_ids",
            "x",
            "y",
            "bootstrap",
            "noise_sd",
            "calibration",
            "format",
            "diagnostics",
        ]
    ),
    value=values,
    n=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**20)),
    m=st.floats(-1e300, 1e300),
    level=st.floats(-1, 2),
)
def test_fuzz_saved_fits_and_predict_options(tmp_path_factory, fit_template, key, value, n, m, level):
    root = tmp_path_factory.mktemp("pf")
    d = dict(fit_template)
    d[key] = value
    path = root / "fit.json"
    path.write_text(json.dumps(d, allow_nan=True))
    res = invoke(
        ["predict", path, "--n-params", n, "--multiplier", m, "--level", level, "--format", "json"],
        root,
        root / "out",
    )
    if res.exit_code == 0:
        out = json.loads(res.output, parse_constant=lambda c: pytest.fail(f"{c} in the JSON output"))
        flat = [x for v in out.values() for x in (v if isinstance(v, list) else [v])]
        assert all(x is None or not isinstance(x, float) or math.isfinite(x) for x in flat), out


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


@fuzz(120)
@given(
    path=st.sampled_from(
        [
            ("name",),
            ("multipliers",),
            ("vocab_size",),
            ("seq_len",),
            ("seed",),
            ("lr",),
            ("weight_decay",),
            ("corpus",),
            ("corpus", "name"),
            ("corpus", "val_permille"),
            ("corpus", "max_bytes"),
            ("corpus", "sources"),
            ("shapes",),
            ("shapes", 0, "name"),
            ("shapes", 0, "d_model"),
            ("shapes", 0, "n_heads"),
            ("shapes", 0, "batch_size"),
            ("val_corpora",),
            ("val_corpora", 0, "name"),
            ("checkpoint_every",),
            ("preset",),
        ]
    ),
    value=values,
    as_yaml=st.booleans(),
)
def test_fuzz_ladder_configs(tmp_path_factory, path, value, as_yaml):
    import yaml

    root = tmp_path_factory.mktemp("lc")
    cfg = json.loads(json.dumps(LADDER))
    node = cfg
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    f = root / ("ladder.yaml" if as_yaml else "ladder.json")
    f.write_text(yaml.safe_dump(cfg) if as_yaml else json.dumps(cfg, allow_nan=True))
    res = invoke(["ladder", "plan", f, "--format", "json"], root, root / "out")
    if res.exit_code == 0:
        plans = json.loads(res.stdout)  # warnings (e.g. a ladder naming no corpus) go to stderr
        assert len({p["run_id"] for p in plans}) == len(plans)
        assert all(
            p["n_params"] > 0 and p["n_tokens"] > 0 and "/" not in p["run_id"] and ".." not in p["run_id"]
            for p in plans
        )
    else:
        assert str(f) in res.output or "ladder" in res.output


@fuzz(80)
@given(
    entry=st.dictionaries(
        st.sampled_from(
            [
                "label",
                "dataset_uri",
                "num_fewshot",
                "icl_task_type",
                "continuation_delimiter",
                "prompt_string",
            ]
        ),
        values,
        max_size=6,
    ),
    item=st.dictionaries(
        st.sampled_from(["query", "choices", "gold", "context", "continuation", "context_options"]),
        values,
        max_size=6,
    ),
    task_type=st.sampled_from(["multiple_choice", "schema", "language_modeling", "nope"]),
)
def test_fuzz_suites_and_task_items(tmp_path_factory, entry, item, task_type):
    """The readers behind ``lmscale eval``: an LmscaleError or a valid task, nothing else."""
    import yaml

    from lmscale.evaluate.icl import TaskConfig, load_items, read_suite

    root = tmp_path_factory.mktemp("ts")
    (root / "suite.yaml").write_text(yaml.safe_dump({"icl_tasks": [entry]}))
    with contextlib.suppress(LmscaleError):
        read_suite(root / "suite.yaml", root)
    (root / "items.jsonl").write_text(json.dumps(item, allow_nan=True) + "\n")
    try:
        items = load_items(TaskConfig("t", str(root / "items.jsonl"), task_type))
    except LmscaleError:
        return
    assert items and isinstance(items[0], dict)


# -------------------------------------------------------------------- W&B CSV exports (issue 21)
_EXPORT_HEADERS = [
    ["Name", "State", "model.n_params", "eval/loss"],  # runs table
    ["Step", "a - eval/loss", "a - eval/loss__MIN", "b - eval/loss"],  # chart export of two runs
    ["_step", "eval/loss"],  # history file
]
_export_cells = st.one_of(
    st.sampled_from(["", "NaN", "nan", "-", "inf", "-1", "0", "1e400", "150M", "finished", "crashed", "3.1"]),
    st.text(max_size=6),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


# ------------------------------------------------------------------ issue 23: the import surfaces
MARKUP = ["[/red]", "[bold]", "[bold]x[/bold]", "[/]", "[link=file:///etc/passwd]y[/link]", "[red"]
# a cell of a W&B history: numbers, the missing spellings, text, markup, out-of-range literals
cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", "NaN", "nan", "null", "None", "inf", "-inf", "1e400", "1" + "0" * 400, "abc"]),
    st.sampled_from(MARKUP),
    st.text(max_size=8),
)
headers = st.one_of(
    st.sampled_from(
        ["eval/loss", "train/loss", "lr", "_runtime", "x__MIN", "run - eval/loss", "_step", "Step"]
    ),
    st.sampled_from(MARKUP).map(lambda m: "eval/" + m),
    st.text(max_size=8),
)
special = st.sampled_from(["regular"] * 6 + ["fifo", "zero", "dir"])


def _special(p: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "zero":
        p.symlink_to("/dev/zero")
    elif kind == "dir":
        p.mkdir()


@fuzz(60)
@given(
    header=st.lists(headers, min_size=1, max_size=5),
    rows=st.lists(st.lists(cells, min_size=1, max_size=6), max_size=6),
    bom=st.booleans(),
    junk=st.binary(max_size=16),
    kind=special,
    config=st.one_of(st.none(), values, st.just("deep"), st.just("bigint")),
)
def test_fuzz_wandb_csv(tmp_path_factory, header, rows, bom, junk, kind, config):
    """``import wandb-csv`` on generated histories (beside two good ones): a table or one clear
    error; a written table holds only finite losses; special files never hang it."""
    import csv
    import io

    root = tmp_path_factory.mktemp("wb")
    d = root / "in"
    d.mkdir()
    good = "_step,eval/loss\n0,3.0\n10,2.5\n"
    (d / "20M_1B.csv").write_text(good)
    (d / "60M_1B.csv").write_text(good)
    target = d / "150M_1B.csv"
    if kind == "regular":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["_step", *header])
        w.writerows([[str(i), *r] for i, r in enumerate(rows)])
        data = buf.getvalue().encode("utf-8", "surrogatepass")
        target.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data + (junk if junk[:1] == b"\0" else b""))
    else:
        _special(target, kind)
    if config is not None:
        text = {"deep": "[" * 3000 + "]" * 3000, "bigint": '{"n_params": 1' + "0" * 400 + "}"}.get(
            config if isinstance(config, str) else ""
        )
        (d / "150M_1B.config.json").write_text(text or json.dumps(config, allow_nan=True))
    out = root / "out"
    with deadline():
        res = invoke(
            ["import", "wandb-csv", d, "--map", "eval/loss=loss_x", "--name-pattern", "{model}_{tokens}.csv",
             "-o", out / "runs.csv"],
            root,
            out,
        )  # fmt: skip
    if res.exit_code == 0:
        from lmscale.run_table import RunTable

        t = RunTable.read(out / "runs.csv")
        assert all(math.isfinite(v) for v in t.loss("x")), t.frame
        assert len(t) >= 2


def _lm_eval_text(doc, nan, deep, big) -> str:
    text = json.dumps(doc, allow_nan=True)
    if deep:
        text = '{"results": ' + "[" * 5000 + "]" * 5000 + "}"
    if big:
        text = text.replace("0.5", "1" + "0" * 400, 1)
    return text.replace("NaN", "NaN" if nan else "null")


@fuzz(60)
@given(
    task=st.one_of(st.sampled_from(["arc_easy", *MARKUP]), st.text(max_size=6)),
    metrics=st.dictionaries(
        st.sampled_from(["acc,none", "acc_norm,none", "acc", "acc_stderr,none", "alias", "[/red]"]),
        values,
        max_size=4,
    ),
    config=st.one_of(values, st.just({"model_args": "pretrained=/x/python-d32-l1-M10"})),
    top=st.sampled_from(["results", "groups", "nope"]),
    nan=st.booleans(),
    deep=st.booleans(),
    big=st.booleans(),
    run_id=st.sampled_from([None, "python-d32-l1-M10", "[/red]", "nope"]),
    kind=special,
)
def test_fuzz_lm_eval_results(tmp_path_factory, task, metrics, config, top, nan, deep, big, run_id, kind):
    """``import lm-eval``: a merged table or one clear error; merged accuracies lie in [0, 1]."""
    root = tmp_path_factory.mktemp("le")
    res_dir = root / "res"
    res_dir.mkdir()
    p = res_dir / "results_2024.json"
    if kind == "regular":
        p.write_text(
            _lm_eval_text({top: {task: {**metrics, "acc,none": 0.5}}, "config": config}, nan, deep, big)
        )
    else:
        _special(p, kind)
    out = root / "out"
    with deadline():
        res = invoke(
            [
                "import",
                "lm-eval",
                EXAMPLE,
                res_dir,
                *(["--run-id", run_id] if run_id else []),
                "-o",
                out / "r.csv",
            ],
            root,
            out,
        )
    if res.exit_code == 0:
        from lmscale.run_table import RunTable

        t = RunTable.read(out / "r.csv")
        accs = [v for c in t.frame.columns if c.startswith("acc_") for v in t.frame[c] if v == v]
        assert all(0 <= v <= 1 for v in accs), accs


def _record(data: bytes, length: int | None = None, corrupt: bool = False) -> bytes:
    """One TFRecord: length, masked CRC of the length, payload, masked CRC of the payload."""
    import struct

    from tensorboard.summary.writer.record_writer import masked_crc32c

    head = struct.pack("<Q", len(data) if length is None else length)
    tail = struct.pack("<I", masked_crc32c(data) ^ (1 if corrupt else 0))
    return head + struct.pack("<I", masked_crc32c(head)) + data + tail


def _scalar(tag: str, value: float, step: int) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    ev = event_pb2.Event(wall_time=1.0, step=step)
    ev.summary.value.extend([summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return ev.SerializeToString()


records = st.one_of(
    st.tuples(st.sampled_from(["val/loss", "val/loss", "train/loss", *MARKUP]), st.floats(width=32),
              st.integers(-5, 10**6)).map(lambda t: _record(_scalar(*t))),
    st.binary(max_size=40).map(_record),  # random payloads, framed right
    st.binary(max_size=40).map(lambda b: _record(b, corrupt=True)),  # a payload CRC off by one bit
    st.tuples(st.binary(max_size=8), st.integers(0, 1 << 16)).map(lambda t: _record(t[0], t[1])),  # lengths
    st.binary(max_size=30),  # raw bytes, no framing
)  # fmt: skip


@fuzz(60)
@given(
    body=st.lists(records, max_size=6),
    cut=st.integers(0, 12),
    folder=st.sampled_from(["20M-M20", "[/red]-M20", "x"]),
    kind=special,
    config=st.one_of(st.none(), values),
)
def test_fuzz_tensorboard_records(tmp_path_factory, body, cut, folder, kind, config):
    """``import tensorboard`` on event files of generated records (random payloads and lengths,
    corrupt CRCs, a cut tail, special files): a table or one clear error, never a hang."""
    pytest.importorskip("tensorboard", reason="TensorBoard import needs the interop extra")
    root = tmp_path_factory.mktemp("tb")
    run = root / "tb" / folder
    run.mkdir(parents=True)
    f = run / "events.out.tfevents.1.host"
    if kind == "regular":
        data = b"".join([_record(_scalar("val/loss", 3.0, 0)), *body])
        f.write_bytes(data[: len(data) - cut] if cut else data)
    else:
        _special(f, kind)
    if config is not None:
        (run / "config.json").write_text(json.dumps(config, allow_nan=True))
    out = root / "out"
    with deadline():
        res = invoke(
            ["import", "tensorboard", root / "tb", "--map", "val/loss=loss_val", "--name-pattern", "{model}-M{m}",
             "-o", out / "r.csv"],
            root,
            out,
        )  # fmt: skip
    if res.exit_code == 0:
        from lmscale.run_table import RunTable

        assert all(math.isfinite(v) for v in RunTable.read(out / "r.csv").loss("val"))


@fuzz(40)
@given(
    value=values,
    key=st.sampled_from(["n_params", "n_tokens", "params", "[/red]"]),
    form=st.sampled_from(["json", "yaml", "deep-json", "deep-yaml", "bigint-yaml", "wandb"]),
    kind=special,
)
def test_fuzz_run_configs_and_map_files(tmp_path_factory, value, key, form, kind):
    """Run configs beside W&B histories and ``--map-file`` documents: generated values, deep
    nesting, integers beyond float range, special files."""
    import yaml

    root = tmp_path_factory.mktemp("rc")
    d = root / "in"
    d.mkdir()
    for name in ("20M_1B", "60M_1B", "150M_1B"):
        (d / f"{name}.csv").write_text("_step,eval/loss\n0,3.0\n10,2.5\n")
    doc = {key: {"value": value}} if form == "wandb" else {"n_tokens": 1e9, key: value}
    text = {
        "json": lambda: json.dumps(doc, allow_nan=True),
        "wandb": lambda: json.dumps(doc, allow_nan=True),
        "yaml": lambda: yaml.safe_dump(json.loads(json.dumps(doc, allow_nan=True))),
        "deep-json": lambda: "[" * 3000 + "]" * 3000,
        "deep-yaml": lambda: "a: " + "[" * 3000 + "]" * 3000,
        "bigint-yaml": lambda: f"n_params: 1{'0' * 400}\n",
    }[form]()
    suffix = ".json" if "json" in form or form == "wandb" else ".yaml"
    cfg = d / f"150M_1B.config{suffix}"
    mapfile = root / f"map{suffix}"
    if kind == "regular":
        cfg.write_text(text)
        mapfile.write_text(text if "deep" in form or "bigint" in form else "eval/loss: loss_x\n")
    else:
        _special(cfg, kind)
        _special(mapfile, kind)
    out = root / "out"
    with deadline():
        for args in (["--map", "eval/loss=loss_x"], ["--map-file", mapfile]):
            invoke(["import", "wandb-csv", d, *args, "-o", out / "r.csv"], root, out)


@fuzz(60)
@given(
    header=st.sampled_from(_EXPORT_HEADERS),
    rows=st.lists(st.lists(_export_cells, min_size=2, max_size=5), min_size=0, max_size=4),
    junk=st.binary(max_size=12),
)
def test_fuzz_wandb_exports(tmp_path_factory, header, rows, junk):
    import csv
    import io

    root = tmp_path_factory.mktemp("wandb")
    out = root / "out"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    (root / "export.csv").write_bytes(buf.getvalue().encode() + junk)
    invoke(
        ["import", "wandb-csv", root / "export.csv", "--map", "eval/loss=loss_x", "--name-pattern",
         "{run}", "--params-key", "model.n_params", "--tokens-per-param-unit", "20", "-o", out / "runs.csv"],
        root,
        out,
    )  # fmt: skip


@pytest.mark.slow
@fuzz(60)
@given(
    name=st.sampled_from(["job.json", "worker.json", "train_log.jsonl", "record.json", "ladder.json"]),
    value=values,
    as_text=st.booleans(),
    text=st.text(max_size=40),
)
def test_fuzz_ladder_status_files(tmp_path_factory, name, value, as_text, text):
    """``ladder status`` over a ladder folder with one damaged or hostile file (issue 22)."""
    from lmscale.ladder_submit import parse_minutes

    root = tmp_path_factory.mktemp("st")
    lad = root / "out"
    run_dir = lad / "runs" / "c-a-M5"
    run_dir.mkdir(parents=True)
    (lad / "ladder.json").write_text(json.dumps(LADDER))
    content = text if as_text else json.dumps(value, allow_nan=True)
    (lad / name if name == "ladder.json" else run_dir / name).write_text(content)
    res = invoke(["ladder", "status", lad, "--format", "json"], root, lad)
    if res.exit_code == 0:
        states = json.loads(res.output)
        assert {s["state"] for s in states} <= {"pending", "running", "done", "failed"}
    with contextlib.suppress(LmscaleError):
        assert parse_minutes(text) >= 1
