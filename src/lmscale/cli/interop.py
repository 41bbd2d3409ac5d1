"""``lmscale import wandb-csv|wandb|lm-eval|tensorboard`` (run tables from other tools) and
``lmscale export`` (a ladder run as a Hugging Face model)."""

from __future__ import annotations

import click

from lmscale.cli._common import out, warn
from lmscale.cli.progress import LadderProgress


def _mapping_options(f):
    for opt in reversed(
        [
            click.option(
                "--map",
                "maps",
                multiple=True,
                help="SOURCE=COLUMN, e.g. 'eval/val/c4/ce_loss=loss_c4'; globs allowed ('eval/*/loss=loss_*'). Repeat.",
            ),
            click.option(
                "--map-file", type=click.Path(exists=True, dir_okay=False), help="YAML/JSON {source: column}."
            ),
            click.option(
                "--name-pattern",
                help="Fields from each run's name, e.g. '{model}_{tokens}.csv' (sizes like 150M, 3B, 20B).",
            ),
            click.option(
                "--step", type=click.IntRange(min=0), help="Use this step (default: the last logged)."
            ),
            click.option(
                "--dataset",
                help="Training-set name for every run (default: from the pattern, else 'default').",
            ),
            click.option("--params-key", "params_keys", multiple=True, help="Run-config key(s) holding N."),
            click.option("--tokens-key", "tokens_keys", multiple=True, help="Run-config key(s) holding D."),
            click.option(
                "--tokens-per-param-unit",
                "unit",
                type=click.FloatRange(min=0, min_open=True),
                help="Tokens per parameter of one unit of the name's multiplier field, e.g. 20 when "
                "runs are named in Chinchilla multiples ('{m}xC'; a '{k}' field is such units, 20 by default).",
            ),
            click.option(
                "-o",
                "--out",
                "out_path",
                required=True,
                type=click.Path(dir_okay=False),
                help="Run table to write (.csv, .jsonl or .parquet).",
            ),
        ]
    ):
        f = opt(f)
    return f


def _common(maps, map_file, params_keys, tokens_keys, unit):
    from lmscale.interop.mapping import MetricMap
    from lmscale.interop.wandb_csv import PARAMS_KEYS, TOKENS_KEYS

    return MetricMap.build(maps, map_file), {
        "params_keys": tuple(params_keys) or PARAMS_KEYS,
        "tokens_keys": tuple(tokens_keys) or TOKENS_KEYS,
        "tokens_per_param_unit": unit,
    }


def _write(report, out_path) -> None:
    path = report.table.write(out_path)
    lines = report.lines()
    out.print(f"wrote {path}: {lines[0]}")
    for line in lines[1:]:
        if line.startswith(("skipped", "warning: ")):
            warn(line.removeprefix("warning: "))
        else:
            out.print(line)


@click.group("import")
def import_group():
    """Run tables from other tools: W&B CSV exports or projects, lm-evaluation-harness results, TensorBoard."""


@import_group.command("wandb-csv")
@click.argument("folder", type=click.Path(exists=True))
@_mapping_options
def import_wandb_csv_cmd(
    folder, maps, map_file, name_pattern, step, dataset, params_keys, tokens_keys, unit, out_path
):
    """W&B CSV exports → a run table: a folder of per-run history CSVs, chart exports holding one or
    several runs ('<run> - metric' columns), or the project's runs-table export (one row per run:
    Name, State, config columns, summary metrics). The layout is read from each file's header."""
    from lmscale.interop.wandb_exports import import_wandb_csv

    mapping, keys = _common(maps, map_file, params_keys, tokens_keys, unit)
    _write(
        import_wandb_csv(folder, mapping, name_pattern=name_pattern, step=step, dataset=dataset, **keys),
        out_path,
    )


@import_group.command("wandb")
@click.argument("project")
@_mapping_options
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help="KEY=VALUE filters of the W&B runs query (e.g. state=finished).",
)
def import_wandb_cmd(
    project, maps, map_file, name_pattern, step, dataset, params_keys, tokens_keys, unit, out_path, filters
):
    """Every run of a W&B project (ENTITY/PROJECT) → a run table (needs the wandb extra and a login)."""
    from lmscale.interop.wandb_api import import_wandb_project

    mapping, keys = _common(maps, map_file, params_keys, tokens_keys, unit)
    query = dict(f.split("=", 1) for f in filters if "=" in f)
    with LadderProgress(0, "import wandb", transient=True) as bar:

        def progress(i, n, name):
            bar.total = n
            bar.advance(f"run {name}")

        report = import_wandb_project(
            project,
            mapping,
            filters=query,
            name_pattern=name_pattern,
            step=step,
            dataset=dataset,
            progress=progress,
            **keys,
        )
    _write(report, out_path)


@import_group.command("tensorboard")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@_mapping_options
def import_tensorboard_cmd(
    folder, maps, map_file, name_pattern, step, dataset, params_keys, tokens_keys, unit, out_path
):
    """A folder of TensorBoard runs (one sub-folder of event files per run) → a run table."""
    from lmscale.interop.tensorboard_events import import_tensorboard

    mapping, keys = _common(maps, map_file, params_keys, tokens_keys, unit)
    _write(
        import_tensorboard(folder, mapping, name_pattern=name_pattern, step=step, dataset=dataset, **keys),
        out_path,
    )


@import_group.command("lm-eval")
@click.argument("runs", type=click.Path(exists=True, dir_okay=False))
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="TASK=METRIC (default per task: acc_norm where present, else acc).",
)
@click.option("--run-id", help="The run these results belong to (one results file).")
@click.option(
    "--path-column", help="Run-table column holding each run's model path (matched to pretrained=…)."
)
@click.option(
    "--path-pattern",
    help="Pattern over the model path's last components, e.g. '{run}/step{step}-unsharded-hf' "
    "(default: any path component that is a run id; several checkpoints of a run: the largest step).",
)
@click.option(
    "-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Run table to write."
)
def import_lm_eval_cmd(runs, results, metrics, run_id, path_column, path_pattern, out_path):
    """Merge lm-evaluation-harness results JSON files (or folders of them) into RUNS as acc_<task>
    columns (acc_<task>_<k>shot for k-shot scores); the metric taken per task is reported."""
    from lmscale.errors import InputError
    from lmscale.interop.lm_eval_results import merge_lm_eval
    from lmscale.run_table import RunTable

    chosen = {}
    for m in metrics:
        task, sep, metric = m.partition("=")
        if not sep or not task or not metric:
            raise InputError(f"--metric {m!r}: expected TASK=METRIC, e.g. arc_easy=acc")
        chosen[task] = metric
    report = merge_lm_eval(
        RunTable.read(runs),
        list(results),
        metrics=chosen,
        run_id=run_id,
        path_column=path_column,
        path_pattern=path_pattern,
    )
    _write(report, out_path)


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--to", "to", required=True, type=click.Path(file_okay=False), help="Folder to write the model into."
)
@click.option("--overwrite", is_flag=True, help="Write into a folder that is not empty.")
def export_cmd(run_dir, to, overwrite):
    """A finished ladder run as a Hugging Face model folder (AutoModelForCausalLM, trust_remote_code)."""
    from lmscale.interop.hf import export_run

    path = export_run(run_dir, to, overwrite=overwrite)
    out.print(
        f"wrote {path}: load it with transformers.AutoModelForCausalLM.from_pretrained({str(path)!r}, "
        "trust_remote_code=True), or score it with lm_eval --model hf --model_args "
        f"pretrained={path},trust_remote_code=True"
    )


COMMANDS = (import_group, export_cmd)
