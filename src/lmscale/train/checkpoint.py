"""Checkpoints of one run, in one of two forms:

- full (``checkpoint.pt``): the whole state, gathered and written atomically by rank 0;
- sharded (``checkpoint.dcp/``, ``torch.distributed.checkpoint``): every rank writes its own shard
  in parallel, and a resume may use another number of ranks (the shards are re-split on load).
  The folder is written beside the old one and swapped in when every rank is done; the run's
  folder must be on a filesystem every rank sees.

Either is read back on resume with the RNG states, every rank checks that all resume from the same
step, and the training log is trimmed to that step."""

from __future__ import annotations

import contextlib
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lmscale._io import atomic_write, atomic_write_text, read_json
from lmscale.errors import InputError
from lmscale.train.safe_load import digest_files, read_dcp_metadata, safe_reader, verify_files

if TYPE_CHECKING:
    from lmscale.train.config import TrainConfig, TrainState


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
    path: Path,
    model,
    opt,
    step: int,
    cfg: TrainConfig,
    state: TrainState,
    *,
    sharded: bool = False,
    rank: int = 0,
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
    payload = {
        "model": msd,
        "optimizer": osd,
        "step": step,
        "config_digest": cfg.digest(),
        "rng": _rng_state(),
        "extra": state.to_dict(),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
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
            import shutil

            for stale in self.folder.glob(".checkpoint.pt.*.tmp"):
                stale.unlink(missing_ok=True)
            final, tmp, old = (self.folder / n for n in (SHARDED, f".{SHARDED}.tmp", f".{SHARDED}.old"))
            if not final.exists():  # a kill between the two renames of a sharded save
                if (tmp / "meta.json").is_file():  # the new checkpoint was complete
                    tmp.rename(final)
                elif old.exists():
                    old.rename(final)
            for stale_dir in (tmp, old):
                shutil.rmtree(stale_dir, ignore_errors=True)

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

    def save(
        self,
        model,
        opt,
        step: int,
        cfg: TrainConfig,
        state: TrainState,
        *,
        sharded: bool,
        format: str = "full",
    ) -> None:
        """``format`` ``full``: one file from rank 0 (shards gathered first under FSDP);
        ``sharded``: every rank writes its own shard (``checkpoint.dcp``)."""
        if format == "sharded":
            save_sharded(self.folder, model, opt, step, cfg, state, self.rank)
            if self.rank == 0:  # an older full checkpoint would otherwise shadow nothing but waste space
                self.path.unlink(missing_ok=True)
        else:
            save_checkpoint(self.path, model, opt, step, cfg, state, sharded=sharded, rank=self.rank)

    def latest(self) -> str | None:
        """``full`` or ``sharded``: the form of the checkpoint to resume from (the later step when
        both exist), None without one."""
        meta = read_sharded_meta(self.folder)
        if meta is None:
            return "full" if self.path.is_file() else None
        if not self.path.is_file():
            return "sharded"
        return "sharded" if meta["step"] >= int(load_checkpoint(self.path)["step"]) else "full"


SHARDED = "checkpoint.dcp"


def save_sharded(folder: Path, model, opt, step: int, cfg: TrainConfig, state: TrainState, rank: int) -> None:
    """Every rank writes its shard of model and optimiser into ``folder/checkpoint.dcp``."""
    import shutil

    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, opt)
    tmp, final, old = folder / f".{SHARDED}.tmp", folder / SHARDED, folder / f".{SHARDED}.old"
    if rank == 0 and tmp.exists():
        shutil.rmtree(tmp)
    _barrier()
    with _single_process_quiet():
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp))
    _barrier()
    if rank == 0:
        torch.save(_rng_state(), tmp / "rng.pt")
        meta = {
            "step": step,
            "config_digest": cfg.digest(),
            "extra": state.to_dict(),
            "world": _world(),
            "sha256": digest_files(tmp),  # checked before anything of the folder is read back
        }
        atomic_write_text(tmp / "meta.json", json.dumps(meta))
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        if old.exists():
            shutil.rmtree(old)
    _barrier()
    del dist


def read_sharded_meta(folder: Path) -> dict | None:
    """The sharded checkpoint's step, digest and extras (None when there is none)."""

    p = folder / SHARDED / "meta.json"
    if not p.is_file():
        return None
    meta = read_json(p)
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise InputError(f"{p}: malformed checkpoint metadata")
    return meta


def load_sharded(folder: Path, model, opt=None) -> dict:
    """Fill ``model`` (and ``opt``) from ``folder/checkpoint.dcp``, re-splitting the shards for this
    process count; returns its metadata (with the RNG state under ``rng``)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_state_dict,
        set_model_state_dict,
        set_state_dict,
    )

    meta = read_sharded_meta(folder)
    if meta is None:
        raise InputError(f"{folder}: no sharded checkpoint")
    if "sha256" in meta:
        verify_files(folder / SHARDED, meta["sha256"])
    read_dcp_metadata(folder / SHARDED / ".metadata")  # a clean refusal before DCP's own fallbacks
    reader = safe_reader(folder / SHARDED)  # its .metadata pickle admits DCP's own classes only
    try:
        if opt is None:
            only: dict[str, Any] = {"model": get_model_state_dict(model)}
            with _single_process_quiet():
                dcp.load(only, storage_reader=reader)
            set_model_state_dict(model, only["model"])
        else:
            msd, osd = get_state_dict(model, opt)
            state: dict[str, Any] = {"model": msd, "optim": osd}
            with _single_process_quiet():
                dcp.load(state, storage_reader=reader)
            set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    except CheckpointException as exc:  # DCP wraps what a rank raised, our own refusals included
        inner = [f[0] if isinstance(f, tuple) else f for f in exc.failures.values()]
        ours = next((e for e in inner if isinstance(e, InputError)), None)
        if ours is not None:
            raise InputError(str(ours)) from None
        raise InputError(
            f"{folder / SHARDED}: unreadable sharded checkpoint ({inner[0] if inner else exc})"
        ) from None
    except (RuntimeError, ValueError, KeyError) as exc:
        raise InputError(
            f"{folder / SHARDED}: unreadable sharded checkpoint ({exc.__class__.__name__}: {exc})"
        ) from None
    try:
        meta["rng"] = torch.load(folder / SHARDED / "rng.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which, do not guess
        raise InputError(
            f"{folder / SHARDED / 'rng.pt'}: unreadable ({exc.__class__.__name__}: {exc})"
        ) from None
    return meta


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def _single_process_quiet():
    """Without a process group, DCP warns that it assumes one process: that is the intent here."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def sharded_shapes(folder: Path) -> dict[str, tuple[int, ...] | None]:
    """The model tensors a sharded checkpoint holds (name → shape; None: not a tensor), read from its
    digest-checked metadata with the restricted loader, before any model is built."""
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    meta = read_sharded_meta(folder)
    if meta is None:
        raise InputError(f"{folder}: no sharded checkpoint")
    if "sha256" in meta:
        verify_files(folder / SHARDED, meta["sha256"])
    md = read_dcp_metadata(folder / SHARDED / ".metadata")
    out: dict[str, tuple[int, ...] | None] = {}
    for key, item in md.state_dict_metadata.items():
        if isinstance(key, str) and key.startswith("model."):
            size = getattr(item, "size", None) if isinstance(item, TensorStorageMetadata) else None
            out[key[len("model.") :]] = tuple(size) if size is not None else None
    return out
