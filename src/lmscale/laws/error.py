"""The downstream-error law (Gadre et al. 2024, Eq. 5): average top-1 error as a function of a
validation loss L,

    Err(L) = ε − k·exp(−γ·L)

equivalently a power law in perplexity, Err = ε − k·PP^(−γ). ε is the error as L → ∞ (at most
random chance), k and γ set how fast error falls as the loss does.

Reference: S. Y. Gadre et al., arXiv:2403.08540, Eq. 5.
"""

from __future__ import annotations

import numpy as np

from lmscale.laws.base import Law


class ErrorLaw(Law):
    def formula(self, params, x):
        return params["epsilon"] - params["k"] * np.exp(-params["gamma"] * np.asarray(x["loss"], float))

    def basis(self, theta, x):
        gamma = np.asarray(theta)[..., 0, None]
        e = np.exp(-gamma * x["loss"])
        return np.stack(np.broadcast_arrays(-e, np.ones_like(e)), axis=-1)

    def dbasis(self, theta, x):
        gamma = np.asarray(theta)[..., 0, None]
        loss = x["loss"]
        d = loss * np.exp(-gamma * loss)
        return np.stack(np.broadcast_arrays(d, np.zeros_like(d)), axis=-1)[..., None]

    def evaluator(self, x):
        loss = np.asarray(x["loss"], dtype=float)

        def f(p):
            k, gamma, eps = p
            return eps - k * np.exp(-gamma * loss)

        return f


ERROR = ErrorLaw(
    name="error",
    inputs=("loss",),
    params=("k", "gamma", "epsilon"),
    linear=("k", "epsilon"),
    bounds={"k": (-np.inf, np.inf), "gamma": (-np.inf, np.inf), "epsilon": (-np.inf, np.inf)},
    start_values={"k": (1.0,), "gamma": (1.0,), "epsilon": (1.0,)},
    search_range={"gamma": (0.005, 6.0)},
    equation="Err(L) = epsilon - k·exp(-gamma·L)",
    reference="Gadre et al. 2024, arXiv:2403.08540, Eq. 5",
)
