"""The paper's numbers: every fit and prediction of the authors' procedure (../shared/reference),
Figure 1, Table 6 and M*.

Tolerances are what the method guarantees on any CPU, not what one machine happens to print:

- Predictions and objective values: 1e-6 relative (RTOL). The objective is what the solvers
  minimise, and it is flat at the optimum: the paper's error fits stop within 3e-10 (relative) of the
  exact least-squares optimum, and their held-out predictions within 5e-7 of the exact optimum's.
- Loss-law parameters: 1e-6. The paper's loss fit runs Levenberg–Marquardt to xtol = ftol = 1e-14,
  so it lands on the optimum itself, whatever the floating point of the CPU.
- Error-law parameters: 1e-4 (ERROR_PARAM_RTOL). The paper's error fit is scipy's curve_fit with
  MINPACK's defaults (ftol = xtol = 1.49e-8): it stops where the objective no longer improves by
  1.5e-8, which leaves the parameters up to 1.4e-5 (relative) from the exact optimum on the testbed
  (tests/test_trust.py measures it), at a point that depends on the CPU: an AMD EPYC machine gave
  k = 1.1280753634 against the reference's 1.1280742252 (1.0e-6 apart). The objective at our
  parameters is also checked against the objective at the reference's, to RTOL: the same optimum.
"""

import numpy as np
import pytest

from lmscale import paper
from lmscale.laws.overtrain import optimal_multiplier, to_paper_form

RTOL = 1e-6
ERROR_PARAM_RTOL = 1e-4


def _objective(fit, params) -> float:
    """The paper's least-squares objective of ``fit``'s data at ``params``."""
    law = fit.law_obj
    r = law.evaluate_vector(law.vector(params), fit.x_arrays) - np.asarray(fit.y)
    return float(r @ r)


def _same_optimum(fit, theirs) -> None:
    assert _objective(fit, fit.params) == pytest.approx(_objective(fit, theirs), rel=RTOL)


def _index(reproduction):
    fits, rows = reproduction
    by_fit = {(f.train_set, "loss_" + f.val_set): f for f in fits}
    by_row = {(r.train_set, "loss_" + r.val_set, r.run_id, r.target): r for r in rows}
    return by_fit, by_row


def test_every_fit_and_prediction_matches_reference(paper_reproduction, reference):
    by_fit, by_row = _index(paper_reproduction)
    assert len(reference["fits"]) == 24
    n_loss = n_err = n_pred = 0
    for ref in reference["fits"]:
        fits = by_fit[(ref["train"], ref["val"])]
        p = fits.loss_fit.params
        rp = ref["loss_params"]
        theirs = {"A": rp["a"], "B": rp["b"], "c": rp["alpha_c"], "E": rp["E"]}
        for k, v in theirs.items():
            assert p[k] == pytest.approx(v, rel=RTOL)
        _same_optimum(fits.loss_fit, theirs)
        paper_form = to_paper_form(p)
        pf = ref["loss_params_paper_form"]
        for k_ours, k_ref in (("eta", "eta"), ("a", "a_paper"), ("b", "b_paper"), ("E", "E")):
            assert paper_form[k_ours] == pytest.approx(pf[k_ref], rel=RTOL)
        n_loss += 1
        prefix = {"c4_original": "c4_original", "rpj": "rpj", "rw_original": "rw_original"}[ref["train"]]
        for h in ref["heldout_loss"]:
            run_id = f"{prefix}-{h['model']}-{h['cc_mult']}"
            row = by_row[(ref["train"], ref["val"], run_id, "loss")]
            assert row.predicted == pytest.approx(h["pred_loss"], rel=RTOL)
            assert row.observed == pytest.approx(h["true_loss"], rel=1e-12)
            assert row.rel_error == pytest.approx(h["rel_err"], rel=1e-4, abs=1e-9)
            n_pred += 1
        for key, target in (("downstream_avg", "error_46"), ("downstream_avg_subset", "error_17")):
            d = ref[key]
            efit = fits.error_fits[target]
            assert set(efit.params) == set(d["params"])
            for k, v in d["params"].items():
                assert efit.params[k] == pytest.approx(v, rel=ERROR_PARAM_RTOL)
            _same_optimum(efit, d["params"])
            n_err += 1
            for h in d["heldout"]:
                run_id = f"{prefix}-{h['model']}-{h['cc_mult']}"
                row = by_row[(ref["train"], ref["val"], run_id, target)]
                assert row.observed == pytest.approx(h["true_err"], rel=1e-12)
                assert row.predicted == pytest.approx(h["pred_err_composed"], rel=RTOL)
                assert row.predicted_from_true_loss == pytest.approx(h["pred_err_from_true_loss"], rel=RTOL)
                assert row.used_in_error_fit == h["used_in_error_fit"]
                n_pred += 1
    assert (n_loss, n_err) == (24, 48)
    assert n_pred == 24 * 3 * 3


def test_all_runs_predictions_match_reference(paper_reproduction, reference, testbed_runs):
    by_fit, _ = _index(paper_reproduction)
    n_of = dict(zip(testbed_runs.column("model"), testbed_runs.column("n_params")))
    checked = 0
    for ref in reference["fits"]:
        fit = by_fit[(ref["train"], ref["val"])].loss_fit
        for r in ref["all_runs_loss"]:
            pred = fit.predict(n_params=n_of[r["model"]], multiplier=20 * r["cc_mult"])
            assert pred == pytest.approx(r["pred_loss"], rel=RTOL)
            checked += 1
    assert checked > 500


def test_figure1(paper_reproduction, reference):
    nums = paper.figure1_numbers(paper_reproduction[1])
    assert round(100 * nums["1.4B_M640_loss"], 4) == 0.7103
    assert round(100 * nums["6.9B_M20_loss"], 4) == 0.7320
    assert round(100 * nums["1.4B_M640_error_17"], 4) == 3.6365
    assert round(100 * nums["6.9B_M20_error_17"], 4) == 0.0464
    ref = reference["figure1"]["rel_err"]
    assert nums["1.4B_M640_loss"] == pytest.approx(ref["1.4B_M640_loss"], rel=1e-5)
    assert nums["6.9B_M20_error_17"] == pytest.approx(ref["6.9B_M20_err17"], rel=1e-4)


def test_table6_and_mstar(paper_reproduction):
    by_fit, _ = _index(paper_reproduction)
    table6 = {  # E, a, b, eta; epsilon, k, gamma (17-task)
        "c4_original": ((1.51, 141, 190, 0.121), (0.850, 2.08, 0.756), 3.36),
        "rpj": ((1.84, 212, 367, 0.136), (0.857, 2.21, 0.715), 7.42),
        "rw_original": ((1.73, 157, 246, 0.127), (0.865, 2.21, 0.707), 5.85),
    }
    for ts, ((e, a, b, eta), (eps, k, gamma), mstar) in table6.items():
        fits = by_fit[(ts, "loss_c4_val")]
        pf = to_paper_form(fits.loss_fit.params)
        assert (round(pf["E"], 2), round(pf["a"]), round(pf["b"]), round(pf["eta"], 3)) == (e, a, b, eta)
        ep = fits.error_fits["error_17"].params
        assert (round(ep["epsilon"], 3), round(ep["k"], 2), round(ep["gamma"], 3)) == (eps, k, gamma)
        assert round(optimal_multiplier(fits.loss_fit.params), 2) == mstar


def test_c4_eval_relative_errors(paper_reproduction):
    """PAPER.md §5: C4-eval loss and chained downstream relative errors (percent, 1 decimal)."""
    rows = [r for r in paper_reproduction[1] if r.val_set == "c4_val"]
    expected = {  # (train, N class, target) -> C4/RPJ/RW values
        "loss_1b20": (0.8, 0.1, 0.6),
        "loss_1bmax": (1.5, 0.7, 0.0),
        "loss_7b": (4.3, 0.7, 1.6),
        "error_17_1bmax": (9.6, 3.6, 5.6),
        "error_17_7b": (0.1, 0.0, 2.9),
        "error_46_1bmax": (3.1, 3.4, 4.3),
        "error_46_7b": (0.1, 2.1, 2.8),
    }
    for key, values in expected.items():
        target, which = key.rsplit("_", 1)
        for ts, v in zip(("c4_original", "rpj", "rw_original"), values):
            sel = [r for r in rows if r.train_set == ts and r.target == target]
            if which == "7b":
                r = max(sel, key=lambda r: r.n_params)
            elif which == "1b20":
                r = next(r for r in sel if r.n_params < 2e9 and r.multiplier == 20)
            else:
                r = max((r for r in sel if r.n_params < 2e9), key=lambda r: r.multiplier)
            assert round(100 * r.rel_error, 1) == v, (key, ts, r)
