"""Streaming data preparation (lmscale.train.stream) and ladders trained from it."""

import gzip
import json
import random

import numpy as np
import pytest

pytest.importorskip("tokenizers", reason="needs tokenizers (the train extra)")

from click.testing import CliRunner

from lmscale.cli import cli
from lmscale.errors import InputError
from lmscale.train import stream
from lmscale.train.data import EOT, is_validation
from lmscale.train.shards import ShardedTokens, ShardWriter
from lmscale.train.stream import PrepareOptions, open_prepared, prepare_corpus

WORDS = ["alpha", "beta", "gamma", "delta", "scale", "loss", "token", "model", "ladder", "run", "law", "fit"]


def _text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    root = tmp_path / "corpus"
    root.mkdir()
    docs = {}
    with gzip.open(root / "a.jsonl.gz", "wt") as fh:
        for i in range(400):
            t = _text(rng, 40)
            fh.write(json.dumps({"text": t, "id": i}) + "\n")
            docs[f"{root / 'a.jsonl.gz'}#{i}"] = t
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [_text(rng, 30) for _ in range(300)]
    pq.write_table(pa.table({"text": texts}), root / "b.parquet", row_group_size=64)
    docs.update({f"{root / 'b.parquet'}#{k}": t for k, t in enumerate(texts)})
    (root / "c.txt").write_text(_text(rng, 500))
    docs[str(root / "c.txt")] = (root / "c.txt").read_text()
    # every format the reader takes is in the corpus, .zst included: without zstandard the tests
    # that stream it skip, saying so, rather than pass on the other formats alone
    zstandard = pytest.importorskip("zstandard", reason="needs zstandard (the train extra) for .zst input")
    t = _text(rng, 60)
    (root / "d.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress((json.dumps({"text": t}) + "\n").encode())
    )
    docs[f"{root / 'd.jsonl.zst'}#0"] = t
    return root, docs


def test_every_format_streams_into_shards_that_hold_every_token(corpus, tmp_path):
    root, docs = corpus
    opts = PrepareOptions(vocab_size=300, val_permille=50, shard_tokens=4000, batch_docs=64)
    prepare_corpus([str(root / "*")], tmp_path / "out", options=opts)
    tok, train, val, meta = open_prepared(tmp_path / "out")
    assert len(meta["train"]) > 3 and meta["dtype"] == "uint16"
    eot = tok.token_to_id(EOT)
    expect = {"train": [], "val": []}
    for doc_id in sorted(docs, key=lambda d: (d.split("#")[0], int(d.split("#")[1]) if "#" in d else 0)):
        split = "val" if is_validation(doc_id, 50) else "train"
        expect[split] += tok.encode(docs[doc_id]).ids + [eot]
    assert np.array_equal(train[0 : len(train)], np.array(expect["train"]))
    assert val is not None and np.array_equal(val[0 : len(val)], np.array(expect["val"]))
    assert meta["n_documents"]["train"] + meta["n_documents"]["val"] == len(docs)


def test_slices_across_shards(tmp_path):
    arr = np.arange(10_000, dtype=np.uint16)
    w = ShardWriter(tmp_path, "t", np.uint16, 777)
    for part in np.array_split(arr, 13):
        w.write(part)
    w.close_shard()
    st = ShardedTokens(tmp_path, w.shards, "uint16")
    assert len(st) == 10_000 and len(w.shards) == 13
    for a, b in ((0, 10), (770, 790), (5, 9_999), (1554, 1555), (9_990, 10_000)):
        assert np.array_equal(st[a:b], arr[a:b])


def test_a_second_prepare_reads_nothing(corpus, tmp_path, monkeypatch):
    root, _ = corpus
    opts = PrepareOptions(vocab_size=300)
    first = prepare_corpus([str(root)], tmp_path / "out", options=opts).read_text()

    def boom(*a, **k):
        raise AssertionError("read the corpus again")

    monkeypatch.setattr(stream, "iter_documents", boom)
    assert prepare_corpus([str(root)], tmp_path / "out", options=opts).read_text() == first
    (root / "c.txt").write_text("changed " * 50)  # the manifest (size, mtime) changes: prepared again
    monkeypatch.undo()
    again = json.loads(prepare_corpus([str(root)], tmp_path / "out", options=opts).read_text())
    assert again["key"] != json.loads(first)["key"]


def test_a_given_tokenizer_with_another_end_of_text(corpus, tmp_path):
    from lmscale.train.data import train_tokenizer

    root, docs = corpus
    tok = train_tokenizer(list(docs.values()), 300, eot="</s>")
    tok.save(str(tmp_path / "llama-style.json"))
    res = CliRunner().invoke(
        cli,
        [
            "data",
            "prepare",
            str(root),
            "--out",
            str(tmp_path / "out"),
            "--tokenizer",
            str(tmp_path / "llama-style.json"),
            "--eot",
            "</s>",
        ],
    )
    assert res.exit_code == 0, res.output
    _tok, train, _val, meta = open_prepared(tmp_path / "out")
    assert meta["eot"] == "</s>" and int(train[0 : len(train)][-1]) == meta["eot_id"]
    with pytest.raises(InputError, match="no end-of-text token '<\\|endoftext\\|>'"):
        prepare_corpus([str(root)], tmp_path / "out2", tokenizer_file=tmp_path / "llama-style.json")


def test_a_ladder_trains_from_a_prepared_corpus(corpus, tmp_path):
    pytest.importorskip("torch", reason="needs torch")
    from lmscale.ladder_run import run_ladder
    from lmscale.run_table import RunTable
    from lmscale.train.data import CorpusConfig
    from lmscale.train.ladder import LadderConfig, ShapeSpec

    root, _ = corpus
    prepare_corpus([str(root)], tmp_path / "prep", options=PrepareOptions(vocab_size=300, val_permille=100))
    cfg = LadderConfig(
        "p",
        (ShapeSpec("a", 16, 1, 2, 8, 1),),
        (0.25,),
        CorpusConfig("words", prepared=str(tmp_path / "prep")),
        vocab_size=300,
        seq_len=16,
        checkpoint_every=0,
    )
    t = RunTable.read(run_ladder(cfg, tmp_path / "ladder"))
    assert t.val_sets == ["words"] and 0 < t.loss("loss_words")[0] < 10
    # the record points at a copy of the prepared folder's tokenizer inside the ladder folder
    rec_path = next((tmp_path / "ladder" / "runs").glob("*/record.json"))
    tok_copy = rec_path.parent / json.loads(rec_path.read_text())["tokenizer_file"]
    assert (tmp_path / "ladder").resolve() in tok_copy.resolve().parents
    from tokenizers import Tokenizer

    assert (
        Tokenizer.from_file(str(tok_copy)).to_str()
        == Tokenizer.from_file(str(tmp_path / "prep" / "tokenizer.json")).to_str()
    )
    assert not (tmp_path / "ladder" / "cache" / "tokens").exists()  # nothing tokenised again


def test_a_truncated_gzip_is_named(tmp_path):
    good = gzip.compress(b'{"text": "hello world"}\n' * 2000)
    (tmp_path / "cut.jsonl.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="cut.jsonl.gz: damaged or truncated compressed file"):
        prepare_corpus(
            [str(tmp_path / "cut.jsonl.gz")], tmp_path / "out", options=PrepareOptions(vocab_size=300)
        )


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        prepare_corpus([str(tmp_path / "missing.txt")], tmp_path / "out")
    (tmp_path / "bad.jsonl").write_text("{not json}\n")
    with pytest.raises(InputError, match="bad.jsonl, line 1: not a JSON object"):
        prepare_corpus(
            [str(tmp_path / "bad.jsonl")], tmp_path / "out", options=PrepareOptions(vocab_size=300)
        )


@pytest.mark.parametrize("fail_at", ["open", "read"])
def test_a_file_that_cannot_be_read_is_named(tmp_path, monkeypatch, fail_at):
    """Found by fuzzing: an I/O error while reading a source (a disk error, a file made unreadable
    after the sources were listed) printed "cannot read or write: Input/output error", without the
    file."""
    import errno
    import io

    (tmp_path / "ok.txt").write_text("fine text " * 50)
    bad = tmp_path / "bad.txt"
    bad.write_text("some text " * 50)

    class Broken(io.StringIO):
        def read(self, *args):
            raise OSError(errno.EIO, "Input/output error")

    opened = stream._open_text

    def fake_open(path):
        if path != bad:
            return opened(path)
        if fail_at == "open":
            raise PermissionError(errno.EACCES, "Permission denied")  # no file name, as from a wrapper
        return Broken()

    monkeypatch.setattr(stream, "_open_text", fake_open)
    with pytest.raises(InputError, match=r"bad\.txt: cannot read"):
        list(stream.iter_pieces(bad))
    res = CliRunner().invoke(
        cli, ["data", "prepare", str(tmp_path), "--out", str(tmp_path / "out"), "--vocab-size", "300"]
    )
    assert res.exit_code == 2 and "bad.txt" in res.output and "Traceback" not in res.output, res.output


def test_a_folder_gives_its_text_files_only(tmp_path):
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / "pkg").mkdir()
    (src / "a.py").write_text("print('a')\n")
    (src / "pkg" / "b.txt.gz").write_bytes(gzip.compress(b"some text\n"))  # compressed: kept
    (src / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\xa7\r\r\n\x00\x00\x00\x00code")
    (src / ".git" / "config").write_text("[core]\n")
    (src / ".hidden.txt").write_text("not this\n")
    (src / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert stream.resolve([str(src)]) == [src / "a.py", src / "pkg" / "b.txt.gz"]
    # a pattern skips binary files too; a binary file named on its own is refused, by name
    assert stream.resolve([str(src / "*")]) == [src / "a.py", src / "pkg" / "b.txt.gz"]
    with pytest.raises(InputError, match="logo.png.*a binary file"):
        stream.resolve([str(src / "logo.png")])


def test_a_recursive_pattern_never_follows_a_folder_link(tmp_path):
    """Found by fuzzing: glob's ``**`` follows links to folders, so a link back up the tree
    (``up -> ..``) gave the same files under ever longer paths until the system refused one.
    A ``**`` pattern now walks the
    tree as a folder source does, never entering a linked folder."""
    src = tmp_path / "c"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / ".hidden").mkdir()
    (src / "a.txt").write_text("a\n")
    (src / "sub" / "b.txt").write_text("b\n")
    (src / "sub" / "c.md").write_text("c\n")
    (src / "sub" / ".hidden" / "h.txt").write_text("h\n")
    (src / "up").symlink_to("..")  # a second such link made glob walk for more than five minutes
    every = [src / "a.txt", src / "sub" / "b.txt", src / "sub" / "c.md"]
    assert stream.resolve([str(src / "**")]) == every
    assert stream.resolve([str(src / "**" / "*.txt")]) == [src / "a.txt", src / "sub" / "b.txt"]
    assert stream.resolve([str(tmp_path / "**" / "sub" / "*.md")]) == [src / "sub" / "c.md"]
    assert stream.resolve([str(src / "su?" / "*.txt")]) == [src / "sub" / "b.txt"]  # no ** : glob's own
    from lmscale.train import data as tdata  # a ladder config's sources take the same walk

    docs = tdata.documents(tdata.CorpusConfig("x", (str(src / "**" / "*.txt"),)))
    assert [d for d, _ in docs] == [str(src / "a.txt"), str(src / "sub" / "b.txt")]


def test_a_pattern_skips_a_dangling_link_as_a_folder_does(tmp_path):
    """Noticed by the hostile-input campaign: a pattern matching a dangling link refused the whole
    corpus ("no such file") while a folder source skipped it; named on its own it is still refused."""
    src = tmp_path / "c"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    (src / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    assert stream.resolve([str(src)]) == [src / "a.txt"]
    assert stream.resolve([str(src / "*.txt")]) == [src / "a.txt"]
    assert stream.resolve([str(src / "**" / "*.txt")]) == [src / "a.txt"]
    with pytest.raises(InputError, match="gone.txt"):
        stream.resolve([str(src / "gone.txt")])


def test_pretokenized_files_are_used_in_place(corpus, tmp_path):
    from lmscale.train.data import train_tokenizer

    _root, docs = corpus
    tok = train_tokenizer(list(docs.values()), 300)
    tok.save(str(tmp_path / "tok.json"))
    ids = np.array(
        [i for t in list(docs.values())[:50] for i in tok.encode(t).ids + [tok.token_to_id(EOT)]],
        dtype=np.uint16,
    )
    ids[:-100].tofile(tmp_path / "train.bin")
    ids[-100:].tofile(tmp_path / "val.bin")
    res = CliRunner().invoke(
        cli,
        [
            "data",
            "prepare",
            "--pretokenized",
            str(tmp_path / "train.bin"),
            "--pretokenized-val",
            str(tmp_path / "val.bin"),
            "--tokenizer",
            str(tmp_path / "tok.json"),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code == 0, res.output
    _tok, train, val, meta = open_prepared(tmp_path / "p")
    assert meta["pretokenized"] and np.array_equal(train[0 : len(train)], ids[:-100]) and len(val) == 100
    (tmp_path / "odd.bin").write_bytes(b"\x01\x02\x03")
    res = CliRunner().invoke(
        cli,
        [
            "data",
            "prepare",
            "--pretokenized",
            str(tmp_path / "odd.bin"),
            "--tokenizer",
            str(tmp_path / "tok.json"),
            "--out",
            str(tmp_path / "q"),
        ],
    )
    assert res.exit_code == 2 and "not a whole number of uint16 tokens" in res.output


def test_prepare_never_deletes_files_it_did_not_write(corpus, tmp_path):
    root, _ = corpus
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "weights.bin").write_bytes(b"precious")
    with pytest.raises(InputError, match="holds other files \\(weights.bin\\)"):
        prepare_corpus([str(root)], theirs, options=PrepareOptions(vocab_size=300))
    assert (theirs / "weights.bin").read_bytes() == b"precious"


def test_a_corpus_of_empty_files_is_named_before_anything_is_written(tmp_path):
    """Found by fuzzing: a folder of empty files failed with "the corpus supports only 257 tokens"
    (without a tokenizer) or left a tokenizer.json behind (with one)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("")
    (src / "b.jsonl").write_text("")
    for tok in (None, _tokenizer_file(tmp_path)):
        out = tmp_path / "out"
        with pytest.raises(InputError, match=r"every file is empty.*a\.txt"):
            prepare_corpus([str(src)], out, tokenizer_file=tok, options=PrepareOptions(vocab_size=300))
        assert not out.exists() or not (out / "tokenizer.json").exists()


def _tokenizer_file(tmp_path):
    from lmscale.train.data import train_tokenizer

    path = tmp_path / "tok.json"
    path.write_text(train_tokenizer(iter(["some words to learn from"] * 50), 260).to_str())
    return path


def test_records_without_text_in_the_named_field_are_said_so(tmp_path):
    """Found by fuzzing: JSONL records whose text sits under another key (or is not a string)
    gave "the corpus supports only 257 tokens" without a tokenizer."""
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"body": f"words {i} and more"}) + "\n" for i in range(50)))
    for tok in (None, _tokenizer_file(tmp_path)):
        with pytest.raises(InputError, match=r"docs\.jsonl.*no training text.*field 'text'.*--text-field"):
            prepare_corpus(
                [str(src)], tmp_path / "out", tokenizer_file=tok, options=PrepareOptions(vocab_size=300)
            )
    done = prepare_corpus(
        [str(src)], tmp_path / "out", options=PrepareOptions(vocab_size=300, text_field="body")
    )
    assert done.is_file()
