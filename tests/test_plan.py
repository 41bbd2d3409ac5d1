"""The ladder planner (issue 14): proposals with cost and expected error, and an honest check."""

import json

import pytest
from click.testing import CliRunner

from conftest import ROOT
from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.plan import plan, validate_leave_one_out
from lmscale.predict import ScalePoint


def test_plan_cli_json_for_the_6_9b_target(testbed_dir, tmp_path):
    res = CliRunner().invoke(
        cli,
        [
            "plan",
            "--target-params",
            "6.9e9",
            "--target-multiplier",
            "20",
            "--evidence",
            str(testbed_dir),
            "--budget",
            "1e20",
            "--format",
            "json",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    # a backtest fit that lands far out overflows inside numpy: handled, never printed at the user
    assert "RuntimeWarning" not in res.stderr
    out = json.loads(res.stdout)
    assert {p["choice"] for p in out["proposals"]} == {"cheaper", "recommended", "safer"}
    for p in out["proposals"]:
        assert p["flops"] <= 1e20 and p["n_runs"] == len(p["runs"]) >= 5
        assert sum(r["flops"] for r in p["runs"]) == pytest.approx(p["flops"])
        assert all(r["n_params"] < 6.9e9 / 2 and r["multiplier"] > 0 for r in p["runs"])
        lo, hi = p["expected_interval"]
        assert 0 <= lo <= p["expected_rel_error"] <= hi and p["gpu_hours"] > 0
    rec = next(p for p in out["proposals"] if p["choice"] == "recommended")
    # a 1.45x selection correction, a 0.2-24% range around 3.02%; docs/plan.md is generated from
    # the same command's output, committed as benchmarks/results/plan.json
    assert out["selection_bias"] == pytest.approx(1.448, abs=0.005)
    assert rec["expected_rel_error"] == pytest.approx(0.0302, abs=5e-4)
    assert rec["expected_interval"] == pytest.approx([0.0018, 0.2362], abs=5e-4)
    assert all(rec["expected_rel_error"] <= p["expected_rel_error"] for p in out["proposals"])
    assert (tmp_path / "plan.png").stat().st_size > 1000 and (tmp_path / "plan.json").is_file()
    committed = json.loads((ROOT / "benchmarks" / "results" / "plan.json").read_text(encoding="utf-8"))
    assert committed["selection_bias"] == pytest.approx(out["selection_bias"], rel=1e-6)
    for mine, theirs in zip(committed["proposals"], out["proposals"], strict=True):
        assert mine["choice"] == theirs["choice"] and mine["sizes"] == theirs["sizes"]
        assert mine["expected_rel_error"] == pytest.approx(theirs["expected_rel_error"], rel=1e-6)
        assert mine["flops"] == pytest.approx(theirs["flops"], rel=1e-9)


def test_a_candidate_whose_backtest_blows_up_is_ruled_out_and_said_so(testbed_runs):
    from lmscale.plan_grid import nothing_to_propose

    msg = nothing_to_propose(testbed_runs, 5, {"budget": 0, "max_runs": 0, "evidence": 0, "diverged": 5})
    assert "5 have a backtest fit on the evidence whose prediction is not finite" in msg


def test_plan_refuses_what_it_cannot_plan(testbed_runs):
    with pytest.raises(InputError, match="no candidate ladder"):
        plan(testbed_runs, ScalePoint.make(6.9e9, multiplier=20), budget_flops=1e10)
    with pytest.raises(InputError, match="at least two \\(allowed\\) model sizes"):
        plan(testbed_runs, ScalePoint.make(1e7, multiplier=20))
    with pytest.raises(InputError, match="at least 5 runs"):
        plan(testbed_runs, ScalePoint.make(6.9e9, multiplier=20), max_runs=3)


@pytest.mark.slow
def test_leave_one_training_set_out_validation(testbed_runs):
    """docs/plan.md's numbers: realised error inside the planner's 90% range in 88% of 48 cases at a 1e20
    budget (goal: 80%), at most its upper end in all of them."""
    rows = validate_leave_one_out(testbed_runs, budget_flops=1e20)
    assert len(rows) == 48
    inside = sum(r.inside for r in rows) / len(rows)
    below = sum(r.at_most_high for r in rows) / len(rows)
    assert inside == pytest.approx(0.875, abs=0.01) and below == pytest.approx(1.0)
    assert inside >= 0.8
    raw = validate_leave_one_out(testbed_runs, budget_flops=1e20, correct_selection=False)
    assert sum(r.inside for r in raw) / len(raw) == pytest.approx(0.708, abs=0.01)


def test_plan_with_combined_evidence_and_allowed_sizes(testbed_runs):
    from lmscale.plan import combine
    from lmscale.run_table import RunTable

    own = RunTable.read(ROOT / "examples" / "cpu-small" / "runs.jsonl")
    both = combine([testbed_runs, own])
    assert set(both.datasets) == set(testbed_runs.datasets) | {"python"}
    allowed = [1.0569312e7, 7.8914048e7, 1.53677376e8]
    p = plan(both, ScalePoint.make(6.9e9, multiplier=20), budget_flops=1e20, allowed_sizes=allowed)
    for c in p.candidates:
        assert set(c.sizes) <= set(allowed)
    with pytest.raises(InputError, match="share training-set names"):
        combine([own, own])
    with pytest.raises(InputError, match="allowed"):
        plan(testbed_runs, ScalePoint.make(6.9e9, multiplier=20), allowed_sizes=[1e7])
