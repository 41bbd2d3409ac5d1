"""Downstream tasks: metadata and random baselines, task splits, the above-chance selection rule,
and resolution of fitting targets (``loss_<set>``, ``error_46``, ``error_17``, ``error_<task>``).

Top-1 error of a run on a split is the uniform mean of ``1 − accuracy`` over the split's tasks
(PAPER.md §3).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmscale.errors import InputError
from lmscale.paper_constants import PAPER_17, PAPER_46, PAPER_REFERENCE_N
from lmscale.run_table import ACC_PREFIX, LOSS_PREFIX, RunTable

#: Named splits; a target ``error_<split-without-"-task">`` averages over one.
SPLITS: dict[str, tuple[str, ...]] = {"46-task": PAPER_46, "17-task": PAPER_17}


@dataclass(frozen=True)
class TaskInfo:
    """Metadata of one downstream task (from ``eval_metadata.csv`` or a suite file)."""

    name: str
    category: str
    kind: str
    shots: int
    size: int
    random_baseline: float  # accuracy of random guessing, as a fraction


def read_task_metadata(path: str | Path) -> dict[str, TaskInfo]:
    """Read the testbed's ``eval_metadata.csv`` (random baselines in percent)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: task metadata file not found")
    out: dict[str, TaskInfo] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"Eval Task", "Task Category", "Task Type", "#shots", "#datapoints", "Random baseline"}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for lineno, row in enumerate(reader, 2):
            try:
                info = TaskInfo(
                    row["Eval Task"].strip(),
                    row["Task Category"],
                    row["Task Type"],
                    int(row["#shots"]),
                    int(row["#datapoints"]),
                    float(row["Random baseline"]) / 100.0,
                )
            except ValueError as exc:
                raise InputError(f"{path}, line {lineno}: {exc}") from None
            out[info.name] = info
    return out


def resolve_split(split: str | Sequence[str], available: Iterable[str] | None = None) -> tuple[str, ...]:
    """A split name (``46-task``, ``17-task``) or a list / comma-separated string of task names."""
    if isinstance(split, str):
        tasks = SPLITS[split] if split in SPLITS else tuple(t.strip() for t in split.split(",") if t.strip())
    else:
        tasks = tuple(split)
    if not tasks:
        raise InputError(f"empty task split {split!r}")
    if available is not None:
        known = set(available)
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise InputError(
                f"unknown task name(s) {', '.join(unknown)} in split {split!r}; "
                f"known splits: {', '.join(SPLITS)}"
            )
    return tasks


def average_error(runs: RunTable, split: str | Sequence[str]) -> np.ndarray:
    """Mean top-1 error (1 − accuracy) over the split's tasks, one value per run."""
    tasks = resolve_split(split, runs.tasks)
    acc = np.column_stack([runs.accuracy(t) for t in tasks])
    return 1.0 - acc.mean(axis=1)


def random_error(baselines: Mapping[str, TaskInfo | float], split: str | Sequence[str]) -> float:
    """Top-1 error of random guessing averaged over a split."""
    tasks = resolve_split(split, baselines.keys())
    vals = [b.random_baseline if isinstance(b, TaskInfo) else float(b) for b in (baselines[t] for t in tasks)]
    return 1.0 - float(np.mean(vals))


def above_chance_tasks(
    runs: RunTable,
    baselines: Mapping[str, TaskInfo | float],
    *,
    threshold_points: float = 10.0,
    reference_n_params: float = PAPER_REFERENCE_N,
    candidates: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """Tasks on which at least one run of size ``reference_n_params`` (any M, any dataset)
    scores at least ``threshold_points`` percentage points above the random baseline."""
    ref = runs.subset(np.isclose(runs.column("n_params").astype(float), reference_n_params, rtol=1e-6))
    if len(ref) == 0:
        raise InputError(
            f"{runs.source}: no run has n_params = {reference_n_params:.6g}, the reference size "
            "of the above-chance rule"
        )
    names = (
        list(candidates) if candidates is not None else [t for t in PAPER_46 if t in runs.tasks] or runs.tasks
    )
    chosen = []
    for task in names:
        if task not in baselines:
            raise InputError(f"no random baseline for task {task!r}")
        b = baselines[task]
        base = b.random_baseline if isinstance(b, TaskInfo) else float(b)
        # compare in percentage points, rounded to avoid 1e-16 noise deciding membership
        margin = np.round(100.0 * (ref.accuracy(task) - base), 9)
        if np.nanmax(margin) >= threshold_points:
            chosen.append(task)
    return tuple(chosen)


def target_values(runs: RunTable, target: str) -> np.ndarray:
    """Values of a fitting target for every run.

    ``loss_<set>``: validation loss; ``error_46`` / ``error_17``: mean error over the paper's
    splits; ``error:<split>``: mean error over a named split or comma-separated task list;
    ``error_<task>``: 1 − accuracy on one task; ``acc_<task>``: accuracy.
    """
    if target.startswith(LOSS_PREFIX):
        return runs.loss(target)
    if target.startswith(ACC_PREFIX):
        return runs.accuracy(target)
    if target.startswith("error:"):  # error:<split name or comma-separated tasks>
        return average_error(runs, target[len("error:") :])
    if target.startswith("error_"):
        rest = target[len("error_") :]
        if f"{rest}-task" in SPLITS:
            return average_error(runs, f"{rest}-task")
        if rest in runs.tasks:
            return 1.0 - runs.accuracy(rest)
        raise InputError(
            f"{runs.source}: unknown target {target!r}: neither a split "
            f"({', '.join('error_' + s.split('-')[0] for s in SPLITS)}) nor a task"
        )
    raise InputError(
        f"unknown target {target!r}: use loss_<validation set>, error_46, error_17, "
        "error:<split or tasks>, error_<task> or acc_<task>"
    )
