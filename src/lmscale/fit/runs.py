"""Fitting straight from a :class:`RunTable`: map a law's inputs to run-table columns."""

from __future__ import annotations

from lmscale.errors import InputError
from lmscale.fit.core import fit
from lmscale.fit.method import DEFAULT, Method
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
    method: str | Method = DEFAULT,
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
