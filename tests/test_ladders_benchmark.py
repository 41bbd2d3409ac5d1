"""The multi-lab ladder benchmark (lmscale.benchmark.ladders): loaders, the one split rule, the
leave-one-lab-out references, and its CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from lmscale.benchmark import ladder_tables as T
from lmscale.benchmark import ladders as L
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.laws import OVERTRAIN


def _synthetic(tmp_path, name="lab_x", seed=0):
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(1e7, 1.6e9, 10)
    rows = []
    for n in sizes:
        for m in (5, 10, 20, 40, 80):
            loss = OVERTRAIN.formula(
                {"A": 8e2, "B": 1.2e3, "c": -0.3, "E": 1.8}, {"n_params": n, "multiplier": m}
            )
            rows.append(
                dict(
                    run_id=f"{name}-{n:.3g}-{m}",
                    dataset="x",
                    model=f"m{n:.3g}",
                    n_params=int(n),
                    n_tokens=int(n * m),
                    multiplier=float(m),
                    flops=6 * n * n * m,
                    loss_val=loss * (1 + 0.002 * rng.standard_normal()),
                )
            )
    path = tmp_path / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_splits_follow_the_rule(tmp_path):
    (lad,) = L.load(_synthetic(tmp_path))
    sp = {s.name: s for s in L.splits(lad)}
    size = sp["size"]
    assert lad.n_params[size.fit].max() <= lad.n_params.max() / L.SIZE_FIT_RATIO
    assert lad.n_params[size.heldout].min() >= L.SIZE_GAP * lad.n_params[size.fit].max()
    assert not np.any(size.fit & size.heldout)
    comp = sp["compute"]
    assert lad.flops[comp.heldout].min() >= 0.999 * L.COMPUTE_GAP * lad.flops[comp.fit].max()


def test_a_law_ladder_is_predicted_well_and_scored(tmp_path):
    (lad,) = L.load(_synthetic(tmp_path))
    rows = L.run([lad], L.METHODS[:2], n_resamples=30, references="shipped")
    for r in rows:
        assert r["mean_abs_error"] < 0.01, r  # a ladder that follows Eq. 4 is extrapolated to ~noise
        assert 0 <= r["coverage_90"] <= 1 and r["median_width_90"] > 0
    assert "| lab_x | size |" in T.markdown_table(rows)
    assert T.summary(rows)[0]["ratio"] > 0


def test_leave_one_lab_out_references_never_use_their_own_lab(tmp_path):
    a = L.load(_synthetic(tmp_path, "lab_a", 1))[0]
    b = L.load(_synthetic(tmp_path, "lab_b", 2))[0]
    refs = L.lab_references([a, b], n_resamples=0)
    assert set(refs) == {"lab_a", "lab_b"}
    assert "lab_b" in refs["lab_a"].description and "lab_a" not in refs["lab_a"].description
    assert refs["lab_a"].source == "reference"


def test_bad_ladders_are_named(tmp_path):
    p = tmp_path / "few.csv"
    pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "dataset": "x",
            "model": "m",
            "n_params": [1e7, 2e7],
            "n_tokens": [1e8, 2e8],
            "loss_x": [3.0, 2.9],
        }
    ).to_csv(p, index=False)
    with pytest.raises(InputError, match="usable runs"):
        L.load(p)
    with pytest.raises(InputError, match="no such ladder"):
        L.load(tmp_path / "nope.csv")


def test_cli_benchmark_on_ladders(tmp_path):
    path = _synthetic(tmp_path)
    res = CliRunner().invoke(
        cli, ["benchmark", "accuracy", "--ladder", str(path), "--resamples", "0", "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout[res.stdout.index("[") :])
    assert {r["method"] for r in rows} == {m.name for m in L.METHODS}
    assert all(r["coverage_90"] is None for r in rows)  # no intervals without resamples: null, not NaN
    res = CliRunner().invoke(cli, ["benchmark", "accuracy"])
    assert res.exit_code == 2 and "--ladder" in res.output


def test_public_ladders_load_with_their_splits(shared_ladders, epoch_csv):
    lads = {lad.name: lad for p in [*shared_ladders.values(), epoch_csv] for lad in L.load(p)}
    assert {"porian_owt2", "porian_rw", "gemstones", "chinchilla"} <= set(lads)
    assert lads["porian_rw"].lab == lads["porian_owt2"].lab == "porian"
    sp = {s.name: s for s in L.splits(lads["porian_owt2"])}
    # the split: fit N ≤ 0.11B (52 runs), predict the 0.15–0.9B runs (36)
    assert int(sp["size"].fit.sum()) == 52 and int(sp["size"].heldout.sum()) == 36
    assert {s.name for s in L.splits(lads["gemstones"])} == {"size", "compute"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00garbage\n\x80", "not UTF-8"),
        (b"", "empty file"),
        (b"Model Size,Training FLOP,loss\n1e9,1e20,3\nabc,1e20,2\n", "line 3, column 'Model Size': 'abc'"),
    ],
)
def test_hostile_ladder_files_are_named_errors(tmp_path, content, message):
    p = tmp_path / "ladder.csv"
    p.write_bytes(content)
    with pytest.raises(InputError, match=message):
        L.load(p)
    res = CliRunner().invoke(cli, ["benchmark", "accuracy", "--ladder", str(p), "--resamples", "0"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_rows_left_out_are_counted_and_said(tmp_path):
    path = _synthetic(tmp_path)
    df = pd.read_csv(path)
    df.loc[3, "loss_val"] = float("nan")
    df.to_csv(path, index=False)
    (lad,) = L.load(path)
    assert lad.n_dropped == 1 and len(lad.loss) == len(df) - 1
    rows = L.run([lad], L.METHODS[:1], n_resamples=0)
    assert all(r["n_dropped_runs"] == 1 for r in rows)
    assert "lab_x: 1 row(s) left out" in T.markdown_table(rows)
