"""Importers (lmscale.interop): W&B history CSVs in both layouts W&B writes, a W&B project replayed
from recorded API responses, lm-evaluation-harness results, TensorBoard event files. Fixtures are
made here, in each tool's own format and with its quirks (NaN strings, missing steps, a step logged
twice after a resume)."""

import csv
import io
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.interop.mapping import NOMINAL_N, MetricMap, NamePattern, parse_size
from lmscale.interop.wandb_csv import read_history
from lmscale.interop.wandb_exports import import_wandb_csv
from lmscale.laws import OVERTRAIN
from lmscale.run_table import RunTable

TRUTH = {"A": 150.0, "B": 300.0, "c": -0.26, "E": 1.9}
SIZES = {"20M": 2e7, "60M": 6e7, "150M": 1.5e8, "400M": 4e8, "1B": 1e9}
MULTS = (5, 10, 20, 40, 80)


def _size(x: float) -> str:
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if x >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def _history_csv(losses, steps, *, every=500, resume_at=None, nan_at=()) -> str:
    """run.history() saved with pandas: _step, _runtime, _timestamp, metrics; eval only every
    ``every`` steps (blank cells between), lines replayed after a resume, NaN strings."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["_step", "_runtime", "_timestamp", "train/loss", "eval/val/c4/ce_loss", "lr"])
    rows = []
    for i, s in enumerate(steps):
        ev = "" if s % every else ("NaN" if s in nan_at else repr(losses[i]))
        rows.append([s, f"{s * 0.5:.1f}", f"{1.7e9 + s:.3f}", f"{losses[i] + 0.05:.6f}", ev, "0.0003"])
    if resume_at is not None:
        # the job logged two steps past resume_at and died; it resumed from the checkpoint two steps
        # before resume_at and logged those steps again, with new values (+1.0 on the eval loss)
        k = steps.index(resume_at)
        again = [
            [*r[:4], r[4] if r[4] in ("", "NaN") else repr(float(r[4]) + 1.0), r[5]] for r in rows[k - 2 :]
        ]
        rows = rows[: k + 3] + again
    w.writerows(rows)
    return buf.getvalue()


def _ui_csv(run: str, losses, steps) -> str:
    """The W&B web UI's chart export: quoted cells, '<run> - <metric>' columns with __MIN/__MAX."""
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    m = f"{run} - eval/val/c4/ce_loss"
    w.writerow(["Step", m, m + "__MIN", m + "__MAX"])
    for s, v in zip(steps, losses):
        w.writerow([s, v, v, v])
    return buf.getvalue()


def _ladder(folder, rng):
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for label, n in SIZES.items():
        for m in MULTS:
            d = m * n
            final = OVERTRAIN(TRUTH, n_params=n, multiplier=m) * (1 + 0.003 * rng.standard_normal())
            steps = list(range(0, 5001, 100))
            curve = [final + 2.0 * (1 - s / 5000) ** 2 for s in steps]
            name = f"{label}_{_size(d)}.csv"
            (folder / name).write_text(_history_csv(curve, steps))
            truth[name[:-4]] = (n, d, final)
    return truth


def test_sizes_patterns_and_maps():
    assert [parse_size(t) for t in ("150M", "3B", "20b", "1.4e9", "500k", "2T", 7)] == [
        1.5e8,
        3e9,
        2e10,
        1.4e9,
        5e5,
        2e12,
        7.0,
    ]
    with pytest.raises(InputError, match="k/M/B/T"):
        parse_size("lots")
    p = NamePattern.parse("{model}_{tokens}.csv")
    # a size in {model} is N only when no run-config key gives the exact count (history_row decides)
    assert p.match("150M_3B.csv") == {"model": "150M", NOMINAL_N: 1.5e8, "n_tokens": 3e9}
    assert p.match("notes.txt") is None
    q = NamePattern.parse("{dataset}-{params}-M{m}")
    assert q.match("rpj-1.4B-M20") == {"dataset": "rpj", "n_params": 1.4e9, "multiplier": 20.0}
    mm = MetricMap.build(["eval/val/*/ce_loss=loss_*", "downstream/hellaswag/acc=acc_hellaswag"])
    assert mm.apply(
        ["eval/val/c4/ce_loss", "eval/val/pile/ce_loss", "train/loss", "downstream/hellaswag/acc"]
    ) == {
        "eval/val/c4/ce_loss": "loss_c4",
        "eval/val/pile/ce_loss": "loss_pile",
        "downstream/hellaswag/acc": "acc_hellaswag",
    }
    for bad, needle in ((["x"], "SOURCE=COLUMN"), (["a=b"], "loss_<set>"), (["a=loss_*"], "'\\*'")):
        with pytest.raises(InputError, match=needle):
            MetricMap.build(bad)
    with pytest.raises(InputError, match="both map to column"):
        MetricMap.build(["eval/*=loss_x"]).apply(["eval/a", "eval/b"])


def test_history_quirks(tmp_path):
    steps = list(range(0, 3001, 100))
    losses = [3.0 + 1.0 / (1 + s) for s in steps]
    f = tmp_path / "run.csv"
    f.write_text(_history_csv(losses, steps, resume_at=2500, nan_at=(3000,)))
    h = read_history(f)
    # eval logged every 500 steps; the NaN at 3000 is missing, so the final value is 2500's, and
    # 2500 was logged twice (the re-logged line, +1.0, came later and wins)
    assert [s for s, _ in h.metrics["eval/val/c4/ce_loss"]] == [0, 500, 1000, 1500, 2000, 2500]
    assert h.value("eval/val/c4/ce_loss") == (2500, pytest.approx(losses[25] + 1.0))
    assert h.value("eval/val/c4/ce_loss", step=1200) == (1000, pytest.approx(losses[10]))
    ui = tmp_path / "export.csv"
    ui.write_text(_ui_csv("ot-150M", [4.0, 3.5, 3.25], [100, 200, 300]))
    h = read_history(ui)
    assert h.name == "ot-150M" and h.value("eval/val/c4/ce_loss") == (300, 3.25)


def test_25_csvs_then_fit_with_no_code(tmp_path):
    """The issue's acceptance: a folder of 25 per-run CSVs → lmscale import wandb-csv → lmscale fit."""
    truth = _ladder(tmp_path / "wandb", np.random.default_rng(0))
    assert len(truth) == 25
    out = tmp_path / "runs.csv"
    res = CliRunner().invoke(
        cli,
        [
            "import",
            "wandb-csv",
            str(tmp_path / "wandb"),
            "--map",
            "eval/val/c4/ce_loss=loss_c4",
            "--name-pattern",
            "{model}_{tokens}.csv",
            "--dataset",
            "web",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "imported 25 run(s); skipped 0" in res.output
    table = RunTable.read(out)
    for i, rid in enumerate(table.run_ids):
        n, d, final = truth[rid]
        assert table.column("n_params")[i] == n and table.column("n_tokens")[i] == d
        assert table.loss("loss_c4")[i] == pytest.approx(final)
    fit_path = tmp_path / "fit.json"
    res = CliRunner().invoke(
        cli, ["fit", str(out), "--target", "loss_c4", "--where", "n_params < 5e8", "-o", str(fit_path)]
    )
    assert res.exit_code == 0, res.output
    fitted = json.loads(fit_path.read_text())["params"]
    assert fitted["c"] == pytest.approx(TRUTH["c"], abs=0.05)
    big = OVERTRAIN(fitted, n_params=1e9, multiplier=20)
    assert big == pytest.approx(OVERTRAIN(TRUTH, n_params=1e9, multiplier=20), rel=0.02)


def test_bad_runs_are_skipped_with_reasons(tmp_path):
    folder = tmp_path / "w"
    _ladder(folder, np.random.default_rng(1))
    steps = [0, 500, 1000]
    (folder / "150M_badname.csv").write_text(_history_csv([4.0, 3.5, 3.0], steps))
    (folder / "60M_1B.csv").write_text(_history_csv([-4.0, -3.5, -3.0], steps))  # a 26th run, negative losses
    (folder / "20M_2B.csv").write_text("_step,train/loss\n0,5.0\n100,4.0\n")  # no eval metric logged
    rep = import_wandb_csv(
        folder, MetricMap.build(["eval/val/c4/ce_loss=loss_c4"]), name_pattern="{model}_{tokens}.csv"
    )
    why = dict(rep.skipped)
    assert len(rep.table) == 25 and set(why) == {"150M_badname.csv", "60M_1B.csv", "20M_2B.csv"}
    assert "badname" in why["150M_badname.csv"]
    assert "loss and must be positive" in why["60M_1B.csv"]
    assert "no metric maps" in why["20M_2B.csv"]
    with pytest.raises(InputError, match="no run could be imported"):
        import_wandb_csv(folder / "20M_2B.csv", MetricMap.build(["eval/val/c4/ce_loss=loss_c4"]))


def test_n_and_d_from_the_run_config(tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    steps = [0, 500, 1000]
    (folder / "fluffy-sun-3.csv").write_text(_history_csv([4.0, 3.5, 3.1], steps))
    # W&B's config.yaml form: {key: {desc, value}}
    (folder / "fluffy-sun-3.config.yaml").write_text(
        "wandb_version: 1\nmodel_params:\n  desc: null\n  value: 150M\ntrain_tokens:\n  desc: null\n  value: 3000000000\n"
    )
    rep = import_wandb_csv(folder, MetricMap.build(["eval/val/c4/ce_loss=loss_c4"]))
    t = rep.table
    assert (
        t.run_ids == ["fluffy-sun-3"] and t.column("n_params")[0] == 1.5e8 and t.column("n_tokens")[0] == 3e9
    )
    assert t.loss("loss_c4")[0] == pytest.approx(3.1) and t.column("step")[0] == 1000


# ------------------------------------------------------------------------------- W&B API replay
class _ReplayRun:
    def __init__(self, rec):
        self.name, self.id, self.config = rec["name"], rec["id"], rec["config"]
        self._history = rec["history"]

    def scan_history(self, keys=None):
        """As the client does: with ``keys``, only rows holding every key, cut to those keys."""
        self.keys_asked = keys
        if keys is None:
            return iter(self._history)
        return iter({k: r[k] for k in keys} for r in self._history if all(k in r for k in keys))


class ReplayApi:
    """Stands in for wandb.Api(): answers runs() from recorded responses."""

    def __init__(self, recording):
        self.recording = recording
        self.calls = []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        return [
            _ReplayRun(r)
            for r in self.recording[path]
            if all(r.get(k) == v for k, v in (filters or {}).items())
        ]


RECORDING = {
    "team/ladder": [
        {
            "name": f"ot-{label}-M{m}",
            "id": f"id{i}{m}",
            "state": "finished",
            "config": {"num_params": {"desc": None, "value": n}, "tokens": {"desc": None, "value": n * m}},
            "history": [
                {
                    "_step": s,
                    "_runtime": s * 0.1,
                    "train/loss": 5.0,
                    **({"eval/c4_loss": 3 + n**-0.1 + 10 / (s + 1)} if s % 200 == 0 else {}),
                }
                for s in range(0, 1001, 100)
            ]
            + [{"_step": 1000, "eval/c4_loss": float("nan")}],
        }
        for i, (label, n) in enumerate(SIZES.items())
        for m in (10, 20)
    ]
    + [{"name": "crashed", "id": "x", "state": "crashed", "config": {}, "history": []}]
}


def test_wandb_project_from_recorded_responses():
    from lmscale.interop.wandb_api import import_wandb_project

    api = ReplayApi(RECORDING)
    rep = import_wandb_project(
        "team/ladder", MetricMap.build(["eval/c4_loss=loss_c4"]), api=api, params_keys=("num_params",)
    )
    assert len(rep.table) == 10 and [s for s, _ in rep.skipped] == ["crashed"]
    i = rep.table.run_ids.index("ot-150M-M20")
    assert rep.table.column("n_tokens")[i] == 3e9
    assert rep.table.loss("loss_c4")[i] == pytest.approx(
        3 + 1.5e8**-0.1 + 10 / 1001
    )  # the NaN re-log is ignored
    rep = import_wandb_project(
        "team/ladder",
        MetricMap.build(["eval/c4_loss=loss_c4"]),
        api=api,
        filters={"state": "finished"},
        name_pattern="ot-{model}-M{m}",
    )
    assert (
        len(rep.table) == 10 and not rep.skipped and api.calls[-1] == ("team/ladder", {"state": "finished"})
    )


# ------------------------------------------------------------------------------------- lm-eval
def _results(path, pretrained, tasks):
    """What lm-evaluation-harness 0.4 writes for `--model hf --model_args pretrained=…`."""
    doc = {
        "results": {
            t: {
                "alias": t,
                **{f"{k},none": v for k, v in metrics.items()},
                **{f"{k}_stderr,none": 0.01 for k in metrics},
            }
            for t, metrics in tasks.items()
        },
        "group_subtasks": {t: [] for t in tasks},
        "configs": {t: {"task": t, "num_fewshot": 0} for t in tasks},
        "versions": dict.fromkeys(tasks, 1.0),
        "n-shot": dict.fromkeys(tasks, 0),
        "higher_is_better": {t: dict.fromkeys(m, True) for t, m in tasks.items()},
        "n-samples": {t: {"original": 100, "effective": 100} for t in tasks},
        "config": {"model": "hf", "model_args": f"pretrained={pretrained},dtype=float32", "batch_size": "8"},
        "git_hash": "abc1234",
        "date": 1732440000.0,
        "model_name": pretrained,
        "model_name_sanitized": pretrained.replace("/", "__"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))


def test_lm_eval_results_merge(tmp_path):
    runs = tmp_path / "runs.jsonl"
    rows = [
        {
            "run_id": f"r{i}",
            "dataset": "d",
            "model": "m",
            "n_params": 1e7 * (i + 1),
            "n_tokens": 2e8,
            "loss_x": 3.0,
        }
        for i in range(3)
    ]
    runs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res_dir = tmp_path / "lm_eval_out"
    _results(
        res_dir / "__x__r0" / "results_2024-11-24T10-00-00.json",
        "/x/r0",
        {"arc_easy": {"acc": 0.41, "acc_norm": 0.38}, "lambada_openai": {"acc": 0.22, "perplexity": 80.0}},
    )
    _results(
        res_dir / "__x__r1" / "results_2024-11-24T10-00-00.json",
        "/x/r1/",
        {"arc_easy": {"acc": 0.45, "acc_norm": 0.43}},
    )
    _results(
        res_dir / "__y__other" / "results_2024-11-24T10-00-00.json", "/y/other", {"arc_easy": {"acc": 0.5}}
    )
    out = tmp_path / "merged.csv"
    res = CliRunner().invoke(cli, ["import", "lm-eval", str(runs), str(res_dir), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "matches no run" in res.output and "skipped 1" in res.output
    t = RunTable.read(out)
    assert t.accuracy("arc_easy").tolist()[:2] == [0.38, 0.43]  # acc_norm by default
    assert math.isnan(t.accuracy("arc_easy")[2]) and t.accuracy("lambada_openai")[0] == 0.22
    res = CliRunner().invoke(
        cli,
        [
            "import",
            "lm-eval",
            str(runs),
            str(res_dir / "__x__r0"),
            "--metric",
            "arc_easy=acc",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0 and RunTable.read(out).accuracy("arc_easy")[0] == 0.41
    res = CliRunner().invoke(
        cli, ["import", "lm-eval", str(runs), str(res_dir / "__y__other"), "--run-id", "r2", "-o", str(out)]
    )
    assert res.exit_code == 0 and RunTable.read(out).accuracy("arc_easy")[2] == 0.5
    res = CliRunner().invoke(
        cli, ["import", "lm-eval", str(runs), str(res_dir / "__y__other"), "-o", str(out)]
    )
    assert res.exit_code == 2 and "no results file matched a run" in res.output


# --------------------------------------------------------------------------------- TensorBoard
def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard import needs the interop extra")
    from torch.utils.tensorboard import SummaryWriter

    for label, n in list(SIZES.items())[:3]:
        d = tmp_path / "tb" / f"{label}-M20"
        w = SummaryWriter(str(d))
        for s in range(0, 1001, 250):
            w.add_scalar("val/loss", 3 + n**-0.1 + 1 / (s + 1), s, walltime=1000 + s)
            w.add_scalar("train/loss", 4.0, s, walltime=1000 + s)
        w.close()
        w = SummaryWriter(str(d))  # a resume re-logs step 1000 later: that value wins
        w.add_scalar("val/loss", 2.5, 1000, walltime=9000)
        w.close()
    out = tmp_path / "runs.parquet"
    res = CliRunner().invoke(
        cli,
        [
            "import",
            "tensorboard",
            str(tmp_path / "tb"),
            "--map",
            "val/loss=loss_val",
            "--name-pattern",
            "{model}-M{m}",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    t = RunTable.read(out)
    assert len(t) == 3 and np.allclose(t.loss("loss_val"), 2.5) and np.allclose(t.column("multiplier"), 20)
    assert sorted(t.column("n_params").tolist()) == sorted(list(SIZES.values())[:3])


def test_missing_extras_are_named():
    from lmscale.interop import require

    with pytest.raises(InputError, match=r"pip install 'lmscale\[interop\]'"):
        require("no_such_module_for_lmscale", "a test")


def test_lm_eval_nan_tokens_fall_back_to_the_next_metric(tmp_path):
    """Python's json writes a bare NaN (e.g. the stderr of one sample); acc_norm NaN falls back to acc."""
    from lmscale.interop.lm_eval_results import merge_lm_eval

    runs = RunTable.from_records(
        [{"run_id": "r", "dataset": "d", "model": "m", "n_params": 1e7, "n_tokens": 2e8, "loss_x": 3.0}]
    )
    (tmp_path / "results.json").write_text(
        '{"results": {"t": {"acc,none": 0.5, "acc_stderr,none": NaN, "acc_norm,none": NaN}}}'
    )
    rep = merge_lm_eval(runs, tmp_path / "results.json", run_id="r")
    assert rep.table.accuracy("t")[0] == 0.5
