"""What every paper analysis shares: the setting (fit spec, validation loss, task split, training
sets, method) and the :class:`~lmscale.study.Study` that fits under it, so that twelve analyses fit
each law once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmscale import testbed
from lmscale.errors import InputError, LmscaleError
from lmscale.fit.method import check_method
from lmscale.fit.result import FitResult
from lmscale.paper_constants import PAPER_VAL_SET, TRAIN_SET_NAMES
from lmscale.run_table import RunTable
from lmscale.selection import FitSpec, preset
from lmscale.study import Study
from lmscale.tasks import SPLITS, resolve_split


def split_target(split: str) -> str:
    """Fitting target of a task split: ``17-task`` → ``error_17``; a task list → ``error:<list>``."""
    if split in SPLITS:
        return "error_" + split.split("-", maxsplit=1)[0]
    return "error:" + split


def split_label(split: str) -> str:
    if split in SPLITS:
        return split
    n = len(resolve_split(split))
    return f"{n}-task custom"


@dataclass(frozen=True)
class Setting:
    """The configuration an analysis runs under (defaults: the paper's, PAPER.md §4)."""

    #: which runs fit the loss law, which the error law, which are held out
    spec: FitSpec = field(default_factory=lambda: preset("paper-default"))
    #: the validation loss of Figure 1, Table 6 and the chained error predictions
    val_set: str = PAPER_VAL_SET
    #: the downstream task split of the error law: ``17-task``, ``46-task`` or comma-separated tasks;
    #: empty for a loss-only analysis (a run table without accuracies)
    split: str = "17-task"
    #: training sets to analyse (default: all in the run table)
    train_sets: tuple[str, ...] | None = None
    #: fitting method of the headline fits. Deliberately ``paper``, not lmscale's ``default`` (the
    #: default everywhere else): the paper report (``lmscale reproduce``) reproduces the authors'
    #: numerics, and its output must not move when lmscale's default does
    method: str = "paper"
    #: validation losses of the heat maps (default: all)
    val_sets: tuple[str, ...] | None = None

    def __post_init__(self):
        check_method(self.method)

    def describe(self) -> str:
        return (
            f"fit spec `{self.spec.name}`, validation loss `{self.val_set}`, "
            f"split {split_label(self.split) if self.split else 'none (loss only)'}, "
            f"method `{self.method}`"
        )


class Context:
    """Run table + setting + the :class:`Study` that fits under it. All analyses take one; each law
    is fitted once, by the study."""

    def __init__(self, runs: RunTable, setting: Setting | None = None, *, metadata=None, grid_path=None):
        self.runs = runs
        self.setting = setting or Setting()
        self.metadata = metadata
        self.grid_path = grid_path
        s = self.setting
        self.val_set = s.val_set.removeprefix("loss_")
        if self.val_set not in runs.val_sets:
            raise InputError(f"unknown validation set {s.val_set!r}; known: {', '.join(runs.val_sets)}")
        if s.split:
            resolve_split(s.split, runs.tasks)  # unknown task names fail here, before any fitting
        self._target = split_target(s.split) if s.split else None
        self.study = Study(
            runs,
            s.spec,
            s.method,
            train_sets=s.train_sets,
            val_sets=s.val_sets,
            error_targets=(self._target,) if self._target else (),
        )
        self.train_sets = self.study.train_sets
        self.val_sets = self.study.val_sets

    @classmethod
    def from_testbed(cls, testbed_dir: str | Path, setting: Setting | None = None) -> Context:
        """The paper's testbed folder (``exp_data``) with its task metadata and hyper-parameter grid
        when present: what ``lmscale reproduce --out`` and the report benchmark build on."""

        root = Path(testbed_dir)
        try:
            metadata = testbed.load_task_metadata(root)
        except LmscaleError:
            metadata = None
        grid = root / "grid.json"
        return cls(testbed.load(root), setting, metadata=metadata, grid_path=grid if grid.is_file() else None)

    # -- runs (the study's) ----------------------------------------------------------------------
    def dataset(self, train_set: str) -> RunTable:
        return self.study.dataset(train_set)

    def loss_runs(self, train_set: str) -> RunTable:
        return self.study.loss_runs(train_set)

    def error_runs(self, train_set: str) -> RunTable:
        return self.study.error_runs(train_set)

    def heldout(self, train_set: str) -> RunTable:
        return self.study.heldout_runs(train_set)

    # -- fits: the setting's validation loss and split unless named ----------------------------
    def loss_fit(self, train_set: str, val_set: str | None = None) -> FitResult:
        return self.study.loss_fit(train_set, val_set or self.val_set)

    def error_fit(self, train_set: str, target: str | None = None, runs: RunTable | None = None) -> FitResult:
        """Error law of ``target`` (default: the setting's split) against the setting's validation
        loss, on the spec's error-fit runs (or on ``runs``)."""
        return self.study.error_fit(train_set, self.val_set, target or self.target, runs=runs)

    @property
    def target(self) -> str:
        """The error law's target (``error_17``, ``error:<tasks>``); a loss-only setting has none,
        and an analysis that needs one is skipped with this error."""
        if self._target is None:
            raise InputError("no downstream target: a loss-only setting (give a task split)")
        return self._target

    def predict_loss(
        self, train_set: str, n_params: float, multiplier: float, val_set: str | None = None
    ) -> float:
        return self.study.predict_loss(train_set, val_set or self.val_set, n_params, multiplier)

    def predict_losses(self, train_set: str, n_params, multiplier, val_set: str | None = None) -> np.ndarray:
        """:meth:`predict_loss` of many runs (arrays): the centered value for the default method."""
        return self.study.predict_losses(train_set, val_set or self.val_set, n_params, multiplier)

    def target_run(self, train_set: str, which: str) -> int:
        return self.study.target_run(train_set, which)

    def observed(self, train_set: str, index: int, target: str) -> float:
        return self.study.observed(train_set, index, target)


#: the paper's names of its model sizes (it truncates 0.4116B to 0.411B)
PAPER_SIZE_LABELS = {
    10569312: "0.011B",
    78914048: "0.079B",
    153677376: "0.154B",
    411616256: "0.411B",
    1439795200: "1.4B",
    6889410560: "6.9B",
}


def size_label(n_params: float) -> str:
    """0.011B, 0.079B, …, 1.4B, 6.9B: the paper's way of naming sizes."""
    if round(n_params) in PAPER_SIZE_LABELS:
        return PAPER_SIZE_LABELS[round(n_params)]
    b = n_params / 1e9
    if b >= 1:
        return f"{b:.1f}B"
    if n_params >= 1e7:
        return f"{b:.3f}B"
    return f"{n_params / 1e6:.2f}M" if n_params >= 1e6 else f"{n_params / 1e3:.0f}K"


@dataclass(frozen=True)
class Analysis:
    """The outcome of one analysis (frozen: figures and the report read it, nothing edits it)."""

    #: the analysis' key in the report (``figure1``, ``table6``, …)
    key: str
    #: its section title
    title: str
    #: a short markdown text with the key numbers
    text: str
    #: tables by name (written as CSV and JSON); raw values, labels are added at presentation
    tables: Mapping[str, pd.DataFrame]
    #: what the figures plot (curves, fitted laws)
    data: Mapping[str, Any] = field(default_factory=dict)
    #: headline numbers, by name (what tests and the report summary quote)
    numbers: Mapping[str, Any] = field(default_factory=dict)


def md_escape(value: object) -> str:
    """Text from the data (run ids, task and set names) made inert in markdown: a ``|`` would end a
    table cell, ``[…](…)`` would make a link, ``<https://…>`` an autolink (``<`` is written as the
    entity ``&lt;``). (Raw HTML is never rendered: see the report writer.)"""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;")
    for ch in ("\\", "|", "[", "]", "`"):
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


def md_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A small GitHub-flavoured markdown table from already formatted cells (escaped here)."""
    lines = [
        "| " + " | ".join(md_escape(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def train_set_name(ts: str) -> str:
    return TRAIN_SET_NAMES.get(ts, ts)
