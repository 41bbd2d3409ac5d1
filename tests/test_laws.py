import math

import numpy as np
import pytest

from lmscale.errors import InputError
from lmscale.fit import fit
from lmscale.laws import BUILTIN_LAWS, CHINCHILLA, ERROR, LAWS, OVERTRAIN, Law, get_law, register_law
from lmscale.laws.overtrain import (
    from_paper_form,
    loss_from_compute,
    n_params_from_compute,
    optimal_multiplier,
    to_paper_form,
)

P_OT = {"A": 150.0, "B": 250.0, "c": -0.26, "E": 1.8}


def test_overtrain_hand_computed():
    n, m = 1e8, 20.0
    expected = 150 * 1e8**-0.26 + 250 * 6**-0.13 * (20 * 1e8) ** -0.26 + 1.8
    assert OVERTRAIN(P_OT, n_params=n, multiplier=m) == pytest.approx(expected, rel=1e-14)
    # the (C, M) form agrees with the (N, M) form
    c = 6 * m * n**2
    assert loss_from_compute(P_OT, c, m) == pytest.approx(expected, rel=1e-12)
    assert n_params_from_compute(c, m) == pytest.approx(n)
    # arrays in, array out
    out = OVERTRAIN(P_OT, n_params=np.array([1e7, 1e8]), multiplier=20)
    assert out.shape == (2,) and out[1] == pytest.approx(expected)


def test_paper_form_roundtrip_and_mstar():
    paper = to_paper_form(P_OT)
    assert paper["eta"] == pytest.approx(0.13)
    assert paper["a"] == pytest.approx(150 * 6**0.13)
    back = from_paper_form(paper)
    assert all(back[k] == pytest.approx(P_OT[k], rel=1e-14) for k in P_OT)
    assert optimal_multiplier(P_OT) == pytest.approx((250 / (150 * 6**0.13)) ** (1 / 0.26))


def test_chinchilla_and_error_hand_computed():
    p = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 2000.0, "beta": 0.37}
    assert CHINCHILLA(p, n_params=1e9, n_tokens=2e10) == pytest.approx(
        1.7 + 400 * 1e9**-0.34 + 2000 * 2e10**-0.37
    )
    q = {"k": 2.0, "gamma": 0.75, "epsilon": 0.85}
    assert ERROR(q, loss=3.0) == pytest.approx(0.85 - 2.0 * math.exp(-2.25))


@pytest.mark.parametrize("law", [OVERTRAIN, CHINCHILLA, ERROR])
def test_jacobian_matches_finite_differences(law):
    rng = np.random.default_rng(0)
    p = {
        "overtrain": [150.0, 250.0, -0.26, 1.8],
        "chinchilla": [1.7, 400.0, 0.34, 2000.0, 0.37],
        "error": [2.0, 0.75, 0.85],
    }[law.name]
    x = {
        "n_params": 10 ** rng.uniform(7, 9, 6),
        "multiplier": 10 ** rng.uniform(0.7, 2.8, 6),
        "n_tokens": 10 ** rng.uniform(8, 11, 6),
        "loss": rng.uniform(2.5, 5, 6),
    }
    x = {k: x[k] for k in law.inputs}
    j = law.jacobian_vector(np.array(p), x)
    for i in range(len(p)):
        h = 1e-6 * max(abs(p[i]), 1)
        up, dn = np.array(p), np.array(p)
        up[i] += h
        dn[i] -= h
        # finite differences of the plain formula, the source of truth
        fd = (law.formula(dict(zip(law.params, up)), x) - law.formula(dict(zip(law.params, dn)), x)) / (2 * h)
        assert np.allclose(j[:, i], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("law", BUILTIN_LAWS, ids=lambda law: law.name)
def test_basis_form_equals_the_formula(law):
    rng = np.random.default_rng(3)
    x = {
        "n_params": 10 ** rng.uniform(7, 10, 9),
        "multiplier": 10 ** rng.uniform(0.7, 2.8, 9),
        "n_tokens": 10 ** rng.uniform(8, 12, 9),
        "flops": 10 ** rng.uniform(17, 23, 9),
        "loss": rng.uniform(2.0, 5.0, 9),
    }
    x = {k: x[k] for k in law.inputs}
    for _ in range(5):
        p = {
            k: float(
                rng.uniform(
                    *{
                        "c": (-0.6, -0.05),
                        "alpha": (0.1, 0.6),
                        "beta": (0.1, 0.6),
                        "eta": (0.02, 0.3),
                        "gamma": (0.2, 1.5),
                    }.get(k, (0.5, 500.0))
                )
            )
            for k in law.params
        }
        assert np.allclose(law.evaluate_vector(law.vector(p), x), law.formula(p, x), rtol=1e-12)
        assert np.allclose(law.evaluator(x)(law.vector(p)), law.formula(p, x), rtol=1e-12)


class SizeLaw(Law):
    """A user-defined law, L(N) = E + A·N^-alpha, written as a notebook user would."""

    def formula(self, params, x):
        return params["E"] + params["A"] * np.asarray(x["n_params"], float) ** -params["alpha"]

    def basis(self, theta, x):
        alpha = np.asarray(theta)[..., 0, None]
        t = np.exp(-alpha * np.log(x["n_params"]))
        return np.stack(np.broadcast_arrays(t, np.ones_like(t)), axis=-1)

    def dbasis(self, theta, x):
        alpha = np.asarray(theta)[..., 0, None]
        ln = np.log(x["n_params"])
        d = -ln * np.exp(-alpha * ln)
        return np.stack(np.broadcast_arrays(d, np.zeros_like(d)), axis=-1)[..., None]


SIZE_LAW = SizeLaw(
    name="size-only",
    inputs=("n_params",),
    params=("A", "alpha", "E"),
    linear=("A", "E"),
    bounds={"A": (-np.inf, np.inf), "alpha": (0.0, 2.0), "E": (-np.inf, np.inf)},
    start_values={"A": (100.0,), "alpha": (0.1, 0.3), "E": (1.0, 2.0)},
    search_range={"alpha": (0.01, 1.5)},
    equation="L(N) = E + A·N^-alpha",
)


@pytest.mark.parametrize("method", ["default", "paper", "ls-log"])
def test_a_user_defined_law_fits_predicts_and_round_trips(tmp_path, method):
    from lmscale.fit.result import FitResult

    truth = {"A": 400.0, "alpha": 0.3, "E": 1.9}
    n = np.array([1e7, 3e7, 8e7, 2e8, 5e8, 1e9])
    res = fit(SIZE_LAW, {"n_params": n}, SIZE_LAW.formula(truth, {"n_params": n}), method=method)
    assert all(res.params[k] == pytest.approx(v, rel=1e-4) for k, v in truth.items())
    assert res.predict(n_params=7e9) == pytest.approx(SIZE_LAW.formula(truth, {"n_params": 7e9}), rel=1e-6)
    path = res.save(tmp_path / "fit.json")
    with pytest.raises(InputError, match="unknown law 'size-only'.*register_law"):
        FitResult.load(path)
    again = FitResult.load(path, laws=[SIZE_LAW])
    assert again.params == res.params and again.predict(n_params=7e9) == res.predict(n_params=7e9)
    try:
        register_law(SIZE_LAW)
        assert FitResult.load(path).predict(n_params=7e9) == res.predict(n_params=7e9)
        with pytest.raises(InputError, match="already registered"):
            register_law(SizeLaw(**{**SIZE_LAW.__dict__}))
        with pytest.raises(InputError, match="already registered"):
            register_law(SizeLaw(**{**OVERTRAIN.__dict__}))
    finally:
        LAWS.pop("size-only", None)


SYNTH = {
    "overtrain": (
        {"A": 120.0, "B": 300.0, "c": -0.25, "E": 1.7},
        {"n_params": [1e7, 8e7, 1.5e8, 4e8, 1e7, 8e7], "multiplier": [20, 20, 20, 20, 320, 80]},
    ),
    "chinchilla": (
        {"E": 1.8, "A": 480.0, "alpha": 0.35, "B": 2000.0, "beta": 0.37},
        {"n_params": [1e7, 1e8, 1e9, 1e7, 1e8, 1e9, 3e8], "n_tokens": [2e8, 2e9, 2e10, 2e10, 2e11, 2e9, 6e9]},
    ),
    "error": ({"k": 2.0, "gamma": 0.75, "epsilon": 0.85}, {"loss": [5.2, 3.8, 3.4, 3.0, 4.5, 2.7]}),
}


@pytest.mark.parametrize("name", list(SYNTH))
@pytest.mark.parametrize("method", ["paper", "varpro"])
def test_noise_free_recovery(name, method):
    law = get_law(name)
    truth, x = SYNTH[name]
    y = law(truth, **x)
    starts = None
    if name == "chinchilla" and method == "paper":
        starts = law.start_grid()
    res = fit(law, x, y, method=method, starts=starts)
    for k, v in truth.items():
        assert res.params[k] == pytest.approx(v, rel=1e-6), (k, res.params)


def test_unknown_law():
    with pytest.raises(InputError, match="unknown law 'kaplan'.*register"):
        get_law("kaplan")


@pytest.mark.parametrize("law", [OVERTRAIN, CHINCHILLA, ERROR, get_law("power")], ids=lambda l: l.name)
def test_fast_evaluator_agrees(law):
    rng = np.random.default_rng(1)
    x = {
        "n_params": rng.uniform(1e7, 1e10, 20),
        "multiplier": rng.uniform(5, 640, 20),
        "n_tokens": rng.uniform(1e8, 1e12, 20),
        "loss": rng.uniform(2, 6, 20),
        "flops": rng.uniform(1e16, 1e22, 20),
    }
    x = {k: x[k] for k in law.inputs}
    p = law.start_grid()[-1]
    np.testing.assert_allclose(law.evaluator(x)(p), law.evaluate_vector(p, x), rtol=1e-13)


def test_power_law_and_optimal_multiplier_edge():
    from lmscale.laws.overtrain import optimal_multiplier

    power = get_law("power")
    assert power({"K": 10.0, "eta": 0.5, "E": 1.0}, flops=100.0) == pytest.approx(2.0)
    # a fit with a non-positive coefficient implies no compute-optimal M
    assert math.isnan(optimal_multiplier({"A": -5.0, "B": 100.0, "c": -0.3, "E": 1.0}))


def test_custom_split_target(testbed_runs):
    from lmscale.tasks import average_error, target_values

    got = target_values(testbed_runs, "error:arc_easy,piqa")
    want = 1 - (testbed_runs.accuracy("arc_easy") + testbed_runs.accuracy("piqa")) / 2
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(
        target_values(testbed_runs, "error:17-task"), average_error(testbed_runs, "17-task")
    )
    with pytest.raises(InputError, match="unknown task"):
        target_values(testbed_runs, "error:arc_easy,nope")
