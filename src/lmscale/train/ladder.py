"""Ladder sweeps: a :class:`LadderConfig` (shapes × token multipliers × corpus × seed) expands
into runs; each is trained to exactly D = M·N tokens, evaluated on every validation set, and
recorded in the run-record schema that :class:`lmscale.run_table.RunTable` reads.

Layout of a ladder folder::

    DIR/ladder.json              the configuration (written once; a different one is refused)
    DIR/cache/                   tokenizer and token files (reused across runs and ladders)
    DIR/runs/<run_id>/           checkpoint.pt, train_log.jsonl, record.json
    DIR/runs.jsonl               one run-table row per finished run (``lmscale fit DIR/runs.jsonl``)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lmscale import compute
from lmscale._io import MAX_CONFIG_BYTES, read_json, read_yaml
from lmscale.errors import InputError
from lmscale.train.data import CorpusConfig
from lmscale.train.presets import PRESETS
from lmscale.train.recipes import padded_vocab, recipe
from lmscale.train.shapes import PAPER_SHAPES, ShapeSpec, _number, _positive, count_params
from lmscale.train.tokens import _int_in

#: rough sustained training throughput (FLOP/s) used only for the time estimate of ``plan``
THROUGHPUT = {"cpu": 1.2e11, "cuda": 3.0e14}  # cpu: measured on 2 free cores (cpu-tiny)


#: names that become parts of file names (run ids, folders): letters, digits, '.', '_', '-', not
#: starting with '.' or '-'
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(value, what: str) -> str:
    """Refuse a name that could escape its folder or break a file name (``../x``, ``/etc``, ``a b``)."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
        raise InputError(
            f"{what} {value!r} is not a safe file name: use letters, digits, '.', '_' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return value


@dataclass(frozen=True)
class LadderConfig:
    name: str
    shapes: tuple[ShapeSpec, ...]
    multipliers: tuple[float, ...]
    corpus: CorpusConfig
    val_corpora: tuple[CorpusConfig, ...] = ()
    vocab_size: int = 512
    seq_len: int = 128
    seed: int = 0
    lr: float = 3e-3
    final_lr: float = 3e-5
    weight_decay: float = 0.033
    checkpoint_every: int = 100
    tokenizer_file: str | None = None
    description: str = ""
    #: model recipe (initialisation, qk-norm gains, weight decay, vocabulary padding), see
    #: :mod:`lmscale.train.recipes`
    recipe: str = "lmscale"

    def __post_init__(self):
        if not self.shapes:
            raise InputError(f"ladder {self.name!r}: no shapes")
        ints = {
            "vocab_size": (257, 1 << 22),
            "seq_len": (2, 1 << 20),
            "seed": (0, (1 << 32) - 1),
            "checkpoint_every": (0, None),
        }
        for f, (lo, hi) in ints.items():
            if not _int_in(getattr(self, f), lo, hi):
                raise InputError(
                    f"ladder {self.name!r}: {f} must be a whole number from {lo}"
                    f"{f' to {hi}' if hi else ''}, got {getattr(self, f)!r}"
                )
        for f in ("lr", "final_lr"):
            if not _positive(getattr(self, f)):
                raise InputError(
                    f"ladder {self.name!r}: {f} must be a positive number, got {getattr(self, f)!r}"
                )
        if not (_number(self.weight_decay) and 0 <= self.weight_decay < 1):
            raise InputError(
                f"ladder {self.name!r}: weight_decay must lie in [0, 1), got {self.weight_decay!r}"
            )
        if self.tokenizer_file is not None and not isinstance(self.tokenizer_file, str):
            raise InputError(
                f"ladder {self.name!r}: tokenizer_file must be a path, got {self.tokenizer_file!r}"
            )
        recipe(self.recipe)
        if not self.multipliers:
            raise InputError(f"ladder {self.name!r}: no token multipliers")
        for m in self.multipliers:
            if not (isinstance(m, (int, float)) and math.isfinite(m) and m > 0):
                raise InputError(f"ladder {self.name!r}: token multiplier M must be positive, got {m!r}")
        names = [s.name for s in self.shapes]
        if len(set(names)) != len(names):
            raise InputError(f"ladder {self.name!r}: duplicate shape names")
        for what, value in (
            ("ladder name", self.name),
            ("corpus name", self.corpus.name),
            *(("shape name", n) for n in names),
            *(("validation corpus name", v.name) for v in self.val_corpora),
        ):
            check_name(value, what)
        vals = [v.name for v in self.val_corpora]
        if len(set(vals)) != len(vals):
            raise InputError(
                f"ladder {self.name!r}: two validation corpora share a name "
                f"({', '.join(sorted(v for v in vals if vals.count(v) > 1))}); each needs its own"
            )
        labels = [f"{m:g}" for m in self.multipliers]
        if len(set(labels)) != len(labels):
            raise InputError(
                f"ladder {self.name!r}: token multipliers {list(self.multipliers)} repeat (as run ids "
                f"M{', M'.join(labels)}); give each once"
            )

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping, source: str = "<config>") -> LadderConfig:
        try:
            d = dict(d)
            d.pop("execution", None)  # how to run it, not what it is: lmscale.ladder_run.execution_from
            if "preset" in d:  # a preset with overrides
                base = preset(d.pop("preset")).to_json()
                base.update(d)
                d = base
            shapes = []
            if isinstance(d.get("shapes"), Mapping) and "family" in d["shapes"]:
                d["shapes"] = list(family_shapes(d["shapes"]["family"], source))
            if not isinstance(d.get("shapes"), (list, tuple)):
                raise InputError(
                    f"{source}: 'shapes' must be a list of shapes or shape names, or {{family: …}}"
                )
            for s in d.pop("shapes"):
                if isinstance(s, str):
                    if s not in PAPER_SHAPES:
                        raise InputError(
                            f"{source}: unknown shape {s!r}; known named shapes: {', '.join(PAPER_SHAPES)}"
                        )
                    shapes.append(PAPER_SHAPES[s])
                elif isinstance(s, ShapeSpec):
                    shapes.append(s)
                elif isinstance(s, Mapping):
                    shapes.append(ShapeSpec(**s))
                else:
                    raise InputError(f"{source}: a shape is a mapping or a shape name, got {s!r}")
            corpus = CorpusConfig(**_corpus_fields(d.pop("corpus"), source))
            vals = d.pop("val_corpora", ())
            if not isinstance(vals, (list, tuple)):
                raise InputError(f"{source}: 'val_corpora' must be a list of corpora")
            vals = tuple(CorpusConfig(**_corpus_fields(v, source)) for v in vals)
            mults = d.pop("multipliers")
            if not isinstance(mults, (list, tuple)) or not all(
                isinstance(m, (int, float)) and not isinstance(m, bool) for m in mults
            ):
                raise InputError(
                    f"{source}: 'multipliers' must be a list of numbers, e.g. [5, 10, 20]; got {mults!r}"
                )
            return cls(
                shapes=tuple(shapes),
                corpus=corpus,
                val_corpora=vals,
                multipliers=tuple(float(m) for m in mults),
                **d,
            )
        except KeyError as exc:
            raise InputError(f"{source}: ladder config lacks field {exc.args[0]!r}") from None
        except TypeError as exc:
            raise InputError(f"{source}: bad ladder config ({exc})") from None
        except InputError as exc:
            msg = str(exc)
            raise InputError(msg if msg.startswith(source) else f"{source}: {msg}") from None

    @classmethod
    def read(cls, path: str | Path) -> LadderConfig:
        p = Path(path)
        if p.suffix in (".yaml", ".yml"):
            data = read_yaml(p, what="ladder config")
        else:
            data = read_json(p, expect=None, max_bytes=MAX_CONFIG_BYTES, what="ladder config")
        if not isinstance(data, dict):
            raise InputError(f"{p}: a ladder config is a mapping")
        return cls.from_json(data, str(p))


def _corpus_fields(c, source: str = "<config>") -> dict:
    if not isinstance(c, Mapping):
        raise InputError(
            f'{source}: a corpus is a mapping such as {{name: mytext, sources: ["data/*.txt"]}}, got {c!r}'
        )
    c = dict(c)
    if isinstance(c.get("sources"), str):
        c["sources"] = (c["sources"],)
    c["sources"] = tuple(c.get("sources", ()))
    return c


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    shape: ShapeSpec
    n_params: int
    n_tokens: int
    multiplier: float
    #: the model's vocabulary (the tokenizer's, padded by the recipe)
    vocab_size: int = 0

    @property
    def flops(self) -> float:
        return compute.flops(self.n_params, self.n_tokens)

    def estimated_seconds(self, device: str = "cpu") -> float:
        return self.flops / THROUGHPUT.get(device, THROUGHPUT["cpu"])

    def row(self) -> dict:
        return {
            "run_id": self.run_id,
            "shape": self.shape.name,
            "n_params": self.n_params,
            "n_tokens": self.n_tokens,
            "multiplier": self.multiplier,
            "flops": self.flops,
        }


def plan(cfg: LadderConfig, vocab_size: int | None = None) -> list[RunPlan]:
    """Every run of the ladder, smallest compute first. N counts embeddings with the ladder's
    vocabulary (or ``vocab_size``, e.g. a loaded tokenizer's)."""

    v = padded_vocab(vocab_size or cfg.vocab_size, recipe(cfg.recipe).vocab_multiple)
    runs = []
    for s in cfg.shapes:
        n = count_params(s.d_model, s.n_layers, v)
        for m in cfg.multipliers:
            d = round(m * n)
            if d < cfg.seq_len:
                raise InputError(
                    f"ladder {cfg.name!r}: M = {m:g} gives shape {s.name!r} (N = {n}) only {d} training "
                    f"tokens, less than one sequence of {cfg.seq_len}"
                )
            runs.append(RunPlan(f"{cfg.corpus.name}-{s.name}-M{m:g}", s, n, d, float(m), v))
    return sorted(runs, key=lambda r: (r.flops, r.n_params))


def family_shapes(spec, source: str = "<config>") -> tuple[ShapeSpec, ...]:
    """Shapes of one family, by a rule: ``widths`` and either a fixed depth (``layers: 2``) or a
    fixed aspect ratio (``aspect: 64``: layers = width / 64, at least 1), heads of ``head_dim``
    (default 16), and the same ``batch_size`` and ``warmup_steps`` for every shape. Named
    ``d<width>-l<layers>``. A family keeps the largest shape inside the trend the laws are fitted on."""
    if not isinstance(spec, Mapping):
        raise InputError(f"{source}: 'family' is a mapping such as {{widths: [32, 48, 64], layers: 2}}")
    widths = spec.get("widths")
    if (
        not isinstance(widths, (list, tuple))
        or len(widths) < 2
        or not all(_int_in(w, 1, None) for w in widths)
    ):
        raise InputError(
            f"{source}: family 'widths' must be a list of at least two whole numbers, got {widths!r}"
        )
    if ("layers" in spec) == ("aspect" in spec):
        raise InputError(
            f"{source}: a family gives exactly one of 'layers' (fixed depth) or 'aspect' (width per layer)"
        )
    head_dim = spec.get("head_dim", 16)
    if not _int_in(head_dim, 2, None):
        raise InputError(f"{source}: family 'head_dim' must be a whole number ≥ 2, got {head_dim!r}")
    out = []
    for w in sorted(widths):
        if "layers" in spec:
            layers = spec["layers"]
        else:
            aspect = spec["aspect"]
            if not _positive(aspect):
                raise InputError(f"{source}: family 'aspect' must be a positive number, got {aspect!r}")
            layers = max(1, round(w / aspect))
        if not _int_in(layers, 1, None) or w % head_dim:
            raise InputError(
                f"{source}: family width {w} needs whole layers ≥ 1 and heads of {head_dim} "
                f"(got layers {layers!r})"
            )
        out.append(
            ShapeSpec(
                f"d{w}-l{layers}",
                w,
                layers,
                w // head_dim,
                spec.get("batch_size", 32),
                spec.get("warmup_steps", 20),
                spec.get("lr"),
            )
        )
    return tuple(out)


def family_warnings(cfg: LadderConfig, tolerance: float = 1.5) -> list[str]:
    """Warnings when the largest shape leaves the family of the smaller ones: its depth is more than
    ``tolerance``× off the trend of log depth against log width that the smaller shapes follow (a
    constant depth when they share one). A law fitted on one family and asked about a shape outside
    it extrapolates in shape as well as in size (cpu-tiny's old largest shape, 2 layers after two
    1-layer shapes, was missed by 5.6%)."""

    shapes = sorted(cfg.shapes, key=lambda s: count_params(s.d_model, s.n_layers, cfg.vocab_size))
    if len(shapes) < 3:
        return []
    *small, big = shapes
    w = np.log([s.d_model for s in small])
    d = np.log([s.n_layers for s in small])
    if np.ptp(w) > 0 and np.ptp(d) > 0:
        slope, icept = np.polyfit(w, d, 1)
        expected = float(np.exp(icept + slope * np.log(big.d_model)))
    else:
        expected = float(np.exp(d.mean()))
    if max(big.n_layers / expected, expected / big.n_layers) <= tolerance:
        return []
    return [
        f"shape {big.name!r} ({big.n_layers} layers at width {big.d_model}) leaves the family of the smaller "
        f"shapes, whose trend gives about {expected:.3g} layers at that width: predictions of the largest shape "
        "then extrapolate in shape as well as in size; scale depth and width by one rule across the ladder"
    ]


def preset(name: str) -> LadderConfig:
    """A built-in ladder: ``cpu-tiny``, ``cpu-small`` or ``paper`` (:mod:`lmscale.train.presets`)."""
    try:
        return LadderConfig(**PRESETS[name])
    except KeyError:
        raise InputError(f"unknown ladder preset {name!r}; known: {', '.join(PRESETS)}") from None


def load_config(path: str | Path | None = None, preset_name: str | None = None) -> LadderConfig:
    """A ladder from a config file (YAML / JSON) or a preset name (default ``cpu-tiny``)."""
    if path and preset_name:
        raise InputError("give a ladder config file or a preset name, not both")
    if path:
        return LadderConfig.read(path)
    return preset(preset_name or "cpu-tiny")
