"""The record of one ladder run (``runs/<id>/record.json``): written by the ladder runner when a
run finishes or fails, updated by evaluation, and read back to build ``runs.jsonl``. Torch-free."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lmscale._io import atomic_write_text, read_json
from lmscale.errors import InputError

DONE, FAILED = "done", "failed"


@dataclass(frozen=True)
class RunRecord:
    """One run's outcome. A finished run's ``row`` is its run-table row; a failed one says why."""

    #: ``done`` or ``failed``
    status: str
    #: the run's id (``<shape>-M<multiplier>``), also its folder name
    run_id: str
    #: name of the ladder the run belongs to
    ladder: str
    #: the run-table row (run_id, dataset, model, n_params, n_tokens, multiplier, flops, loss_<set>,
    #: acc_<task>, train_loss, seed, wall_seconds, data_epochs); empty for a failed run
    row: Mapping[str, Any] = field(default_factory=dict)
    #: the training configuration (:class:`lmscale.train.loop.TrainConfig` as a dict), to rebuild the model
    train_config: Mapping[str, Any] | None = None
    #: library versions the run was trained with
    versions: Mapping[str, str] = field(default_factory=dict)
    #: hash of the tokenizer and the path of its file (evaluation re-opens it): relative to the
    #: run's folder, so a ladder folder that is moved keeps working (older records: absolute)
    tokenizer_hash: str | None = None
    tokenizer_file: str | None = None
    #: a failed run: why, and at which step
    reason: str | None = None
    step: int | None = None

    def tokenizer_at(self, run_dir: str | Path) -> Path | None:
        """The tokenizer file of this run, whose record lives in ``run_dir``."""
        if not self.tokenizer_file:
            return None
        p = Path(self.tokenizer_file)
        return p if p.is_absolute() else Path(run_dir) / p

    @property
    def done(self) -> bool:
        return self.status == DONE and bool(self.row)

    def with_row(self, **values: Any) -> RunRecord:
        """A copy whose row has ``values`` added (e.g. ``acc_<task>`` accuracies)."""
        return replace(self, row={**self.row, **values})

    def to_json(self) -> dict:
        d: dict[str, Any] = {"status": self.status, "run_id": self.run_id, "ladder": self.ladder}
        if self.status == DONE:
            d["row"] = {k: _finite_or_none(v) for k, v in self.row.items()}
            d.update(
                train_config=self.train_config,
                versions=dict(self.versions),
                tokenizer_hash=self.tokenizer_hash,
                tokenizer_file=self.tokenizer_file,
            )
        else:
            d.update(reason=self.reason, step=self.step)
        return d

    @classmethod
    def from_json(cls, d: Mapping, source: str = "<record>") -> RunRecord:
        if not isinstance(d, Mapping):
            raise InputError(f"{source}: a run record must be a JSON object")
        status = d.get("status")
        if status not in (DONE, FAILED):
            raise InputError(f"{source}: run record status must be {DONE!r} or {FAILED!r}, got {status!r}")
        row = d.get("row") or {}
        if not isinstance(row, Mapping):
            raise InputError(f"{source}: 'row' must be an object")
        tc = d.get("train_config")
        if tc is not None and not isinstance(tc, Mapping):
            raise InputError(f"{source}: 'train_config' must be an object")
        return cls(
            status=status,
            run_id=str(d.get("run_id") or row.get("run_id") or ""),
            ladder=str(d.get("ladder") or ""),
            row=dict(row),
            train_config=None if tc is None else dict(tc),
            versions=dict(d.get("versions") or {}),
            tokenizer_hash=d.get("tokenizer_hash"),
            tokenizer_file=d.get("tokenizer_file"),
            reason=d.get("reason"),
            step=d.get("step"),
        )

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        return cls.from_json(read_json(path), str(path))

    def write(self, path: str | Path) -> Path:
        return atomic_write_text(path, json.dumps(self.to_json(), indent=1, allow_nan=False))


@contextlib.contextmanager
def record_lock(rec_path: str | Path) -> Iterator[None]:
    """An exclusive lock on a run's record (a ``.record.lock`` file beside it, ``flock``): who reads,
    updates and writes the record inside it never loses another process's update."""
    import fcntl

    lock = Path(rec_path).with_name(".record.lock")
    with open(lock, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def relative_to_run(path: str | Path, run_dir: str | Path) -> str:
    """``path`` as the record stores it: relative to the run's folder (``../../cache/…``)."""
    import os

    return Path(os.path.relpath(Path(path).resolve(), Path(run_dir).resolve())).as_posix()


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def finished(rec_path: str | Path) -> RunRecord | None:
    """The record of a finished run, or None when the run must be (re)done: no record, a failed one,
    or one cut short or corrupted by a crash."""
    p = Path(rec_path)
    if not p.is_file():
        return None
    try:
        record = RunRecord.read(p)
    except InputError:
        return None
    return record if record.done else None
