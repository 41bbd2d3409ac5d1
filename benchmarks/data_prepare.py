"""Peak memory and throughput of `lmscale data prepare` as the corpus grows.

    python benchmarks/data_prepare.py [--sizes 1GB 4GB] [--workdir /tmp/lmscale-prep]
    python benchmarks/data_prepare.py --huge-documents   # the worst case: one huge document


For each size it writes a synthetic corpus (gzipped JSONL files of 64 MB of text each, words drawn
from a Zipf law over 100,000 random words), prepares it in a fresh process (BPE of 16,384 tokens
trained on a 256 MB sample, shards of 2^27 tokens) and reports that process's peak resident memory
and its MB/s. Memory must not grow with the corpus: the sample, one batch of documents and one
shard buffer are all it holds.

``--huge-documents`` measures the worst case instead, in about a minute: a single 9 MB document
(a text file without a blank line) and a 72 MB file of one short sentence per line (also one
document), each prepared in a fresh process (BPE of 4,096 tokens on an 8 MB sample). A document
is tokenised in pieces of at most 1 MB, so peak memory must not grow with the document's size."""

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--sizes", nargs="+", default=["1GB", "4GB"])
ap.add_argument("--workdir", default="/tmp/lmscale-prep")
ap.add_argument("--vocab-size", type=int, default=16384)
ap.add_argument("--huge-documents", action="store_true", help="measure one 9 MB and one 72 MB document")
args = ap.parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lmscale.train.memory import parse_bytes  # noqa: E402

FILE_BYTES = 64 << 20
rng = np.random.default_rng(0)
letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
words = np.array(["".join(rng.choice(letters, int(n))) for n in rng.integers(2, 11, 100_000)])


def write_corpus(folder: Path, size: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    have = sum(p.stat().st_size for p in folder.glob("*.jsonl.gz"))
    k = len(list(folder.glob("*.jsonl.gz")))
    text_bytes = k * FILE_BYTES
    while text_bytes < size:
        tmp = folder / f".part-{k:04d}.tmp"
        with gzip.open(tmp, "wt", compresslevel=1) as fh:
            written = 0
            while written < FILE_BYTES:
                ids = np.minimum(rng.zipf(1.2, 4000), len(words)) - 1
                doc = " ".join(words[ids])
                fh.write(json.dumps({"text": doc}) + "\n")
                written += len(doc)
        tmp.rename(folder / f"part-{k:04d}.jsonl.gz")  # a file cut by a kill is never taken for data
        text_bytes += FILE_BYTES
        k += 1
    del have


def peak_of(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in GiB, seconds) of ``lmscale`` with ``argv`` in a fresh process."""
    t0 = time.perf_counter()
    code = (
        "import resource; from lmscale.cli import cli; "
        f"cli.main(args={argv!r}, standalone_mode=False); "
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    res = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True)
    return int(res.stdout.split("PEAK_KB")[-1].split()[0]) / 2**20, time.perf_counter() - t0


def huge_documents() -> None:
    root = Path(args.workdir) / "huge"
    root.mkdir(parents=True, exist_ok=True)
    sentence = lambda n: " ".join(words[np.minimum(rng.zipf(1.2, n), len(words)) - 1])  # noqa: E731
    one_doc = root / "one-document-9MB.txt"
    if not one_doc.is_file():
        parts, size = [], 0
        while size < 9_000_000:
            parts.append(sentence(2000) + "\n")  # lines, never a blank one: one document
            size += len(parts[-1])
        one_doc.write_text("".join(parts))
    lines = root / "short-lines-72MB.txt"
    if not lines.is_file():
        with open(lines, "w") as fh:
            size = 0
            while size < 72_000_000:
                chunk = "".join(sentence(int(k)) + ".\n" for k in rng.integers(4, 16, 10_000))
                fh.write(chunk)
                size += len(chunk)
    for src in (one_doc, lines):
        out = root / f"prepared-{src.stem}"
        shutil.rmtree(out, ignore_errors=True)
        argv = [
            "data",
            "prepare",
            str(src),
            "--out",
            str(out),
            "--vocab-size",
            "4096",
            "--sample-bytes",
            "8MB",
        ]
        peak, seconds = peak_of(argv)
        print(
            f"{src.name}: {src.stat().st_size / 1e6:.0f} MB in {seconds:.0f} s, peak RSS {peak:.2f} GiB",
            flush=True,
        )


if args.huge_documents:
    huge_documents()
    sys.exit(0)

for label in args.sizes:
    size = parse_bytes(label)
    root = Path(args.workdir)
    corpus = root / f"corpus-{label}"
    write_corpus(corpus, size)
    out = root / f"prepared-{label}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    # a fresh process per size, which reports its own peak resident memory
    code = (
        "import resource, sys; from lmscale.cli import cli; "
        f"cli.main(args=['data', 'prepare', {str(corpus / '*.jsonl.gz')!r}, '--out', {str(out)!r}, "
        f"'--vocab-size', '{args.vocab_size}'], standalone_mode=False); "
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    res = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak_kb = int(res.stdout.split("PEAK_KB")[-1].split()[0])
    text = len(list(corpus.glob("*.jsonl.gz"))) * FILE_BYTES
    print(
        f"{label}: {text / 2**30:.2f} GiB of text in {seconds:.0f} s ({text / 2**20 / seconds:.1f} MB/s), "
        f"peak RSS {peak_kb / 2**20:.2f} GiB",
        flush=True,
    )
