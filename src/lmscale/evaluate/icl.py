"""In-context-learning tasks in LLM-Foundry's JSONL formats, scored the way LLM-Foundry scores them.

Formats (one JSON object per line):

- ``multiple_choice`` {query, choices, gold}: the context is the query plus the continuation
  delimiter; every choice is scored as a continuation by its **mean** per-token log-likelihood;
  correct when the gold choice scores highest.
- ``schema`` {context_options, continuation, gold}: the same continuation after every context
  option; correct when the gold context gives it the highest mean per-token log-likelihood.
- ``language_modeling`` {context, continuation}: correct when greedy decoding (the argmax at every
  continuation position, teacher-forced) reproduces the continuation's tokens exactly.

Prompts: ``prompt_string`` + few-shot examples + the item. Few-shot examples are other items of the
same file, drawn with a fixed seed per item (never the item itself), each rendered with its gold
answer and joined by ``example_delimiter``; the context is truncated on the left to the model's
length. Everything here but :func:`score` is pure Python and testable without a model.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lmscale._io import iter_json_lines, read_text, read_yaml
from lmscale.errors import InputError

TASK_TYPES = ("multiple_choice", "schema", "language_modeling")
_FIELDS = {
    "multiple_choice": ("query", "choices", "gold"),
    "schema": ("context_options", "continuation", "gold"),
    "language_modeling": ("context", "continuation"),
}


@dataclass(frozen=True)
class TaskConfig:
    """One task of a suite (the fields of an ``icl_tasks`` entry of LLM-Foundry's YAML)."""

    label: str
    path: str
    task_type: str
    num_fewshot: int = 0
    continuation_delimiter: str = " "
    example_delimiter: str = "\n"
    prompt_string: str = ""
    seed: int = 1234

    def __post_init__(self):
        if not isinstance(self.label, str) or not self.label:
            raise InputError(f"a task label must be non-empty text, got {self.label!r}")
        if self.task_type not in TASK_TYPES:
            raise InputError(
                f"task {self.label!r}: unknown task type {self.task_type!r}; known: {', '.join(TASK_TYPES)}"
            )
        if (
            not isinstance(self.num_fewshot, int)
            or isinstance(self.num_fewshot, bool)
            or self.num_fewshot < 0
        ):
            raise InputError(
                f"task {self.label!r}: num_fewshot must be a whole number ≥ 0, got {self.num_fewshot!r}"
            )
        for f in ("continuation_delimiter", "example_delimiter", "prompt_string"):
            if not isinstance(getattr(self, f), str):
                raise InputError(f"task {self.label!r}: {f} must be text, got {getattr(self, f)!r}")


def load_items(cfg: TaskConfig) -> list[dict]:
    """Read and validate a task file; every problem names the file and line."""
    path = Path(cfg.path)
    if not path.is_file():
        raise InputError(f"task {cfg.label!r}: file {path} not found")
    items = []
    for lineno, obj in iter_json_lines(read_text(path, what="task file").splitlines(), path):
        missing = [f for f in _FIELDS[cfg.task_type] if f not in obj]
        if missing:
            raise InputError(
                f"{path}, line {lineno}: a {cfg.task_type} item needs field(s) {', '.join(missing)}"
            )
        text_fields = {
            "multiple_choice": ("query",),
            "schema": ("continuation",),
            "language_modeling": ("context", "continuation"),
        }[cfg.task_type]
        wrong = [f for f in text_fields if not isinstance(obj[f], str)]
        if wrong:
            raise InputError(
                f"{path}, line {lineno}: field(s) {', '.join(wrong)} must be text, found "
                + ", ".join(f"{obj[f]!r}" for f in wrong)
            )
        if cfg.task_type in ("multiple_choice", "schema"):
            options = obj["choices"] if cfg.task_type == "multiple_choice" else obj["context_options"]
            if (
                not isinstance(options, list)
                or len(options) < 2
                or not all(isinstance(o, str) for o in options)
            ):
                raise InputError(f"{path}, line {lineno}: needs a list of at least two strings")
            gold = obj["gold"]
            if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(options):
                raise InputError(
                    f"{path}, line {lineno}: gold index {gold!r} is out of range for {len(options)} options"
                )
        items.append(obj)
    if not items:
        raise InputError(f"task {cfg.label!r}: {path} has no items")
    return items


def _answered(cfg: TaskConfig, item: dict) -> str:
    """An item rendered with its answer, as a few-shot example."""
    d = cfg.continuation_delimiter
    if cfg.task_type == "multiple_choice":
        return item["query"] + d + item["choices"][item["gold"]]
    if cfg.task_type == "schema":
        return item["context_options"][item["gold"]] + d + item["continuation"]
    return item["context"] + d + item["continuation"]


def fewshot_indices(n_items: int, index: int, k: int, seed: int) -> list[int]:
    """``k`` other items for item ``index``, drawn with a generator seeded by (seed, index)."""
    if k == 0:
        return []
    if k > n_items - 1:
        raise InputError(f"{k} few-shot examples requested but the task has only {n_items - 1} other items")
    rng = random.Random(f"{seed}:{index}")
    pool = [i for i in range(n_items) if i != index]
    return rng.sample(pool, k)


@dataclass(frozen=True)
class Rendered:
    """What the model scores for one item: (context, continuation) pairs and the gold pair."""

    pairs: tuple[tuple[str, str], ...]
    gold: int


def render(cfg: TaskConfig, items: Sequence[dict], index: int) -> Rendered:
    item = items[index]
    shots = [_answered(cfg, items[j]) for j in fewshot_indices(len(items), index, cfg.num_fewshot, cfg.seed)]
    prefix = cfg.prompt_string + "".join(s + cfg.example_delimiter for s in shots)
    d = cfg.continuation_delimiter
    if cfg.task_type == "multiple_choice":
        ctx = prefix + item["query"] + d
        return Rendered(tuple((ctx, c) for c in item["choices"]), int(item["gold"]))
    if cfg.task_type == "schema":
        return Rendered(
            tuple((prefix + c + d, item["continuation"]) for c in item["context_options"]), int(item["gold"])
        )
    return Rendered(((prefix + item["context"] + d, item["continuation"]),), 0)


def encode_pair(tokenizer, context: str, continuation: str, max_len: int) -> tuple[list[int], int]:
    """Token ids of context + continuation, truncated on the left to ``max_len`` + 1; returns
    (ids, number of continuation tokens). A continuation longer than the model's context is cut
    to its first ``max_len`` − 1 tokens."""
    ctx = tokenizer.encode(context).ids
    cont = tokenizer.encode(continuation).ids
    if not cont:
        raise InputError(f"empty continuation after tokenisation: {continuation!r}")
    if len(cont) > max_len - 1:  # keep at least one context token: a continuation is scored after something
        cont = cont[: max_len - 1]
    ids = (ctx + cont)[-(max_len + 1) :]
    return ids, len(cont)


@dataclass(frozen=True)
class TaskScore:
    """One task's result."""

    #: the task's label (``acc_<label>`` in run records)
    label: str
    #: fraction of items answered correctly
    accuracy: float
    #: items scored (the task's items, or ``limit`` of them)
    n_items: int
    #: items answered correctly
    n_correct: int


class ScoringModel(Protocol):
    """What the evaluator asks of a language model, whatever its implementation: lmscale's
    :class:`~lmscale.train.model.Transformer` and Hugging Face causal LMs
    (:func:`lmscale.interop.hf.load_hf_model`) implement it. The anchor is lm-evaluation-harness's
    ``LM`` interface (log-likelihoods of continuations); the evaluator computes those from logits
    itself, so a model only has to give them."""

    @property
    def max_length(self) -> int:
        """The longest token sequence the model takes (longer prompts are cut from the left)."""
        ...

    @property
    def device(self) -> Any:
        """Where the model's inputs go (a ``torch.device``)."""
        ...

    def logits(self, tokens: Any) -> Any:
        """Token ids (B, T) on :attr:`device` → next-token logits (B, T, V), in inference mode."""
        ...


def score(
    model: ScoringModel,
    tokenizer,
    cfg: TaskConfig,
    items: Sequence[dict] | None = None,
    *,
    limit: int | None = None,
    batch_size: int = 16,
    max_len: int | None = None,
) -> TaskScore:
    """Accuracy of ``model`` on the task."""
    import torch

    items = items if items is not None else load_items(cfg)
    n = len(items) if limit is None else min(limit, len(items))
    max_len = max_len or model.max_length
    dev = model.device
    seqs, owners = [], []
    golds = []
    for i in range(n):
        r = render(cfg, items, i)
        golds.append(r.gold)
        for k, (ctx, cont) in enumerate(r.pairs):
            seqs.append(encode_pair(tokenizer, ctx, cont, max_len))
            owners.append((i, k))
    scores = [0.0] * len(seqs)
    # batches of similar length (little padding); only the continuation positions' log-probabilities
    # (and, for language modelling, whether each is the greedy choice) leave the device
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    with torch.no_grad(), autocast:
        for b in range(0, len(order), batch_size):
            members = order[b : b + batch_size]
            chunk = [seqs[i] for i in members]
            width = max(len(ids) for ids, _ in chunk)
            x = torch.zeros(len(chunk), width, dtype=torch.long)
            rows: list[int] = []
            pos: list[int] = []
            tgt: list[int] = []
            for j, (ids, nc) in enumerate(chunk):
                x[j, : len(ids)] = torch.tensor(ids)
                t = len(ids)
                rows += [j] * nc
                pos += range(t - 1 - nc, t - 1)
                tgt += ids[t - nc :]
            logits = model.logits(x[:, :-1].to(dev, non_blocking=True))
            sel = logits[torch.tensor(rows, device=dev), torch.tensor(pos, device=dev)].float()  # (K, V)
            target = torch.tensor(tgt, device=dev)
            lp = sel.log_softmax(-1).gather(-1, target[:, None])[:, 0].cpu()
            greedy = (sel.argmax(-1) == target).cpu()
            at = 0
            for i, (_ids, nc) in zip(members, chunk):
                if cfg.task_type == "language_modeling":
                    scores[i] = float(bool(greedy[at : at + nc].all()))
                else:
                    scores[i] = float(lp[at : at + nc].mean())
                at += nc
    per_item: dict[int, list[float]] = {}
    for (i, _k), s in zip(owners, scores):
        per_item.setdefault(i, []).append(s)
    correct = 0
    for i in range(n):
        item_scores = per_item[i]
        correct += (
            int(item_scores[0] == 1.0)
            if cfg.task_type == "language_modeling"
            else int(max(range(len(item_scores)), key=item_scores.__getitem__) == golds[i])
        )
    return TaskScore(cfg.label, correct / n, n, correct)


def select_tasks(
    suite: str | Path,
    data_root: str | Path | None = None,
    labels: Sequence[str] = (),
    on_missing: Callable[[TaskConfig], None] | None = None,
) -> list[TaskConfig]:
    """The tasks of a suite to score: ``labels`` only (unknown names are an error), minus those whose
    data file is absent (reported through ``on_missing``: the paper's suite names 44 tasks, the
    shared LLM-Foundry copy has 38). An error when none is left."""
    tasks = read_suite(suite, data_root or Path(suite).parent)
    if labels:
        known = {t.label for t in tasks}
        unknown = [t for t in labels if t not in known]
        if unknown:
            raise InputError(f"unknown task name(s) {', '.join(unknown)} in suite {suite}")
        tasks = [t for t in tasks if t.label in labels]
    present = []
    for t in tasks:
        if Path(t.path).is_file():
            present.append(t)
        elif on_missing is not None:
            on_missing(t)
    if not present:
        raise InputError(f"none of the suite's task files were found under {data_root or Path(suite).parent}")
    return present


def read_suite(yaml_path: str | Path, data_root: str | Path) -> list[TaskConfig]:
    """An LLM-Foundry ``icl_tasks`` YAML (e.g. the paper's ``heavy.yaml``): one TaskConfig per
    (task, shot count); ``dataset_uri`` is resolved under ``data_root`` (its ``local_data/``
    prefix dropped). Labels get a ``_<k>shot`` suffix when a task lists several shot counts."""
    p = Path(yaml_path)
    doc = read_yaml(p, what="suite file")
    entries = doc.get("icl_tasks") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise InputError(f"{p}: no icl_tasks list")
    out = []
    for e in entries:
        if not isinstance(e, dict):
            raise InputError(f"{p}: a task entry is a mapping, got {e!r}")
        try:
            uri = str(e["dataset_uri"]).removeprefix("local_data/")
            shots = e.get("num_fewshot", [0])
            shots = shots if isinstance(shots, list) else [shots]
            bad = [k for k in shots if not isinstance(k, int) or isinstance(k, bool) or k < 0]
            if bad or not shots:
                raise InputError(
                    f"{p}: task {e.get('label')!r}: num_fewshot must be whole numbers ≥ 0, got {shots!r}"
                )
            for k in shots:
                label = e["label"] if len(shots) == 1 else f"{e['label']}_{k}shot"
                out.append(
                    TaskConfig(
                        label,
                        str(Path(data_root) / uri),
                        e["icl_task_type"],
                        k,
                        e.get("continuation_delimiter", " "),
                        e.get("example_delimiter", "\n"),
                        e.get("prompt_string", ""),
                    )
                )
        except KeyError as exc:
            raise InputError(f"{p}: task entry {e!r} lacks {exc}") from None
    labels = [t.label for t in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise InputError(
            f"{p}: task label(s) {', '.join(dup)} appear more than once; each result needs its own label"
        )
    return out
