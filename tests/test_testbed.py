import functools
import http.server
import shutil
import threading

import numpy as np
import pytest

from lmscale import tasks, testbed
from lmscale.errors import DownloadError, InputError


def test_load_counts(testbed_runs):
    assert len(testbed_runs) == 104
    assert testbed_runs.val_sets == list(testbed.VAL_SETS)
    assert len(testbed_runs.tasks) == 46 and set(testbed_runs.tasks) == set(tasks.PAPER_46)
    assert set(testbed_runs.datasets) == {"c4_original", "rpj", "rw_original"}
    n = sorted(set(testbed_runs.column("n_params")))
    assert n == [10569312, 78914048, 153677376, 411616256, 1439795200, 6889410560]
    m = testbed_runs.column("multiplier")
    assert np.allclose(testbed_runs.column("n_tokens"), m * testbed_runs.column("n_params"))


def test_above_chance_rule_rederives_17(testbed_runs, testbed_dir):
    meta = testbed.load_task_metadata(testbed_dir)
    assert tasks.above_chance_tasks(testbed_runs, meta) == tuple(
        t for t in tasks.PAPER_46 if t in tasks.PAPER_17
    )
    assert len(tasks.above_chance_tasks(testbed_runs, meta, threshold_points=5)) > 17
    assert meta["copa"].random_baseline == 0.5


def test_average_error_and_random_baseline(testbed_runs, testbed_dir):
    err46 = tasks.average_error(testbed_runs, "46-task")
    manual = 1 - np.mean([testbed_runs.accuracy(t) for t in tasks.PAPER_46], axis=0)
    assert np.allclose(err46, manual)
    assert np.allclose(
        tasks.target_values(testbed_runs, "error_17"), tasks.average_error(testbed_runs, "17-task")
    )
    meta = testbed.load_task_metadata(testbed_dir)
    assert 0.5 < tasks.random_error(meta, "46-task") < 0.9
    with pytest.raises(InputError, match="unknown task name.*nonsense"):
        tasks.average_error(testbed_runs, ["copa", "nonsense"])


def test_missing_eval_file(tmp_path, testbed_dir):
    shutil.copytree(testbed_dir / "models", tmp_path / "models")
    (tmp_path / "evals").mkdir()
    with pytest.raises(InputError, match="downstream evaluation of run .* not found"):
        testbed.load(tmp_path)


def test_malformed_model_json(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "evals").mkdir()
    (tmp_path / "models" / "x.json").write_text("{not json")
    with pytest.raises(InputError, match=r"x.json: malformed JSON"):
        testbed.load(tmp_path)


def test_not_a_testbed(tmp_path):
    with pytest.raises(InputError, match="not a testbed folder"):
        testbed.load(tmp_path)


@pytest.fixture()
def loopback_server(testbed_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(testbed_dir))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_from_loopback_and_resume(tmp_path, loopback_server):
    seen = []
    root = testbed.download(tmp_path, base_url=loopback_server, progress=lambda n, d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] == len(testbed.manifest())
    assert len(testbed.load(root)) == 104
    # a corrupted local file is fetched again; intact ones are kept
    victim = root / "eval_metadata.csv"
    victim.write_text("garbage")
    testbed.download(tmp_path, base_url=loopback_server)
    assert "Random baseline" in victim.read_text()


def test_download_detects_tampering(tmp_path, loopback_server, monkeypatch):
    real = testbed.manifest()
    fake = {k: dict(v) for k, v in real.items()}
    fake["grid.json"]["sha256"] = "0" * 64
    monkeypatch.setattr(testbed, "manifest", lambda: fake)
    with pytest.raises(DownloadError, match="integrity check failed for grid.json"):
        testbed.download(tmp_path, base_url=loopback_server)


def test_download_unreachable(tmp_path):
    with pytest.raises(DownloadError, match="could not connect"):
        testbed.download(tmp_path, base_url="http://127.0.0.1:9/", timeout=2)
