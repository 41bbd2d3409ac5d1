"""Held-out accuracy and interval coverage on public ladders from several labs.

A *ladder* here is one lab's set of finished runs (N, D, validation loss). Each ladder gets honest
splits, derived from its own grid by one rule so that no split is tuned by hand:

- ``size``: fit on every run whose N is at most 1/8 of the ladder's largest N (at least three
  sizes), predict every run at least 1.3× larger than the largest fitted size;
- ``compute``: fit on every run with compute C = 6·N·D at most 1/32 of the ladder's largest,
  predict every run at least 16× beyond the fitted compute.

Every compared method fits Eq. 4 (or, for ``untied``, Chinchilla's form) on the fit runs and
predicts the held-out ones. Methods with the batched bootstrap (least squares on Eq. 4) also get
calibrated intervals (:mod:`lmscale.calibration`): the ladder's own backtest when it is large
enough, floored by a reference calibration; the reference is either the shipped one or, *leave one
lab out*, one built from the backtests of every other lab's ladders — never from the lab being
scored — with each lab weighing the same (:func:`lab_weighted_reference`).

A ladder with downstream errors (the testbed's 46- and 17-task averages) is also scored on the
**chained** error: the error law fitted on the fit runs' observed losses, asked at the predicted
loss of each held-out run. Its intervals are calibrated on chained backtests; only one lab here has
downstream tasks, so the reference of the error leaves one *ladder* out instead.

Loaders (:mod:`lmscale.benchmark.ladder_data`): a run table in lmscale's schema, the paper
testbed's ``exp_data`` folder (one ladder per training set), and Epoch's Chinchilla extraction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lmscale import calibration as cal
from lmscale.benchmark.ladder_data import (
    ERROR_TARGETS,
    LABS,
    PUBLIC_LADDERS,
    Ladder,
    load,
    public_ladders,
)
from lmscale.benchmark.ladder_tables import LEVELS, Score
from lmscale.benchmark.references import (
    backtest_points,
    error_method_for,
    error_references,
    lab_references,
    lab_weighted_reference,
    multi_lab_reference,
)
from lmscale.errors import FitError, InputError
from lmscale.fit.bootstrap import bootstrap_or_none
from lmscale.fit.core import fit
from lmscale.laws import CHINCHILLA, ERROR, OVERTRAIN
from lmscale.predict import ScalePoint

__all__ = [
    "ERROR_TARGETS",
    "LABS",
    "METHODS",
    "PUBLIC_LADDERS",
    "Ladder",
    "Method",
    "Split",
    "backtest_points",
    "error_references",
    "lab_references",
    "lab_weighted_reference",
    "load",
    "multi_lab_reference",
    "public_ladders",
    "run",
    "score_split",
    "splits",
]

#: size split: fit N ≤ largest / SIZE_FIT_RATIO, predict N ≥ SIZE_GAP × largest fitted N
SIZE_FIT_RATIO, SIZE_GAP = 8.0, 1.3
#: compute split: fit C ≤ largest / COMPUTE_FIT_RATIO, predict C ≥ COMPUTE_GAP × largest fitted C
COMPUTE_FIT_RATIO, COMPUTE_GAP = 32.0, 16.0


@dataclass(frozen=True)
class Split:
    ladder: Ladder
    name: str
    fit: np.ndarray  # bool mask
    heldout: np.ndarray  # bool mask
    description: str


@dataclass(frozen=True)
class Method:
    name: str
    law: str  # "overtrain" or "chinchilla"
    fit_method: str

    @property
    def has_intervals(self) -> bool:
        return self.law == "overtrain" and self.fit_method in ("paper", "varpro", "rel-ls", "default")


METHODS = (
    Method("paper", "overtrain", "paper"),
    Method("default", "overtrain", "default"),
    Method("rel-ls", "overtrain", "rel-ls"),
    Method("huber-log", "overtrain", "huber-log"),
    Method("untied", "chinchilla", "varpro"),
)


def splits(ladder: Ladder) -> list[Split]:
    """The ladder's honest splits (module docstring); a split without enough fit runs is left out."""
    n, c = ladder.n_params, ladder.flops
    out = []
    sizes = np.unique(n)
    fit_n = n <= sizes.max() / SIZE_FIT_RATIO
    if len(np.unique(n[fit_n])) < 3:
        fit_n = n <= sizes[min(2, len(sizes) - 1)]
    held_n = n >= SIZE_GAP * n[fit_n].max()
    size_rule = f"N ≤ {n[fit_n].max():.3g} → N ≥ {n[held_n].min():.3g}" if held_n.any() else ""
    out.append(Split(ladder, "size", fit_n, held_n, size_rule))
    fit_c = c <= c.max() / COMPUTE_FIT_RATIO * 1.0001
    held_c = c >= COMPUTE_GAP * c[fit_c].max() * 0.9999 if fit_c.any() else np.zeros_like(fit_c)
    out.append(
        Split(
            ladder,
            "compute",
            fit_c,
            held_c,
            f"C ≤ {c[fit_c].max():.3g} → C ≥ {c[held_c].min():.3g}" if held_c.any() else "",
        )
    )
    good = []
    for s in out:
        m = ladder.multiplier[s.fit]
        enough = s.fit.sum() >= 8 and len(np.unique(n[s.fit])) >= 3 and len(np.unique(np.round(m, 6))) >= 2
        if enough and s.heldout.sum() >= 1:
            good.append(s)
    return good


def split_problem(ladder: Ladder) -> str | None:
    """Why ``ladder`` cannot be scored (none of its splits has enough fit and held-out runs), or
    None when it can."""
    if splits(ladder):
        return None
    return (
        f"{ladder.source}: not scored, no split of its {len(ladder.loss)} runs of "
        f"{len(np.unique(ladder.n_params))} sizes works (a split fits at least 8 runs of 3 sizes and 2 "
        f"token multipliers and holds out runs of N ≥ {SIZE_GAP:g}× the largest fitted, or of "
        f"C ≥ {COMPUTE_GAP:g}× the largest fitted when fitting C ≤ 1/{COMPUTE_FIT_RATIO:g} of the largest)"
    )


def check_ladders(ladders: Sequence[Ladder]) -> list[str]:
    """The ladders :func:`run` can score together: distinct names (the references and the tables
    are keyed on them) and at least one ladder with a split. Returns why each of the others will not
    be scored (:func:`split_problem`); raises :class:`InputError` when nothing can be."""
    seen: dict[str, Ladder] = {}
    for lad in ladders:
        if lad.name in seen:
            raise InputError(
                f"two ladders are named {lad.name!r} ({seen[lad.name].source}, {lad.source}): give each "
                "ladder once (a run table is named after its file, an Epoch-format CSV 'chinchilla')"
            )
        seen[lad.name] = lad
    problems = [q for q in map(split_problem, ladders) if q is not None]
    if ladders and len(problems) == len(ladders):
        raise InputError("; ".join(problems))
    return problems


def score_split(
    split: Split,
    method: Method,
    reference: cal.Calibration | None,
    n_resamples: int = 200,
    seed: int = 0,
    error_reference: cal.Calibration | None = None,
    keep_points: bool = False,
) -> list[dict]:
    """Fit ``method`` on the split's fit runs, predict its held-out runs; intervals calibrated with
    the ladder's own backtest floored by ``reference`` (None: no intervals). One row for the loss
    (``quantity`` "loss") and, for a ladder with downstream errors, one per error target, chained
    through the predicted loss (intervals floored by ``error_reference``). ``keep_points``: the loss
    row also lists each held-out prediction with its interval (``points``)."""
    lad, fm, hm = split.ladder, split.fit, split.heldout
    law = OVERTRAIN if method.law == "overtrain" else CHINCHILLA
    cols = {"n_params": lad.n_params, "multiplier": lad.multiplier, "n_tokens": lad.n_tokens}
    x = {k: cols[k][fm] for k in law.inputs}
    sc = Score()
    note = ""
    try:
        ids = [r for r, k in zip(lad.run_ids, fm) if k]
        lf = fit(law, x, lad.loss[fm], method=method.fit_method, run_ids=ids, target="loss")
    except (FitError, InputError) as exc:
        return [{"quantity": "loss", "failed": str(exc).splitlines()[0]}]
    # the default method's predictions beyond the fit are centered by the reference's shift
    centered = None if reference is None else cal.for_fit(reference, lf)
    intervals = centered is not None and method.has_intervals and n_resamples > 0
    lb = lf
    if intervals:
        assert centered is not None
        booted = bootstrap_or_none(lf, n_resamples, seed)
        lb, note = (booted, "") if booted is not None else (lf, "no bootstrap")
        centered = cal.choose(
            backtest_points(lad, fm, method.fit_method, n_resamples, seed), "loss", centered
        )
        note = note or centered.source
    points = [
        ScalePoint.make(float(lad.n_params[j]), n_tokens=float(lad.n_tokens[j])) for j in np.flatnonzero(hm)
    ]
    pred = law_pred = np.asarray(lf.predict(**{k: cols[k][hm] for k in law.inputs}), dtype=float)
    if centered is not None and centered.shift:
        pred = pred * np.exp([cal.center_shift(lf, pt, centered) for pt in points])
    sc.rel = list((pred - lad.loss[hm]) / lad.loss[hm])
    if intervals:
        assert centered is not None
        for i, (j, point) in enumerate(zip(np.flatnonzero(hm), points)):
            c = cal.calibrated(lb, point, LEVELS[0], centered)
            sc.iv.append((float(lad.loss[j]), float(pred[i]), {lv: c.at(lv) for lv in LEVELS}))
            sc.at.append((float(lad.n_params[j]), float(lad.multiplier[j])))
    # the center's effect: its shift, and the law's own error before it
    law_err = float(np.mean(np.abs(law_pred / lad.loss[hm] - 1))) if hm.any() else float("nan")
    shift = 0.0 if centered is None else centered.shift
    rows = [
        {
            "quantity": "loss",
            **sc.row(),
            "calibration": note,
            "center_shift": shift,
            "law_mean_abs_error": law_err,
        }
    ]
    if keep_points:
        rows[0]["points"] = sc.points()
    for target, values in lad.errors.items():
        rows.append(
            _score_error(
                split,
                method,
                lb,
                pred,
                target,
                values,
                intervals,
                error_reference,
                n_resamples,
                seed,
                centered,
            )
        )
    return rows


def _score_error(
    split, method, loss_fit, loss_pred, target, values, intervals, reference, n_resamples, seed, loss_cal=None
):
    """The chained error of ``target``: the error law fitted on the fit runs' observed losses, asked
    at the held-out runs' predicted losses (centered by ``loss_cal``)."""
    lad, hm = split.ladder, split.heldout
    fm = split.fit & np.isfinite(values)
    keep = np.isfinite(values[hm]) & (values[hm] > 0)  # a relative error needs a non-zero truth
    row = {"quantity": target}
    try:
        ef = fit(
            ERROR,
            {"loss": lad.loss[fm]},
            values[fm],
            method=error_method_for(method.fit_method),
            run_ids=[r for r, k in zip(lad.run_ids, fm) if k],
            target=target,
            input_columns={"loss": loss_fit.target},
        )
    except (FitError, InputError) as exc:
        return {**row, "failed": str(exc).splitlines()[0]}
    obs = values[hm][keep]
    epred = np.asarray(ef.predict(loss=loss_pred[keep]), dtype=float)
    sc = Score(rel=list((epred - obs) / obs))
    note = ""
    if intervals and reference is not None and method.law == "overtrain":
        eb = bootstrap_or_none(ef, n_resamples, seed + 1) or ef
        shift = 0.0 if loss_cal is None else loss_cal.shift
        own = cal.choose(
            backtest_points(lad, split.fit, method.fit_method, n_resamples, seed, target, shift),
            "error",
            reference,
        )
        note = own.source
        for i, j in enumerate(np.flatnonzero(hm)[keep]):
            point = ScalePoint.make(float(lad.n_params[j]), n_tokens=float(lad.n_tokens[j]))
            c = cal.calibrated(loss_fit, point, LEVELS[0], own, error_fit=eb, loss_cal=loss_cal)
            sc.iv.append((float(obs[i]), float(epred[i]), {lv: c.at(lv) for lv in LEVELS}))
    return {**row, **sc.row(), "calibration": note}


def _error_where(lad: Ladder, err_refs: Mapping[str, cal.Calibration], where: str) -> str:
    """Which reference floors a chained error's intervals: leave one ladder out, or the shipped one."""
    return "none" if where == "none" else ("ladder-out" if lad.name in err_refs else "shipped")


def run(
    ladders: Sequence[Ladder],
    methods: Sequence[Method] = METHODS,
    *,
    n_resamples: int = 200,
    seed: int = 0,
    references: str = "lab-out",
    progress: Callable[[str], None] | None = None,
    keep_points: bool = False,
) -> list[dict]:
    """One row per ladder × split × method × quantity (the loss, and each downstream error a ladder
    carries). ``references``: ``lab-out`` (leave-one-lab-out references from the other ladders
    given — leave-one-ladder-out for the chained error; the shipped ones when no other lab or ladder
    is given), ``shipped`` (the references shipped with lmscale), or ``none`` (no intervals).
    Ladders must have distinct names and one of them a split (:func:`check_ladders`)."""
    check_ladders(ladders)
    refs: dict[str, cal.Calibration] = {}
    err_refs: dict[str, cal.Calibration] = {}
    if references == "lab-out":
        # without intervals (no resamples) the references still center the default's predictions
        if len({lad.lab for lad in ladders}) > 1:
            refs = lab_references(ladders, n_resamples=min(n_resamples, 100), seed=seed)
        if sum(1 for lad in ladders if lad.errors) > 1 and n_resamples > 0:
            shifts = {lab: r.shift for lab, r in refs.items()}
            shipped = cal.reference("loss").shift
            shifts.update({lad.lab: shipped for lad in ladders if lad.lab not in refs})
            err_refs = error_references(
                ladders, n_resamples=min(n_resamples, 100), seed=seed, loss_shifts=shifts
            )
        if progress:
            progress("leave-one-lab-out references")
    rows = []
    for lad in ladders:
        ref = eref = None
        where = "none"
        if references != "none":
            ref = refs.get(lad.lab) or cal.reference("loss")
            eref = err_refs.get(lad.name) or cal.reference("error")
            where = "lab-out" if lad.lab in refs else "shipped"
        for sp in splits(lad):
            for m in methods:
                for r in score_split(sp, m, ref, n_resamples, seed, eref, keep_points):
                    rows.append(
                        {
                            "ladder": lad.name,
                            "lab": lad.lab,
                            "split": sp.name,
                            "split_rule": sp.description,
                            "n_fit": int(sp.fit.sum()),
                            "n_dropped_runs": lad.n_dropped,
                            "method": m.name,
                            "reference": where
                            if r["quantity"] == "loss"
                            else _error_where(lad, err_refs, where),
                            **r,
                        }
                    )
                if progress:
                    progress(f"{lad.name} {sp.name} {m.name}")
    return rows
