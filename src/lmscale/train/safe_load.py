"""Reading checkpoints someone else may have written, without running their code.

- A sharded checkpoint's ``.metadata`` is a pickle. :class:`SafeReader` reads it with an unpickler
  that admits only the classes a ``torch.distributed.checkpoint`` metadata file holds (its own
  dataclasses, ``torch.Size``, dtypes, paths); anything else is refused before it is called.
- :func:`digest_files` / :func:`verify_files`: lmscale records the SHA-256 of every file of a
  sharded checkpoint in its ``meta.json`` at save time and checks them before loading.
- :func:`check_state`: a model state against the model a record describes, compared on the meta
  device (no memory is allocated for the shapes), so a checkpoint from another shape, with a
  missing or an extra tensor, is a one-line error naming the tensor."""

from __future__ import annotations

import pathlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lmscale._io import sha256_file
from lmscale.errors import InputError

#: files of a sharded checkpoint that are not covered by its digest (the digest lives in meta.json)
UNHASHED = ("meta.json",)
_DCP_MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem")


class _MetadataUnpickler(pickle.Unpickler):
    """Resolves only the globals a DCP metadata file names; the source is named on refusal."""

    def __init__(self, fh, source: str):
        super().__init__(fh)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        import torch

        if module in _DCP_MODULES and not name.startswith("__"):
            obj = getattr(__import__(module, fromlist=[name]), name, None)
            if isinstance(obj, type) and obj.__module__ == module:
                return obj
        if module == "torch":
            obj = getattr(torch, name, None)
            if obj is torch.Size or isinstance(obj, (torch.dtype, torch.layout, torch.memory_format)):
                return obj
        if module == "torch.serialization" and name == "_get_layout":
            return torch.serialization._get_layout
        if module == "pathlib" and name in ("PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"):
            return getattr(pathlib, name)
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        raise InputError(
            f"{self.source}: refused to load: the checkpoint metadata names {module}.{name}, "
            "which is not part of a torch.distributed.checkpoint metadata file"
        )


def read_dcp_metadata(path: Path):
    """The ``Metadata`` of a DCP ``.metadata`` file, unpickled with the restricted loader."""
    from torch.distributed.checkpoint.metadata import Metadata

    try:
        with open(path, "rb") as fh:
            meta = _MetadataUnpickler(fh, str(path)).load()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed pickle: name the file, do not guess
        raise InputError(
            f"{path}: unreadable checkpoint metadata ({exc.__class__.__name__}: {exc})"
        ) from None
    if not isinstance(meta, Metadata) or not isinstance(getattr(meta, "state_dict_metadata", None), dict):
        raise InputError(f"{path}: not a torch.distributed.checkpoint metadata file")
    return meta


def safe_reader(folder: Path):
    """A ``FileSystemReader`` for ``folder`` whose metadata goes through :func:`read_dcp_metadata`."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any):
            rank = kwargs.get("rank")
            meta = read_dcp_metadata(Path(self._get_metadata_path(rank)))
            if getattr(meta, "storage_meta", None) is None:
                meta.storage_meta = StorageMeta()
            meta.storage_meta.load_id = self.load_id
            return meta

    return SafeReader(str(folder))


def _sha256_all(paths: list[Path]) -> list[str]:
    """SHA-256 of many files at once (hashlib releases the GIL: one thread per core), so a
    checkpoint of many shards costs about its largest shard's read time, not their sum."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    if len(paths) <= 1:
        return [sha256_file(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1, 16)) as pool:
        return list(pool.map(sha256_file, paths))


def digest_files(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of ``folder`` (its meta.json aside), by name."""
    paths = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name not in UNHASHED]
    return dict(zip([p.name for p in paths], _sha256_all(paths)))


def verify_files(folder: Path, digests: Any) -> None:
    """Every file the digest names is there with that SHA-256, and no other file is (meta.json aside)."""
    if not isinstance(digests, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
    ):
        raise InputError(f"{folder / 'meta.json'}: malformed file digests")
    present = {p.name for p in folder.iterdir() if p.name not in UNHASHED}
    extra = sorted(present - set(digests))
    if extra:
        raise InputError(
            f"{folder}: refused to load: {extra[0]} is not one of the files this checkpoint saved"
        )
    for name in digests:
        if "/" in name or name.startswith(".."):
            raise InputError(f"{folder / 'meta.json'}: malformed file name {name!r} in its digests")
        if not (folder / name).is_file():
            raise InputError(f"{folder}: refused to load: {name} is missing")
    names = sorted(digests)
    for name, got in zip(names, _sha256_all([folder / n for n in names])):
        if got != digests[name]:
            raise InputError(
                f"{folder / name}: refused to load: its SHA-256 differs from the one recorded when it "
                "was saved (damaged or altered)"
            )


def expected_shapes(model_cfg: Any, where: str) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the model a record's ``model`` config describes, built on the
    meta device (no memory for the weights); unknown or missing keys are named."""
    import dataclasses

    import torch

    from lmscale.train.model import ModelConfig, Transformer

    if not isinstance(model_cfg, Mapping):
        raise InputError(f"{where}: train_config.model must be an object, got {type(model_cfg).__name__}")
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(model_cfg) - set(fields))
    if unknown:
        raise InputError(f"{where}: train_config.model has unknown key {unknown[0]!r}")
    missing = [
        n
        for n, f in fields.items()
        if n not in model_cfg
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise InputError(f"{where}: train_config.model lacks key {missing[0]!r}")
    try:
        cfg = ModelConfig(**model_cfg)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    with torch.device("meta"):
        model = Transformer(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_state(state: Any, expected: Mapping[str, tuple[int, ...]], where: str) -> None:
    """``state`` (a loaded checkpoint) holds a ``model`` state with exactly the expected tensors."""
    import torch

    if not isinstance(state, Mapping):
        raise InputError(f"{where}: the checkpoint is a {type(state).__name__}, not a saved training state")
    msd = state.get("model")
    if not isinstance(msd, Mapping):
        raise InputError(f"{where}: the checkpoint has no model state ('model')")
    check_shapes(
        {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in msd.items()}, expected, where
    )


def check_shapes(found: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], where: str) -> None:
    """The same tensor names with the same shapes (None: not a tensor)."""
    for name, shape in expected.items():
        if name not in found:
            raise InputError(f"{where}: the checkpoint lacks tensor {name!r}")
        if found[name] is None:
            raise InputError(f"{where}: the checkpoint's {name!r} is not a tensor")
        if tuple(found[name]) != tuple(shape):
            raise InputError(
                f"{where}: tensor {name!r} has shape {list(found[name])}, the record's model needs {list(shape)} "
                "(a checkpoint of another shape)"
            )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise InputError(f"{where}: the checkpoint has an extra tensor {extra[0]!r} the record's model lacks")
