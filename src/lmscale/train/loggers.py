"""Training metrics to the tools people watch: TensorBoard event files and Weights & Biases
(offline by default, synced later with ``wandb sync``). Both are optional extras; rank 0 logs.

Per step (every ``log_every``): ``train/loss``, ``train/lr``, ``train/tokens``,
``train/tokens_per_second``; per run, after training: ``val/<set>`` (the validation losses)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lmscale._io import atomic_write_text
from lmscale.errors import InputError

KINDS = ("tensorboard", "wandb")


class MetricLogger(Protocol):
    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardLogger:
    """Scalars into ``folder`` (one sub-folder per run: what TensorBoard and ``lmscale import
    tensorboard`` read), with the run's configuration beside them as ``config.json``."""

    def __init__(self, folder: Path, config: Mapping[str, Any] | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise InputError(
                "TensorBoard logging needs the tensorboard package: pip install 'lmscale[interop]'"
            ) from None
        self.writer = SummaryWriter(str(folder))
        if config:
            import json

            atomic_write_text(Path(folder) / "config.json", json.dumps(dict(config), indent=1, default=str))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run per ladder run, offline unless ``WANDB_MODE`` says otherwise; its files go under
    ``folder`` (``wandb/offline-run-*``)."""

    def __init__(self, folder: Path, run_name: str, group: str, config: Mapping[str, Any]):
        try:
            import wandb
        except ImportError:
            raise InputError("W&B logging needs the wandb package: pip install 'lmscale[interop]'") from None
        folder.mkdir(parents=True, exist_ok=True)
        # typed Any on purpose: wandb annotates ``mode`` as a Literal of its modes (and checks the
        # value itself); a `type: ignore` here would be unused wherever wandb is not installed
        mode: Any = os.environ.get("WANDB_MODE", "offline")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "lmscale"),
            name=run_name,
            group=group,
            dir=str(folder),
            mode=mode,
            config=dict(config),
            reinit="create_new",
        )

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


def make_loggers(
    kinds: Sequence[str], folder: Path, run_name: str, group: str, config: Mapping[str, Any]
) -> list[MetricLogger]:
    """The loggers named in ``kinds`` for one run (``folder``: the ladder's ``logs/``)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"unknown logger(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    out: list[MetricLogger] = []
    for k in dict.fromkeys(kinds):
        if k == "tensorboard":
            out.append(TensorBoardLogger(folder / "tensorboard" / run_name, config))
        else:
            out.append(WandbLogger(folder, run_name, group, config))
    return out
