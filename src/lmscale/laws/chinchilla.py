"""The Chinchilla law with untied exponents:

    L(N, D) = E + A·N^(−α) + B·D^(−β)

Reference: J. Hoffmann et al., "Training Compute-Optimal Large Language Models", 2022
(arXiv:2203.15556), Eq. 2 / approach 3; T. Besiroglu et al., "Chinchilla Scaling: A replication
attempt", 2024 (arXiv:2404.10102). The over-training law (Eq. 4 of Gadre et al.) is this law with
α = β.
"""

from __future__ import annotations

import numpy as np

from lmscale.laws.base import Law


class ChinchillaLaw(Law):
    def unidentified(self, x):
        if len(np.unique(x["n_params"])) < 2:
            return "every run has the same size N: A·N^-alpha merges with E (A, alpha not identified)"
        if len(np.unique(x["n_tokens"])) < 2:
            return "every run has the same token count D: B·D^-beta merges with E (B, beta not identified)"
        return None

    def formula(self, params, x):
        N, D = np.asarray(x["n_params"], float), np.asarray(x["n_tokens"], float)
        return params["E"] + params["A"] * N ** -params["alpha"] + params["B"] * D ** -params["beta"]

    def basis(self, theta, x):
        theta = np.asarray(theta)
        alpha, beta = theta[..., 0, None], theta[..., 1, None]
        with np.errstate(over="ignore"):  # a solver's trial exponent far below 0: inf, which it rejects
            t1 = np.exp(-alpha * np.log(x["n_params"]))
            t2 = np.exp(-beta * np.log(x["n_tokens"]))
        return np.stack(np.broadcast_arrays(np.ones_like(t1), t1, t2), axis=-1)

    def dbasis(self, theta, x):
        theta = np.asarray(theta)
        alpha, beta = theta[..., 0, None], theta[..., 1, None]
        ln, ld = np.log(x["n_params"]), np.log(x["n_tokens"])
        with np.errstate(over="ignore"):
            t1 = -ln * np.exp(-alpha * ln)
            t2 = -ld * np.exp(-beta * ld)
        z = np.zeros_like(t1 + t2)
        t1, t2 = np.broadcast_arrays(t1, z)[0], np.broadcast_arrays(t2, z)[0]
        # rows: basis columns (E, A, B); last axis: (alpha, beta)
        d_alpha = np.stack([z, t1, z], axis=-1)
        d_beta = np.stack([z, z, t2], axis=-1)
        return np.stack([d_alpha, d_beta], axis=-1)


CHINCHILLA = ChinchillaLaw(
    name="chinchilla",
    inputs=("n_params", "n_tokens"),
    params=("E", "A", "alpha", "B", "beta"),
    linear=("E", "A", "B"),
    bounds={
        "E": (0.0, np.inf),
        "A": (0.0, np.inf),
        "alpha": (0.0, 3.0),
        "B": (0.0, np.inf),
        "beta": (0.0, 3.0),
    },
    start_values={
        "E": (0.5, 1.5, 2.5),
        "A": (1e2, 1e3, 1e4),
        "alpha": (0.1, 0.3, 0.6),
        "B": (1e2, 1e3, 1e4),
        "beta": (0.1, 0.3, 0.6),
    },
    search_range={"alpha": (0.0, 2.5), "beta": (0.0, 2.5)},
    equation="L(N, D) = E + A·N^-alpha + B·D^-beta",
    reference="Hoffmann et al. 2022, arXiv:2203.15556, Eq. 2",
)
