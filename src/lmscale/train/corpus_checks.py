"""Is the corpus fit for the ladder? A ladder must name its training data (the ``paper`` preset
names none: at its scale the built-in corpora are far too small), and a run must not pass over
its corpus more often than a stated number of epochs: repeated tokens bend the one-epoch scaling
laws (Muennighoff et al. 2023). The epochs are :func:`lmscale.train.memory.run_resources`'s, the
same numbers ``ladder plan`` shows and warns about."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lmscale.errors import InputError
from lmscale.train.data import CorpusConfig

#: a ladder whose largest run trains on this many tokens or more is held to one epoch by default
PAPER_SCALE_TOKENS = 1e8

HOW_TO_PREPARE = (
    "prepare one with `lmscale data prepare 'DATA/*.jsonl.zst' --out DIR --tokenizer tokenizer.json` "
    "and name it in the ladder config, e.g. `{preset: paper, corpus: {name: web, prepared: DIR}}` "
    "(or `corpus: {name: web, sources: ['DATA/*.jsonl'], format: jsonl}`)"
)


def require_corpus(corpus: CorpusConfig, ladder: str) -> None:
    """Refuse a ladder whose training corpus names no data (neither ``prepared`` nor ``sources``)."""
    if not corpus.prepared and not corpus.sources:
        raise InputError(f"ladder {ladder!r} names no training corpus: {HOW_TO_PREPARE}")


def corpus_warnings(corpus: CorpusConfig, ladder: str) -> list[str]:
    """What ``ladder plan`` says about the corpus before any data is read."""
    if not corpus.prepared and not corpus.sources:
        return [f"ladder {ladder!r} names no training corpus; `ladder run` will refuse it: {HOW_TO_PREPARE}"]
    return []


def default_max_epochs(n_tokens: Sequence[int]) -> float:
    """1.0 for a ladder whose largest run trains on :data:`PAPER_SCALE_TOKENS` or more; no limit
    below (small ladders on the built-in corpora may repeat them; ``ladder plan`` shows the epochs)."""
    return 1.0 if n_tokens and max(n_tokens) >= PAPER_SCALE_TOKENS else math.inf


def epoch_limit_errors(resources, max_epochs: float | None, n_tokens: Sequence[int]) -> list[str]:
    """One line per run whose epochs (from :func:`~lmscale.train.memory.run_resources`) exceed
    ``max_epochs`` (None: :func:`default_max_epochs`), with how to proceed; empty when all fit."""
    limit = default_max_epochs(n_tokens) if max_epochs is None else max_epochs
    over = [r for r in resources if r.epochs is not None and r.epochs > limit]
    if not over:
        return []
    worst = max(over, key=lambda r: r.epochs)
    return [
        f"{len(over)} run(s) would repeat the training data beyond {limit:g} epoch(s) (worst: {worst.run_id}, "
        f"{worst.epochs:.2f} epochs: {', '.join(r.run_id for r in over[:4])}{' …' if len(over) > 4 else ''}); "
        f"use a larger corpus ({HOW_TO_PREPARE}), smaller multipliers, or allow it with --allow-repeat / "
        "--max-epochs N (execution: {max_epochs: N} in the config)"
    ]


def prepared_corpus_tokens(corpus: CorpusConfig) -> float | None:
    """Training tokens of a prepared corpus (``lmscale data prepare``), from its manifest; None when
    the corpus is not prepared or the manifest cannot be read (``ladder run`` then says why)."""
    if not corpus.prepared:
        return None
    from pathlib import Path

    from lmscale._io import read_json

    try:
        doc = read_json(Path(corpus.prepared) / "manifest.json")
        return float(sum(int(s["n_tokens"]) for s in doc["train"]))
    except (InputError, KeyError, TypeError, ValueError):
        return None


def known_corpus_tokens(corpus: CorpusConfig, ladder_dir: str | None = None) -> float | None:
    """Training tokens of the corpus when known without reading it: from a ladder folder's token
    cache (:func:`~lmscale.train.memory.cached_corpus_tokens`), else a prepared corpus's manifest."""
    from lmscale.train.memory import cached_corpus_tokens

    return (cached_corpus_tokens(ladder_dir) if ladder_dir else None) or prepared_corpus_tokens(corpus)
