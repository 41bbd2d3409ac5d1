"""Shared fixtures. The paper's data stay in ../shared (never copied into the repository); tests
that need them skip with a reason when that folder is absent. LMSCALE_SHARED overrides the path."""

import contextlib
import os
import shutil
import signal
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LMSCALE_SHARED", ROOT.parent / "shared"))
TESTBED = SHARED / "testbed" / "exp_data"
REFERENCE = SHARED / "reference" / "gadre-default-fits.json"
EPOCH = SHARED / "peers" / "chinchilla-epoch" / "svg_extracted_data.csv"


#: slow tests (multi-process training, kill -9, the fuzz campaign, the planner's validation) run
#: where LMSCALE_SLOW=1 (.ci/run sets it), and are skipped with this reason elsewhere
RUN_SLOW = os.environ.get("LMSCALE_SLOW", "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow: runs in CI (LMSCALE_SLOW=1 runs it here)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _need(path: Path):
    if not path.exists():
        pytest.skip(
            f"shared data not found at {path} (put the shared folder beside the repository "
            "or set LMSCALE_SHARED)"
        )
    return path


@pytest.fixture(scope="session")
def testbed_dir():
    return _need(TESTBED)


@pytest.fixture(scope="session")
def testbed_runs(testbed_dir):
    from lmscale import testbed

    return testbed.load(testbed_dir)


@pytest.fixture(scope="session")
def reference():
    import json

    return json.loads(_need(REFERENCE).read_text())


@pytest.fixture(scope="session")
def epoch_csv():
    return _need(EPOCH)


@pytest.fixture(scope="session")
def paper_reproduction(testbed_runs):
    from lmscale import paper

    return paper.reproduce(testbed_runs)


# ------------------------------------------------------------------ training (torch, tokenizers)
# Shared by test_train.py, test_checkpoint.py and test_ladder_run.py: the corpus is tokenised once
# and the small ladder trained once per session (per worker under xdist).
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _need_training() -> None:
    pytest.importorskip("torch", reason="training needs torch (pip install torch==2.13.0 tokenizers)")
    pytest.importorskip("tokenizers", reason="training needs tokenizers")


@pytest.fixture(scope="session")
def tokens(tmp_path_factory):
    """The json and email packages of the standard library, tokenised with a 300-token vocabulary."""
    _need_training()
    from lmscale.train import data as tdata

    cache = tmp_path_factory.mktemp("cache")
    corpus = tdata.CorpusConfig(
        "json", (str(STDLIB / "json" / "*.py"), str(STDLIB / "email" / "*.py")), val_permille=200
    )
    return tdata.prepare(corpus, (), cache, 300)


@pytest.fixture(scope="session")
def train_config():
    """A factory of tiny training configurations (32 wide, 2 layers, 6 steps of 4 × 16 tokens)."""
    _need_training()
    from lmscale.train.loop import TrainConfig
    from lmscale.train.model import ModelConfig

    def make(vocab, **kw):
        base = dict(n_tokens=16 * 4 * 6 - 10, batch_size=4, warmup_steps=2, checkpoint_every=2, seed=3)
        base.update(kw)
        return TrainConfig(ModelConfig(32, 2, 2, vocab, seq_len=16), **base)

    return make


@pytest.fixture(scope="session")
def trained_ladder(tmp_path_factory):
    """One 3-size × 3-M ladder trained once for the tests that need finished runs; each test works
    on a copy (:func:`ladder_copy`: run_ladder skips the finished runs of the copy)."""
    _need_training()
    from lmscale.ladder_run import run_ladder
    from lmscale.train import data as tdata
    from lmscale.train.ladder import LadderConfig, ShapeSpec

    corpus = tdata.CorpusConfig(
        "json", (str(STDLIB / "json" / "*.py"), str(STDLIB / "email" / "*.py")), val_permille=200
    )
    val = tdata.CorpusConfig("csv", (str(STDLIB / "csv.py"), str(STDLIB / "textwrap.py")), val_permille=1000)
    cfg = LadderConfig(
        "t",
        (ShapeSpec("a", 16, 1, 2, 16, 2), ShapeSpec("b", 32, 1, 2, 16, 2), ShapeSpec("c", 48, 1, 2, 16, 2)),
        (0.25, 0.5, 1.0),
        corpus,
        (val,),
        vocab_size=300,
        seq_len=32,
        checkpoint_every=0,
    )
    folder = tmp_path_factory.mktemp("shared") / "ladder"
    run_ladder(cfg, folder)
    return cfg, folder


@pytest.fixture
def ladder_copy(trained_ladder, tmp_path):
    """(config, folder): a copy of the trained ladder in this test's own folder."""
    cfg, folder = trained_ladder
    dest = tmp_path / "ladder"
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(".lock"))
    return cfg, dest


@pytest.fixture(scope="session")
def shared_ladders():
    """The public ladders of ../shared/ladders (Porian et al. on two corpora, Gemstones)."""
    folder = _need(SHARED / "ladders")
    return {p.stem: p for p in sorted(folder.glob("*.csv"))}


@pytest.fixture(scope="session")
def public_ladders():
    """Every public ladder of the shared folder (lmscale.benchmark.ladders.PUBLIC_LADDERS): five
    ladders from four labs, the testbed split into its three training sets."""
    from lmscale.benchmark import ladders

    for rel in ladders.PUBLIC_LADDERS:
        _need(SHARED / rel)
    return ladders.public_ladders(SHARED)


@contextlib.contextmanager
def deadline(seconds: float = 30):
    """Fail instead of hanging (a FIFO's open blocks until a writer comes): SIGALRM after
    ``seconds`` raises TimeoutError in the test."""

    def boom(_sig, _frame):
        raise TimeoutError(f"still running after {seconds} s: a reader blocked")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
