"""The over-training law (Gadre et al. 2024, Eq. 4).

Paper form, compute C = 6·N·D and token multiplier M = D/N:

    L(C, M) = E + (a·M^η + b·M^(−η)) · C^(−η)

Code form (what is fitted; the authors' parametrisation), with c = −2η:

    L(N, M) = A·N^c + B·6^(c/2)·(M·N)^c + E,     a = A·6^η,  b = B

The implied compute-optimal multiplier is M* = (b/a)^(1/(2η)).

Reference: S. Y. Gadre et al., "Language models scale reliably with over-training and on
downstream tasks", ICLR 2025 (arXiv:2403.08540), Eq. 4 and Table 6.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from lmscale.laws.base import Law

_LOG6 = math.log(6.0)


class OvertrainLaw(Law):
    def unidentified(self, x):
        if len(np.unique(x["multiplier"])) < 2:
            return (
                "every run has the same token multiplier M, so A·N^c and B·(M·N)^c are one term: A and B "
                "are not identified; add runs at another M"
            )
        if len(np.unique(x["n_params"])) < 2:
            return (
                "every run has the same size N, so A·N^c is a constant like E: A and E are not identified; "
                "add runs of another size"
            )
        return None

    def formula(self, params, x):
        A, B, c, E = (params[k] for k in ("A", "B", "c", "E"))
        N, M = np.asarray(x["n_params"], float), np.asarray(x["multiplier"], float)
        return A * N**c + B * 6.0 ** (c / 2) * (M * N) ** c + E

    def basis(self, theta, x):
        c = np.asarray(theta)[..., 0, None]
        logn = np.log(x["n_params"])
        logmn = np.log(x["multiplier"]) + logn
        t1 = np.exp(c * logn)
        t2 = np.exp(c * (_LOG6 / 2 + logmn))
        return np.stack(np.broadcast_arrays(t1, t2, np.ones_like(t1)), axis=-1)

    def dbasis(self, theta, x):
        c = np.asarray(theta)[..., 0, None]
        logn = np.log(x["n_params"])
        l2 = _LOG6 / 2 + np.log(x["multiplier"]) + logn
        d1 = np.exp(c * logn) * logn
        d2 = np.exp(c * l2) * l2
        return np.stack(np.broadcast_arrays(d1, d2, np.zeros_like(d1)), axis=-1)[..., None]

    def evaluator(self, x):
        logn = np.log(np.asarray(x["n_params"], dtype=float))
        l2 = _LOG6 / 2 + np.log(np.asarray(x["multiplier"], dtype=float)) + logn

        def f(p):
            A, B, c, E = p
            return A * np.exp(c * logn) + B * np.exp(c * l2) + E

        return f


OVERTRAIN = OvertrainLaw(
    name="overtrain",
    inputs=("n_params", "multiplier"),
    params=("A", "B", "c", "E"),
    linear=("A", "B", "E"),
    bounds={"A": (-np.inf, np.inf), "B": (-np.inf, np.inf), "c": (-np.inf, np.inf), "E": (-np.inf, np.inf)},
    start_values={
        "A": (1e2, 3e2, 1e3, 3e3),
        "B": (1e2, 3e2, 1e3, 3e3),
        "c": (-0.1, -0.3),
        "E": (0.0, 1.0, 2.0, 10.0),
    },
    search_range={"c": (-1.5, -0.005)},
    equation="L(N, M) = A·N^c + B·6^(c/2)·(M·N)^c + E;  paper: L(C, M) = E + (a·M^η + b·M^-η)·C^-η, η = -c/2",
    reference="Gadre et al. 2024, arXiv:2403.08540, Eq. 4",
)


def to_paper_form(params: Mapping[str, float]) -> dict[str, float]:
    """Code form (A, B, c, E) → paper form (E, a, b, eta)."""
    eta = -params["c"] / 2.0
    return {"E": params["E"], "a": params["A"] * 6.0**eta, "b": params["B"], "eta": eta}


def from_paper_form(paper: Mapping[str, float]) -> dict[str, float]:
    """Paper form (E, a, b, eta) → code form (A, B, c, E)."""
    eta = paper["eta"]
    return {"A": paper["a"] * 6.0 ** (-eta), "B": paper["b"], "c": -2.0 * eta, "E": paper["E"]}


def loss_from_compute(params: Mapping[str, float], flops, multiplier):
    """Evaluate Eq. 4 in the paper's (C, M) form."""
    p = to_paper_form(params)
    flops, multiplier = np.asarray(flops, float), np.asarray(multiplier, float)
    out = p["E"] + (p["a"] * multiplier ** p["eta"] + p["b"] * multiplier ** (-p["eta"])) * flops ** (
        -p["eta"]
    )
    return float(out) if out.ndim == 0 else out


def optimal_multiplier(params: Mapping[str, float]) -> float:
    """Compute-optimal token multiplier M* = (b/a)^(1/(2η)) implied by a fit; NaN when the fit
    implies none (a or b not positive, or η not positive: loss does not fall with compute)."""
    p = to_paper_form(params)
    if not (p["a"] > 0 and p["b"] > 0 and p["eta"] > 0):
        return float("nan")
    return float((p["b"] / p["a"]) ** (1.0 / (2.0 * p["eta"])))


def n_params_from_compute(flops, multiplier):
    """N = sqrt(C / (6·M))."""
    return np.sqrt(np.asarray(flops, float) / (6.0 * np.asarray(multiplier, float)))
