"""Building reference calibrations (:mod:`lmscale.calibration`) from backtests: the paper testbed's
(every validation loss, and the chained 17- and 46-task errors), and those of several labs' ladders
(:mod:`lmscale.benchmark.ladders`) with each lab — or each ladder — weighing the same. These run
offline: ``benchmarks/calibrate.py`` builds the shipped file with them, and the accuracy benchmarks
build leave-one-out references with them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lmscale import calibration as cal
from lmscale.backtest import backtest, backtest_arrays

# ------------------------------------------------------------------------- the paper testbed
#: the backtest targets of the reference: every validation loss, and the paper's two error splits
#: chained through the C4-eval loss
REFERENCE_ERROR_TARGETS = ("error_17", "error_46")
REFERENCE_ERROR_LOSS = "c4_val"


def build_reference(
    runs,
    *,
    method: str = "default",
    exclude_train_set: str | None = None,
    n_resamples: int = 200,
    seed: int = 0,
    progress=None,
    shift: float | None = None,
) -> dict[str, cal.Calibration]:
    """Reference calibrations from the backtests of a testbed run table (the paper's), optionally
    leaving one training set out (how the accuracy benchmark scores a training set honestly).
    ``shift``: the loss's center shift to score with (None: these backtests' own mean error); the
    chained errors are asked at the loss so centered (the default method only)."""
    if exclude_train_set is not None:
        runs = runs.subset(runs.column("dataset").astype(str) != exclude_train_set)
    loss_pts: list = []
    err_pts: list = []
    for vs in runs.val_sets:
        loss_pts += backtest(
            runs, "loss_" + vs, methods=(method,), n_resamples=n_resamples, seed=seed, progress=progress
        ).points
    sets = ", ".join(runs.datasets)
    loss_ref = cal.reference_from_backtest(
        loss_pts,
        "loss",
        f"paper testbed backtests, training sets {sets}, "
        f"{len(runs.val_sets)} validation losses, {len(loss_pts)} predictions",
        shift=shift,
    )
    for tgt in REFERENCE_ERROR_TARGETS:
        err_pts += backtest(
            runs,
            tgt,
            methods=(method,),
            loss_column=REFERENCE_ERROR_LOSS,
            n_resamples=n_resamples,
            seed=seed,
            progress=progress,
            loss_shift=loss_ref.shift,
        ).points
    return {
        "loss": loss_ref,
        "error": cal.reference_from_backtest(
            err_pts,
            "error",
            f"paper testbed backtests, training sets {sets}, "
            f"17- and 46-task error chained through C4-eval loss, {len(err_pts)} predictions",
        ),
    }


# ------------------------------------------------------------------------- several labs' ladders
def backtest_points(
    ladder,
    mask: np.ndarray,
    method: str,
    n_resamples: int,
    seed: int,
    error: str | None = None,
    loss_shift: float = 0.0,
) -> list:
    """The rolling-origin backtest of the runs in ``mask``; with ``error`` (one of the ladder's
    downstream targets), chained through the predicted loss (times exp(``loss_shift``)), on the
    runs that have that error."""
    errs = None
    if error is not None:
        mask = mask & np.isfinite(ladder.errors[error])
        errs = ladder.errors[error][mask]
    if not mask.any():
        return []
    return backtest_arrays(
        ladder.n_params[mask],
        ladder.multiplier[mask],
        ladder.loss[mask],
        method=method,
        errors=errs,
        error_method=error_method_for(method),
        run_ids=[r for r, k in zip(ladder.run_ids, mask) if k],
        n_resamples=n_resamples,
        seed=seed,
        loss_shift=loss_shift,
    )


def error_method_for(loss_method: str) -> str:
    """The error law's method alongside a loss method: the authors' for ``paper``, else the default."""
    return "paper" if loss_method == "paper" else "default"


def lab_references(
    ladders: Sequence, method: str = "default", n_resamples: int = 100, seed: int = 0
) -> dict[str, cal.Calibration]:
    """Leave-one-lab-out reference calibrations: lab → the loss reference built from the full-ladder
    backtests of every *other* lab's ladders, each lab weighing the same."""
    pts = {
        lad.name: backtest_points(lad, np.ones(len(lad.loss), bool), method, n_resamples, seed)
        for lad in ladders
    }
    out = {}
    for lab in sorted({lad.lab for lad in ladders}):
        others = [lad for lad in ladders if lad.lab != lab]
        if any(pts[lad.name] for lad in others):
            out[lab] = lab_weighted_reference(others, pts, "loss")
    return out


def lab_weighted_reference(
    ladders: Sequence, points: Mapping[str, list], quantity: str, by: str = "lab"
) -> cal.Calibration:
    """The reference calibration of ``quantity`` from the backtest ``points`` (ladder name → points)
    of ``ladders``, every lab (``by="lab"``) or every ladder (``by="ladder"``) weighing the same."""
    flat, groups = [], []
    for lad in ladders:
        for p in points.get(lad.name, ()):
            if p.quantity == quantity:
                flat.append(p)
                groups.append(lad.lab if by == "lab" else lad.name)
    names = sorted({lad.name for lad in ladders if points.get(lad.name)})
    what = "labs" if by == "lab" else "ladders"
    return cal.reference_from_backtest(
        flat,
        quantity,
        f"backtests of {', '.join(names)} ({len(flat)} predictions, {what} weighted equally)",
        groups,
    )


def lab_mean_errors(ladders: Sequence, points: Mapping[str, list]) -> dict[str, float]:
    """Lab → the mean ln(observed / predicted) of its ladders' loss backtest ``points`` (ladder name →
    points), each ladder of a lab weighing as its predictions: the bias the loss reference's shift
    averages over labs."""
    out: dict[str, list[float]] = {}
    for lad in ladders:
        out.setdefault(lad.lab, []).extend(
            p.log_error for p in points.get(lad.name, ()) if p.quantity == "loss"
        )
    return {lab: float(np.mean(v)) for lab, v in out.items() if v}


def multi_lab_reference(
    ladders: Sequence, method: str = "default", n_resamples: int = 200, seed: int = 0
) -> cal.Calibration:
    """The loss reference of every ladder given (their full-ladder backtests, each lab weighing the
    same): what lmscale ships as its reference for the loss (``benchmarks/calibrate.py``)."""
    pts = {
        lad.name: backtest_points(lad, np.ones(len(lad.loss), bool), method, n_resamples, seed)
        for lad in ladders
    }
    return lab_weighted_reference(ladders, pts, "loss")


def error_references(
    ladders: Sequence,
    method: str = "default",
    n_resamples: int = 100,
    seed: int = 0,
    loss_shifts: Mapping[str, float] | None = None,
) -> dict[str, cal.Calibration]:
    """Leave-one-ladder-out references of the chained error: ladder name → the reference from the
    chained backtests of every *other* ladder that has downstream errors (each ladder weighing the
    same). A lab's other ladders may calibrate it here: only one lab has downstream tasks.
    ``loss_shifts``: lab → the loss center shift each ladder's chained backtests ask the error law
    at (0 for a lab not named)."""
    shifts = loss_shifts or {}
    with_errors = [lad for lad in ladders if lad.errors]
    pts = {
        lad.name: [
            p
            for t in lad.errors
            for p in backtest_points(
                lad, np.ones(len(lad.loss), bool), method, n_resamples, seed, t, shifts.get(lad.lab, 0.0)
            )
            if p.quantity == "error"
        ]
        for lad in with_errors
    }
    out = {}
    for lad in with_errors:
        others = [o for o in with_errors if o.name != lad.name]
        if any(pts[o.name] for o in others):
            out[lad.name] = lab_weighted_reference(others, pts, "error", by="ladder")
    return out
