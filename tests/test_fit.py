import numpy as np
import pytest

from lmscale.errors import FitError, InputError
from lmscale.fit import FitResult, fit
from lmscale.laws import OVERTRAIN

X = {"n_params": [1e7, 8e7, 1.5e8, 4e8, 1e7], "multiplier": [20, 20, 20, 20, 320]}
TRUTH = {"A": 120.0, "B": 300.0, "c": -0.25, "E": 1.7}


def _y(noise=0.0):
    rng = np.random.default_rng(1)
    return OVERTRAIN(TRUTH, **X) * (1 + noise * rng.standard_normal(5))


def test_diagnostics_report_agreement():
    res = fit(OVERTRAIN, X, _y(0.01), method="paper", run_ids=list("abcde"), target="loss_val")
    d = res.diagnostics
    assert d.n_starts == 128 and d.n_converged >= 1 and 1 <= d.n_at_optimum <= d.n_converged
    assert d.param_spread >= 0 and d.condition_number > 1
    assert res.run_ids == tuple("abcde")
    # residuals are observed minus the law at the fitted parameters, recomputed here independently
    assert np.allclose(res.residuals, np.asarray(res.y) - OVERTRAIN(res.params, **X), rtol=1e-12, atol=1e-12)
    assert d.rmse == pytest.approx(float(np.sqrt(np.mean(res.residuals**2))))


def test_save_load_exact(tmp_path):
    res = fit(OVERTRAIN, X, _y(0.01), target="loss_val", run_ids=list("abcde"))
    back = FitResult.load(res.save(tmp_path / "fit.json"))
    assert back == res
    assert back.predict(n_params=6.9e9, multiplier=20) == res.predict(n_params=6.9e9, multiplier=20)


@pytest.mark.parametrize("edit", [{"calibration": [1, 2]}, {"diagnostics": "x"}, {"law": "bogus"}])
def test_a_malformed_fit_file_is_named_once(edit):
    """Found by fuzzing: these two checks named the file twice ("f.json: malformed fit file:
    f.json: malformed fit file: ...")."""
    d = {**fit(OVERTRAIN, X, _y(0.01), target="loss_val").to_dict(), **edit}
    with pytest.raises(InputError) as info:
        FitResult.from_dict(d, "f.json")
    assert str(info.value).count("f.json") == 1 and str(info.value).count("malformed") <= 1, info.value


def test_a_fit_no_start_brought_near_the_optimum_is_refused():
    """Noticed by the hostile-input campaign: losses in other units (here × 1e20) left every start
    of the paper's multi-start grid far from the optimum, and the fit predicted ~0 as if converged."""
    y = _y(0.0) * 1e20
    with pytest.raises(FitError, match="fits worse than a constant"):
        fit(OVERTRAIN, X, y, method="paper", target="loss_val")
    good = fit(OVERTRAIN, X, y, method="default", target="loss_val")  # searches the exponents
    assert good.predict(**{k: np.asarray(v) for k, v in X.items()}) == pytest.approx(y, rel=1e-3)
    # runs the fit is told to ignore (weight 0) may be anything: the check weighs them as the fit does
    junk = np.r_[_y(0.0)[:4], 1e6]
    kept = fit(OVERTRAIN, X, junk, method="varpro", weights=[1, 1, 1, 1, 0], target="loss_val")
    assert np.isfinite(kept.params["E"])


def test_only_a_built_in_law_is_held_to_beating_a_constant():
    """A law one registers oneself may hold no constant, so its optimum can fit worse than the mean:
    the check is for the built-in laws, which all do."""
    from dataclasses import replace

    from lmscale.fit.core import _check_better_than_a_constant

    x = {k: np.asarray(v, float) for k, v in X.items()}
    far = OVERTRAIN.vector({"A": 1.0, "B": 1.0, "c": -0.25, "E": 0.0})  # predicts ~0 for losses ~3
    with pytest.raises(FitError, match="worse than a constant"):
        _check_better_than_a_constant(OVERTRAIN, far, x, _y(), None, 1, "loss", "paper")
    own = replace(OVERTRAIN, name="my-law")
    _check_better_than_a_constant(own, far, x, _y(), None, 1, "loss", "paper")  # not refused


@pytest.mark.parametrize("version", [2, "1", None])
def test_a_fit_file_of_another_version_is_refused(version):
    """Noticed by the hostile-input campaign: a file saying it is version 2 was read as version 1."""
    d = {**fit(OVERTRAIN, X, _y(0.01), target="loss_val").to_dict(), "version": version}
    with pytest.raises(
        InputError, match=f"f.json: fit file version {version!r}; this lmscale reads version 1"
    ):
        FitResult.from_dict(d, "f.json")
    current = fit(OVERTRAIN, X, _y(0.01), target="loss_val").to_dict()
    assert FitResult.from_dict(current, "f.json").params == pytest.approx(current["params"])


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_a_constant_target_is_not_fitted(value):
    """Found by fuzzing: a task every run scores the same on (all right, all wrong, or chance)
    gave an error law with k = 0 and an arbitrary γ outside its own bootstrap interval, as if fitted."""
    from lmscale.laws import ERROR

    loss = np.linspace(2.5, 4.0, 12)
    with pytest.raises(FitError, match=rf"every run has the same 'error_x' \({value:g}\)"):
        fit(ERROR, {"loss": loss}, np.full(12, value), target="error_x")
    with pytest.raises(InputError, match=r"'acc_x' is missing or not finite \(nan\)"):
        fit(ERROR, {"loss": loss}, np.r_[np.nan, np.full(11, value)], target="acc_x")


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_a_target_whose_squares_overflow_is_refused(scale):
    """Found by fuzzing: losses of 1e-300 or 1e300 (a unit mix-up) crashed the default fit with
    numpy's "SVD did not converge"."""
    with pytest.raises(InputError, match="'loss_val' ranges from .* overflows; rescale it"):
        fit(OVERTRAIN, X, _y() * scale, target="loss_val")


def test_an_overflowed_projection_is_an_infinite_objective_not_a_crash():
    from lmscale.fit.solvers import batched_projection

    phi = np.ones((2, 5, 2))
    phi[0, :, 1] = np.arange(5.0)
    w = np.ones((2, 5))
    w[1, 0] = np.inf  # a weight that overflowed
    beta, obj = batched_projection(phi, w, np.arange(5.0) + 1)
    assert np.allclose(beta[0], [1.0, 1.0]) and obj[0] == pytest.approx(0.0, abs=1e-20)
    assert np.all(np.isnan(beta[1])) and obj[1] == np.inf


def test_too_few_runs():
    x = {k: v[:3] for k, v in X.items()}
    with pytest.raises(FitError, match=r"too few runs to fit law 'overtrain': 3 runs for 4 parameters"):
        fit(OVERTRAIN, x, _y()[:3])


def test_empty_selection():
    with pytest.raises(InputError, match="empty selection"):
        fit(OVERTRAIN, {"n_params": [], "multiplier": []}, [])


def test_degenerate_inputs():
    x = {"n_params": [1e7] * 5, "multiplier": [20] * 5}
    with pytest.raises(FitError, match="only 1 distinct input points"):
        fit(OVERTRAIN, x, [3.0] * 5)


def test_nan_target_names_the_run():
    y = _y()
    y[2] = np.nan
    with pytest.raises(InputError, match="run 'c': target 'loss_val' is missing or not finite"):
        fit(OVERTRAIN, X, y, run_ids=list("abcde"), target="loss_val")


def test_nothing_converges():
    with pytest.raises(FitError, match="none of 1 starts converged"):
        fit(OVERTRAIN, X, _y(), starts=[[np.nan] * 4])


def test_unknown_method():
    with pytest.raises(InputError, match="unknown fitting method 'adam'"):
        fit(OVERTRAIN, X, _y(), method="adam")
