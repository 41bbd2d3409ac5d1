"""Issue 4: objectives, solvers, bootstrap, intervals, extrapolation, and a peer's published fit."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lmscale.errors import FitError
from lmscale.fit import fit
from lmscale.fit.bootstrap import bootstrap, parameter_intervals, standard_errors
from lmscale.laws import CHINCHILLA, ERROR, OVERTRAIN
from lmscale.predict import ScalePoint, extrapolation_factors, predict_with_intervals


# ------------------------------------------------------------------ same objective, same optimum
def test_varpro_finds_the_paper_optimum_on_reference_fits(paper_reproduction):
    fits, _ = paper_reproduction
    for f in fits:
        lf = f.loss_fit
        v = fit(OVERTRAIN, lf.x, lf.y, method="varpro")
        for k in lf.params:
            assert v.params[k] == pytest.approx(lf.params[k], rel=1e-6)
        assert v.diagnostics.objective <= lf.diagnostics.objective * (1 + 1e-9)
        for ef in f.error_fits.values():
            ve = fit(ERROR, ef.x, ef.y, method="varpro")
            # MINPACK's default tolerances stop the paper's error fits up to ~2e-5 short of the exact
            # optimum (see docs/fitting.md); predictions agree to 1e-5 and varpro is never worse
            for k in ef.params:
                assert ve.params[k] == pytest.approx(ef.params[k], rel=5e-5)
            assert ve.predict(loss=2.3) == pytest.approx(ef.predict(loss=2.3), rel=1e-5)
            assert ve.diagnostics.objective <= ef.diagnostics.objective * (1 + 1e-9)


def test_lbfgs_ls_matches_lm_optimum():
    x = {"n_params": [1e7, 8e7, 1.5e8, 4e8, 1e7, 8e7], "multiplier": [20, 20, 20, 20, 320, 80]}
    y = OVERTRAIN({"A": 120.0, "B": 300.0, "c": -0.25, "E": 1.7}, **x) * (1 + 0.01 * np.sin(np.arange(6)))
    a = fit(OVERTRAIN, x, y, method="varpro")
    b = fit(OVERTRAIN, x, y, method="ls-log")
    assert b.diagnostics.n_converged > 0
    # different objective, nearby optimum
    assert b.params["E"] == pytest.approx(a.params["E"], rel=0.05)


# -------------------------------------------------------------------------------- property tests
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    A=st.floats(30, 3000),
    B=st.floats(30, 3000),
    eta=st.floats(0.08, 0.2),
    E=st.floats(0.5, 3.0),
    seed=st.integers(0, 2**16),
)
def test_overtrain_recovery_with_noise(A, B, eta, E, seed):
    rng = np.random.default_rng(seed)
    n = np.repeat([1e7, 3e7, 8e7, 1.5e8, 4e8], 4)
    m = np.tile([5, 20, 80, 320], 5).astype(float)
    truth = {"A": A, "B": B, "c": -2 * eta, "E": E}
    y = OVERTRAIN(truth, n_params=n, multiplier=m) * (1 + 1e-4 * rng.standard_normal(n.size))
    for method in ("paper", "varpro", "huber-log"):
        starts = OVERTRAIN.start_grid()[::16] if method != "varpro" else None  # a thinned grid keeps it quick
        res = fit(OVERTRAIN, {"n_params": n, "multiplier": m}, y, method=method, starts=starts)
        pred, true = (
            res.predict(n_params=1.4e9, multiplier=100),
            OVERTRAIN(truth, n_params=1.4e9, multiplier=100),
        )
        assert pred == pytest.approx(true, rel=2e-3), method
        assert res.params["c"] == pytest.approx(truth["c"], rel=0.1), method


@settings(max_examples=15, deadline=None)
@given(k=st.floats(0.5, 5), gamma=st.floats(0.2, 1.5), eps=st.floats(0.6, 0.95), seed=st.integers(0, 2**16))
@pytest.mark.slow
def test_error_law_recovery_with_noise(k, gamma, eps, seed):
    rng = np.random.default_rng(seed)
    loss = np.linspace(2.2, 5.5, 12)
    truth = {"k": k, "gamma": gamma, "epsilon": eps}
    assume(ERROR(truth, loss=2.2) > 0.05)  # errors must stay positive for the log objective
    y = ERROR(truth, loss=loss) + 1e-5 * rng.standard_normal(loss.size)
    for method in ("varpro", "huber-log", "paper"):
        wide = np.array(
            [[k0, g0, e0] for k0 in (0.5, 1, 2, 4) for g0 in (0.3, 0.7, 1.5) for e0 in (0.6, 0.8, 1.0)]
        )
        # every solver from the same start grid (the paper's single start (1, 1, 1) is fragile by design)
        res = fit(ERROR, {"loss": loss}, y, method=method, starts=wide)
        # k and γ trade off on a short loss range, so the law is checked where it is used: its curve
        grid = np.linspace(2.0, 5.5, 30)
        assert np.max(np.abs(res.predict(loss=grid) - ERROR(truth, loss=grid))) < 2e-3, method


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alpha=st.floats(0.25, 0.5), beta=st.floats(0.25, 0.5), E=st.floats(1.0, 2.5), seed=st.integers(0, 2**16)
)
def test_chinchilla_recovery_with_noise(alpha, beta, E, seed):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e7, 3e9, 6), 5)
    d = n * np.tile([5, 10, 20, 40, 80], 6)
    truth = {"E": E, "A": 400.0, "alpha": alpha, "B": 1500.0, "beta": beta}
    y = CHINCHILLA(truth, n_params=n, n_tokens=d) * (1 + 1e-4 * rng.standard_normal(n.size))
    for method in ("huber-log", "varpro"):
        starts = CHINCHILLA.start_grid()[::20] if method == "huber-log" else None
        res = fit(CHINCHILLA, {"n_params": n, "n_tokens": d}, y, method=method, starts=starts)
        for name in ("alpha", "beta", "E"):
            assert res.params[name] == pytest.approx(truth[name], rel=0.05), (method, name)


@pytest.mark.parametrize("method", ["paper", "varpro", "ls-log", "huber-log"])
def test_degenerate_inputs_every_solver(method):
    with pytest.raises(FitError, match="too few runs"):
        fit(OVERTRAIN, {"n_params": [1e7, 1e8], "multiplier": [20, 20]}, [4.0, 3.0], method=method)
    with pytest.raises(FitError, match="degenerate"):
        fit(OVERTRAIN, {"n_params": [1e7] * 6, "multiplier": [20] * 6}, [4.0] * 6, method=method)


# ---------------------------------------------------------------------------- bootstrap, intervals
def _loss_fit():
    rng = np.random.default_rng(3)
    n = np.repeat([1e7, 3e7, 8e7, 1.5e8, 4e8], 3)
    m = np.tile([10, 20, 80], 5).astype(float)
    y = OVERTRAIN({"A": 120.0, "B": 300.0, "c": -0.25, "E": 1.7}, n_params=n, multiplier=m)
    return fit(
        OVERTRAIN,
        {"n_params": n, "multiplier": m},
        y * (1 + 0.005 * rng.standard_normal(n.size)),
        method="varpro",
    )


def test_batched_bootstrap_matches_per_resample_fits():
    res = _loss_fit()
    boot = bootstrap(res, 20, seed=5)
    rng = np.random.default_rng(5)
    from lmscale.fit.bootstrap import resample_counts

    counts = resample_counts(len(res.y), 20, rng)
    for w, sample in zip(counts[:5], boot.bootstrap[:5]):
        ref = fit(OVERTRAIN, res.x, res.y, method="varpro", weights=w)
        assert np.allclose(sample, OVERTRAIN.vector(ref.params), rtol=1e-5)


def test_bootstrap_reproducible_and_intervals_cover_estimate():
    res = _loss_fit()
    a, b = bootstrap(res, 200, seed=1), bootstrap(res, 200, seed=1)
    assert a.bootstrap == b.bootstrap
    ci = parameter_intervals(a, 0.9)
    for k, (lo, hi) in ci.items():
        assert lo <= res.params[k] <= hi
    assert all(v > 0 for v in standard_errors(a).values())


def test_prediction_interval_and_warnings():
    res = bootstrap(_loss_fit(), 300, seed=2)
    point = ScalePoint.make(1.4e9, multiplier=160)
    up = predict_with_intervals(res, None, point, level=0.9)
    assert up.loss_prediction.low <= up.loss_confidence.low <= up.loss <= up.loss_confidence.high
    assert up.loss_prediction.high >= up.loss_confidence.high
    f = extrapolation_factors(res, point)
    assert f["n_params"] == pytest.approx(1.4e9 / 4e8) and f["multiplier"] == pytest.approx(2.0)
    assert any("parameters N 3.5×" in w for w in up.warnings)
    inside = predict_with_intervals(res, None, ScalePoint.make(1e8, multiplier=20))
    assert inside.warnings == ()


def test_bootstrap_roundtrip(tmp_path):
    from lmscale.fit import FitResult

    res = bootstrap(_loss_fit(), 50, seed=0)
    assert FitResult.load(res.save(tmp_path / "f.json")) == res


# ------------------------------------------------------------------------- Epoch's Chinchilla fit
EPOCH = {
    "E": (1.817, 0.026),
    "A": (482.0, 124.5),
    "B": (2085.0, 1293.0),
    "alpha": (0.348, 0.015),
    "beta": (0.366, 0.021),
}


def _epoch_fit(epoch_csv):
    df = pd.read_csv(epoch_csv)
    df = df.drop(df["loss"].nlargest(5).index)  # their procedure drops the 5 highest-loss runs
    n = df["Model Size"].to_numpy()
    d = df["Training FLOP"].to_numpy() / (6 * n)
    return fit(
        CHINCHILLA,
        {"n_params": n, "n_tokens": d},
        df["loss"].to_numpy(),
        method="huber-log",
        huber_delta=1e-3,
    )


def test_epoch_point_estimates(epoch_csv):
    res = _epoch_fit(epoch_csv)
    for k, (est, se) in EPOCH.items():
        assert abs(res.params[k] - est) <= se, (k, res.params[k])
    for k in ("E", "alpha", "beta"):  # two significant digits
        assert float(f"{res.params[k]:.2g}") == float(f"{EPOCH[k][0]:.2g}")


@pytest.mark.slow
def test_epoch_bootstrap_standard_errors(epoch_csv):
    res = bootstrap(_epoch_fit(epoch_csv), 120, seed=0)
    se = standard_errors(res)
    for k, (_, published) in EPOCH.items():
        assert published / 2.5 <= se[k] <= published * 2.5, (k, se[k], published)
