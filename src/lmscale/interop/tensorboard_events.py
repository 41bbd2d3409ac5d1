"""Import validation losses from TensorBoard scalar event files: a folder with one sub-folder per
run (each holding ``events.out.tfevents.*``), read with the ``tensorboard`` package. A step logged
again after a resume keeps its latest value (by wall time); N and D come from mapped tags, a
``config.json|yaml`` in the run folder, or the folder name through ``--name-pattern``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from lmscale._io import check_regular_file
from lmscale.errors import InputError
from lmscale.interop import require
from lmscale.interop.mapping import ImportReport, MetricMap, NamePattern, finish
from lmscale.interop.wandb_csv import PARAMS_KEYS, TOKENS_KEYS, History, RowRules, flatten_config


def read_scalars(run_dir: str | Path) -> History:
    """Every scalar tag of a run folder's event files as a :class:`History`."""
    ea_mod = require("tensorboard.backend.event_processing.event_accumulator", "importing TensorBoard logs")
    d = Path(run_dir)
    files = list(d.glob("events.out.tfevents.*"))
    if not files:
        raise InputError(f"{d}: no events.out.tfevents.* files")
    for f in files:  # TensorBoard's reader would block on a FIFO or read a device forever
        check_regular_file(f, "TensorBoard event file")
    acc = ea_mod.EventAccumulator(str(d), size_guidance={ea_mod.SCALARS: 0})
    from google.protobuf.message import DecodeError  # TensorBoard's own dependency

    try:
        acc.Reload()
    except DecodeError as exc:  # a record framed right (length, CRCs) around bytes that are no event
        raise InputError(f"{d}: an event record is not a TensorBoard event ({exc})") from None
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
    rules = RowRules(
        mapping,
        NamePattern.parse(name_pattern) if name_pattern else None,
        step,
        dataset,
        params_keys,
        tokens_keys,
    )
    rows, skipped = [], []
    for d in dirs:
        try:
            rows.append(
                (d.name, rules.row(d.name, functools.partial(read_scalars, d), functools.partial(_config, d)))
            )
        except InputError as exc:
            skipped.append((str(d.relative_to(base)) if d != base else d.name, str(exc)))
    return finish(rows, skipped, str(base))


def _config(run_dir: Path) -> dict:
    """The run's ``config.json|yaml`` (what ``ladder run --log tensorboard`` writes), or {}."""
    from collections.abc import Mapping

    from lmscale._io import read_json, read_yaml

    for name in ("config.json", "config.yaml", "config.yml"):
        path = run_dir / name
        if path.is_file():
            data = read_json(path) if path.suffix == ".json" else read_yaml(path, what="run config")
            if not isinstance(data, Mapping):
                raise InputError(f"{path}: a run config is an object")
            return flatten_config(data)
    return {}
