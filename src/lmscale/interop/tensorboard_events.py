"""Import validation losses from TensorBoard scalar event files: a folder with one sub-folder per
run (each holding ``events.out.tfevents.*``), read with the ``tensorboard`` package. A step logged
again after a resume keeps its latest value (by wall time); N and D come from mapped tags, a
``config.json|yaml`` in the run folder, or the folder name through ``--name-pattern``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lmscale.errors import InputError
from lmscale.interop import require
from lmscale.interop.mapping import ImportReport, MetricMap, NamePattern, finish
from lmscale.interop.wandb_csv import PARAMS_KEYS, TOKENS_KEYS, History, history_row


def read_scalars(run_dir: str | Path) -> History:
    """Every scalar tag of a run folder's event files as a :class:`History`."""
    ea_mod = require("tensorboard.backend.event_processing.event_accumulator", "importing TensorBoard logs")
    d = Path(run_dir)
    if not list(d.glob("events.out.tfevents.*")):
        raise InputError(f"{d}: no events.out.tfevents.* files")
    acc = ea_mod.EventAccumulator(str(d), size_guidance={ea_mod.SCALARS: 0})
    acc.Reload()
    metrics = {}
    for tag in acc.Tags().get("scalars", []):
        latest: dict[int, tuple[float, float]] = {}
        for ev in acc.Scalars(tag):
            if ev.step not in latest or ev.wall_time >= latest[ev.step][0]:
                latest[ev.step] = (ev.wall_time, float(ev.value))
        metrics[tag] = tuple((s, v) for s, (_, v) in sorted(latest.items()))
    return History(d.name, metrics)


def import_tensorboard(
    root: str | Path,
    mapping: MetricMap,
    *,
    name_pattern: str | None = None,
    step: int | None = None,
    dataset: str | None = None,
    params_keys: Sequence[str] = PARAMS_KEYS,
    tokens_keys: Sequence[str] = TOKENS_KEYS,
) -> ImportReport:
    """One run per sub-folder of ``root`` that holds event files (or ``root`` itself)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base}: not a folder of TensorBoard runs")
    dirs = sorted({p.parent for p in base.rglob("events.out.tfevents.*")})
    if not dirs:
        raise InputError(f"{base}: no events.out.tfevents.* files under it")
    pattern = NamePattern.parse(name_pattern) if name_pattern else None
    rows, skipped = [], []
    for d in dirs:
        try:
            fields = None
            if pattern is not None:
                fields = pattern.match(d.name)
                if fields is None:
                    raise InputError(f"folder name does not match {pattern.text!r}")
            config = {}
            for name in ("config.json", "config.yaml", "config.yml"):
                if (d / name).is_file():
                    config = _config(d / name)
                    break
            rows.append(
                (
                    d.name,
                    history_row(
                        read_scalars(d),
                        mapping,
                        step=step,
                        config=config,
                        name_fields=fields,
                        params_keys=params_keys,
                        tokens_keys=tokens_keys,
                        dataset=dataset,
                    ),
                )
            )
        except InputError as exc:
            skipped.append((str(d.relative_to(base)) if d != base else d.name, str(exc)))
    return finish(rows, skipped, str(base))


def _config(path: Path) -> dict:
    from collections.abc import Mapping

    from lmscale._io import read_json, read_yaml

    data = read_json(path) if path.suffix == ".json" else read_yaml(path, what="run config")
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: a run config is an object")
    return {str(k): (v["value"] if isinstance(v, Mapping) and "value" in v else v) for k, v in data.items()}
