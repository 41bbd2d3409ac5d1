"""Hostile and careless input on the training side (issues 23 and 24): no code runs from a shared
run folder, nothing of the user's is overwritten, huge documents in bounded pieces, token ids
beyond the vocabulary, autolinks from run ids, moved ladder folders, tampered calibrations,
damaged TensorBoard records and checkpoints that do not match their record."""

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
pytest.importorskip("tokenizers", reason="needs tokenizers")

from click.testing import CliRunner  # noqa: E402

from conftest import ROOT  # noqa: E402
from lmscale.cli import cli  # noqa: E402
from lmscale.errors import InputError  # noqa: E402
from lmscale.ladder_run import run_ladder  # noqa: E402
from lmscale.train import pieces  # noqa: E402
from lmscale.train.data import EOT, CorpusConfig, train_tokenizer  # noqa: E402
from lmscale.train.ladder import LadderConfig, ShapeSpec  # noqa: E402
from lmscale.train.shards import register_tokens  # noqa: E402
from lmscale.train.stream import PrepareOptions, open_prepared, prepare_corpus  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SRC = str(ROOT / "src")
EXAMPLE = ROOT / "examples" / "cpu-small" / "runs.jsonl"


@pytest.fixture(scope="module")
def tok():
    texts = [p.read_text() for p in sorted((STDLIB / "json").glob("*.py"))]
    return train_tokenizer(texts, 300)


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """A one-run ladder (full checkpoint), trained once; tests work on copies."""
    corpus = CorpusConfig("json", (str(STDLIB / "json" / "*.py"),), val_permille=200)
    cfg = LadderConfig(
        "h",
        (ShapeSpec("a", 32, 1, 2, 16, 2),),
        (0.25,),
        corpus,
        vocab_size=300,
        seq_len=16,
        checkpoint_every=0,
    )
    root = tmp_path_factory.mktemp("h") / "ladder"
    run_ladder(cfg, root)
    return root


def _copy(ladder, dest) -> Path:
    shutil.copytree(ladder, dest, ignore=shutil.ignore_patterns(".lock"))
    return next((dest / "runs").iterdir())


def _suite(tmp_path, label="mc"):
    items = tmp_path / f"{label}.jsonl"
    items.write_text(
        "".join(
            json.dumps({"query": f"def f{i}(x):", "choices": ["    return x", "zzzz qqqq"], "gold": 0}) + "\n"
            for i in range(4)
        )
    )
    suite = tmp_path / f"{label}.yaml"
    suite.write_text(
        f"icl_tasks:\n- {{label: {label}, dataset_uri: {items}, num_fewshot: [0], icl_task_type: multiple_choice}}\n"
    )
    return suite


def _to_sharded(run: Path) -> None:
    """Replace a run's full checkpoint by a sharded one (as ``checkpoint_format: sharded`` saves)."""
    from lmscale.ladder_eval import load_run
    from lmscale.train.checkpoint import save_sharded
    from lmscale.train.config import TrainState

    model, _tok, _rec = load_run(run)
    opt = torch.optim.AdamW(model.parameters())

    class Cfg:
        def digest(self):
            return "test"

    save_sharded(run, model, opt, 1, Cfg(), TrainState(), rank=0)
    (run / "checkpoint.pt").unlink()


# ------------------------------------------------------------------------ no code from data
def test_a_crafted_dcp_metadata_pickle_never_runs(ladder, tmp_path):
    run = _copy(ladder, tmp_path / "l")
    _to_sharded(run)
    assert json.loads((run / "checkpoint.dcp" / "meta.json").read_text())["sha256"]
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (run / "checkpoint.dcp" / ".metadata").write_bytes(pickle.dumps(Payload()))
    suite = _suite(tmp_path)
    for args in (
        ["export", str(run), "--to", str(tmp_path / "hf")],
        ["eval", str(run), "--suite", str(suite)],
    ):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2 and "refused to load" in res.output and ".metadata" in res.output, (
            res.output
        )
    # without the recorded digest (an older or edited meta.json) the restricted loader still refuses
    meta = json.loads((run / "checkpoint.dcp" / "meta.json").read_text())
    del meta["sha256"]
    (run / "checkpoint.dcp" / "meta.json").write_text(json.dumps(meta))
    for args in (
        ["export", str(run), "--to", str(tmp_path / "hf2")],
        ["eval", str(run), "--suite", str(suite)],
    ):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2 and "posix.system" in res.output, res.output
    assert not marker.exists()


def test_a_sharded_checkpoint_loads_and_a_changed_shard_is_refused(ladder, tmp_path):
    from lmscale.ladder_eval import load_run

    run = _copy(ladder, tmp_path / "l")
    before = {k: v.clone() for k, v in load_run(run)[0].state_dict().items()}
    _to_sharded(run)
    after = load_run(run)[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    shard = next((run / "checkpoint.dcp").glob("*.distcp"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256 differs"):
        load_run(run)
    (run / "checkpoint.dcp" / "extra.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="extra.bin is not one of the files"):
        load_run(run)


# ---------------------------------------------------------------- checkpoints that do not fit
def _edit_state(run, edit):
    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    torch.save(edit(state), path)


def _edit_record(run, edit):
    path = run / "record.json"
    rec = json.loads(path.read_text())
    edit(rec["train_config"]["model"])
    path.write_text(json.dumps(rec))


def _drop(state, key):
    del state["model"][key]
    return state


def _extra(state):
    state["model"]["spare.weight"] = torch.zeros(2)
    return state


def _reshape(state):
    state["model"]["embed.weight"] = torch.zeros(7, 3)
    return state


@pytest.mark.parametrize(
    "edit_state,edit_record,needle",
    [
        (_reshape, None, "tensor 'embed.weight' has shape [7, 3]"),
        (lambda s: _drop(s, "embed.weight"), None, "lacks tensor 'embed.weight'"),
        (_extra, None, "extra tensor 'spare.weight'"),
        (lambda s: {k: v for k, v in s.items() if k != "model"}, None, "no model state"),
        (lambda s: [s["model"]], None, "is a list"),
        (None, lambda m: m.update(colour="red"), "unknown key 'colour'"),
        (None, lambda m: m.pop("n_heads"), "lacks key 'n_heads'"),
        (None, lambda m: m.update(d_model=2**20, n_heads=2), "tensor 'embed.weight' has shape"),
    ],
)
def test_export_of_a_checkpoint_that_does_not_fit_its_record(
    ladder, tmp_path, edit_state, edit_record, needle
):
    run = _copy(ladder, tmp_path / "l")
    if edit_state is not None:
        _edit_state(run, edit_state)
    if edit_record is not None:
        _edit_record(run, edit_record)
    res = CliRunner().invoke(cli, ["export", str(run), "--to", str(tmp_path / "hf")])
    assert res.exit_code == 2 and needle in res.output and f"run {run.name}" in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / "hf").exists()


def test_an_all_zero_or_truncated_safetensors_is_a_clear_error(ladder, tmp_path):
    pytest.importorskip("transformers", reason="needs the interop extra")
    run = _copy(ladder, tmp_path / "l")
    out = tmp_path / "hf"
    assert CliRunner().invoke(cli, ["export", str(run), "--to", str(out)]).exit_code == 0
    weights = out / "model.safetensors"
    whole = weights.read_bytes()
    suite = _suite(tmp_path)
    for damaged in (whole[: len(whole) // 2], bytes(len(whole)), b""):
        weights.write_bytes(damaged)
        res = CliRunner().invoke(
            cli, ["eval", "--hf-model", str(out), "--trust-remote-code", "--suite", str(suite)]
        )
        assert res.exit_code == 2 and "model.safetensors" in res.output, res.output


# ------------------------------------------------------------------------ moved ladder folder
def test_a_moved_ladder_folder_still_exports_and_evaluates(ladder, tmp_path):
    run = _copy(ladder, tmp_path / "a")
    rec = json.loads((run / "record.json").read_text())
    assert not Path(rec["tokenizer_file"]).is_absolute()
    (tmp_path / "a").rename(tmp_path / "b")
    run = tmp_path / "b" / "runs" / run.name
    assert CliRunner().invoke(cli, ["export", str(run), "--to", str(tmp_path / "hf")]).exit_code == 0
    res = CliRunner().invoke(cli, ["eval", str(run), "--suite", str(_suite(tmp_path))])
    assert res.exit_code == 0, res.output


def test_a_prepared_corpus_elsewhere_is_copied_into_the_ladder_folder(tmp_path):
    prepare_corpus(
        [str(STDLIB / "json")], tmp_path / "prep", options=PrepareOptions(vocab_size=300, val_permille=200)
    )
    corpus = CorpusConfig("json", prepared=str(tmp_path / "prep"))
    cfg = LadderConfig("p", (ShapeSpec("a", 32, 1, 2, 16, 2),), (0.25,), corpus, vocab_size=300, seq_len=16)
    run_ladder(cfg, tmp_path / "l")
    run = next((tmp_path / "l" / "runs").iterdir())
    rec = json.loads((run / "record.json").read_text())
    assert rec["tokenizer_file"].startswith("../../") and (run / rec["tokenizer_file"]).is_file()


# --------------------------------------------------------------------- two evals of one run
def test_two_evals_of_one_run_at_once_keep_both_accuracies(ladder, tmp_path):
    run = _copy(ladder, tmp_path / "l")
    code = (
        "import sys; from lmscale.evaluate.icl import read_suite; from lmscale.ladder_eval import eval_run; "
        "from lmscale.run_record import RunRecord; import lmscale.run_record as rr; "
        "orig = RunRecord.write\n"
        "def slow(self, path):\n"
        "    import time; time.sleep(1.0); return orig(self, path)\n"
        "RunRecord.write = slow\n"
        "eval_run(sys.argv[1], read_suite(sys.argv[2], sys.argv[3]))"
    )
    env = dict(os.environ, PYTHONPATH=SRC)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(run), str(_suite(tmp_path, lab)), str(tmp_path)], env=env
        )
        for lab in ("one", "two")
    ]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    row = json.loads((run / "record.json").read_text())["row"]
    assert "acc_one" in row and "acc_two" in row


# ----------------------------------------------------------------------- data prepare folders
@pytest.mark.parametrize("name", ["manifest.json", "tokenizer.json", "train-data.bin"])
def test_prepare_never_overwrites_the_users_files(tmp_path, tok, name):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text("mine")
    with pytest.raises(InputError, match=f"holds {name}, which lmscale did not write"):
        prepare_corpus([str(STDLIB / "json")], out, options=PrepareOptions(vocab_size=300))
    assert (out / name).read_text() == "mine"
    ids = np.array(tok.encode("import json\n").ids + [tok.token_to_id(EOT)], dtype=np.uint16)
    ids.tofile(tmp_path / "t.bin")
    tok.save(str(tmp_path / "tok.json"))
    with pytest.raises(InputError, match="lmscale did not write"):
        register_tokens([tmp_path / "t.bin"], out, tmp_path / "tok.json")
    assert (out / name).read_text() == "mine" and sorted(p.name for p in out.iterdir()) == [name]


def test_prepare_again_into_its_own_folder(tmp_path):
    out = tmp_path / "out"
    opts = PrepareOptions(vocab_size=300, val_permille=200)
    prepare_corpus([str(STDLIB / "json")], out, options=opts)
    assert (out / ".lmscale-prepared").is_file()
    prepare_corpus([str(STDLIB / "json"), str(STDLIB / "csv.py")], out, options=opts)  # rewritten: its own
    assert open_prepared(out)[3]["files"][-1]["path"].endswith("csv.py")


def test_out_of_vocabulary_token_ids_are_refused_at_registration(tmp_path, tok):
    tok.save(str(tmp_path / "tok.json"))
    ids = np.array([1, 2, tok.token_to_id(EOT), 40000, 3], dtype=np.uint16)
    ids.tofile(tmp_path / "t.bin")
    with pytest.raises(
        InputError, match=r"t.bin: token 3 is id 40000, not below the tokenizer.s vocabulary size 300"
    ):
        register_tokens([tmp_path / "t.bin"], tmp_path / "p", tmp_path / "tok.json")
    assert not (tmp_path / "p" / "manifest.json").exists()


# --------------------------------------------------------------------------- huge documents
def test_pieces_keep_the_tokens(tok):
    for path in sorted((STDLIB / "email").glob("*.py"))[:8]:
        text = path.read_text()
        whole = tok.encode(text).ids
        for limit in (300, 2000):
            parts = list(pieces.split_text(text, limit))
            assert "".join(parts) == text and max(map(len, parts)) <= limit
            assert [i for p in parts for i in tok.encode(p).ids] == whole


def _tokens(out):
    _t, train, val, meta = open_prepared(out)
    arr = [np.asarray(train[0 : len(train)])] + ([np.asarray(val[0 : len(val)])] if val is not None else [])
    return np.concatenate(arr), meta


@pytest.mark.parametrize("big_file", [False, True])
def test_a_huge_document_is_tokenised_in_pieces_with_the_same_tokens(tmp_path, tok, monkeypatch, big_file):
    """One document without a blank line, far longer than a piece: as a small file (read whole)
    and as a big one (streamed line by line, the 72 MB case)."""
    from lmscale.train import stream

    monkeypatch.setattr(pieces, "PIECE_CHARS", 3000)
    if big_file:
        monkeypatch.setattr(stream, "BIG_TEXT", 1000)
    text = "".join(p.read_text().replace("\n\n", "\n#\n") for p in sorted((STDLIB / "json").glob("*.py")))
    src = tmp_path / "one.txt"
    src.write_text(text)
    tok.save(str(tmp_path / "tok.json"))
    opts = PrepareOptions(val_permille=0, batch_docs=2)
    prepare_corpus([str(src)], tmp_path / "out", tokenizer_file=tmp_path / "tok.json", options=opts)
    got, meta = _tokens(tmp_path / "out")
    assert meta["n_documents"]["train"] == 1
    assert got.tolist() == tok.encode(text).ids + [tok.token_to_id(EOT)]


def test_fake_zst_and_damaged_parquet_are_named(tmp_path):
    pytest.importorskip("zstandard")
    pytest.importorskip("pyarrow")
    (tmp_path / "a.txt.zst").write_bytes(b"not zstd at all" * 10)
    with pytest.raises(InputError, match="a.txt.zst: damaged or not a zstd-compressed file"):
        prepare_corpus([str(tmp_path / "a.txt.zst")], tmp_path / "o1", options=PrepareOptions(vocab_size=300))
    (tmp_path / "b.parquet").write_bytes(b"PAR1" + b"\0" * 50 + b"PAR1")
    with pytest.raises(InputError, match="b.parquet: damaged or not a Parquet file"):
        prepare_corpus([str(tmp_path / "b.parquet")], tmp_path / "o2", options=PrepareOptions(vocab_size=300))


# ------------------------------------------------------------------- report, predict, events
def test_autolinks_in_run_ids_are_not_live(tmp_path):
    rows = [json.loads(line) for line in EXAMPLE.read_text().splitlines() if line.strip()]
    biggest = max(r["n_params"] for r in rows)
    for r in rows:
        if r["n_params"] == biggest:
            r["run_id"] = "<https://evil.example/login>" + r["run_id"] + "<me@evil.example>"
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args = [
        "report",
        str(path),
        "--val-set",
        "python",
        "--split",
        "cloze,next_line",
        "--out",
        str(tmp_path / "r"),
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r" / "report.html").read_text()
    assert "evil.example/login" in html and 'href="https://evil' not in html and "mailto:" not in html
    assert "&lt;https://evil.example/login" in html


@pytest.mark.parametrize("value", [1e308, 5e3])
def test_absurd_calibration_scores_in_a_saved_fit(tmp_path, value):
    out = tmp_path / "f.json"
    args = ["fit", str(EXAMPLE), "--target", "loss_python", "--bootstrap", "20", "-o", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    d = json.loads(out.read_text())
    d["calibration"]["scores"] = [value] * len(d["calibration"]["scores"])
    out.write_text(json.dumps(d))
    res = CliRunner().invoke(cli, ["predict", str(out), "--n-params", "1e6", "--multiplier", "20"])
    assert res.exit_code == 2 and "malformed calibration" in res.output and "at most 1000" in res.output


def _record(data: bytes, length: int | None = None) -> bytes:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    head = struct.pack("<Q", len(data) if length is None else length)
    return head + struct.pack("<I", masked_crc32c(head)) + data + struct.pack("<I", masked_crc32c(data))


def _event_dirs(tmp_path):
    pytest.importorskip("tensorboard", reason="needs the interop extra")
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    def event(step, value):
        return Event(
            wall_time=1.0 + step,
            step=step,
            summary=Summary(value=[Summary.Value(tag="val/loss", simple_value=value)]),
        ).SerializeToString()

    good = b"".join(_record(event(s, 3.0 - s / 10)) for s in range(3))
    last = _record(event(3, 2.0))
    cases = {
        "ok-N1e6-M20": good + last,
        "cut-N1e6-M20": good + last[:-7],
        "crc-N1e6-M20": good + last[:-1] + bytes([last[-1] ^ 0xFF]),
        "huge-N1e6-M20": good + _record(b"", 1 << 62)[:12],
    }
    for name, data in cases.items():
        (tmp_path / "tb" / name).mkdir(parents=True)
        (tmp_path / "tb" / name / "events.out.tfevents.1.host").write_bytes(data)
    return tmp_path / "tb"


def test_damaged_tensorboard_records_are_reported(tmp_path):
    from lmscale.interop.mapping import MetricMap
    from lmscale.interop.tensorboard_events import import_tensorboard

    root = _event_dirs(tmp_path)
    rep = import_tensorboard(
        root, MetricMap.build(["val/loss=loss_val"]), name_pattern="{model}-N{params}-M{m}"
    )
    notes = "\n".join(rep.notes)
    assert "cut-N1e6-M20" in notes and "truncated" in notes
    assert "crc-N1e6-M20" in notes and "fails its data checksum" in notes
    skipped = dict(rep.skipped)
    assert "huge-N1e6-M20" in skipped and str(1 << 62) in skipped["huge-N1e6-M20"]
    assert len(rep.table) == 3


def test_token_files_registered_in_place_are_inputs_not_clashes(tmp_path, tok):
    out = tmp_path / "p"
    out.mkdir()
    tok.save(str(out / "tokenizer.json"))
    ids = np.array(tok.encode("import json\n" * 20).ids + [tok.token_to_id(EOT)], dtype=np.uint16)
    ids.tofile(out / "train-00000.bin")
    register_tokens([out / "train-00000.bin"], out, out / "tokenizer.json")
    _t, train, _v, meta = open_prepared(out)
    assert meta["pretokenized"] and np.array_equal(train[0 : len(train)], ids)
    assert (out / "train-00000.bin").read_bytes() == ids.tobytes()
    with pytest.raises(InputError, match="registered in place with --pretokenized"):
        prepare_corpus([str(STDLIB / "json")], out, options=PrepareOptions(vocab_size=300))
    assert (out / "train-00000.bin").read_bytes() == ids.tobytes() and (out / "manifest.json").is_file()


# ------------------------------------------------------------------------------ fuzzed frames
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, max_examples=150)


@FUZZ
@given(st.text(alphabet=st.sampled_from("ab \n\t.é"), max_size=400), st.integers(1, 60))
def test_fuzz_pieces_cover_the_text(text, limit):
    parts = list(pieces.split_text(text, limit))
    assert "".join(parts) == text and all(0 < len(p) <= limit for p in parts if text)


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_fuzz_event_files_and_safetensors_frames(tmp_path_factory, data, framed):
    """Random bytes (or random bytes behind a valid length frame) as an event file and as a
    safetensors file: a result or a named InputError, never another exception or a huge read."""
    pytest.importorskip("tensorboard")
    from lmscale.interop.hf import check_safetensors
    from lmscale.interop.tensorboard_events import scan_events

    d = tmp_path_factory.mktemp("f")
    ev = d / "events.out.tfevents.1.x"
    ev.write_bytes(_record(data) + data[:5] if framed else data)
    try:
        warnings = scan_events(ev)
        assert all(str(ev) in w for w in warnings)
    except InputError as exc:
        assert str(ev) in str(exc)
    st_file = d / "model.safetensors"
    st_file.write_bytes((len(data)).to_bytes(8, "little") + data if framed else data)
    try:
        check_safetensors(st_file)
    except InputError as exc:
        assert str(st_file) in str(exc)


@FUZZ
@given(
    st.sampled_from(
        ["os.system", "builtins.eval", "subprocess.Popen", "torch.load", "pathlib.Path.write_text"]
    )
)
def test_fuzz_metadata_pickles_naming_other_callables(tmp_path_factory, target):
    from lmscale.train.safe_load import read_dcp_metadata

    mod, _, name = target.rpartition(".")
    path = tmp_path_factory.mktemp("m") / ".metadata"
    # protocol 2: GLOBAL 'mod name', a string argument, REDUCE
    path.write_bytes(b"\x80\x02c" + mod.encode() + b"\n" + name.encode() + b"\nX\x01\x00\x00\x00xq\x00\x85R.")
    with pytest.raises(InputError, match="refused to load|unreadable checkpoint metadata"):
        read_dcp_metadata(path)


def test_a_big_file_of_one_line_is_read_in_parts(tmp_path, tok, monkeypatch):
    from lmscale.train import stream

    monkeypatch.setattr(pieces, "PIECE_CHARS", 500)
    monkeypatch.setattr(stream, "BIG_TEXT", 1000)
    text = " ".join(f"w{i % 97}" for i in range(3000)) + "\n"  # one line, ~15 kB
    (tmp_path / "line.txt").write_text(text)
    got = list(stream.iter_pieces(tmp_path / "line.txt"))
    assert "".join(p for _d, p, _e in got) == text and max(len(p) for _d, p, _e in got) <= 500
    assert [e for _d, _p, e in got].count(True) == 1 and got[-1][2]
