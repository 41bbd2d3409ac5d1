"""Plan a ladder before paying for it: which small runs to train, at what cost, to predict a
target run to within what error.

Candidate ladders are taken from the evidence's own grid — the k smallest model sizes (k ≥ 2) ×
every contiguous window of its token multipliers — so that each can be *backtested* on the
evidence: fit the loss law on the candidate's runs of each evidence training set and validation
loss, predict the evidence run nearest the target, and record the relative error. Scaled to the
target's own extrapolation distance (errors grow about linearly with the e-folds of compute beyond
the fitted runs, the same rule the calibrated intervals use), these errors give the candidate's
expected relative error (median) and a 90% range (5th–95th percentile, :data:`INTERVAL`).

Pure computation over a :class:`RunTable`; the CLI front end is ``lmscale plan``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from lmscale.calibration import distance
from lmscale.compute import flops
from lmscale.errors import FitError, InputError
from lmscale.fit.core import fit
from lmscale.fit.method import DEFAULT, check_method
from lmscale.laws import OVERTRAIN
from lmscale.plan_grid import EVIDENCE_COLUMN, combine, grids, nothing_to_propose, windows
from lmscale.predict import ScalePoint
from lmscale.run_table import RunTable
from lmscale.study import Study

__all__ = [
    "EVIDENCE_COLUMN",
    "LadderCandidate",
    "Picks",
    "Plan",
    "PlanCheck",
    "candidates",
    "combine",
    "plan",
]

#: the expected-error range: 5th to 95th percentile of the scaled backtest errors (a 90% range)
INTERVAL = (0.05, 0.95)
#: peak dense bf16 throughput of one H100 (FLOP/s), for GPU-hours at a stated MFU
H100_PEAK_FLOPS = 989e12


@dataclass(frozen=True)
class LadderCandidate:
    """One proposed ladder and what the evidence says it buys."""

    sizes: tuple[float, ...]
    multipliers: tuple[float, ...]
    #: compute of training every run once (FLOPs)
    flops: float
    #: median relative error of the target's loss prediction, and its 90% range (:data:`INTERVAL`)
    expected_rel_error: float
    expected_interval: tuple[float, float]
    #: how many backtest predictions the expectation rests on
    n_evidence: int
    #: the backtest errors per evidence training set (for the selection-bias correction)
    by_train_set: tuple[tuple[str, tuple[float, ...]], ...] = ()

    @property
    def n_runs(self) -> int:
        return len(self.sizes) * len(self.multipliers)

    def runs(self) -> list[dict]:
        return [
            {"n_params": n, "multiplier": m, "n_tokens": n * m, "flops": flops(n, multiplier=m)}
            for n in self.sizes
            for m in self.multipliers
        ]

    def gpu_hours(self, mfu: float = 0.4, peak_flops: float = H100_PEAK_FLOPS) -> float:
        return self.flops / (mfu * peak_flops) / 3600.0

    def to_dict(self, mfu: float = 0.4) -> dict:
        d = asdict(self)
        d.pop("by_train_set")
        d.update(
            n_runs=self.n_runs,
            runs=self.runs(),
            gpu_hours=self.gpu_hours(mfu),
            mfu=mfu,
            expected_interval=list(self.expected_interval),
        )
        return d


@dataclass(frozen=True)
class Picks:
    """The three proposals of a plan, as indices into its candidates."""

    #: the cheapest candidate whose expected error is within 1.5× the recommended's
    cheaper: int
    #: the lowest expected error
    recommended: int
    #: the lowest upper end of the expected error's range
    safer: int

    def items(self) -> tuple[tuple[str, int], ...]:
        """(label, index) in the order plans print them."""
        return (("cheaper", self.cheaper), ("recommended", self.recommended), ("safer", self.safer))

    def values(self) -> tuple[int, ...]:
        return (self.cheaper, self.recommended, self.safer)


@dataclass(frozen=True)
class Plan:
    target: ScalePoint
    candidates: tuple[LadderCandidate, ...]
    picks: Picks
    evidence: str
    budget_flops: float | None
    #: the factor by which the picks' expectations were raised for selection (:func:`selection_bias`)
    selection_bias: float = 1.0

    def to_dict(self, mfu: float = 0.4, budget_flops: float | None = None) -> dict:
        """The plan as ``lmscale plan --format json`` prints it (GPU-hours at ``mfu``)."""
        if not (isinstance(mfu, (int, float)) and 0 < mfu <= 1):  # NaN fails both comparisons
            raise InputError(f"the model FLOPs utilisation (--mfu) must be in (0, 1], got {mfu!r}")
        return {
            "target": self.target.inputs(),
            "budget_flops": self.budget_flops if budget_flops is None else budget_flops,
            "evidence": self.evidence,
            "n_candidates": len(self.candidates),
            "selection_bias": self.selection_bias,
            "proposals": [{"choice": k, **self.candidates[i].to_dict(mfu)} for k, i in self.picks.items()],
        }


def _distance(point: ScalePoint, n: np.ndarray, m: np.ndarray) -> float:
    """How far ``point`` lies beyond the runs (n, m), in the calibration's units
    (:func:`lmscale.calibration.distance` of the compute and size factors)."""
    return float(distance(point.flops / flops(n, multiplier=m).max(), n_factor=point.n_params / n.max()))


def candidates(
    runs: RunTable,
    target: ScalePoint,
    *,
    budget_flops: float | None = None,
    max_runs: int | None = None,
    method: str = DEFAULT,
    val_sets: Sequence[str] | None = None,
    allowed_sizes: Sequence[float] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[LadderCandidate]:
    """Every candidate ladder of the evidence's grid (of each evidence table's own grid, after
    :func:`combine`) within the budget (and among ``allowed_sizes``, matched within 1%), with its
    expected error. ``progress(done, total, label)`` is called per candidate considered."""
    per_grid = [(g, windows(g, target, allowed_sizes)) for g in grids(runs)]
    if not any(w for _, w in per_grid):
        raise InputError(
            f"{runs.source}: the evidence needs at least two (allowed) model sizes below half the "
            f"target's {target.n_params:.3g} parameters"
        )
    vals = [v.removeprefix("loss_") for v in (val_sets or runs.val_sets)]
    out: list[LadderCandidate] = []
    why = {"budget": 0, "max_runs": 0, "evidence": 0, "diverged": 0}
    total, done = sum(len(w) for _, w in per_grid), 0
    for grid, grid_windows in per_grid:
        for cand_sizes, cand_mults in grid_windows:
            done += 1
            if progress is not None:
                progress(done, total, f"{len(cand_sizes)} sizes × {len(cand_mults)} M")
            cost = sum(flops(n, multiplier=m) for n in cand_sizes for m in cand_mults)
            if budget_flops is not None and cost > budget_flops:
                why["budget"] += 1
                continue
            if max_runs and len(cand_sizes) * len(cand_mults) > max_runs:
                why["max_runs"] += 1
                continue
            per_ts = _evidence_errors(grid, cand_sizes, cand_mults, target, method, vals)
            errs = [e for _ts, es in per_ts for e in es]
            if len(errs) < 3:
                why["evidence"] += 1
                continue
            if not np.all(np.isfinite(errs)):
                why["diverged"] += 1
                continue
            out.append(
                LadderCandidate(
                    cand_sizes,
                    cand_mults,
                    cost,
                    float(np.median(errs)),
                    (float(np.quantile(errs, INTERVAL[0])), float(np.quantile(errs, INTERVAL[1]))),
                    len(errs),
                    per_ts,
                )
            )
    if not out:
        raise InputError(nothing_to_propose(runs, total, why))
    return out


def _evidence_errors(
    runs: RunTable, sizes, mults, target: ScalePoint, method: str, vals
) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """Backtest a candidate on every evidence training set × validation loss: relative error of the
    evidence run nearest the target (beyond the candidate), scaled to the target's distance."""
    per_ts = []
    for ts in runs.datasets:
        errs: list[float] = []
        ds = runs.of_dataset(ts)
        n, m = ds.column("n_params").astype(float), ds.column("multiplier").astype(float)
        in_ladder = np.isin(n, sizes) & np.isin(np.round(m, 6), np.round(mults, 6))
        beyond = n > max(sizes) * 1.5
        if in_ladder.sum() < OVERTRAIN.n_fit_params + 1 or not beyond.any():
            continue
        near = np.flatnonzero(beyond)[
            np.argmin(np.hypot(np.log(n[beyond] / target.n_params), np.log(m[beyond] / target.multiplier)))
        ]
        proxy = ScalePoint.make(float(n[near]), multiplier=float(m[near]))
        d_t, d_p = _distance(target, n[in_ladder], m[in_ladder]), _distance(proxy, n[in_ladder], m[in_ladder])
        scale = (1.0 + d_t) / (1.0 + d_p)
        for vs in vals:
            y = ds.loss("loss_" + vs)
            ok = in_ladder & np.isfinite(y)
            if ok.sum() < OVERTRAIN.n_fit_params + 1 or not np.isfinite(y[near]):
                continue
            try:
                f = fit(OVERTRAIN, {"n_params": n[ok], "multiplier": m[ok]}, y[ok], method=method)
            except (FitError, InputError):
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                pred = float(f.predict(n_params=proxy.n_params, multiplier=proxy.multiplier))
            # a fit that blows up on the evidence rules the candidate out (was: quietly skipped)
            errs.append(abs(pred - y[near]) / y[near] * scale if np.isfinite(pred) else float("inf"))
        if errs:
            per_ts.append((ts, tuple(errs)))
    return tuple(per_ts)


def plan(
    runs: RunTable,
    target: ScalePoint,
    *,
    budget_flops: float | None = None,
    max_runs: int | None = None,
    method: str = DEFAULT,
    val_sets: Sequence[str] | None = None,
    allowed_sizes: Sequence[float] | None = None,
    correct_selection: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> Plan:
    """Candidates plus three picks: ``recommended`` (lowest expected error), ``cheaper`` (the
    cheapest whose expected error is within 1.5× the recommended's) and ``safer`` (lowest upper end
    of the error range)."""
    check_method(method)  # before any work
    if not runs.val_sets or not any(np.isfinite(runs.loss(v)).any() for v in runs.val_sets):
        raise InputError(
            f"{runs.source}: the evidence has no validation loss (no loss_<set> column with a value); "
            "plan backtests candidate ladders on the evidence's losses"
        )
    if budget_flops is not None and not (np.isfinite(budget_flops) and budget_flops > 0):
        raise InputError(f"the budget must be a positive number of FLOPs, got {budget_flops!r}")
    if max_runs is not None and max_runs < 5:
        raise InputError(f"a ladder needs at least 5 runs to fit the loss law, got --max-runs {max_runs}")
    cands = candidates(
        runs,
        target,
        budget_flops=budget_flops,
        max_runs=max_runs,
        method=method,
        val_sets=val_sets,
        allowed_sizes=allowed_sizes,
        progress=progress,
    )
    bias = selection_bias(cands) if correct_selection else 1.0
    best = min(range(len(cands)), key=lambda i: (cands[i].expected_rel_error, cands[i].flops))
    ok = [i for i in range(len(cands)) if cands[i].expected_rel_error <= 1.5 * cands[best].expected_rel_error]
    cheap = min(ok, key=lambda i: (cands[i].flops, cands[i].expected_rel_error))
    safe = min(range(len(cands)), key=lambda i: (cands[i].expected_interval[1], cands[i].flops))
    picks = Picks(cheaper=cheap, recommended=best, safer=safe)
    if bias > 1.0:
        # the picks looked best on the evidence partly by luck: their errors elsewhere run larger, so
        # the upper end of their range is raised by the nested estimate of that optimism (the median
        # and the lower end stay: luck makes the evidence optimistic, not pessimistic)
        cands = [
            replace(c, expected_interval=(c.expected_interval[0], c.expected_interval[1] * bias))
            if i in picks.values()
            else c
            for i, c in enumerate(cands)
        ]
    return Plan(target, tuple(cands), picks, runs.source, budget_flops, bias)


def selection_bias(cands: Sequence[LadderCandidate]) -> float:
    """How optimistic the best-looking candidate's expectation is (nested over evidence training
    sets: pick the best on all but one set, compare its error on the left-out set with what the
    others promised). 1 when the evidence has a single training set."""
    sets = sorted({ts for c in cands for ts, _ in c.by_train_set})
    ratios = []
    for out in sets:

        def promised(c, out=out):
            e = [x for ts, es in c.by_train_set if ts != out for x in es]
            return float(np.median(e)) if e else np.inf

        pick = min(cands, key=promised)
        got = [x for ts, es in pick.by_train_set if ts == out for x in es]
        if got and np.isfinite(promised(pick)) and promised(pick) > 0:
            ratios.append(float(np.median(got)) / promised(pick))
    return max(1.0, float(np.median(ratios))) if ratios else 1.0


@dataclass(frozen=True)
class PlanCheck:
    """One leave-one-training-set-out check of the planner: the recommended ladder's realised error
    on a held-out training set against the range the planner promised."""

    held_out: str  # the training set planned for (its runs never in the evidence)
    target: str  # which run of it was the target (``second-max-m``, ``largest``)
    val_set: str
    ladder_flops: float  # compute of the recommended ladder
    n_runs: int
    expected_rel_error: float
    low: float  # the planner's 90% range of the error
    high: float
    realised_rel_error: float
    inside: bool  # low ≤ realised ≤ high
    at_most_high: bool  # realised ≤ high


def validate_leave_one_out(
    runs: RunTable,
    targets: Sequence[str] = ("second-max-m", "largest"),
    *,
    budget_flops: float | None = None,
    method: str = DEFAULT,
    correct_selection: bool = True,
) -> list[PlanCheck]:
    """For each training set: plan with the other training sets' evidence, fit the recommended
    ladder's runs of the held-out set, predict its target runs (every validation loss), and check
    the realised error against the planner's 90% range."""
    rows: list[PlanCheck] = []
    for held in runs.datasets:
        evidence = runs.subset(runs.column("dataset").astype(str) != held)  # every training set but one
        study = Study(runs, "paper-default", method, train_sets=(held,), error_targets=())
        ds = study.dataset(held)
        n, m = ds.column("n_params").astype(float), ds.column("multiplier").astype(float)
        for which in targets:
            i = study.target_run(held, which)
            point = ScalePoint.make(float(n[i]), multiplier=float(m[i]))
            p = plan(
                evidence, point, budget_flops=budget_flops, method=method, correct_selection=correct_selection
            )
            rec = p.candidates[p.picks.recommended]
            use = np.isin(n, rec.sizes) & np.isin(np.round(m, 6), np.round(rec.multipliers, 6))
            for vs in runs.val_sets:
                y = ds.loss("loss_" + vs)
                try:
                    f = fit(OVERTRAIN, {"n_params": n[use], "multiplier": m[use]}, y[use], method=method)
                except (FitError, InputError):  # the held-out set lacks some of the ladder's runs
                    continue
                realised = (
                    abs(float(f.predict(n_params=point.n_params, multiplier=point.multiplier)) - y[i]) / y[i]
                )
                lo, hi = rec.expected_interval
                rows.append(
                    PlanCheck(
                        held,
                        which,
                        vs,
                        rec.flops,
                        rec.n_runs,
                        rec.expected_rel_error,
                        lo,
                        hi,
                        realised,
                        bool(lo <= realised <= hi),
                        bool(realised <= hi),
                    )
                )
    return rows
