"""Files a team can share (issue 21): atomic writes get the mode a plain open() would give (0644
under umask 022, not mkstemp's 0600), and run-table CSVs keep every float exactly."""

import os

import numpy as np
import pytest

from lmscale._io import atomic_write_text
from lmscale.fit.result import FitResult
from lmscale.run_table import RunTable


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        p = atomic_write_text(tmp_path / "report.md", "x")
        again = atomic_write_text(tmp_path / "report.md", "y")  # replacing a file: the same mode
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == mode and again.stat().st_mode & 0o777 == mode


def test_run_table_csv_round_trips_floats_exactly(tmp_path):
    rng = np.random.default_rng(0)
    loss = 3.0 + rng.random(20) / 7  # 17 significant digits in general
    rows = [
        {"run_id": f"r{i}", "dataset": "d", "model": "m", "n_params": 1e8 / 3 * (i + 1), "n_tokens": 2e9,
         "loss_c4": float(v), "acc_arc": 0.1 + 0.2}
        for i, v in enumerate(loss)
    ]  # fmt: skip
    t = RunTable.from_records(rows)
    old = os.umask(0o022)
    try:
        path = t.write(tmp_path / "runs.csv")
    finally:
        os.umask(old)
    back = RunTable.read(path)
    assert back.loss("loss_c4").tolist() == t.loss("loss_c4").tolist()
    assert back.column("n_params").tolist() == t.column("n_params").tolist()
    text = path.read_text()
    assert "0.30000000000000004" in text
    assert "3.0000000000000000" not in text  # shortest repr, not %.17g padding
    assert path.stat().st_mode & 0o777 == 0o644


def test_saved_fits_are_readable_by_the_group(tmp_path):
    from lmscale.fit.core import fit

    n = np.array([1e7, 2e7, 4e7, 8e7, 1.6e8, 3.2e8])
    m = np.array([10.0, 20.0, 40.0, 10.0, 20.0, 40.0])
    res = fit("power", {"flops": 6 * n * n * m}, 3.0 * (6 * n * n * m) ** -0.05, method="varpro")
    old = os.umask(0o022)
    try:
        p = res.save(tmp_path / "fit.json")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644 and FitResult.load(p).params == res.params
