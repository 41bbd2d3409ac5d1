"""Fitting straight from a :class:`RunTable`: map a law's inputs to run-table columns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lmscale.errors import InputError
from lmscale.fit.core import fit
from lmscale.fit.result import FitResult
from lmscale.laws import Law, get_law
from lmscale.run_table import LOSS_PREFIX, RunTable
from lmscale.tasks import target_values


def input_columns(law: Law, loss_column: str | None = None) -> dict[str, str]:
    """Run-table column for each law input; the error law's ``loss`` comes from ``loss_column``."""
    cols = {}
    for name in law.inputs:
        if name == "loss":
            if not loss_column:
                raise InputError(
                    f"law {law.name!r} takes a validation loss as input: name its column (e.g. loss_c4_val)"
                )
            cols[name] = loss_column if loss_column.startswith(LOSS_PREFIX) else LOSS_PREFIX + loss_column
        else:
            cols[name] = name
    return cols


def choose_law(law: Law | str | None, target: str) -> Law:
    """The law for ``target``: ``law`` when it suits it, the error law for an error target
    (``error_*``, ``error:…``) and the over-training law for a loss when ``law`` is None; a loss law
    asked to fit an error (or the error law a loss) is refused."""
    is_error, is_loss = target.startswith("error"), target.startswith(LOSS_PREFIX)
    if law is None:
        if is_error:
            return get_law("error")
        if is_loss:
            return get_law("overtrain")
        raise InputError(
            f"no default law for target {target!r}: name one (--law overtrain, chinchilla or error)"
        )
    law = get_law(law) if isinstance(law, str) else law
    maps_loss = "loss" in law.inputs
    if is_error and not maps_loss:
        raise InputError(
            f"target {target!r} is a downstream error, but law {law.name!r} models a loss from N and D: "
            "fit it with the error law (--law error, or leave --law out) chained through --loss-column"
        )
    if is_loss and maps_loss:
        raise InputError(f"target {target!r} is a loss; law {law.name!r} maps a loss to a downstream error")
    return law


def fit_table(
    runs: RunTable,
    law: Law | str,
    target: str,
    *,
    method: str = "default",
    loss_column: str | None = None,
    **kwargs,
) -> FitResult:
    """Fit ``law`` on every run of ``runs`` to ``target`` (see :func:`lmscale.tasks.target_values`)."""
    law = get_law(law) if isinstance(law, str) else law
    if len(runs) == 0:
        raise InputError(f"empty selection: no runs left to fit law {law.name!r} on {target!r}")
    y = target_values(runs, target)  # an unknown target is named before a missing loss column
    cols = input_columns(law, loss_column)
    x = {}
    for name, col in cols.items():
        x[name] = runs.loss(col) if name == "loss" else runs.column(col).astype(float)
    return fit(law, x, y, method=method, run_ids=runs.run_ids, target=target, input_columns=cols, **kwargs)


def fit_runs(
    runs: RunTable | pd.DataFrame | str | Path,
    law: Law | str | None,
    target: str,
    *,
    where: Sequence[str] | str | None = None,
    dataset: str | None = None,
    method: str = "default",
    loss_column: str | None = None,
    huber_delta: float | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> FitResult:
    """The ``lmscale fit`` command as one call: keep the runs ``where`` selects (the selection
    language of :class:`lmscale.selection.Selection`; several clauses are OR-ed) and of training set
    ``dataset``, fit, and with ``n_boot`` > 0 add a bootstrap
    and the calibrated intervals' scores (stored in the result, so a saved fit predicts intervals).
    ``runs``: a run table, a DataFrame in its schema, or a path (:func:`lmscale.run_table.as_runs`);
    ``law`` None: the error law for an error target, the over-training law for a loss."""
    from lmscale.run_table import as_runs
    from lmscale.selection import Selection

    runs = as_runs(runs)
    law = choose_law(law, target)

    if where:
        runs = Selection.parse(list(where) if not isinstance(where, str) else where).apply(runs)
    if dataset:
        runs = Selection.parse(f"dataset == {dataset}").apply(runs)
    kwargs = {} if huber_delta is None else {"huber_delta": huber_delta}
    result = fit_table(runs, law, target, method=method, loss_column=loss_column, **kwargs)
    if n_boot:
        from lmscale.calibration import calibrate_fit
        from lmscale.fit.bootstrap import bootstrap

        result = calibrate_fit(bootstrap(result, n_boot, seed), min(n_boot, 200), seed)
    return result
