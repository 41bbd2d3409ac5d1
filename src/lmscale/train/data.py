"""Corpora, tokenizer and packed token data for ladder training.

A corpus is a list of documents (one per file, or one per JSONL line), split into train and
validation by a stable hash of the document's id. Built-in corpora need no download: they read
text that is already on the machine (:data:`BUILTIN`). The byte-level BPE tokenizer is trained on
the training split with the ``tokenizers`` library and cached by the corpus's content hash; each
split is tokenised once into a memory-mapped ``uint16``/``uint32`` file with end-of-text separators
and reused afterwards (the cache key covers corpus content and tokenizer).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmscale._io import atomic_write, atomic_write_text, check_regular_file, iter_json_lines, read_json
from lmscale.errors import InputError
from lmscale.train.sources import expand
from lmscale.train.stream import open_prepared
from lmscale.train.tokens import EOT, _int_in, is_validation, train_tokenizer


@dataclass(frozen=True)
class CorpusConfig:
    """Where a corpus's documents come from."""

    #: name; also the prefix of its validation set (``loss_<name>``)
    name: str
    #: a built-in corpus name (see :data:`BUILTIN`) or file paths / glob patterns
    sources: tuple[str, ...] = ()
    #: ``text`` (a file is a document) or ``jsonl`` (a line's ``text_field`` is a document)
    format: str = "text"
    text_field: str = "text"
    #: share of documents held out for validation, per mille
    val_permille: int = 50
    #: documents beyond this many bytes in total are ignored (keeps big corpora cheap); 0 = all
    max_bytes: int = 0
    #: a folder written by ``lmscale data prepare``: train from its token shards and tokenizer
    #: (nothing is read or tokenised again; its held-out split is this corpus's validation set)
    prepared: str = ""

    def __post_init__(self):
        where = f"corpus {self.name!r}"
        if not isinstance(self.name, str):
            raise InputError(f"corpus name must be text, got {self.name!r}")
        if not all(isinstance(x, str) and x for x in self.sources):
            raise InputError(
                f"{where}: 'sources' must be file paths, globs or a built-in name, got {self.sources!r}"
            )
        if self.format not in ("text", "jsonl"):
            raise InputError(f"{where}: format must be 'text' or 'jsonl', got {self.format!r}")
        if not isinstance(self.text_field, str) or not self.text_field:
            raise InputError(f"{where}: text_field must be a field name, got {self.text_field!r}")
        if not _int_in(self.val_permille, 0, 1000):
            raise InputError(
                f"{where}: val_permille must be a whole number from 0 to 1000, got {self.val_permille!r}"
            )
        if not isinstance(self.prepared, str):
            raise InputError(f"{where}: 'prepared' must be a folder path, got {self.prepared!r}")
        if not _int_in(self.max_bytes, 0, None):
            raise InputError(
                f"{where}: max_bytes must be a whole number ≥ 0 (0: all), got {self.max_bytes!r}"
            )


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)


def _license_files() -> list[Path]:
    paths = sorted(Path("/usr/share/common-licenses").glob("*")) + sorted(
        Path("/usr/share/doc").glob("*/copyright")
    )
    return [p for p in paths if p.is_file()]


def _manpage_files() -> list[Path]:
    return sorted(Path("/usr/share/man").glob("man[1-8]/*.gz"))


#: built-in offline corpora: name → (description, file lister)
BUILTIN = {
    "python": ("the Python standard library's source on this machine", _stdlib_files),
    "licenses": (
        "Debian licence and copyright texts (/usr/share/doc/*/copyright), de-duplicated",
        _license_files,
    ),
    "manpages": ("manual pages in groff source (/usr/share/man)", _manpage_files),
}


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable gzip file ({exc})") from None
    return data.decode("utf-8", errors="replace")


def documents(cfg: CorpusConfig) -> Iterator[tuple[str, str]]:
    """(document id, text) in a stable order; empty documents and exact duplicates are skipped."""
    if cfg.format not in ("text", "jsonl"):
        raise InputError(f"corpus {cfg.name!r}: unknown format {cfg.format!r} (text or jsonl)")
    if len(cfg.sources) == 1 and cfg.sources[0] in BUILTIN:
        files = BUILTIN[cfg.sources[0]][1]()
    else:
        files = []
        for pattern in cfg.sources:
            hits = expand(pattern)  # a ** never enters a linked folder (a link up the tree loops)
            if not hits:
                raise InputError(f"corpus {cfg.name!r}: no file matches {pattern!r}")
            files += [Path(h) for h in hits if Path(h).is_file()]
    if not files:
        raise InputError(
            f"corpus {cfg.name!r}: no documents found (sources: {', '.join(cfg.sources) or 'none'})"
        )
    seen, total = set(), 0
    for path in files:
        if cfg.format == "text":
            items = [(str(path), _read_text(path))]
        else:
            items = []
            for lineno, obj in iter_json_lines(_read_text(path).splitlines(), path):
                text = obj.get(cfg.text_field)
                if not isinstance(text, str):
                    raise InputError(
                        f"{path}, line {lineno}: field {cfg.text_field!r} is missing or not a string"
                    )
                items.append((f"{path}:{lineno}", text))
        for doc_id, text in items:
            digest = hashlib.sha256(text.encode("utf-8", errors="replace")).digest()
            if not text.strip() or digest in seen:
                continue
            seen.add(digest)
            total += len(text)
            yield doc_id, text
            if cfg.max_bytes and total >= cfg.max_bytes:
                return


def split_documents(cfg: CorpusConfig, require_train: bool = True) -> tuple[list[str], list[str], str]:
    """(train texts, validation texts, content hash of the whole corpus)."""
    train: list[str] = []
    val: list[str] = []
    hasher = hashlib.sha256()
    for doc_id, text in documents(cfg):
        hasher.update(doc_id.rsplit("/", 1)[-1].encode() + b"\0" + text.encode("utf-8", errors="replace"))
        (val if is_validation(doc_id, cfg.val_permille) else train).append(text)
    if require_train and not train:
        raise InputError(f"corpus {cfg.name!r} is empty: no training documents")
    hasher.update(f"|val={cfg.val_permille}".encode())
    return train, val, hasher.hexdigest()[:16]


# ---------------------------------------------------------------------------------- tokenizer
def load_or_train_tokenizer(
    cache: Path, corpus_hash: str, texts: list[str], vocab_size: int, tokenizer_file: str | None = None
):
    from tokenizers import Tokenizer

    if tokenizer_file:
        path = check_regular_file(tokenizer_file, "tokenizer file")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception on malformed files
            raise InputError(f"{path}: not a tokenizers JSON file ({exc})") from None
    else:
        path = cache / "tokenizers" / f"{corpus_hash}-v{vocab_size}.json"
        tok = None
        if path.is_file():
            try:
                tok = Tokenizer.from_file(str(path))
            except Exception:  # noqa: BLE001 - a damaged cache entry (the library raises bare Exception): rebuild it
                tok = None
        if tok is None:
            tok = train_tokenizer(texts, vocab_size)
            atomic_write_text(path, tok.to_str())
    assert tok is not None
    if tok.token_to_id(EOT) is None:
        raise InputError(f"tokenizer {path} has no {EOT} token")
    return tok, hashlib.sha256(tok.to_str().encode()).hexdigest()[:16], path


# --------------------------------------------------------------------------------- token files
def tokenize_to_file(tok, texts: list[str], path: Path) -> np.ndarray:
    """Encode ``texts`` (each followed by end-of-text) into a flat memory-mapped token file. A cached
    file is used only with its metadata and of the size it records; anything else (a kill between
    the two writes, a truncated file) is rebuilt."""
    cached = _cached_tokens(path)
    if cached is not None:
        return cached
    eot = tok.token_to_id(EOT)
    dtype = np.uint16 if tok.get_vocab_size() <= 65536 else np.uint32
    parts = []
    for i in range(0, len(texts), 256):
        for enc in tok.encode_batch(texts[i : i + 256]):
            parts.append(np.asarray(enc.ids, dtype=dtype))
            parts.append(np.array([eot], dtype=dtype))
    arr = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    atomic_write(path, lambda fh: fh.write(arr.tobytes()), binary=True)
    atomic_write_text(
        path.with_suffix(".json"),
        json.dumps({"dtype": np.dtype(dtype).name, "n_tokens": int(arr.size), "n_documents": len(texts)}),
    )
    return open_tokens(path)


def _cached_tokens(path: Path) -> np.ndarray | None:
    try:
        return open_tokens(path)
    except InputError:
        return None


def open_tokens(path: Path) -> np.ndarray:
    """A token file with its metadata (``.json`` beside it); a missing, malformed or inconsistent
    pair is an :class:`InputError`."""

    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise InputError(f"token file {path} not found")
    meta = read_json(meta_path)
    try:
        dtype, n = np.dtype(meta["dtype"]), int(meta["n_tokens"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{meta_path}: malformed token metadata ({exc})") from None
    if dtype not in (np.uint16, np.uint32) or n < 0 or path.stat().st_size != n * dtype.itemsize:
        raise InputError(
            f"{path}: {path.stat().st_size} bytes, but {meta_path} records {n} tokens of {dtype}"
        )
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


@dataclass
class TokenData:
    """A training distribution ready to train on: tokenizer, train tokens, validation tokens per set."""

    name: str
    tokenizer: Any
    tokenizer_hash: str
    train: np.ndarray
    val: dict[str, np.ndarray]
    tokenizer_path: Path | None = None

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def prepare(
    train_corpus: CorpusConfig,
    val_corpora: tuple[CorpusConfig, ...],
    cache: str | Path,
    vocab_size: int,
    tokenizer_file: str | None = None,
) -> TokenData:
    """Tokenise the training corpus (train split) and every validation set: the training
    corpus's own held-out split (named after it) and the validation split of each other corpus."""
    cache = Path(cache)
    if train_corpus.prepared:
        return _from_prepared(train_corpus, val_corpora, cache)
    train_texts, val_texts, h = split_documents(train_corpus)
    tok, th, tok_path = load_or_train_tokenizer(cache, h, train_texts, vocab_size, tokenizer_file)
    train = tokenize_to_file(tok, train_texts, cache / "tokens" / f"{h}-{th}-train.bin")
    val = {}
    if val_texts:
        val[train_corpus.name] = tokenize_to_file(tok, val_texts, cache / "tokens" / f"{h}-{th}-val.bin")
    val.update(_other_val_sets(tok, th, train_corpus, val_corpora, cache))
    return TokenData(train_corpus.name, tok, th, train, val, tok_path)


def _from_prepared(
    train_corpus: CorpusConfig, val_corpora: tuple[CorpusConfig, ...], cache: Path
) -> TokenData:
    """A corpus prepared by ``lmscale data prepare``: its shards are memory-mapped as they are."""
    folder = Path(train_corpus.prepared)
    tok, train, val, meta = open_prepared(folder)
    th = hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]
    vals: dict[str, Any] = {}
    if val is not None and len(val) > 1:
        vals[train_corpus.name] = val
    vals.update(_other_val_sets(tok, th, train_corpus, val_corpora, cache))
    return TokenData(train_corpus.name, tok, th, train, vals, folder / meta["tokenizer"])


def _other_val_sets(
    tok, th: str, train_corpus: CorpusConfig, val_corpora: tuple[CorpusConfig, ...], cache: Path
) -> dict:
    """The validation split of every other corpus, tokenised once (cached by corpus and tokenizer)."""
    out = {}
    for vc in val_corpora:
        if vc.name == train_corpus.name:
            continue
        _tr, vt, vh = split_documents(vc, require_train=False)
        if not vt:
            raise InputError(
                f"validation corpus {vc.name!r} has no validation documents (val_permille={vc.val_permille})"
            )
        out[vc.name] = tokenize_to_file(tok, vt, cache / "tokens" / f"{vh}-{th}-val.bin")
    return out


# --------------------------------------------------------------------------------- packing
class PackedSequences:
    """Fixed-length windows of ``seq_len + 1`` tokens over a flat token array (documents packed
    back to back, separated by end-of-text). Order: a seeded permutation per epoch, so batch k of
    a run is a pure function of (seed, k) — which is what makes resuming exact."""

    def __init__(self, tokens: np.ndarray, seq_len: int, seed: int):
        self.tokens, self.seq_len, self.seed = tokens, seq_len, seed
        self.n = (len(tokens) - 1) // seq_len
        if self.n < 1:
            raise InputError(f"only {len(tokens)} tokens: not enough for one sequence of {seq_len}")
        self._perm: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm:
            self._perm = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return self._perm[epoch]

    def window(self, k: int) -> np.ndarray:
        """The k-th sequence of the run (k counts across epochs)."""
        i = self._order(k // self.n)[k % self.n]
        s = i * self.seq_len
        return np.asarray(self.tokens[s : s + self.seq_len + 1], dtype=np.int64)

    def batch(self, first: int, count: int) -> np.ndarray:
        return np.stack([self.window(k) for k in range(first, first + count)])
