"""What a team brings from its real workflow (issue 21): the W&B runs-table export and multi-run
chart exports, Chinchilla multiples, nested run configs, lm-evaluation-harness results stored by
checkpoint, a W&B client without a login. Every fixture is written here in the tool's own format."""

import csv
import io
import json
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner

from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.interop.mapping import MetricMap
from lmscale.interop.wandb_exports import import_wandb_csv
from lmscale.laws import OVERTRAIN
from lmscale.run_table import RunTable

TRUTH = {"A": 150.0, "B": 300.0, "c": -0.26, "E": 1.9}
SIZES = {"20M": 2e7, "60M": 6e7, "150M": 1.5e8, "300M": 3e8, "700M": 7e8, "1B": 1e9}
KS = (0.5, 1, 2, 5, 10)
LOSS = "eval/c4_en/CrossEntropyLoss"
META = ["Name", "State", "Notes", "User", "Tags", "Created", "Runtime", "Sweep"]


def _exact_n(nominal: float) -> float:
    """A real model's parameter count is never the round number in its name."""
    return float(round(nominal * 1.037))


def _runs_table(path, rng, *, extra_rows=()):
    """The W&B project page's "Export CSV": one row per run, bookkeeping columns, the nested run
    config flattened to dotted columns, then each run's summary metrics."""
    header = [
        *META,
        "model.n_params",
        "model.d_model",
        "optimizer.lr",
        "train/CrossEntropyLoss",
        LOSS,
        "_step",
    ]
    rows, truth = [], {}
    for label, nominal in SIZES.items():
        for k in KS:
            n = _exact_n(nominal)
            loss = OVERTRAIN(TRUTH, n_params=n, multiplier=20 * k) * (1 + 0.002 * rng.standard_normal())
            name = f"olmo-{label}-{k:g}xC"
            truth[name] = (n, 20 * k * n, loss)
            rows.append(
                [name, "finished", "", "team", "ladder", "2024-11-20T10:00:00", "3600", "", n, 512,
                 "0.0003", f"{loss + 0.1:.6f}", repr(loss), 5000]
            )  # fmt: skip
    rows += list(extra_rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue())
    return truth


def test_olmo_runs_table_export_imports_fits_and_predicts_within_2_percent(tmp_path):
    """The acceptance run: 30 OLMo-style runs, nested config, 0.5–10 xC; import, fit on the smaller
    sizes and predict the largest, all from the command line."""
    crashed = ["olmo-1B-20xC", "crashed", "", "team", "", "", "", "", 1e9, 512, "", "", "", ""]
    truth = _runs_table(tmp_path / "wandb_export.csv", np.random.default_rng(0), extra_rows=[crashed])
    runner = CliRunner()
    res = runner.invoke(
        cli,
        ["import", "wandb-csv", str(tmp_path / "wandb_export.csv"), "--map", f"{LOSS}=loss_c4_en",
         "--name-pattern", "olmo-{model}-{k}xC", "--params-key", "model.n_params", "-o", str(tmp_path / "runs.csv")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "imported 30 run(s); skipped 1" in res.output and "state is 'crashed'" in res.output
    table = RunTable.read(tmp_path / "runs.csv")
    i = table.run_ids.index("olmo-150M-2xC")
    assert table.column("n_params")[i] == _exact_n(1.5e8)  # the config's exact count, not the name's
    assert table.column("n_tokens")[i] == pytest.approx(40 * _exact_n(1.5e8))  # 2xC = 40 tokens/param
    res = runner.invoke(
        cli,
        ["fit", str(tmp_path / "runs.csv"), "--target", "loss_c4_en", "--where", "n_params < 900M",
         "-o", str(tmp_path / "fit.json")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "M* (compute-optimal)" in res.output and "warning" not in res.output
    errs = []
    for k in KS:
        n, d, loss = truth[f"olmo-1B-{k:g}xC"]
        res = runner.invoke(
            cli, ["predict", str(tmp_path / "fit.json"), "--n-params", f"{n:.0f}", "--tokens", f"{d / 1e9:.6g}B",
                  "--format", "json"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        errs.append(abs(json.loads(res.output)["loss"] / loss - 1))
    assert max(errs) < 0.02, errs


def test_chinchilla_multiples_without_a_unit_are_flagged(tmp_path):
    """'{m}xC' read as tokens per parameter gives M < 1 and a fitted M* far outside [1, 1000]: both
    are warned about; --tokens-per-param-unit 20 fixes the import."""
    _runs_table(tmp_path / "export.csv", np.random.default_rng(1))
    runner = CliRunner()
    args = ["import", "wandb-csv", str(tmp_path / "export.csv"), "--map", f"{LOSS}=loss_c4_en",
            "--name-pattern", "olmo-{model}-{m}xC", "--params-key", "model.n_params"]  # fmt: skip
    res = runner.invoke(cli, [*args, "-o", str(tmp_path / "bad.csv")])
    assert res.exit_code == 0 and "M = D/N < 1" in res.output and "Chinchilla" in res.output
    res = runner.invoke(cli, ["fit", str(tmp_path / "bad.csv"), "--target", "loss_c4_en"])
    assert res.exit_code == 0 and "M* =" in res.output and "outside [1, 1000]" in res.output
    res = runner.invoke(cli, [*args, "--tokens-per-param-unit", "20", "-o", str(tmp_path / "good.csv")])
    assert res.exit_code == 0 and "M = D/N < 1" not in res.output
    assert RunTable.read(tmp_path / "good.csv").column("multiplier").min() == 10.0


def test_n_far_from_the_name_is_flagged(tmp_path):
    rows = [
        {"run_id": f"olmo-{label}-1xC", "dataset": "d", "model": label, "n_params": n / 1e6,
         "n_tokens": 20 * n, "loss_x": 3.0}
        for label, n in SIZES.items()
    ]  # fmt: skip
    from lmscale.sanity import table_warnings

    (w,) = table_warnings(RunTable.from_records(rows))
    assert "6 run(s) have N and D more than 10×" in w and "olmo-20M-1xC" in w


def test_multi_run_chart_export(tmp_path):
    """A chart exported with several runs: 'Step', '<run> - metric', '__MIN'/'__MAX' companions."""
    runs = {"olmo-20M-1xC": 4.1, "olmo-60M-1xC": 3.7, "olmo-150M-1xC": 3.4}
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    cols = [c for r in runs for c in (f"{r} - {LOSS}", f"{r} - {LOSS}__MIN", f"{r} - {LOSS}__MAX")]
    w.writerow(["Step", *cols])
    for s in range(0, 1001, 250):
        vals = []
        for r, final in runs.items():
            v = "" if (r == "olmo-60M-1xC" and s == 1000) else repr(final + (1000 - s) / 1000)
            vals += [v, v, v]
        w.writerow([s, *vals])
    (tmp_path / "chart.csv").write_text(buf.getvalue())
    rep = import_wandb_csv(tmp_path / "chart.csv", MetricMap.build([f"{LOSS}=loss_c4"]),
                           name_pattern="olmo-{model}-{k}xC")  # fmt: skip
    t = rep.table
    assert sorted(t.run_ids) == sorted(runs)
    assert t.loss("loss_c4")[t.run_ids.index("olmo-20M-1xC")] == 4.1
    assert t.loss("loss_c4")[t.run_ids.index("olmo-60M-1xC")] == pytest.approx(3.95)  # last logged
    assert t.column("step")[t.run_ids.index("olmo-60M-1xC")] == 750


def test_nested_config_keys_and_the_keys_listed(tmp_path):
    hist = "_step,eval/loss\n0,5.0\n100,3.5\n"
    for name, n in (("a", 1e8), ("b", 2e8)):
        (tmp_path / f"{name}.csv").write_text(hist)
        cfg = {"model": {"desc": None, "value": {"n_params": n, "d_model": 256}},
               "data": {"desc": None, "value": {"tokens": 20 * n}}}  # fmt: skip
        (tmp_path / f"{name}.config.json").write_text(json.dumps(cfg))
    m = MetricMap.build(["eval/loss=loss_x"])
    rep = import_wandb_csv(tmp_path, m, params_keys=("model.n_params",), tokens_keys=("data.tokens",))
    assert rep.table.column("n_tokens").tolist() == [2e9, 4e9]
    with pytest.raises(InputError) as exc:
        import_wandb_csv(tmp_path, m, params_keys=("n_params",), tokens_keys=("data.tokens",))
    msg = str(exc.value)
    assert "model.n_params" in msg and "model.d_model" in msg and "--params-key" in msg
    # one reason, two runs: one line with a count, not a line per run
    assert msg.count("n_params not found") == 1 and "skipped 2:" in msg


# ------------------------------------------------------------------------------------- lm-eval
def _harness(path, pretrained, tasks, *, shots=0, limit=None):
    """lm-evaluation-harness 0.4's results file for `--model hf --model_args pretrained=…`."""
    doc = {
        "results": {t: {"alias": t, **{f"{k},none": v for k, v in m.items()}} for t, m in tasks.items()},
        "configs": {t: {"task": t, "num_fewshot": shots} for t in tasks},
        "n-shot": dict.fromkeys(tasks, shots),
        "n-samples": {t: {"original": 2376, "effective": limit or 2376} for t in tasks},
        "config": {
            "model": "hf",
            "model_args": f"pretrained={pretrained},trust_remote_code=True",
            "limit": limit,
        },
        "model_name": pretrained,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _olmo_runs(tmp_path):
    rows = [
        {"run_id": f"olmo-{label}-1xC", "dataset": "d", "model": label, "n_params": n, "n_tokens": 20 * n,
         "loss_c4": 3.0}
        for label, n in SIZES.items()
    ]  # fmt: skip
    path = tmp_path / "runs.csv"
    RunTable.from_records(rows).write(path)
    return path


def test_lm_eval_results_under_checkpoint_folders_merge(tmp_path):
    runs = _olmo_runs(tmp_path)
    out = tmp_path / "lm_eval"
    ck = "/scratch/ckpt"
    for label in ("20M", "60M"):
        for step, acc in ((1000, 0.30), (5000, 0.44)):
            _harness(out / f"olmo-{label}-1xC" / f"step{step}-unsharded-hf" / "results_2024-11-24.json",
                     f"{ck}/olmo-{label}-1xC/step{step}-unsharded-hf", {"arc_easy": {"acc": acc}})  # fmt: skip
    _harness(out / "five" / "results.json", f"{ck}/olmo-20M-1xC/step5000-unsharded-hf",
             {"arc_easy": {"acc": 0.99, "acc_norm": 0.98}}, shots=5)  # fmt: skip
    _harness(out / "lim" / "results.json", f"{ck}/olmo-150M-1xC/step5000-unsharded-hf",
             {"hellaswag": {"acc": 0.3, "acc_norm": 0.31}}, limit=100)  # fmt: skip
    for i in range(4):
        _harness(out / f"other{i}" / "results.json", f"{ck}/gpt2-{i}/step1-hf", {"arc_easy": {"acc": 0.5}})
    res = CliRunner().invoke(
        cli, ["import", "lm-eval", str(runs), str(out), "--path-pattern", "{run}/step{step}-unsharded-hf",
              "-o", str(tmp_path / "merged.csv")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    t = RunTable.read(tmp_path / "merged.csv")
    i = t.run_ids.index("olmo-20M-1xC")
    assert t.accuracy("arc_easy")[i] == 0.44  # the 0-shot score of the last checkpoint …
    assert t.accuracy("arc_easy_5shot")[i] == 0.98  # … kept apart from the 5-shot one
    assert t.accuracy("hellaswag")[t.run_ids.index("olmo-150M-1xC")] == 0.31
    assert "--limit" in res.output and "hellaswag = acc_norm" in res.output and "arc_easy = acc" in res.output
    assert res.output.count("matches no run") == 1 and "skipped 4:" in res.output  # grouped
    # without a pattern, any path component that is a run id matches
    res = CliRunner().invoke(cli, ["import", "lm-eval", str(runs), str(out), "-o", str(tmp_path / "m2.csv")])
    assert res.exit_code == 0 and RunTable.read(tmp_path / "m2.csv").accuracy("arc_easy")[i] == 0.44


# ------------------------------------------------------------------------------------- W&B API
def test_wandb_without_a_login_is_one_line(monkeypatch):
    class NoLogin(Exception):
        pass

    def api():
        raise NoLogin("api_key not configured (no-tty). call wandb.login(key=[your_api_key])\nmore text")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=api))
    res = CliRunner().invoke(
        cli, ["import", "wandb", "team/ladder", "--map", "eval/loss=loss_x", "-o", "x.csv"]
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "wandb login" in res.output and "more text" not in res.output


def test_wandb_fetches_only_mapped_keys():
    from lmscale.interop.wandb_api import import_wandb_project

    class Run:
        def __init__(self, name, n, summary):
            self.name, self.id, self.config, self.summary = (
                name,
                name,
                {"n_params": n, "n_tokens": 20 * n},
                summary,
            )
            self.asked = None

        def scan_history(self, keys=None):
            self.asked = keys
            rows = [{"_step": 10, "eval/loss": 3.2, "train/loss": 3.0, "lr": 1e-3}]
            return iter({k: r[k] for k in keys} for r in rows if all(k in r for k in keys))

    class Api:
        def __init__(self):
            self.made = [Run("a", 1e8, {"eval/loss": 3.1, "train/loss": 3.0, "_step": 10}), Run("b", 2e8, {})]

        def runs(self, path, filters=None):
            return self.made

    api, seen = Api(), []
    rep = import_wandb_project(
        "t/p", MetricMap.build(["eval/loss=loss_x"]), api=api, progress=lambda *a: seen.append(a)
    )
    a, b = api.made
    assert a.asked is None and b.asked == ["_step", "eval/loss"]  # summary, else only the mapped keys
    assert rep.table.loss("loss_x").tolist() == [3.1, 3.2] and seen == [(1, 2, "a"), (2, 2, "b")]
