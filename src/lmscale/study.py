"""The one held-out engine: a run table, a fit spec and a method → fitted laws per training set
and validation loss, held-out predictions, relative errors.

Everything that fits on some runs and scores the others goes through a :class:`Study`:
``lmscale reproduce`` and every paper analysis, ``lmscale report`` / ``loop``, the accuracy
benchmark and the backtests. A study fits each law once (fits are cached under the exact runs and
target they were fitted on, so a cached fit is never one of other runs) and returns typed results;
formatting lives in :mod:`lmscale.report` and :mod:`lmscale.analyses`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lmscale import calibration as cal
from lmscale.backtest import backtest_arrays
from lmscale.errors import InputError
from lmscale.fit.bootstrap import bootstrap_or_none
from lmscale.fit.method import DEFAULT, check_method
from lmscale.fit.result import FitResult
from lmscale.fit.runs import fit_table
from lmscale.paper_constants import ERROR_TARGETS
from lmscale.predict import ScalePoint, predict_loss, relative_error
from lmscale.run_table import RunTable
from lmscale.selection import FitSpec, Selection, preset
from lmscale.tasks import target_values

#: which held-out runs :meth:`Study.target_run` names: the largest model (M closest to 20), and the
#: second-largest size at its largest M (the paper's 1.4B max-M run)
TARGET_RUNS = ("second-max-m", "largest")


@dataclass(frozen=True)
class TrainingSetFits:
    """The laws of one training set × validation loss."""

    train_set: str
    val_set: str
    loss_fit: FitResult
    #: error target (``error_17``, ``error:<tasks>``, …) → its law against ``val_set``
    error_fits: Mapping[str, FitResult]


@dataclass(frozen=True)
class HeldoutPrediction:
    """One held-out prediction: a run the laws did not see, one target."""

    train_set: str
    val_set: str
    run_id: str
    model: str
    n_params: float
    multiplier: float
    #: ``loss`` or an error target such as ``error_17``
    target: str
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

    def summary(self) -> dict:
        """The fields ``lmscale reproduce --format json`` prints."""
        keys = (
            "train_set",
            "val_set",
            "n_params",
            "multiplier",
            "target",
            "predicted",
            "observed",
            "rel_error",
            "run_id",
            "predicted_from_true_loss",
            "rel_error_from_true_loss",
            "used_in_error_fit",
        )
        d = self.to_dict()
        return {k: d[k] for k in keys}


def loss_column(val_set: str) -> str:
    return "loss_" + val_set.removeprefix("loss_")


class Study:
    """Run table + fit spec + method: fitted laws and held-out predictions, each computed once.

    ``spec``: a :class:`FitSpec` or a preset name; it is applied within each training set.
    ``method``: the fitting method of both laws (``default`` picks per law, see
    :mod:`lmscale.fit.method`). ``loss_law``: ``overtrain`` (Eq. 4) or ``chinchilla``;
    ``error_method``: the error law's method when it differs.
    """

    def __init__(
        self,
        runs: RunTable,
        spec: FitSpec | str = "paper-default",
        method: str = DEFAULT,
        *,
        train_sets: Sequence[str] | None = None,
        val_sets: Sequence[str] | None = None,
        error_targets: Sequence[str] = ERROR_TARGETS,
        loss_law: str = "overtrain",
        error_method: str | None = None,
    ):
        self.runs = runs
        check_method(method)
        self.error_method = check_method(error_method or method)
        self.loss_law = loss_law
        self.spec = preset(spec) if isinstance(spec, str) else spec
        self.method = method
        self.train_sets = tuple(train_sets or runs.datasets)
        unknown = [t for t in self.train_sets if t not in runs.datasets]
        if unknown:
            raise InputError(
                f"{runs.source}: unknown training set(s) {', '.join(unknown)}; "
                f"known: {', '.join(runs.datasets)}"
            )
        self.val_sets = tuple(v.removeprefix("loss_") for v in (val_sets or runs.val_sets))
        bad = [v for v in self.val_sets if v not in runs.val_sets]
        if bad:
            raise InputError(f"unknown validation set(s) {', '.join(bad)}; known: {', '.join(runs.val_sets)}")
        self.error_targets = tuple(error_targets)
        self._datasets: dict[str, RunTable] = {}
        self._fits: dict[tuple, FitResult] = {}
        self._booted: dict[tuple, FitResult] = {}
        self._backtests: dict[tuple, list] = {}
        self._heldout: dict[tuple[str, str], list[HeldoutPrediction]] = {}

    # -- runs and their roles ----------------------------------------------------------------
    def dataset(self, train_set: str) -> RunTable:
        if train_set not in self._datasets:
            sub = self.runs.of_dataset(train_set)
            if len(sub) == 0:
                raise InputError(
                    f"{self.runs.source}: no runs of training set {train_set!r}; "
                    f"known: {', '.join(self.runs.datasets)}"
                )
            self._datasets[train_set] = sub
        return self._datasets[train_set]

    def loss_runs(self, train_set: str) -> RunTable:
        return self._nonempty(self.spec.loss_fit, train_set, "loss-fit")

    def error_runs(self, train_set: str) -> RunTable:
        return self._nonempty(self.spec.error_fit, train_set, "error-fit")

    def heldout_runs(self, train_set: str) -> RunTable:
        return self.spec.heldout.apply(self.dataset(train_set))

    def _nonempty(self, sel: Selection, train_set: str, role: str) -> RunTable:
        sub = sel.apply(self.dataset(train_set))
        if len(sub) == 0:
            raise InputError(
                f"fit spec {self.spec.name!r}: empty {role} selection for training set {train_set!r} ({sel})"
            )
        return sub

    # -- fits --------------------------------------------------------------------------------
    def _fit(self, key: tuple, runs: RunTable, law: str, target: str, loss_col: str | None) -> FitResult:
        # the key names the exact runs (their ids), so two selections never share a fit
        key = key + (tuple(runs.run_ids),)
        if key not in self._fits:
            method = self.error_method if law == "error" else self.method
            self._fits[key] = fit_table(runs, law, target, method=method, loss_column=loss_col)
        return self._fits[key]

    def loss_fit(self, train_set: str, val_set: str) -> FitResult:
        col = loss_column(val_set)
        return self._fit(("loss", train_set, col), self.loss_runs(train_set), self.loss_law, col, None)

    def error_fit(
        self, train_set: str, val_set: str, target: str, *, runs: RunTable | None = None
    ) -> FitResult:
        """Error law of ``target`` against ``val_set`` on the spec's error-fit runs, or on ``runs``."""
        col = loss_column(val_set)
        use = self.error_runs(train_set) if runs is None else runs
        return self._fit(("error", train_set, col, target), use, "error", target, col)

    def fits(self, train_set: str, val_set: str) -> TrainingSetFits:
        return TrainingSetFits(
            train_set,
            val_set.removeprefix("loss_"),
            self.loss_fit(train_set, val_set),
            {t: self.error_fit(train_set, val_set, t) for t in self.error_targets},
        )

    # -- predictions -----------------------------------------------------------------------------
    def predict_loss(self, train_set: str, val_set: str, n_params: float, multiplier: float) -> float:
        """The predicted loss: the law's value, centered beyond the fit as lmscale's intervals are."""
        lf, point = self.loss_fit(train_set, val_set), ScalePoint.make(n_params, multiplier=multiplier)
        return predict_loss(lf, point) * float(np.exp(cal.center_shift(lf, point, self._center(lf))))

    def predict_losses(self, train_set: str, val_set: str, n_params, multiplier) -> np.ndarray:
        """:meth:`predict_loss` of many runs at once (what the report's figures and heat maps show)."""
        lf = self.loss_fit(train_set, val_set)
        n, m = np.broadcast_arrays(np.asarray(n_params, dtype=float), np.asarray(multiplier, dtype=float))
        with np.errstate(over="ignore", invalid="ignore"):
            pred = np.asarray(lf.predict(n_params=n, multiplier=m), dtype=float)
        center = self._center(lf)
        if not center.shift:  # other methods and laws: the law's value
            return pred
        points = (ScalePoint.make(float(a), multiplier=float(b)) for a, b in zip(n.ravel(), m.ravel()))
        shifts = np.reshape([cal.center_shift(lf, p, center) for p in points], n.shape)
        return pred * np.exp(shifts)

    def heldout(self, train_set: str, val_set: str) -> list[HeldoutPrediction]:
        """Predictions of every held-out run of ``train_set``: its loss, then each error target
        chained through the predicted loss (and from the true loss)."""
        key = (train_set, val_set.removeprefix("loss_"))
        if key not in self._heldout:
            self._heldout[key] = self._predict_heldout(*key)
        return self._heldout[key]

    def _predict_heldout(self, train_set: str, val_set: str) -> list[HeldoutPrediction]:
        fits = self.fits(train_set, val_set)
        held = self.heldout_runs(train_set)
        order = np.lexsort((held.column("multiplier"), held.column("n_params")))
        true_loss = held.loss(loss_column(val_set))
        rows = []
        for i in order:
            n, m = float(held.column("n_params")[i]), float(held.column("multiplier")[i])
            base = dict(
                train_set=train_set,
                val_set=val_set,
                run_id=held.run_ids[i],
                model=str(held.column("model")[i]),
                n_params=n,
                multiplier=m,
            )
            pred_loss = self.predict_loss(train_set, val_set, n, m)
            rows.append(
                HeldoutPrediction(
                    **base,
                    target="loss",
                    predicted=pred_loss,
                    observed=float(true_loss[i]),
                    rel_error=relative_error(pred_loss, float(true_loss[i])),
                )
            )
            one = held.subset(np.arange(len(held)) == i)
            for target, efit in fits.error_fits.items():
                observed = float(target_values(one, target)[0])
                chained = float(efit.predict(loss=pred_loss))
                from_true = float(efit.predict(loss=float(true_loss[i])))
                rows.append(
                    HeldoutPrediction(
                        **base,
                        target=target,
                        predicted=chained,
                        observed=observed,
                        rel_error=relative_error(chained, observed),
                        predicted_from_true_loss=from_true,
                        rel_error_from_true_loss=relative_error(from_true, observed),
                        used_in_error_fit=held.run_ids[i] in efit.run_ids,
                    )
                )
        return rows

    def all_heldout(self, progress=None) -> list[HeldoutPrediction]:
        """Held-out predictions of every training set × validation loss of the study."""
        rows = []
        for ts in self.train_sets:
            for vs in self.val_sets:
                rows.extend(self.heldout(ts, vs))
                if progress is not None:
                    progress(ts, vs)
        return rows

    # -- calibrated intervals ------------------------------------------------------------------
    @staticmethod
    def _center(loss_fit: FitResult):
        """The calibration whose shift centers ``loss_fit``'s predictions (the shipped loss reference's,
        for the default method; own calibrations inherit it)."""
        return cal.for_fit(cal.reference("loss"), loss_fit)

    def calibration(
        self,
        train_set: str,
        val_set: str,
        quantity: str = "loss",
        *,
        n_resamples: int = 200,
        seed: int = 0,
        fallback=None,
    ):
        """How the intervals of this training set × validation loss are calibrated: the loss-fit runs'
        own backtest (the chained error's too, when the error law is fitted on the same runs), else
        ``fallback`` (default: the shipped reference). See :mod:`lmscale.calibration`."""

        key = ("calibration", train_set, loss_column(val_set), quantity, n_resamples, seed)
        kind = "loss" if quantity == "loss" else "error"
        center = self._center(self.loss_fit(train_set, val_set))
        if fallback is None and kind == "loss":
            fallback = center
        if key not in self._backtests:
            lr = self.loss_runs(train_set)
            errors = None
            if quantity != "loss":
                if set(self.error_runs(train_set).run_ids) != set(lr.run_ids):
                    return fallback or cal.reference(kind)
                errors = target_values(lr, quantity)
            self._backtests[key] = backtest_arrays(
                lr.column("n_params"),
                lr.column("multiplier"),
                lr.loss(loss_column(val_set)),
                method=self.method,
                errors=errors,
                run_ids=lr.run_ids,
                n_resamples=n_resamples,
                seed=seed,
                error_method=self.error_method,
                loss_shift=center.shift,
            )
        return cal.choose(self._backtests[key], kind, fallback)

    def _bootstrapped(self, fit: FitResult, n_resamples: int, seed: int) -> FitResult:
        key = (id(fit), n_resamples, seed)  # fits live in self._fits for the study's lifetime
        if key not in self._booted:
            self._booted[key] = bootstrap_or_none(fit, n_resamples, seed) or fit
        return self._booted[key]

    def interval(
        self,
        train_set: str,
        val_set: str,
        target: str,
        point: ScalePoint,
        level: float = 0.9,
        *,
        n_resamples: int = 200,
        seed: int = 0,
    ):
        """Calibrated prediction (:class:`lmscale.calibration.CalibratedPrediction`) of ``target``
        (``loss`` or an error target) at ``point``."""

        lf = self._bootstrapped(self.loss_fit(train_set, val_set), n_resamples, seed)
        if target == "loss":
            return cal.calibrated(
                lf,
                point,
                level,
                self.calibration(train_set, val_set, "loss", n_resamples=n_resamples, seed=seed),
            )
        ef = self._bootstrapped(self.error_fit(train_set, val_set, target), n_resamples, seed + 1)
        c = self.calibration(train_set, val_set, target, n_resamples=n_resamples, seed=seed)
        return cal.calibrated(lf, point, level, c, error_fit=ef, loss_cal=self._center(lf))

    # -- named target runs -----------------------------------------------------------------------
    def target_run(self, train_set: str, which: str) -> int:
        """Index in :meth:`dataset` of ``largest`` (the biggest model, M closest to 20) or
        ``second-max-m`` (the second-largest size at its largest M: the paper's 1.4B max-M run)."""
        ds = self.dataset(train_set)
        n, m = ds.column("n_params").astype(float), ds.column("multiplier").astype(float)
        sizes = np.unique(n)
        if which == "largest":
            idx = np.flatnonzero(n == sizes[-1])
            return int(idx[np.argmin(np.abs(np.log(m[idx] / 20)))])
        if which == "second-max-m":
            if len(sizes) < 2:
                raise InputError(f"training set {train_set!r} has a single model size")
            idx = np.flatnonzero(n == sizes[-2])
            return int(idx[np.argmax(m[idx])])
        raise InputError(f"unknown target run {which!r}; known: {', '.join(TARGET_RUNS)}")

    def observed(self, train_set: str, index: int, target: str) -> float:
        """Observed ``target`` (``loss_<set>`` or an error target) of run ``index`` of :meth:`dataset`."""
        ds = self.dataset(train_set)
        if target.startswith("loss_"):
            return float(ds.loss(target)[index])
        return float(target_values(ds.subset(np.arange(len(ds)) == index), target)[0])
