"""Import validation losses from TensorBoard scalar event files: a folder with one sub-folder per
run (each holding ``events.out.tfevents.*``), read with the ``tensorboard`` package. A step logged
again after a resume keeps its latest value (by wall time); N and D come from mapped tags, a
``config.json|yaml`` in the run folder, or the folder name through ``--name-pattern``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from lmscale._io import check_regular_file, read_json, read_yaml
from lmscale.errors import InputError
from lmscale.interop import require
from lmscale.interop.mapping import ImportReport, MetricMap, NamePattern, finish
from lmscale.interop.wandb_csv import PARAMS_KEYS, TOKENS_KEYS, History, RowRules, flatten_config

#: event files up to this size have every record's checksum verified (larger: the last record's)
CHECK_ALL_BYTES = 32 << 20


def scan_events(path: Path) -> list[str]:
    """Check an event file's record framing before the tensorboard reader sees it: a record whose
    stated length is beyond the file (e.g. 2^62 with a valid checksum) is refused before anything
    is allocated; a truncated or checksum-failing record (usually the last one, cut by a kill) is
    returned as a warning naming the file, since the reader drops it and everything after it."""
    import struct

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    if not path.is_file():  # a FIFO, a device or a symlink to one would block or never end
        raise InputError(f"{path}: not a regular file")
    size = path.stat().st_size
    check_all = size <= CHECK_ALL_BYTES
    with open(path, "rb") as fh:
        at, k = 0, 0
        while at < size:
            head = fh.read(12)
            if len(head) < 12:
                return [f"{path}: record {k + 1} (at byte {at}) is truncated; it was not read"]
            (length,) = struct.unpack("<Q", head[:8])
            if masked_crc32c(head[:8]) != struct.unpack("<I", head[8:])[0]:
                return [
                    f"{path}: record {k + 1} (at byte {at}) fails its length checksum; it and the "
                    f"{size - at} bytes from it were not read"
                ]
            if length > size:
                raise InputError(
                    f"{path}: record {k + 1} (at byte {at}) states a length of {length} bytes, more than "
                    f"the whole file ({size} bytes): not an event file, or a damaged one"
                )
            end = at + 12 + length + 4
            if end > size:
                return [
                    f"{path}: the last record (record {k + 1}, at byte {at}) is truncated; it was not read"
                ]
            if check_all or end == size:
                data = fh.read(length)
                if masked_crc32c(data) != struct.unpack("<I", fh.read(4))[0]:
                    last = "the last record" if end == size else "a record"
                    return [
                        f"{path}: {last} (record {k + 1}, at byte {at}) fails its data checksum; it "
                        + (
                            "was not read"
                            if end == size
                            else f"and the {size - at} bytes from it were not read"
                        )
                    ]
            else:
                fh.seek(end)
            at, k = end, k + 1
    return []


def read_scalars(run_dir: str | Path, notes: list[str] | None = None) -> History:
    """Every scalar tag of a run folder's event files as a :class:`History`; a damaged record is
    added to ``notes`` (see :func:`scan_events`)."""
    ea_mod = require("tensorboard.backend.event_processing.event_accumulator", "importing TensorBoard logs")
    d = Path(run_dir)
    files = sorted(d.glob("events.out.tfevents.*"))
    if not files:
        raise InputError(f"{d}: no events.out.tfevents.* files")
    for f in files:  # TensorBoard's reader would block on a FIFO or read a device forever
        check_regular_file(f, "TensorBoard event file")
        for warning in scan_events(f):
            if notes is not None:
                notes.append(warning)
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
    tokens_per_param_unit: float | None = None,
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
        tokens_per_param_unit,
    )
    rows: list = []
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    for d in dirs:
        try:
            rows.append(
                (
                    d.name,
                    rules.row(
                        d.name, functools.partial(read_scalars, d, notes), functools.partial(_config, d)
                    ),
                )
            )
        except InputError as exc:
            skipped.append((str(d.relative_to(base)) if d != base else d.name, str(exc)))
    return finish(rows, skipped, str(base), notes=[f"warning: {n}" for n in dict.fromkeys(notes)])


def _config(run_dir: Path) -> dict:
    """The run's ``config.json|yaml`` (what ``ladder run --log tensorboard`` writes), or {}."""
    from collections.abc import Mapping

    for name in ("config.json", "config.yaml", "config.yml"):
        path = run_dir / name
        if path.is_file():
            data = read_json(path) if path.suffix == ".json" else read_yaml(path, what="run config")
            if not isinstance(data, Mapping):
                raise InputError(f"{path}: a run config is an object")
            return flatten_config(data)
    return {}
