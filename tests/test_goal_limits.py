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
    # n200: own weighs n / (n + 200) in the log-blend; with no own backtest, the reference
    assert gl.rule_quantile("n200", 2.0, (0.5, 200)) == pytest.approx(1.0)
    assert gl.rule_quantile("n200", 2.0, None) == 2.0


def test_a_rule_needs_an_own_backtest_large_enough(gl):
    class P:
        def __init__(self, origin):
            self.log_error, self.sd_log, self.c_factor = 0.01, 0.0, 2.0
            self.m_below_factor, self.n_factor, self.origin = 1.0, 1.0, origin

    assert gl.own_quantile([P("a")] * 30, 0.0, 0.9) is None  # one origin
    assert gl.own_quantile([P("a"), P("b")] * 5, 0.0, 0.9) is None  # too few
    q, n = gl.own_quantile([P("a"), P("b")] * 15, 0.0, 0.9)
    assert n == 30 and q == pytest.approx(0.01 / (0.01 * (1 + math.log(2.0))))
