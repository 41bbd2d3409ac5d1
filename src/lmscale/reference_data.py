"""The reference calibration shipped with lmscale, as data: ``data/reference_calibration.json``
(written by ``python benchmarks/calibrate.py --write``). :mod:`lmscale.calibration` turns its
entries into calibrations; the lower layers (the backtest) read the one number they need from it
here — the loss's center shift — without importing the calibration layer above them."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def reference_file() -> dict:
    """The shipped file, parsed once."""
    text = resources.files("lmscale").joinpath("data/reference_calibration.json").read_text(encoding="utf-8")
    return json.loads(text)


def loss_shift() -> float:
    """The loss reference's center shift (ln units): where lmscale centers the default method's
    predictions beyond their fitted runs (:meth:`lmscale.calibration.Calibration.center`)."""
    return float(reference_file()["calibrations"]["loss"].get("shift", 0.0))
