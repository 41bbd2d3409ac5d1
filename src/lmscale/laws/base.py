"""The :class:`Law` base: named parameters, bounds, a starting grid, and a model that is linear in
some parameters (the coefficients) and non-linear in the others (the exponents).

Every law here has the form ``y = Φ(θ; x) · β``: for fixed non-linear parameters θ, the prediction
is a linear combination of basis columns Φ with coefficients β. The fitting code uses this for
analytic Jacobians and for variable projection (solve β exactly, search θ only).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lmscale.errors import InputError


@dataclass(frozen=True)
class Law:
    """A scaling law: pure maths, no I/O. Subclasses define :meth:`basis` and :meth:`dbasis`."""

    name: str
    #: names of the input variables the law reads (e.g. ``("n_params", "multiplier")``)
    inputs: tuple[str, ...]
    #: all parameter names, in the law's canonical order
    params: tuple[str, ...]
    #: the parameters that enter linearly, in basis-column order
    linear: tuple[str, ...]
    #: (low, high) per parameter; ±inf for unbounded
    bounds: Mapping[str, tuple[float, float]]
    #: starting values per parameter; the grid is their Cartesian product in ``params`` order
    start_values: Mapping[str, tuple[float, ...]]
    #: where to search each non-linear parameter in grid-based solvers (bootstrap fast path)
    search_range: Mapping[str, tuple[float, float]] | None = None
    equation: str = ""
    reference: str = ""

    # -- structure ---------------------------------------------------------------------------
    @property
    def nonlinear(self) -> tuple[str, ...]:
        return tuple(p for p in self.params if p not in self.linear)

    @property
    def n_fit_params(self) -> int:
        """How many parameters the law fits (not N, the model's parameter count)."""
        return len(self.params)

    def range_of(self, name: str) -> tuple[float, float]:
        """Where grid-based solvers search the non-linear parameter ``name``."""
        if not self.search_range or name not in self.search_range:
            raise InputError(f"law {self.name!r} gives no search range for {name!r}")
        return self.search_range[name]

    def start_grid(self) -> np.ndarray:
        """All starting points, shape (n_starts, n_fit_params), in ``params`` order."""
        return np.array(list(itertools.product(*(self.start_values[p] for p in self.params))), dtype=float)

    def lower(self) -> np.ndarray:
        return np.array([self.bounds[p][0] for p in self.params], dtype=float)

    def upper(self) -> np.ndarray:
        return np.array([self.bounds[p][1] for p in self.params], dtype=float)

    # -- maths to implement --------------------------------------------------------------------
    def formula(self, params: Mapping[str, float], x: Mapping[str, np.ndarray]) -> np.ndarray:
        """The law written plainly, as in its paper: the source of truth that the basis and
        Jacobian forms below are tested against. ``params`` by name, ``x`` arrays by input name."""
        raise NotImplementedError

    def basis(self, theta: np.ndarray, x: Mapping[str, np.ndarray]) -> np.ndarray:
        """Basis columns for non-linear parameters ``theta`` (in ``nonlinear`` order); shape
        (..., n, len(linear)). ``theta`` may carry leading batch dimensions."""
        raise NotImplementedError

    def dbasis(self, theta: np.ndarray, x: Mapping[str, np.ndarray]) -> np.ndarray:
        """Derivative of the basis w.r.t. each non-linear parameter; shape
        (..., n, len(linear), len(nonlinear))."""
        raise NotImplementedError

    def unidentified(self, x: Mapping[str, np.ndarray]) -> str | None:
        """Why these inputs cannot pin the law's parameters down (None when they can, as far as
        the law's structure tells). Laws override it."""
        return None

    # -- evaluation ----------------------------------------------------------------------------
    def split(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split a full parameter vector (``params`` order, leading batch dims allowed) into
        (theta, beta)."""
        p = np.asarray(p, dtype=float)
        ti = [self.params.index(q) for q in self.nonlinear]
        bi = [self.params.index(q) for q in self.linear]
        return p[..., ti], p[..., bi]

    def join(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`split`: full parameter vectors from (theta, beta), batch dims allowed."""
        theta, beta = np.asarray(theta, dtype=float), np.asarray(beta, dtype=float)
        out = np.empty(np.broadcast_shapes(theta.shape[:-1], beta.shape[:-1]) + (self.n_fit_params,))
        for j, name in enumerate(self.nonlinear):
            out[..., self.params.index(name)] = theta[..., j]
        for j, name in enumerate(self.linear):
            out[..., self.params.index(name)] = beta[..., j]
        return out

    def vector(self, params: Mapping[str, float]) -> np.ndarray:
        missing = [p for p in self.params if p not in params]
        if missing:
            raise InputError(f"law {self.name!r}: missing parameter(s) {', '.join(missing)}")
        return np.array([float(params[p]) for p in self.params])

    def evaluate_vector(self, p: np.ndarray, x: Mapping[str, np.ndarray]) -> np.ndarray:
        theta, beta = self.split(p)
        return np.einsum("...nk,...k->...n", self.basis(theta, x), beta)

    def evaluator(self, x: Mapping[str, np.ndarray]):
        """A function ``p → prediction`` for a single parameter vector on fixed inputs ``x``: the
        solvers' inner loop. Laws override it with a closed form that precomputes what depends on
        ``x`` only; it must agree with :meth:`evaluate_vector`."""
        return lambda p: self.evaluate_vector(p, x)

    def jacobian_vector(self, p: np.ndarray, x: Mapping[str, np.ndarray]) -> np.ndarray:
        """d prediction / d parameters, shape (..., n, n_fit_params), columns in ``params`` order."""
        theta, beta = self.split(p)
        phi = self.basis(theta, x)
        dphi = self.dbasis(theta, x)
        cols = {}
        for j, name in enumerate(self.linear):
            cols[name] = phi[..., j]
        dtheta = np.einsum("...nkm,...k->...nm", dphi, beta)
        for j, name in enumerate(self.nonlinear):
            cols[name] = dtheta[..., j]
        return np.stack([cols[name] for name in self.params], axis=-1)

    def inputs_from(self, values: Mapping[str, object]) -> dict[str, np.ndarray]:
        missing = [k for k in self.inputs if k not in values]
        if missing:
            raise InputError(f"law {self.name!r} needs input(s) {', '.join(missing)}")
        out = {k: np.asarray(values[k], dtype=float) for k in self.inputs}
        return dict(zip(out, np.broadcast_arrays(*out.values())))

    def __call__(self, params: Mapping[str, float], **inputs) -> np.ndarray | float:
        """Evaluate from named parameters and plain numbers or arrays, e.g.
        ``OVERTRAIN(params, n_params=1.4e9, multiplier=20)``."""
        x = self.inputs_from(inputs)
        scalar = all(np.ndim(v) == 0 for v in x.values())
        x1 = {k: np.atleast_1d(v) for k, v in x.items()}
        y = self.evaluate_vector(self.vector(params), x1)
        return float(y[0]) if scalar else y.reshape(np.shape(next(iter(x.values()))))
