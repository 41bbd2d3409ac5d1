"""A fuzz suite (issue 15): hypothesis generates hostile and careless inputs — run tables, saved
fits, ladder configs, task suites and items, command-line options — and every one must end in a
result or in one clear error: never a traceback, a non-zero exit that names the input, and no write
outside the output folder. About 500 generated inputs per run (derandomised: the same
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

from conftest import ROOT
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
        assert str(path) in res.output or "run" in res.output, res.output


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
