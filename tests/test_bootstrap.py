"""The bootstrap solves the problem the point fit solves: the batched projection equals the exact
one (QR of √W·Φ, as ``varpro`` uses) over exponents, scales of N and weights; resamples that the
law cannot identify are dropped and counted; the point estimate lies inside its own interval."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmscale.fit.bootstrap import bootstrap, parameter_intervals
from lmscale.fit.core import fit
from lmscale.fit.solvers import _projected, batched_projection
from lmscale.laws import CHINCHILLA, OVERTRAIN


def _ladder(rng, n_lo, n_hi, n_runs=24, mults=(5, 10, 20, 40, 80)):
    n = np.exp(rng.uniform(np.log(n_lo), np.log(n_hi), n_runs))
    m = rng.choice(np.asarray(mults, float), n_runs)
    return {"n_params": n, "multiplier": m, "n_tokens": n * m}


@settings(max_examples=60, deadline=None)
@given(
    c=st.floats(-1.5, -0.05),
    n_lo=st.floats(1e6, 1e10),
    spread=st.floats(3.0, 30.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_batched_projection_equals_the_exact_projection(c, n_lo, spread, seed):
    rng = np.random.default_rng(seed)
    x = _ladder(rng, n_lo, min(n_lo * spread, 1e11))
    truth = {"A": 3e2 * n_lo ** (-c) * rng.uniform(0.5, 2), "B": 5e2 * n_lo ** (-c), "c": c, "E": 1.8}
    y = OVERTRAIN.formula(truth, x) * (1 + 0.01 * rng.standard_normal(len(x["n_params"])))
    w = rng.integers(0, 4, len(y)).astype(float) * rng.uniform(0.2, 5, len(y))
    w[:4] = 1.0  # at least a few runs drawn
    theta = np.array([c * rng.uniform(0.8, 1.2)])
    phi = OVERTRAIN.basis(theta, x)
    _, obj_b = batched_projection(phi, w, y)
    _, r, _ = _projected(OVERTRAIN, x, y, np.sqrt(w), theta)
    obj_exact = float(r @ r)
    assert obj_b == pytest.approx(obj_exact, rel=1e-8, abs=1e-14 * float(w @ y**2))


def _lab_a_like(seed=0):
    """A steep ladder like the issue's lab A: c ≈ −0.69, N of 1e7–2e8, five multipliers."""
    rng = np.random.default_rng(seed)
    x = _ladder(rng, 1e7, 2e8, n_runs=50)
    truth = {"A": 1.28e5, "B": 2.0e5, "c": -0.689, "E": 2.2}
    y = OVERTRAIN.formula(truth, x) * (1 + 0.01 * rng.standard_normal(50))
    return x, y


def test_the_point_estimate_lies_inside_its_bootstrap_interval_on_a_steep_ladder():
    x, y = _lab_a_like()
    res = fit(OVERTRAIN, x, y, method="varpro")
    assert res.params["c"] < -0.6
    boot = bootstrap(res, 200, seed=1)
    iv = parameter_intervals(boot, 0.9)
    for name, (lo, hi) in iv.items():
        assert lo <= res.params[name] <= hi, (name, lo, res.params[name], hi)
    # the batched solve on the full data lands on the point fit's optimum
    samples = np.asarray(boot.bootstrap)
    assert np.median(samples[:, OVERTRAIN.params.index("c")]) == pytest.approx(res.params["c"], abs=0.05)


def test_unidentifiable_resamples_are_dropped_and_counted():
    # 5 runs like the paper's default fit: only one run off M = 20, so many resamples hold M = 20 alone
    x = {
        "n_params": np.array([1.1e7, 7.9e7, 1.54e8, 4.11e8, 1.1e7]),
        "multiplier": np.array([20.0, 20.0, 20.0, 20.0, 320.0]),
    }
    x["n_tokens"] = x["n_params"] * x["multiplier"]
    y = OVERTRAIN.formula({"A": 1e3, "B": 2e3, "c": -0.3, "E": 1.9}, x)
    res = fit(OVERTRAIN, x, y, method="varpro")
    boot = bootstrap(res, 400, seed=0)
    d = boot.diagnostics
    assert d.bootstrap_n + d.bootstrap_n_degenerate == 400
    # every kept resample drew the M = 320 run, so A and B are determined in each
    assert d.bootstrap_n_degenerate > 0.5 * 400
    samples = np.asarray(boot.bootstrap)
    assert np.all(np.isfinite(samples))


def test_chinchilla_resamples_need_two_sizes_and_two_token_counts():
    rng = np.random.default_rng(3)
    x = _ladder(rng, 1e7, 1e9, n_runs=8)
    y = CHINCHILLA.formula({"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}, x)
    res = fit(CHINCHILLA, x, y, method="varpro")
    boot = bootstrap(res, 50, seed=0)
    assert boot.diagnostics.bootstrap_n >= 1
