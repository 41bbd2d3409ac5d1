"""The built-in ladders: ``cpu-tiny`` (the main job's default), ``cpu-small`` and ``paper`` (the
paper's small shapes and hyper-parameters, for GPUs)."""

from __future__ import annotations

from typing import Any

from lmscale.train.data import CorpusConfig
from lmscale.train.shapes import PAPER_SHAPES, ShapeSpec

_VALS = (
    CorpusConfig("licenses", ("licenses",), val_permille=1000, max_bytes=400_000),
    CorpusConfig("manpages", ("manpages",), val_permille=1000, max_bytes=400_000),
)

#: each preset's :class:`lmscale.train.ladder.LadderConfig` fields, as keyword arguments (kept as
#: data so that this module sits below the ladder module, whose reader resolves ``preset:``)
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-tiny": dict(
        name="cpu-tiny",
        description="3 tiny shapes of one family (2 layers, widths 32, 48, 64) × M = 5, 10, 20 on the "
        "Python standard library; the whole loop takes 3–4 min on 2 cores",
        # one depth for every shape: the largest stays inside the family the laws are fitted on
        # (with d32-l1, d48-l1 and d64-l2 the held-out shape changed depth and was missed by 5.6%)
        shapes=(
            ShapeSpec("d32-l2", 32, 2, 2, 32, 20),
            ShapeSpec("d48-l2", 48, 2, 2, 32, 20),
            ShapeSpec("d64-l2", 64, 2, 4, 32, 30),
        ),
        multipliers=(5.0, 10.0, 20.0),
        corpus=CorpusConfig("python", ("python",)),
        val_corpora=_VALS,
        vocab_size=512,
        seq_len=128,
        checkpoint_every=100,
    ),
    "cpu-small": dict(
        name="cpu-small",
        description="4 small shapes × M = 5 … 40 on the Python standard library; about 10 min of training on 2 cores",
        shapes=(
            ShapeSpec("d32-l1", 32, 1, 2, 32, 20),
            ShapeSpec("d48-l1", 48, 1, 2, 32, 20),
            ShapeSpec("d64-l2", 64, 2, 4, 32, 30),
            ShapeSpec("d96-l2", 96, 2, 4, 32, 40),
        ),
        multipliers=(5.0, 10.0, 20.0, 40.0),
        corpus=CorpusConfig("python", ("python",)),
        val_corpora=_VALS,
        vocab_size=512,
        seq_len=128,
        checkpoint_every=200,
    ),
    "paper": dict(
        name="paper",
        description="the paper's small shapes, hyper-parameters and open_lm model recipe (GPU); name your "
        "corpus (`corpus: {name: web, prepared: DIR}` from `lmscale data prepare`): it has none",
        recipe="open_lm",
        shapes=tuple(PAPER_SHAPES[k] for k in ("0.011B", "0.079B", "0.154B", "0.411B")),
        multipliers=(5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0),
        # no training data: the runs take up to 260B tokens; the Python standard library (about 10M)
        # would be repeated thousands of times. `ladder run` refuses it until a corpus is named.
        corpus=CorpusConfig("corpus"),
        val_corpora=_VALS,
        vocab_size=50432,
        seq_len=2048,
        checkpoint_every=500,
    ),
}
