"""The paper's fitting configuration and held-out evaluation (a :class:`lmscale.study.Study`).

For each training set: fit the loss law on the spec's loss-fit runs and one error law per
downstream target on its error-fit runs (against the same validation loss), then predict every
held-out run — its loss, and its error chained through the predicted loss and from the true loss.
"""

from __future__ import annotations

from collections.abc import Sequence

from lmscale.errors import InputError
from lmscale.paper_constants import ERROR_TARGETS, FIGURE1
from lmscale.run_table import RunTable
from lmscale.selection import FitSpec
from lmscale.study import HeldoutPrediction, Study, TrainingSetFits

__all__ = ["ERROR_TARGETS", "FIGURE1", "HeldoutPrediction", "TrainingSetFits", "figure1_numbers", "reproduce"]


def reproduce(
    runs: RunTable,
    spec: FitSpec | str = "paper-default",
    train_sets: Sequence[str] | None = None,
    val_sets: Sequence[str] | None = None,
    error_targets: Sequence[str] = ERROR_TARGETS,
    method: str = "paper",  # the paper's numbers: the authors' method, not lmscale's default
    progress=None,
) -> tuple[list[TrainingSetFits], list[HeldoutPrediction]]:
    """Every training set × validation loss: fits and held-out predictions (a :class:`Study`)."""
    study = Study(runs, spec, method, train_sets=train_sets, val_sets=val_sets, error_targets=error_targets)
    rows = study.all_heldout(progress)
    return [study.fits(ts, vs) for ts in study.train_sets for vs in study.val_sets], rows


def figure1_numbers(
    rows: Sequence[HeldoutPrediction],
    train_set: str = FIGURE1["train_set"],
    val_set: str = FIGURE1["val_set"],
    target: str = FIGURE1["target"],
    *,
    strict: bool = True,
) -> dict[str, float]:
    """Figure 1's four relative errors: loss and error of the largest-M 1.4B run and of the 6.9B run.
    ``strict=False``: an empty dict (rather than an error) when the rows lack Figure 1's setting."""
    sel = [r for r in rows if r.train_set == train_set and r.val_set == val_set]
    if not sel and not strict:
        return {}
    if not sel:
        raise InputError(
            f"no held-out predictions for training set {train_set!r} and validation set {val_set!r}"
        )
    small_n = min(r.n_params for r in sel)
    big_n = max(r.n_params for r in sel)
    max_m = max(r.multiplier for r in sel if r.n_params == small_n)
    out = {}
    for label, n, m in (
        (f"{small_n / 1e9:.1f}B_M{max_m:g}", small_n, max_m),
        (f"{big_n / 1e9:.1f}B_M20", big_n, 20.0),
    ):
        for tgt, suffix in (("loss", "loss"), (target, target)):
            match = [
                r for r in sel if r.n_params == n and abs(r.multiplier - m) < 1e-6 * m and r.target == tgt
            ]
            if match:
                out[f"{label}_{suffix}"] = match[0].rel_error
    return out
