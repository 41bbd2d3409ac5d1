"""The arithmetic of benchmarks/goal_limits.py, which measures what the evidence allows of the
cross-lab goals that do not hold: the hindsight (oracle) width bound and the own-backtest rules."""

import importlib.util
import math

import numpy as np
import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def gl():
    spec = importlib.util.spec_from_file_location("goal_limits", ROOT / "benchmarks" / "goal_limits.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_oracle_width_of_errors_of_one_size_is_twice_the_error(gl):
    assert gl.oracle_width(np.array([0.02, -0.02] * 20)) == pytest.approx(2.0, rel=0.01)


def test_oracle_width_of_gaussian_errors_is_the_normal_quantile_ratio(gl):
    # covering 80% of N(0, σ) errors takes ±1.2816σ; the median |error| is 0.6745σ: 3.80×
    e = np.random.default_rng(0).normal(0.0, 0.01, 20_000)
    assert gl.oracle_width(e) == pytest.approx(2 * 1.2816 / 0.6745, rel=0.04)


def test_the_width_ratio_rewards_bias(gl):
    # the same noise, moved off the prediction by a constant: a worse prediction, a smaller ratio
    noise = np.random.default_rng(1).normal(0.0, 0.01, 2_000)
    assert gl.oracle_width(noise) > 3.5
    assert gl.oracle_width(noise + 0.03) < 2.7 < 3.0


def test_rules_combine_the_reference_and_the_own_quantile(gl):
    assert gl.rule_quantile("max", 1.5, (1.0, 50)) == 1.5
    assert gl.rule_quantile("max", 1.5, (2.0, 50)) == 2.0
    assert gl.rule_quantile("ref", 1.5, (2.0, 50)) == 1.5
    assert gl.rule_quantile("own", 1.5, (1.0, 50)) == 1.0
    assert gl.rule_quantile("geo", 2.0, (0.5, 50)) == pytest.approx(1.0)
    # n200: own weighs n / (n + 200) in the log-blend (600 predictions: 3/4 own, 1/4 reference)
    assert gl.rule_quantile("n200", 2.0, (0.5, 600)) == pytest.approx(2.0**0.25 * 0.5**0.75)
    assert gl.rule_quantile("n200", 2.0, None) == 2.0


class _Point:
    def __init__(self, log_error, origin, c_factor=2.0):
        self.log_error, self.sd_log, self.c_factor = log_error, 0.0, c_factor
        self.m_below_factor, self.n_factor, self.origin = 1.0, 1.0, origin


def test_a_rule_needs_an_own_backtest_large_enough(gl):
    assert gl.own_quantile([_Point(0.01, "a")] * 30, 0.0, 0.9) is None  # one origin
    assert gl.own_quantile([_Point(0.01, "a"), _Point(0.01, "b")] * 5, 0.0, 0.9) is None  # too few


def test_the_own_quantile_is_the_split_conformal_one_after_the_shift(gl):
    # 29 errors 0.001 … 0.029 beyond the fit (c_factor 2: u = 0.01 · (1 + ln 2)), shifted by −0.005:
    # the 90% quantile is the ⌈30 · 0.9⌉ = 27th smallest |e − shift| / u
    pts = [_Point(0.001 * i, "ab"[i % 2]) for i in range(1, 30)]
    u = 0.01 * (1 + math.log(2.0))
    q, n = gl.own_quantile(pts, -0.005, 0.9)
    assert n == 29
    assert q == pytest.approx((0.027 + 0.005) / u)


def test_oracle_width_proportional_to_u_is_exact_when_u_tracks_the_error(gl):
    # errors exactly proportional to u: the u-shaped oracle is twice the error; one width is not
    u = np.linspace(0.01, 0.05, 50)
    e = np.where(np.arange(50) % 2, 1.0, -1.0) * u
    assert gl.oracle_width(e, u=u) == pytest.approx(2.0, rel=0.02)
    assert gl.oracle_width(e) > 2.2


def test_the_oracle_covers_at_least_the_asked_share(gl):
    e = np.random.default_rng(2).normal(0.0, 0.01, 101)
    h = gl._kth(np.abs(e), 0.8)
    assert np.mean(np.abs(e) <= h) >= 0.8
    assert np.mean(np.abs(e) < h) < 0.8


def test_bands_and_spans(gl):
    assert gl._miss(0.8, 0.9) == 0
    assert gl._miss(1.0, 1.0) == pytest.approx(0.1 + 0.03)
    assert gl._miss(0.6, 0.75) == pytest.approx(0.1 + 0.05)
    ok = np.zeros(len(gl.SHIFTS), bool)
    assert gl._span(ok) is None
    ok[3:7] = True
    assert gl._span(ok) == [pytest.approx(gl.SHIFTS[3]), pytest.approx(gl.SHIFTS[6])]


def test_the_independent_baseline_agrees_with_a_simulation(gl):
    sizes = [10, 25, 60]
    exact = gl.independent_bands(sizes)
    assert sum(exact.values()) == pytest.approx(len(sizes))
    rng = np.random.default_rng(3)
    sim = {"in_bands": 0.0, "above": 0.0, "below": 0.0}
    reps = 4000
    for n in sizes:
        x = rng.uniform(size=(reps, n))  # a prediction's place in its score distribution
        c80, c90 = (x < 0.8).mean(axis=1), (x < 0.9).mean(axis=1)
        below = (c80 < 0.7) | (c90 < 0.8)
        inside = (c80 >= 0.7) & (c80 <= 0.9) & (c90 >= 0.8) & (c90 <= 0.97)
        sim["below"] += below.mean()
        sim["in_bands"] += (inside & ~below).mean()
        sim["above"] += (~inside & ~below).mean()
    for key, value in sim.items():
        assert exact[key] == pytest.approx(value, abs=0.05)
