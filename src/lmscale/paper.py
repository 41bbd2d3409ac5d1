"""The paper's fitting configuration and held-out evaluation, driven by a :class:`FitSpec`.

For each training set: fit the loss law on the spec's loss-fit runs and one error law per
downstream target on its error-fit runs (against the same validation loss), then predict every
held-out run — its loss, and its error chained through the predicted loss and from the true loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lmscale.errors import InputError
from lmscale.fit.result import FitResult
from lmscale.fit.tables import fit_table
from lmscale.predict import ScalePoint, predict_loss, relative_error
from lmscale.records import RunTable
from lmscale.selection import FitSpec, Selection, preset
from lmscale.tasks import target_values

#: Error targets of the paper: 46-task and 17-task average top-1 error.
ERROR_TARGETS = ("error_46", "error_17")
#: The headline configuration of Figure 1.
FIGURE1 = {"train_set": "rpj", "val_set": "c4_val", "target": "error_17"}


@dataclass(frozen=True)
class TrainingSetFits:
    train_set: str
    val_set: str
    loss_fit: FitResult
    error_fits: dict[str, FitResult]


@dataclass(frozen=True)
class HeldoutPrediction:
    """One held-out prediction (a row of ``lmscale reproduce``)."""

    train_set: str
    val_set: str
    run_id: str
    model: str
    n_params: float
    multiplier: float
    target: str  # "loss", "error_46" or "error_17"
    predicted: float
    observed: float
    rel_error: float
    #: error targets only: prediction from the run's true loss, and its relative error
    predicted_from_true_loss: float | None = None
    rel_error_from_true_loss: float | None = None
    #: the run is one of the error law's fit runs (the 1.4B at M=20 in the paper default)
    used_in_error_fit: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _one_dataset(runs: RunTable, train_set: str) -> RunTable:
    sub = Selection.parse(f"dataset == {train_set}").apply(runs)
    if len(sub) == 0:
        raise InputError(f"{runs.source}: no runs of training set {train_set!r}; known: {', '.join(runs.datasets)}")
    return sub


def fit_training_set(runs: RunTable, train_set: str, val_set: str, spec: FitSpec | str = "paper-default",
                     error_targets: Sequence[str] = ERROR_TARGETS, method: str = "paper") -> TrainingSetFits:
    """Fit the loss law and the error laws of one training set × validation loss."""
    spec = preset(spec) if isinstance(spec, str) else spec
    ds = _one_dataset(runs, train_set)
    loss_col = "loss_" + val_set.removeprefix("loss_")
    loss_runs = spec.loss_fit.apply(ds)
    if len(loss_runs) == 0:
        raise InputError(f"fit spec {spec.name!r}: empty loss-fit selection for training set {train_set!r} "
                         f"({spec.loss_fit})")
    loss_fit = fit_table(loss_runs, "overtrain", loss_col, method=method)
    error_runs = spec.error_fit.apply(ds)
    if len(error_runs) == 0 and error_targets:
        raise InputError(f"fit spec {spec.name!r}: empty error-fit selection for training set {train_set!r}")
    error_fits = {t: fit_table(error_runs, "error", t, method=method, loss_column=loss_col) for t in error_targets}
    return TrainingSetFits(train_set, val_set.removeprefix("loss_"), loss_fit, error_fits)


def heldout_predictions(runs: RunTable, fits: TrainingSetFits, spec: FitSpec | str = "paper-default"
                        ) -> list[HeldoutPrediction]:
    """Predictions for every held-out run of ``fits.train_set``: loss, then each error target."""
    spec = preset(spec) if isinstance(spec, str) else spec
    held = spec.heldout.apply(_one_dataset(runs, fits.train_set))
    order = np.lexsort((held.column("multiplier"), held.column("n_params")))
    loss_col = "loss_" + fits.val_set
    true_loss = held.loss(loss_col)
    rows = []
    for i in order:
        n, m = float(held.column("n_params")[i]), float(held.column("multiplier")[i])
        rid, model = held.run_ids[i], str(held.column("model")[i])
        pred_loss = predict_loss(fits.loss_fit, ScalePoint.make(n, multiplier=m))
        base = dict(train_set=fits.train_set, val_set=fits.val_set, run_id=rid, model=model, n_params=n, multiplier=m)
        rows.append(HeldoutPrediction(**base, target="loss", predicted=pred_loss, observed=float(true_loss[i]),
                                      rel_error=relative_error(pred_loss, float(true_loss[i]))))
        for target, efit in fits.error_fits.items():
            observed = float(target_values(held.subset(np.arange(len(held)) == i), target)[0])
            chained = float(efit.predict(loss=pred_loss))
            from_true = float(efit.predict(loss=float(true_loss[i])))
            rows.append(HeldoutPrediction(
                **base, target=target, predicted=chained, observed=observed,
                rel_error=relative_error(chained, observed), predicted_from_true_loss=from_true,
                rel_error_from_true_loss=relative_error(from_true, observed), used_in_error_fit=rid in efit.run_ids))
    return rows


def reproduce(runs: RunTable, spec: FitSpec | str = "paper-default", train_sets: Sequence[str] | None = None,
              val_sets: Sequence[str] | None = None, error_targets: Sequence[str] = ERROR_TARGETS,
              method: str = "paper", progress=None) -> tuple[list[TrainingSetFits], list[HeldoutPrediction]]:
    """Every training set × validation loss: fits and held-out predictions."""
    train_sets = list(train_sets or runs.datasets)
    val_sets = [v.removeprefix("loss_") for v in (val_sets or runs.val_sets)]
    unknown = [v for v in val_sets if v not in runs.val_sets]
    if unknown:
        raise InputError(f"unknown validation set(s) {', '.join(unknown)}; known: {', '.join(runs.val_sets)}")
    all_fits, rows = [], []
    for ts in train_sets:
        for vs in val_sets:
            fits = fit_training_set(runs, ts, vs, spec, error_targets, method)
            all_fits.append(fits)
            rows.extend(heldout_predictions(runs, fits, spec))
            if progress is not None:
                progress(ts, vs)
    return all_fits, rows


def figure1_numbers(rows: Sequence[HeldoutPrediction], train_set: str = FIGURE1["train_set"],
                    val_set: str = FIGURE1["val_set"], target: str = FIGURE1["target"]) -> dict[str, float]:
    """Figure 1's four relative errors: loss and error of the largest-M 1.4B run and of the 6.9B run."""
    sel = [r for r in rows if r.train_set == train_set and r.val_set == val_set]
    if not sel:
        raise InputError(f"no held-out predictions for training set {train_set!r} and validation set {val_set!r}")
    small_n = min(r.n_params for r in sel)
    big_n = max(r.n_params for r in sel)
    max_m = max(r.multiplier for r in sel if r.n_params == small_n)
    out = {}
    for label, n, m in ((f"{small_n / 1e9:.1f}B_M{max_m:g}", small_n, max_m), (f"{big_n / 1e9:.1f}B_M20", big_n, 20.0)):
        for tgt, suffix in (("loss", "loss"), (target, target)):
            match = [r for r in sel if r.n_params == n and abs(r.multiplier - m) < 1e-6 * m and r.target == tgt]
            if match:
                out[f"{label}_{suffix}"] = match[0].rel_error
    return out
