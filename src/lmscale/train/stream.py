"""Corpus-scale data preparation that streams: ``lmscale data prepare`` reads text files, JSONL and
Parquet (plain, ``.gz`` or ``.zst``) one batch of documents at a time, trains a byte-level BPE on a
bounded sample (or uses a given ``tokenizer.json``, GPT-NeoX's or a Llama-style one with another
end-of-text token), and writes uint16/uint32 token shards as it goes. Memory does not grow with the
corpus (``benchmarks/data_prepare.py`` measures peak RSS on 1 GB and 4 GB of text), nor with one
document: a huge one is tokenised in bounded pieces (:mod:`lmscale.train.pieces`; ``--huge-documents``
measures a 9 MB document and a 72 MB file of short lines). Tokenising uses
every core (the tokenizers library's batch encoder). The result is keyed on a manifest of the input
files (path, size, modification time), so a second launch reads nothing but that manifest; ladders
train from it with ``corpus: {name: …, prepared: DIR}``, and every rank opens the same memory-mapped
shards (prepared once)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from lmscale._io import atomic_write_text, check_regular_file, read_json
from lmscale.errors import InputError
from lmscale.train import pieces as _pieces
from lmscale.train.pieces import split_text
from lmscale.train.shards import FORMAT, MARKER, ShardedTokens, ShardWriter, claim_folder
from lmscale.train.sources import file_kind, manifest, resolve
from lmscale.train.tokens import EOT, is_validation, train_tokenizer

#: a plain-text file larger than this is cut into documents at blank lines (streamed)
BIG_TEXT = 64 << 20
#: characters tokenised in one batch at most (with pieces of a huge document, memory stays bounded)
BATCH_CHARS = 4 << 20


def _open_text(path: Path) -> IO[str]:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if name.endswith((".zst", ".zstd")):
        try:
            import zstandard
        except ImportError:
            raise InputError(
                f"{path}: zstd files need the zstandard package: pip install zstandard"
            ) from None
        raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))  # noqa: SIM115 - closed by the wrapper
        return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def iter_documents(path: Path, text_field: str = "text") -> Iterator[tuple[str, str]]:
    """(document id, text) of one file, streamed; a damaged or truncated file is named."""
    doc_id, parts = "", []
    for k, piece, end in iter_pieces(path, text_field):
        doc_id = k
        parts.append(piece)
        if end:
            yield doc_id, "".join(parts)
            parts = []


def iter_pieces(path: Path, text_field: str = "text") -> Iterator[tuple[str, str, bool]]:
    """(document id, piece, whether the document ends with it) of one file, streamed: a document
    longer than :data:`~lmscale.train.pieces.PIECE_CHARS` comes in bounded pieces. A damaged,
    truncated or fake compressed file (or Parquet file) is an :class:`InputError` naming it."""
    import zlib

    try:
        yield from _iter_pieces(path, text_field)
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: damaged or truncated compressed file ({exc})") from None
    except InputError:
        raise
    except Exception as exc:  # the zstd and Parquet readers raise their own exception types
        if file_kind(path) == "parquet" or path.name.lower().endswith((".zst", ".zstd")):
            raise InputError(
                f"{path}: damaged or not a {_kind_name(path)} file ({exc.__class__.__name__}: {exc})"
            ) from None
        if isinstance(exc, OSError):  # a disk error, a permission; the decompressors' own errors too
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
        raise


def _kind_name(path: Path) -> str:
    return "Parquet" if file_kind(path) == "parquet" else "zstd-compressed"


def _whole(doc_id: str, text: str) -> Iterator[tuple[str, str, bool]]:
    pieces = list(split_text(text)) if len(text) > _pieces.PIECE_CHARS else [text]
    for i, piece in enumerate(pieces):
        yield doc_id, piece, i == len(pieces) - 1


def _iter_pieces(path: Path, text_field: str) -> Iterator[tuple[str, str, bool]]:
    kind = file_kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if text_field not in pf.schema_arrow.names:
            raise InputError(
                f"{path}: no column {text_field!r} (columns: {', '.join(pf.schema_arrow.names)})"
            )
        k = 0
        for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                if isinstance(text, str) and text:
                    yield from _whole(f"{path}#{k}", text)
                k += 1
        return
    with _open_text(path) as fh:
        if kind == "jsonl":
            for k, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    text = json.loads(line).get(text_field)
                except (json.JSONDecodeError, AttributeError):
                    raise InputError(f"{path}, line {k + 1}: not a JSON object") from None
                except RecursionError:
                    raise InputError(f"{path}, line {k + 1}: JSON nested too deeply") from None
                if isinstance(text, str) and text:
                    yield from _whole(f"{path}#{k}", text)
            return
        if path.stat().st_size <= BIG_TEXT and not path.name.endswith((".gz", ".zst", ".zstd")):
            text = fh.read()
            if text:
                yield from _whole(str(path), text)
            return
        # a big text file: documents of about 1 MB, cut at blank lines; a document without a blank
        # line for longer comes in pieces
        doc: list[str] = []
        size, doc_size, k = 0, 0, 0
        held = None
        for line in iter(lambda: fh.readline(_pieces.PIECE_CHARS), ""):  # a huge line in parts too
            doc.append(line)
            size += len(line)
            doc_size += len(line)
            if doc_size >= (1 << 20) and not line.strip():
                yield from _flush(f"{path}#{k}", doc, held, True)
                doc, size, doc_size, k, held = [], 0, 0, k + 1, None
            elif size > 2 * _pieces.PIECE_CHARS:
                held = yield from _flush(f"{path}#{k}", doc, held, False)
                doc, size = [], 0
        if doc or held is not None:
            yield from _flush(f"{path}#{k}", doc, held, True)


def _flush(doc_id: str, lines: list[str], held: str | None, end: bool):
    """Pieces of a document's lines (``held``: the unfinished last piece from before); at the
    document's end every piece, else all but the last, which is returned to be continued."""
    text = (held or "") + "".join(lines)
    pieces = list(split_text(text))
    if not end:
        for p in pieces[:-1]:
            yield doc_id, p, False
        return pieces[-1]
    for i, p in enumerate(pieces):
        yield doc_id, p, i == len(pieces) - 1
    return None


def documents(paths: Sequence[Path], text_field: str = "text") -> Iterator[tuple[str, str]]:
    for p in paths:
        yield from iter_documents(p, text_field)


@dataclass(frozen=True)
class PrepareOptions:
    vocab_size: int = 50432
    #: BPE is trained on at most this many bytes of training text, spread over the files
    sample_bytes: int = 256 << 20
    val_permille: int = 5
    text_field: str = "text"
    #: end-of-text token (GPT-NeoX: <|endoftext|>; Llama-style tokenizers: e.g. </s>)
    eot: str = EOT
    shard_tokens: int = 1 << 27
    batch_docs: int = 512


def _sample(paths: Sequence[Path], opts: PrepareOptions) -> Iterator[str]:
    """Training text for the tokenizer, about ``sample_bytes`` spread over the files, in pieces
    (whole documents up to the per-file share; a huge document is taken only up to twice it)."""
    per_file = max(opts.sample_bytes // max(len(paths), 1), 1 << 16)
    for p in paths:
        got = 0
        for doc_id, piece, end in iter_pieces(p, opts.text_field):
            if is_validation(doc_id, opts.val_permille):
                continue
            yield piece
            got += len(piece)
            if (end and got >= per_file) or got >= 2 * per_file:
                break


def prepare_corpus(
    sources: Sequence[str],
    out: str | Path,
    *,
    tokenizer_file: str | Path | None = None,
    options: PrepareOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Tokenise ``sources`` into ``out`` (shards, ``tokenizer.json``, ``manifest.json``); returns the
    manifest. A folder already holding this input's tokens is returned as it is."""
    from tokenizers import Tokenizer

    opts = options or PrepareOptions()
    folder = Path(out)
    inside = folder.resolve()
    paths = [p for p in resolve(sources) if inside not in p.resolve().parents]  # never our own output
    if not paths:
        raise InputError(f"corpus sources {list(sources)} match no files outside {folder}")
    files = manifest(paths)
    if all(f["size"] == 0 for f in files):  # said before the folder is claimed or anything written
        names = ", ".join(str(q) for q in paths[:5]) + (", …" if len(paths) > 5 else "")
        raise InputError(f"corpus sources {list(sources)}: every file is empty ({names})")
    _own_folder(folder)
    claim_folder(folder)
    _no_registered_inputs(folder)
    tok_src = str(Path(tokenizer_file).resolve()) if tokenizer_file else None
    key_doc = {"files": files, "tokenizer": tok_src, "options": opts.__dict__}
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()[:16]
    done = folder / "manifest.json"
    if done.is_file():
        try:
            old = read_json(done)
            if old.get("key") == key:
                open_prepared(folder)  # checks every shard's size
                return done
        except InputError:
            pass
    done.unlink(missing_ok=True)
    if tokenizer_file:
        check_regular_file(tokenizer_file, "tokenizer file")  # the library's own read blocks on a FIFO
        try:
            tok = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception on malformed files
            raise InputError(f"{tokenizer_file}: not a tokenizers JSON file ({exc})") from None
    else:
        sampled = [0, 0]  # characters read, whether every file was read through

        def counted() -> Iterator[str]:
            for piece in _sample(paths, opts):
                sampled[0] += len(piece)
                yield piece
            sampled[1] = 1

        try:
            tok = train_tokenizer(counted(), opts.vocab_size, opts.eot)
        except InputError:
            if sampled == [0, 1]:  # nothing to learn from: say why, not that the vocabulary is too large
                raise InputError(_no_text(sources, opts)) from None
            raise
    eot = tok.token_to_id(opts.eot)
    if eot is None:
        raise InputError(f"the tokenizer has no end-of-text token {opts.eot!r}; name its own with --eot")
    atomic_write_text(folder / "tokenizer.json", tok.to_str())
    dtype = np.uint16 if tok.get_vocab_size() <= 65536 else np.uint32
    for stale in [*folder.glob("train-*.bin"), *folder.glob("val-*.bin")]:  # only shards this step writes
        stale.unlink()
    writers = {
        "train": ShardWriter(folder, "train", dtype, opts.shard_tokens),
        "val": ShardWriter(folder, "val", dtype, opts.shard_tokens),
    }
    n_docs = {"train": 0, "val": 0}
    batch: list[tuple[str, str, bool]] = []
    eot_arr = np.array([eot], dtype=dtype)
    empty = np.zeros(0, dtype=dtype)

    def flush() -> None:
        encs = tok.encode_batch([t for _, t, _ in batch])  # multi-threaded in the library
        for (doc_id, _, end), enc in zip(batch, encs):
            split = "val" if is_validation(doc_id, opts.val_permille) else "train"
            writers[split].write(
                np.concatenate([np.asarray(enc.ids, dtype=dtype), eot_arr if end else empty])
            )
            n_docs[split] += end
        if progress is not None:
            progress(sum(len(t) for _, t, _ in batch))
        batch.clear()

    held = (
        0  # characters in the batch: a batch of big documents is tokenised before it grows past BATCH_CHARS
    )
    for p in paths:
        for piece in iter_pieces(p, opts.text_field):
            batch.append(piece)
            held += len(piece[1])
            if len(batch) >= opts.batch_docs or held >= BATCH_CHARS:
                flush()
                held = 0
    if batch:
        flush()
    for w in writers.values():
        w.close_shard()
    if writers["train"].n_tokens < 2:
        raise InputError(_no_text(sources, opts))
    meta = {
        "format": FORMAT,
        "key": key,
        "files": files,
        "tokenizer": "tokenizer.json",
        "tokenizer_source": tok_src,
        "eot": opts.eot,
        "eot_id": eot,
        "vocab_size": tok.get_vocab_size(),
        "dtype": np.dtype(dtype).name,
        "train": writers["train"].shards,
        "val": writers["val"].shards,
        "n_documents": n_docs,
    }
    return atomic_write_text(done, json.dumps(meta, indent=1))


def _no_text(sources: Sequence[str], opts: PrepareOptions) -> str:
    why = (
        "--val-permille 1000 sends every document to validation"
        if opts.val_permille >= 1000
        else f"JSONL and Parquet records need a non-empty string in field {opts.text_field!r} (--text-field "
        "names another)"
    )
    return f"{list(sources)}: no training text: {why}"


def open_prepared(folder: str | Path):
    """(tokenizer, train tokens, validation tokens or None, manifest) of a prepared folder."""
    from tokenizers import Tokenizer

    root = Path(folder)
    doc = read_json(root / "manifest.json")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"{root}: not a folder written by lmscale data prepare")
    tok = Tokenizer.from_file(str(root / doc["tokenizer"]))
    train = ShardedTokens(root, doc["train"], doc["dtype"])
    val = ShardedTokens(root, doc["val"], doc["dtype"]) if doc["val"] else None
    return tok, train, val, doc


def _own_folder(folder: Path) -> None:
    """``folder`` exists and is empty or one this step wrote (it deletes its old shards there): never
    a folder of someone else's files."""
    folder.mkdir(parents=True, exist_ok=True)
    theirs = [
        p.name
        for p in folder.iterdir()
        if p.name not in ("manifest.json", "tokenizer.json", MARKER)
        and not (p.suffix == ".bin" and p.name.startswith(("train-", "val-")))
    ]
    if theirs:
        raise InputError(
            f"{folder} holds other files ({', '.join(sorted(theirs)[:5])}): prepare into an empty folder"
        )


def _no_registered_inputs(folder: Path) -> None:
    """Refuse a folder where ``--pretokenized`` registered files in place (token files or the
    tokenizer inside it): preparing there would delete or overwrite them."""
    try:
        old = read_json(folder / "manifest.json")
    except InputError:
        return
    if not (isinstance(old, dict) and old.get("pretokenized")):
        return
    here = folder.resolve()
    listed = [str(r.get("file")) for r in (*old.get("train", []), *old.get("val", [])) if isinstance(r, dict)]
    if old.get("tokenizer_source"):
        listed.append(str(old["tokenizer_source"]))
    inside = [f for f in listed if Path(f).resolve().parent == here]
    if inside:
        raise InputError(
            f"{folder} holds {Path(inside[0]).name}, registered in place with --pretokenized: it is "
            "never overwritten; prepare into another folder"
        )
