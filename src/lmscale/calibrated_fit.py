"""The ``lmscale fit`` command as one library call: select runs, fit, and with a bootstrap store the
calibrated intervals' scores in the result. It sits above :mod:`lmscale.calibration`, so ``fit/``
never needs to know about calibrations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lmscale.calibration import calibrate_fit
from lmscale.fit.bootstrap import bootstrap
from lmscale.fit.method import DEFAULT, Method
from lmscale.fit.result import FitResult
from lmscale.fit.runs import choose_law, fit_table
from lmscale.laws import Law
from lmscale.run_table import RunTable
from lmscale.selection import Selection
from lmscale.testbed import as_runs


def fit_runs(
    runs: RunTable | pd.DataFrame | str | Path,
    law: Law | str | None,
    target: str,
    *,
    where: Sequence[str] | str | None = None,
    dataset: str | None = None,
    method: str | Method = DEFAULT,
    loss_column: str | None = None,
    huber_delta: float | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> FitResult:
    """The ``lmscale fit`` command as one call: keep the runs ``where`` selects (the selection
    language of :class:`lmscale.selection.Selection`; several clauses are OR-ed) and of training set
    ``dataset``, fit, and with ``n_boot`` > 0 add a bootstrap
    and the calibrated intervals' scores (stored in the result, so a saved fit predicts intervals).
    ``runs``: a run table, a DataFrame in its schema, or a path (:func:`lmscale.testbed.as_runs`);
    ``law`` None: the error law for an error target, the over-training law for a loss."""
    runs = as_runs(runs)
    law = choose_law(law, target)
    if where:
        runs = Selection.parse(list(where) if not isinstance(where, str) else where).apply(runs)
    if dataset:
        runs = Selection.parse(f"dataset == {dataset}").apply(runs)
    kwargs = {} if huber_delta is None else {"huber_delta": huber_delta}
    result = fit_table(runs, law, target, method=method, loss_column=loss_column, **kwargs)
    if n_boot:
        result = calibrate_fit(bootstrap(result, n_boot, seed), min(n_boot, 200), seed)
    return result
