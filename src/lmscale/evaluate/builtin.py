"""A built-in task suite that tiny models can learn, generated from held-out text of the training
corpus (so the error law can be fitted on a CPU ladder, where real benchmarks sit at chance).

Tasks (all items come from validation documents, never from training text; the draw is seeded):

- ``cloze`` (multiple_choice, 4 choices): a line cut before one of its words; the true word
  against three words drawn from elsewhere in the held-out text.
- ``brackets`` (multiple_choice, 3 choices): a line cut where brackets are open; the correct
  closing sequence against two wrong orders or kinds.
- ``next_line`` (schema, 2 options): which of two preceding lines (the true one or a line from
  another document) the next line follows.
- ``first_word`` (language_modeling): the first word of a line after the lines before it,
  reproduced exactly by greedy decoding.

``write_suite`` writes the JSONL files, a suite YAML in LLM-Foundry's form and the random
baselines (``baselines.json``: chance accuracy per task), and is idempotent for a given seed.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from lmscale._io import atomic_write_text
from lmscale.errors import InputError
from lmscale.evaluate.icl import TaskConfig, read_suite

TASKS = ("cloze", "brackets", "next_line", "first_word")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _lines(texts: list[str]) -> list[list[str]]:
    return [[ln for ln in t.splitlines() if ln.strip() and len(ln) <= 120] for t in texts]


def _cloze(docs, rng, n):
    words = [w for d in docs for ln in d for w in _WORD.findall(ln)]
    if len(set(words)) < 10:
        raise InputError("held-out text too small to build the cloze task (fewer than 10 distinct words)")
    items = []
    cand = [ln for d in docs for ln in d if len(_WORD.findall(ln)) >= 3]
    rng.shuffle(cand)
    for ln in cand:
        ms = list(_WORD.finditer(ln))[1:]
        m = rng.choice(ms)
        true = m.group(0)
        distract: set[str] = set()
        while len(distract) < 3:
            w = rng.choice(words)
            if w != true:
                distract.add(w)
        choices = list(distract) + [true]
        rng.shuffle(choices)
        items.append(
            {
                "query": ln[: m.start()].rstrip(" "),
                "choices": [(" " if ln[m.start() - 1] == " " else "") + c for c in choices],
                "gold": choices.index(true),
            }
        )
        if len(items) == n:
            break
    return items


def _closers(prefix: str) -> str | None:
    stack = []
    for ch in prefix:
        if ch in _PAIRS:
            stack.append(_PAIRS[ch])
        elif ch in _PAIRS.values():
            if not stack or stack[-1] != ch:
                return None
            stack.pop()
    return "".join(reversed(stack)) if stack else None


def _brackets(docs, rng, n):
    items = []
    cand = [ln for d in docs for ln in d if any(c in ln for c in "([{")]
    rng.shuffle(cand)
    for ln in cand:
        cuts = [i for i in range(1, len(ln)) if ln[i - 1] not in "([{" and _closers(ln[:i])]
        if not cuts:
            continue
        i = rng.choice(cuts)
        true = _closers(ln[:i])
        if true is None:
            continue
        alts: set[str] = set()
        for alt in (
            true[::-1],
            true.translate(str.maketrans(")]}", "]})")),
            true.translate(str.maketrans(")]}", "})]")),
            true + true[-1],
            true[:-1] or "]",
        ):
            if alt != true:
                alts.add(alt)
        wrong = sorted(alts)[:2]
        if len(wrong) < 2:
            continue
        choices = wrong + [true]
        rng.shuffle(choices)
        items.append({"query": ln[:i], "choices": choices, "gold": choices.index(true)})
        if len(items) == n:
            break
    return items


def _next_line(docs, rng, n):
    pool = [(k, j) for k, d in enumerate(docs) for j in range(1, len(d))]
    if len(docs) < 2 or len(pool) < 2:
        raise InputError("held-out text too small to build the next-line task (needs two documents)")
    rng.shuffle(pool)
    items = []
    for k, j in pool:
        other_doc = rng.choice([i for i in range(len(docs)) if i != k and docs[i]])
        other = rng.choice(docs[other_doc])
        opts = [docs[k][j - 1], other]
        gold = rng.randrange(2)
        if gold == 1:
            opts.reverse()
        items.append({"context_options": [o + "\n" for o in opts], "continuation": docs[k][j], "gold": gold})
        if len(items) == n:
            break
    return items


def _first_word(docs, rng, n):
    pool = [(k, j) for k, d in enumerate(docs) for j in range(2, len(d)) if _WORD.match(d[j].lstrip())]
    rng.shuffle(pool)
    items = []
    for k, j in pool[:n]:
        ln = docs[k][j]
        indent = ln[: len(ln) - len(ln.lstrip())]
        m = _WORD.match(ln.lstrip())
        if m is None:
            continue
        word = m.group(0)
        items.append({"context": "\n".join(docs[k][j - 2 : j]) + "\n" + indent, "continuation": word})
    return items


def write_suite(texts: list[str], out_dir: str | Path, *, n_items: int = 200, seed: int = 0) -> Path:
    """Generate the suite from held-out ``texts`` into ``out_dir``; returns the suite YAML path."""
    import yaml

    out = Path(out_dir)
    suite = out / "suite.yaml"
    if suite.is_file() and (out / "baselines.json").is_file():
        return suite
    docs = [d for d in _lines(texts) if d]
    if not docs:
        raise InputError("no held-out text to build the built-in tasks from")
    makers = {
        "cloze": ("multiple_choice", _cloze),
        "brackets": ("multiple_choice", _brackets),
        "next_line": ("schema", _next_line),
        "first_word": ("language_modeling", _first_word),
    }
    entries, baselines = [], {}
    for name, (kind, make) in makers.items():
        items = make(docs, random.Random(f"{seed}:{name}"), n_items)
        if len(items) < 10:
            raise InputError(
                f"built-in task {name!r}: only {len(items)} items could be made from the held-out text"
            )
        atomic_write_text(out / f"{name}.jsonl", "".join(json.dumps(i) + "\n" for i in items))
        if kind == "multiple_choice":
            baselines[name] = sum(1 / len(i["choices"]) for i in items) / len(items)
        elif kind == "schema":
            baselines[name] = sum(1 / len(i["context_options"]) for i in items) / len(items)
        else:
            baselines[name] = 0.0
        entries.append(
            {
                "label": name,
                "dataset_uri": f"{name}.jsonl",
                "num_fewshot": [0],
                "icl_task_type": kind,
                "continuation_delimiter": "",
            }
        )
    atomic_write_text(out / "baselines.json", json.dumps(baselines, indent=1))
    atomic_write_text(suite, yaml.safe_dump({"icl_tasks": entries}, sort_keys=False))
    return suite


def builtin_tasks(suite_path: Path) -> list[TaskConfig]:
    return read_suite(suite_path, suite_path.parent)
