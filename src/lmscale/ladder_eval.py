"""Evaluate trained runs on task suites and write the accuracies into their run records
(``acc_<task>``, the schema the fitting code reads). It loads checkpoints through ``train/`` and
scores them through ``evaluate/``, so it sits above both, beside :mod:`lmscale.ladder_run`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from lmscale._io import atomic_write_text
from lmscale.errors import InputError
from lmscale.evaluate.icl import TaskConfig, load_items, score
from lmscale.run_record import RunRecord, finished, record_lock


def load_run(run_dir: str | Path, device: str | None = None):
    """(model, tokenizer, record) of a ladder run folder (``checkpoint.pt`` + ``record.json``), the
    model on ``device`` (default: the CPU). The checkpoint is checked against the record's model
    (every tensor's name and shape) before the model is built."""
    from tokenizers import Tokenizer

    from lmscale.train.model import ModelConfig, Transformer
    from lmscale.train.safe_load import check_shapes, check_state, expected_shapes

    d = Path(run_dir)
    rec_path, ckpt = d / "record.json", d / "checkpoint.pt"
    sharded = (d / "checkpoint.dcp" / "meta.json").is_file()
    if not rec_path.is_file() or not (ckpt.is_file() or sharded):
        raise InputError(
            f"{d} is not a finished run folder (needs record.json and checkpoint.pt or checkpoint.dcp)"
        )
    record = RunRecord.read(rec_path)
    if not record.done or record.train_config is None:
        raise InputError(f"{rec_path}: not the record of a finished run (status {record.status!r})")
    tok_file = record.tokenizer_at(d)
    if tok_file is None or not tok_file.is_file():
        raise InputError(f"{rec_path}: its tokenizer file {record.tokenizer_file!r} is missing")
    where = f"run {d.name} ({d})"
    expected = expected_shapes(record.train_config.get("model"), where)
    model_cfg = ModelConfig(**record.train_config["model"])
    if ckpt.is_file():
        from lmscale.train.checkpoint import load_checkpoint

        state = load_checkpoint(ckpt)
        check_state(state, expected, where)
        model = Transformer(model_cfg)
        model.load_state_dict(state["model"])
    else:
        from lmscale.train.checkpoint import load_sharded, sharded_shapes

        check_shapes(sharded_shapes(d), expected, where)
        model = Transformer(model_cfg)
        load_sharded(d, model)
    if device is not None:
        model = model.to(device)
    try:
        tok = Tokenizer.from_file(str(tok_file))
    except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception on malformed files
        raise InputError(f"{tok_file}: not a tokenizers JSON file ({exc})") from None
    return model, tok, record


def eval_run(
    run_dir: str | Path,
    tasks: Sequence[TaskConfig],
    *,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    device: str | None = None,
) -> dict[str, float]:
    """Score every task; store ``acc_<label>`` in the run's record; return the accuracies. The
    record is re-read and merged under a lock when written, so two evaluations of one run at once
    (different tasks) keep both's accuracies."""
    model, tok, _record = load_run(run_dir, device)
    accs = eval_tasks(model, tok, tasks, limit=limit, progress=progress)
    rec_path = Path(run_dir) / "record.json"
    with record_lock(rec_path):
        RunRecord.read(rec_path).with_row(**accs).write(rec_path)
    return accs


def eval_tasks(
    model,
    tokenizer,
    tasks: Sequence[TaskConfig],
    *,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """``acc_<label>`` of any model with lmscale's scorer (a ladder run's, or a Hugging Face one
    through :func:`lmscale.interop.hf.load_hf_model`)."""
    accs = {}
    for t in tasks:
        accs["acc_" + t.label] = score(model, tokenizer, t, load_items(t), limit=limit).accuracy
        if progress is not None:
            progress(t.label)
    return accs


def runs_to_evaluate(root: Path) -> list[Path]:
    """The finished runs of a ladder folder, or an error saying there are none."""
    runs = finished_runs(root)
    if not runs:
        raise InputError(f"{root}: no finished runs to evaluate")
    return runs


def finished_runs(ladder_dir: str | Path) -> list[Path]:
    """The run folders of a ladder whose record says finished, in name order."""
    root = Path(ladder_dir)
    return sorted(p for p in (root / "runs").glob("*") if finished(p / "record.json") is not None)


def ladder_eval(
    ladder_dir: str | Path,
    tasks: Sequence[TaskConfig],
    *,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    skip_done: bool = False,
    device: str | None = None,
) -> Path:
    """Evaluate every finished run of a ladder and rewrite ``runs.jsonl`` from the records.
    ``skip_done``: leave runs whose record already has every task's accuracy."""
    root = Path(ladder_dir)
    runs = runs_to_evaluate(root)
    try:
        for r in runs:
            record = finished(r / "record.json")
            if skip_done and record is not None and all("acc_" + t.label in record.row for t in tasks):
                if progress is not None:
                    for t in tasks:
                        progress(t.label)
            else:
                eval_run(r, tasks, limit=limit, progress=progress, device=device)
    finally:  # runs.jsonl always mirrors the records, also when one run's evaluation fails or is killed
        path = rebuild_runs_jsonl(root, runs)
    return path


def rebuild_runs_jsonl(ladder_dir: str | Path, runs: Sequence[Path]) -> Path:
    """``runs.jsonl`` of a ladder from its runs' records (finished ones only)."""
    records = [finished(r / "record.json") for r in runs]
    return atomic_write_text(
        Path(ladder_dir) / "runs.jsonl",
        "".join(json.dumps(x.to_json()["row"]) + "\n" for x in records if x is not None),
    )
