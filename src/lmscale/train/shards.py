"""Token shards on disk: written incrementally, read as one flat array; and token files made
elsewhere registered as a prepared corpus."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from lmscale._io import atomic_write_text, check_regular_file
from lmscale.errors import InputError
from lmscale.train.tokens import EOT

FORMAT = "lmscale.prepared/1"
#: the file that marks a folder as one lmscale prepared: without it, nothing there is overwritten
MARKER = ".lmscale-prepared"
#: names lmscale writes in a prepared folder
OWN_NAMES = ("manifest.json", "tokenizer.json")


def _is_own_name(name: str) -> bool:
    return name in OWN_NAMES or (name.endswith(".bin") and name.startswith(("train-", "val-")))


def claim_folder(folder: Path, *, keep: Sequence[Path] = ()) -> None:
    """Make ``folder`` one lmscale may write its prepared files into, or refuse: a folder without
    lmscale's marker that already holds a ``manifest.json``, ``tokenizer.json`` or shard name is
    someone else's (``keep``: files of theirs that are inputs, e.g. a tokenizer or token files
    registered in place, and are never written). A folder an earlier version prepared (its
    manifest says so) is adopted."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    if marker.is_file():
        return
    inputs = {k.resolve() for k in keep}
    clash = sorted(p.name for p in folder.iterdir() if _is_own_name(p.name) and p.resolve() not in inputs)
    if clash and not _legacy_prepared(folder):
        raise InputError(
            f"{folder} holds {clash[0]}, which lmscale did not write (no {MARKER} marker there): "
            "it is never overwritten; prepare into another folder"
        )
    atomic_write_text(marker, json.dumps({"written_by": "lmscale data prepare"}) + "\n")


def _legacy_prepared(folder: Path) -> bool:
    from lmscale._io import read_json

    try:
        doc = read_json(folder / "manifest.json")
    except InputError:
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


class ShardWriter:
    """Appends token arrays to numbered shard files of at most ``shard_tokens`` tokens."""

    def __init__(self, folder: Path, prefix: str, dtype: Any, shard_tokens: int):
        self.folder, self.prefix, self.dtype, self.cap = folder, prefix, np.dtype(dtype), shard_tokens
        self.shards: list[dict] = []
        self.fh: IO[bytes] | None = None
        self.n = 0

    def _next(self) -> None:
        self.close_shard()
        name = f"{self.prefix}-{len(self.shards):05d}.bin"
        self.fh = open(self.folder / name, "wb")  # noqa: SIM115 - closed in close_shard
        self.shards.append({"file": name, "n_tokens": 0})
        self.n = 0

    def write(self, tokens: np.ndarray) -> None:
        at = 0
        while at < len(tokens):
            if self.fh is None or self.n >= self.cap:
                self._next()
            take = min(self.cap - self.n, len(tokens) - at)
            assert self.fh is not None
            self.fh.write(tokens[at : at + take].astype(self.dtype, copy=False).tobytes())
            self.n += take
            self.shards[-1]["n_tokens"] = self.n
            at += take

    def close_shard(self) -> None:
        if self.fh is not None:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            self.fh = None

    @property
    def n_tokens(self) -> int:
        return sum(s["n_tokens"] for s in self.shards)


class ShardedTokens:
    """Shards as one flat token array: ``len`` and slicing (a slice across a shard boundary is
    copied; every shard is a read-only memory map)."""

    def __init__(self, folder: Path, shards: Sequence[dict], dtype: Any):
        self.maps = []
        for s in shards:
            p = folder / s["file"]
            n = int(s["n_tokens"])
            if p.stat().st_size != n * np.dtype(dtype).itemsize:
                raise InputError(
                    f"{p}: {p.stat().st_size} bytes, the manifest says {n} tokens of {np.dtype(dtype).name}"
                )
            self.maps.append(np.memmap(p, dtype=dtype, mode="r", shape=(n,)) if n else np.zeros(0, dtype))
        self.starts = np.cumsum([0] + [len(m) for m in self.maps])
        self.filename = str(folder / shards[0]["file"]) if shards else str(folder)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, sl: slice) -> np.ndarray:
        start, stop, _ = sl.indices(len(self))
        parts = []
        i = int(np.searchsorted(self.starts, start, side="right") - 1)
        while start < stop and i < len(self.maps):
            a = start - int(self.starts[i])
            b = min(stop, int(self.starts[i + 1])) - int(self.starts[i])
            parts.append(np.asarray(self.maps[i][a:b]))
            start = int(self.starts[i + 1])
            i += 1
        return np.concatenate(parts) if len(parts) != 1 else parts[0]


def register_tokens(
    train_files: Sequence[str | Path],
    out: str | Path,
    tokenizer_file: str | Path,
    *,
    val_files: Sequence[str | Path] = (),
    dtype: str = "uint16",
    eot: str = EOT,
) -> Path:
    """Make a prepared folder of token files tokenised elsewhere (flat arrays of ``dtype``, documents
    separated by the end-of-text token): they are used in place (not copied), with their tokenizer."""
    import shutil

    from tokenizers import Tokenizer

    if np.dtype(dtype) not in (np.uint16, np.uint32):
        raise InputError(f"token files must be uint16 or uint32, got {dtype!r}")
    check_regular_file(tokenizer_file, "tokenizer file")  # the library's own read blocks on a FIFO
    try:
        tok = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception on malformed files
        raise InputError(f"{tokenizer_file}: not a tokenizers JSON file ({exc})") from None
    eot_id = tok.token_to_id(eot)
    if eot_id is None:
        raise InputError(f"the tokenizer has no end-of-text token {eot!r}; name its own with --eot")
    if np.dtype(dtype) == np.uint16 and tok.get_vocab_size() > 65536:
        raise InputError(f"a vocabulary of {tok.get_vocab_size()} does not fit uint16 tokens")

    def shards(files: Sequence[str | Path]) -> list[dict]:
        rows = []
        for f in files:
            p = check_regular_file(Path(f), "token file").resolve()
            size = p.stat().st_size
            if size % np.dtype(dtype).itemsize:
                raise InputError(f"{p}: {size} bytes is not a whole number of {dtype} tokens")
            rows.append({"file": str(p), "n_tokens": size // np.dtype(dtype).itemsize})
        return rows

    folder = Path(out)
    in_place = Path(tokenizer_file).resolve() == (folder / "tokenizer.json").resolve()
    train, val = shards(train_files), shards(val_files)
    for row in (*train, *val):
        check_vocab(Path(row["file"]), dtype, tok.get_vocab_size())
    inputs = [Path(r["file"]) for r in (*train, *val)] + ([folder / "tokenizer.json"] if in_place else [])
    claim_folder(folder, keep=inputs)
    if not in_place:
        shutil.copyfile(tokenizer_file, folder / "tokenizer.json")
    meta = {
        "format": FORMAT,
        "key": hashlib.sha256(json.dumps([train, val], sort_keys=True).encode()).hexdigest()[:16],
        "files": [],
        "tokenizer": "tokenizer.json",
        "tokenizer_source": str(Path(tokenizer_file).resolve()),
        "eot": eot,
        "eot_id": eot_id,
        "vocab_size": tok.get_vocab_size(),
        "dtype": np.dtype(dtype).name,
        "train": train,
        "val": val,
        "n_documents": {"train": None, "val": None},
        "pretokenized": True,
    }
    ShardedTokens(folder, train, dtype)  # sizes checked
    return atomic_write_text(folder / "manifest.json", json.dumps(meta, indent=1))


def check_vocab(path: Path, dtype: str, vocab_size: int, block: int = 1 << 24) -> None:
    """Every token id of ``path`` is below the tokenizer's vocabulary size (read in bounded blocks);
    the first one that is not is named with its position."""
    n = path.stat().st_size // np.dtype(dtype).itemsize
    if n == 0:
        return
    arr = np.memmap(path, dtype=dtype, mode="r", shape=(n,))
    for at in range(0, n, block):
        part = np.asarray(arr[at : at + block])
        top = int(part.max())
        if top >= vocab_size:
            where = at + int(np.argmax(part >= vocab_size))
            raise InputError(
                f"{path}: token {where} is id {int(arr[where])}, not below the tokenizer's vocabulary "
                f"size {vocab_size} (largest id nearby: {top}): these tokens were made with another "
                "tokenizer, or are not of this dtype"
            )
