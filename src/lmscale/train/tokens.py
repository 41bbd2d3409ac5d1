"""The pieces of tokenized data that the corpus readers (:mod:`lmscale.train.data`), the streaming
preparer (:mod:`lmscale.train.stream`) and the shard files (:mod:`lmscale.train.shards`) share: the
end-of-text token, the stable train/validation split and the tokenizer trainer."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from lmscale.errors import InputError

EOT = "<|endoftext|>"


def _int_in(v, lo: int, hi: int | None) -> bool:
    """A true integer (not a bool, not 300.5) within [lo, hi]."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)


def is_validation(doc_id: str, permille: int) -> bool:
    """Stable split: the document's id hashes into validation with probability permille/1000."""
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
    return h % 1000 < permille


def train_tokenizer(texts: Iterable[str], vocab_size: int, eot: str = EOT):
    """Byte-level BPE with an end-of-text token, trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 257 + 1:
        raise InputError(
            f"vocabulary size {vocab_size} is too small: byte-level BPE needs at least 258 "
            "(256 bytes, end-of-text, one merge)"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[eot],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    got = tok.get_vocab_size()
    if got < vocab_size:
        raise InputError(
            f"the corpus supports only {got} tokens, fewer than the requested vocabulary of "
            f"{vocab_size}: use a smaller vocabulary or a larger corpus"
        )
    return tok
