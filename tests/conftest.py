"""Shared fixtures. The paper's data stay in ../shared (never copied into the repository); tests
that need them skip with a reason when that folder is absent. LMSCALE_SHARED overrides the path."""

import os
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


@pytest.fixture(scope="session")
def shared_ladders():
    """The public ladders of ../shared/ladders (Porian et al. on two corpora, Gemstones)."""
    folder = _need(SHARED / "ladders")
    return {p.stem: p for p in sorted(folder.glob("*.csv"))}
