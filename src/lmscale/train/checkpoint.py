"""Checkpoints of one run: full (unsharded) state written atomically by rank 0, read back on
resume with the RNG states, and the training log trimmed to the checkpoint's step."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lmscale._io import atomic_write, atomic_write_text
from lmscale.errors import InputError

if TYPE_CHECKING:
    from lmscale.train.loop import TrainConfig


def _rng_state() -> dict:
    """RNG states as tensors and plain Python values, so ``torch.load(weights_only=True)`` reads them."""
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(np.asarray(keys).astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def _set_rng_state(s: dict):
    torch.set_rng_state(s["torch"])
    name, keys, pos, has_gauss, gauss = s["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(tuple(s["python"][:1]) + (tuple(s["python"][1]),) + tuple(s["python"][2:]))


def save_checkpoint(
    path: Path, model, opt, step: int, cfg: TrainConfig, extra: dict, *, sharded: bool = False, rank: int = 0
):
    """Write a full (unsharded) checkpoint from rank 0. With FSDP every rank must call it: the
    shards are gathered first."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        msd, osd = get_state_dict(
            model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    else:
        msd, osd = model.state_dict(), opt.state_dict()
    if rank != 0:
        return
    state = {
        "model": msd,
        "optimizer": osd,
        "step": step,
        "config_digest": cfg.digest(),
        "rng": _rng_state(),
        "extra": extra,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()), binary=True)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which, do not guess
        raise InputError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {exc})") from None


def _log_step(line: str) -> int | None:
    try:
        step = json.loads(line).get("step")
    except (json.JSONDecodeError, AttributeError):
        return None
    return step if isinstance(step, int) else None


@dataclass
class CheckpointManager:
    """Where a run's checkpoint and log live, and how it resumes and saves."""

    folder: Path
    rank: int = 0

    @property
    def path(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.folder / "train_log.jsonl"

    def clean(self) -> None:
        """Remove temporary files of checkpoint writes cut short by a kill (rank 0)."""
        if self.rank == 0:
            for stale in self.folder.glob(".checkpoint.pt.*.tmp"):
                stale.unlink(missing_ok=True)

    def load(self, digest: str) -> dict[str, Any] | None:
        """The saved state of this configuration, or None to start fresh."""
        if not self.path.is_file():
            return None
        state = load_checkpoint(self.path)
        if state.get("config_digest") != digest:
            raise InputError(
                f"{self.path} belongs to a different configuration; remove it or use another folder"
            )
        return state

    def trim_log(self, step: int) -> None:
        """Drop log lines written after the checkpoint's step (and a line cut by a kill)."""
        if self.rank != 0 or not self.log_path.is_file():
            return
        keep = []
        for ln in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            s = _log_step(ln)
            if s is not None and s <= step:
                keep.append(ln)
        atomic_write_text(self.log_path, "".join(k + "\n" for k in keep))

    def log(self, entry: dict) -> None:
        if self.rank == 0:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")

    def save(self, model, opt, step: int, cfg: TrainConfig, extra: dict, *, sharded: bool) -> None:
        save_checkpoint(self.path, model, opt, step, cfg, extra, sharded=sharded, rank=self.rank)
