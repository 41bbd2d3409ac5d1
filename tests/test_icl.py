"""In-context-learning evaluation (issue 6, first part): real task files load and render, prompts
are pinned, each task type scores hand-made items as expected, and bad files fail clearly."""

import itertools
import json
from pathlib import Path

import pytest

from conftest import SHARED
from lmscale.errors import InputError
from lmscale.evaluate.icl import TaskConfig, fewshot_indices, load_items, read_suite, render

ICL = SHARED / "icl" / "llm-foundry"
HEAVY = SHARED / "testbed" / "exp_data" / "heavy.yaml"


@pytest.fixture(scope="module")
def suite():
    if not (ICL.is_dir() and HEAVY.is_file()):
        pytest.skip(f"ICL task files not found under {SHARED}")
    return read_suite(HEAVY, ICL)


def test_every_shared_task_file_loads_and_renders(suite):
    assert len(suite) == 46
    present = [t for t in suite if Path(t.path).is_file()]
    assert len(present) == 38  # the paper's suite minus the 6 files not shipped (8 labels)
    for t in present:
        items = load_items(t)
        for i in (0, len(items) - 1):
            r = render(t, items, i)
            assert r.pairs and 0 <= r.gold < len(r.pairs)
            if t.num_fewshot:  # k examples, each followed by the example delimiter
                assert r.pairs[0][0].count(t.example_delimiter) >= t.num_fewshot


def test_pinned_prompts(suite):
    by = {t.label: t for t in suite}
    copa = by["copa"]
    items = load_items(copa)
    r = render(copa, items, 0)
    assert copa.task_type == "multiple_choice" and copa.num_fewshot == 0
    assert r.pairs[0][0] == items[0]["query"] + copa.continuation_delimiter
    assert [c for _, c in r.pairs] == items[0]["choices"]
    wino = by["winograd"]
    items = load_items(wino)
    r = render(wino, items, 0)
    assert wino.task_type == "schema"
    assert r.pairs[1] == (items[0]["context_options"][1] + " ", items[0]["continuation"])
    arc = by["arc_easy"]
    items = load_items(arc)
    r = render(arc, items, 3)
    shots = fewshot_indices(len(items), 3, 10, arc.seed)
    assert 3 not in shots and len(set(shots)) == 10
    first = items[shots[0]]
    assert r.pairs[0][0].startswith(first["query"] + "\nAnswer: " + first["choices"][first["gold"]] + "\n")
    assert r.pairs[0][0].endswith(items[3]["query"] + "\nAnswer: ")
    assert render(arc, items, 3) == r  # fixed seed: the same examples every time


class _CharTokenizer:
    """One token per character (ids = code points), enough to test the scoring rules."""

    class _Enc:
        def __init__(self, ids):
            self.ids = ids

    def encode(self, text):
        return self._Enc([ord(c) % 128 for c in text])


def _model_preferring(text_to_complete: str):
    """A stub LM that, after any character, puts its mass on the next character of
    ``text_to_complete`` following the same character (a bigram table)."""
    torch = pytest.importorskip("torch")

    class Stub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = type("C", (), {"seq_len": 512})()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.table = torch.full((128, 128), -5.0)
            for a, b in itertools.pairwise(text_to_complete):
                self.table[ord(a) % 128, ord(b) % 128] = 5.0

        def forward(self, x):
            return self.table[x] + 0 * self.w

        # the evaluator's ScoringModel interface
        max_length = 512
        device = torch.device("cpu")

        def logits(self, x):
            return self(x)

    return Stub()


def _write(tmp_path, name, rows):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_each_task_type_scores_hand_made_items(tmp_path):
    from lmscale.evaluate.icl import score

    tok = _CharTokenizer()
    model = _model_preferring("Q: sky? blue")
    mc = _write(
        tmp_path,
        "mc.jsonl",
        [
            {"query": "Q: sky?", "choices": ["green", "blue"], "gold": 1},
            {"query": "Q: sky?", "choices": ["blue", "red"], "gold": 1},
        ],
    )
    res = score(model, tok, TaskConfig("mc", str(mc), "multiple_choice"))
    assert (res.accuracy, res.n_items, res.n_correct) == (0.5, 2, 1)  # the stub always prefers "blue"
    # the bigram stub only sees the last context character: "?" (not "d") leads into " blue"
    schema = _write(
        tmp_path,
        "s.jsonl",
        [
            {"context_options": ["Q: red", "Q: sky?"], "continuation": " blue", "gold": 1},
            {"context_options": ["Q: sky?", "Q: red"], "continuation": " blue", "gold": 1},
        ],
    )
    res = score(model, tok, TaskConfig("s", str(schema), "schema", continuation_delimiter=""))
    assert res.n_correct == 1
    lm = _write(
        tmp_path,
        "lm.jsonl",
        [{"context": "Q: sky?", "continuation": "blue"}, {"context": "Q: sky?", "continuation": "blues"}],
    )
    res = score(model, tok, TaskConfig("lm", str(lm), "language_modeling"))
    assert res.n_correct == 1  # greedy reproduces "blue" but not "blues"


def test_bad_task_files(tmp_path):
    with pytest.raises(InputError, match="unknown task type"):
        TaskConfig("x", "f", "generation")
    with pytest.raises(InputError, match="not found"):
        load_items(TaskConfig("x", str(tmp_path / "none.jsonl"), "schema"))
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"query": "q", "choices": ["a", "b"], "gold": 0}\n{"query": "q", "choices": ["a"\n')
    with pytest.raises(InputError, match=r"b.jsonl, line 2: malformed JSON"):
        load_items(TaskConfig("x", str(bad), "multiple_choice"))
    bad.write_text('{"query": "q", "choices": ["a", "b"], "gold": 2}\n')
    with pytest.raises(InputError, match="line 1: gold index 2 is out of range"):
        load_items(TaskConfig("x", str(bad), "multiple_choice"))
    bad.write_text('{"context": "c"}\n')
    with pytest.raises(InputError, match="needs field"):
        load_items(TaskConfig("x", str(bad), "language_modeling"))
    bad.write_text('{"context": "c", "continuation": "d"}\n')
    with pytest.raises(InputError, match="few-shot"):
        render(
            TaskConfig("x", str(bad), "language_modeling", num_fewshot=3),
            load_items(TaskConfig("x", str(bad), "language_modeling")),
            0,
        )


def test_builtin_suite_from_held_out_text(tmp_path):
    import sysconfig

    from lmscale.evaluate.builtin import TASKS, builtin_tasks, write_suite

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [(stdlib / f).read_text() for f in ("textwrap.py", "csv.py", "bisect.py", "heapq.py")]
    suite = write_suite(texts, tmp_path / "t", n_items=40, seed=3)
    tasks = builtin_tasks(suite)
    assert [t.label for t in tasks] == list(TASKS)
    base = json.loads((tmp_path / "t" / "baselines.json").read_text())
    assert base["cloze"] == pytest.approx(0.25) and base["next_line"] == pytest.approx(0.5)
    assert base["first_word"] == 0.0 and 0.25 < base["brackets"] <= 0.5
    for t in tasks:
        items = load_items(t)
        assert 10 <= len(items) <= 40
        for i in range(len(items)):
            render(t, items, i)
    b = load_items(tasks[1])[0]  # brackets: the gold choice closes what the query opened
    from lmscale.evaluate.builtin import _closers

    assert b["choices"][b["gold"]] == _closers(b["query"])
    first = (tmp_path / "t" / "cloze.jsonl").read_text()
    write_suite(texts, tmp_path / "u", n_items=40, seed=3)
    assert (tmp_path / "u" / "cloze.jsonl").read_text() == first  # seeded: the same items again
    with pytest.raises(InputError, match="no held-out text"):
        write_suite(["", "  "], tmp_path / "v")
