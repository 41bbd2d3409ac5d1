"""EleutherAI's lm-evaluation-harness over a ladder: every finished run is exported as a Hugging
Face folder (once, under ``<ladder>/hf/<run_id>``), scored by the harness offline on the named
tasks (built-in ones, or YAML tasks under ``include_path`` such as a local JSONL file with
``dataset_path: json``), and its ``acc_<task>`` (acc_norm where the task has it) written into the
run's record; ``runs.jsonl`` is rebuilt from the records."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lmscale._io import atomic_write_text
from lmscale.errors import InputError
from lmscale.interop import require
from lmscale.interop.hf import export_run
from lmscale.interop.lm_eval_results import task_accuracies
from lmscale.ladder_eval import rebuild_runs_jsonl, runs_to_evaluate
from lmscale.run_record import RunRecord, record_lock


def jsonl_task_yaml(name: str, jsonl: str | Path, folder: str | Path) -> Path:
    """A harness YAML task over a local multiple-choice JSONL file in LLM-Foundry's form
    (``query``, ``choices``, ``gold``): what ``--include_path`` needs to score it offline."""
    src = Path(jsonl).resolve()
    if not src.is_file():
        raise InputError(f"{src}: no such task file")
    out = Path(folder) / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out,
        f"task: {name}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        f"    test: {json.dumps(str(src))}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{query}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{gold}}"\n'
        "metric_list:\n"
        "  - metric: acc\n"
        "  - metric: acc_norm\n",
    )
    return out


def harness_scores(
    model_dir: str | Path,
    tasks: Sequence[str],
    *,
    include_path: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    limit: int | None = None,
    metrics: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """``acc_<task>`` of the harness's ``hf`` model on ``model_dir`` (offline)."""
    lm_eval = require("lm_eval", "running lm-evaluation-harness")
    require("accelerate", "running lm-evaluation-harness's hf model")
    from lm_eval.tasks import TaskManager

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    try:
        res: Any = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={Path(model_dir).resolve()},trust_remote_code=True",
            tasks=list(tasks),
            task_manager=manager,
            device=device,
            batch_size=batch_size,
            limit=limit,
        )
    except (KeyError, ValueError) as exc:
        raise InputError(f"lm-evaluation-harness could not run {', '.join(tasks)}: {exc}") from None
    if not res:
        raise InputError("lm-evaluation-harness returned no results")
    return task_accuracies(res, metrics, f"harness on {model_dir}")


def ladder_harness_eval(
    ladder_dir: str | Path,
    tasks: Sequence[str],
    *,
    include_path: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Score every finished run of a ladder with the harness; returns the rebuilt ``runs.jsonl``."""

    root = Path(ladder_dir)
    runs = runs_to_evaluate(root)
    try:
        for r in runs:
            hf_dir = root / "hf" / r.name
            if not (hf_dir / "model.safetensors").is_file():
                export_run(r, hf_dir, overwrite=True)
            accs = harness_scores(
                hf_dir, tasks, include_path=include_path, device=device, batch_size=batch_size, limit=limit
            )
            with record_lock(r / "record.json"):  # another evaluation may be updating it too
                RunRecord.read(r / "record.json").with_row(**accs).write(r / "record.json")
            if progress is not None:
                progress(r.name)
    finally:
        path = rebuild_runs_jsonl(root, runs)
    return path
