"""A saturating power law in one input, by default training compute C:

    L(C) = E + K·C^(−η)

At a fixed token multiplier M the over-training law (Eq. 4) reduces to this form, so fitting it
separately per M tests the paper's claim that η does not depend on M (its Fig. 17).
"""

from __future__ import annotations

import numpy as np

from lmscale.laws.base import Law


class PowerLaw(Law):
    def formula(self, params, x):
        return params["E"] + params["K"] * np.asarray(x["flops"], float) ** -params["eta"]

    def basis(self, theta, x):
        eta = np.asarray(theta)[..., 0, None]
        t = np.exp(-eta * np.log(x["flops"]))
        return np.stack(np.broadcast_arrays(t, np.ones_like(t)), axis=-1)

    def dbasis(self, theta, x):
        eta = np.asarray(theta)[..., 0, None]
        logc = np.log(x["flops"])
        d = -logc * np.exp(-eta * logc)
        return np.stack(np.broadcast_arrays(d, np.zeros_like(d)), axis=-1)[..., None]


POWER = PowerLaw(
    name="power",
    inputs=("flops",),
    params=("K", "eta", "E"),
    linear=("K", "E"),
    bounds={"K": (-np.inf, np.inf), "eta": (-np.inf, np.inf), "E": (-np.inf, np.inf)},
    start_values={"K": (1e2, 1e3), "eta": (0.05, 0.15, 0.3), "E": (0.0, 1.0, 2.0)},
    search_range={"eta": (-0.3, 1.0)},
    equation="L(C) = E + K·C^-eta",
    reference="Gadre et al. 2024, arXiv:2403.08540, Eq. 4 at fixed M",
)
