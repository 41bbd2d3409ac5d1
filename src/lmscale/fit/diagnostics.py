"""How a fit went: agreement of the starts, parameters at bounds, conditioning, residuals, and the
bootstrap's usable resamples."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from lmscale.errors import InputError


@dataclass(frozen=True)
class FitDiagnostics:
    """Diagnostics of one fit (all optional: a fit file written by hand may lack them)."""

    #: runs fitted
    n_runs: int | None = None
    #: starting points tried, how many converged, and how many reached the best objective
    n_starts: int | None = None
    n_converged: int | None = None
    n_at_optimum: int | None = None
    #: the best objective value, and how far the worst converged start was from it
    objective: float | None = None
    objective_spread: float | None = None
    #: largest relative spread of a parameter among the starts at the optimum (0: they agree)
    param_spread: float | None = None
    #: parameters that ended on a bound
    at_bounds: tuple[str, ...] = ()
    #: condition number of the scaled Jacobian at the optimum
    condition_number: float | None = None
    #: root-mean-square residual, and the residual standard deviation (n − k degrees of freedom)
    rmse: float | None = None
    residual_sd: float | None = None
    #: the solver's message for the best start
    solver_message: str | None = None
    #: bootstrap: usable resamples, resamples dropped (too few distinct runs), and the seed
    bootstrap_n: int | None = None
    bootstrap_n_degenerate: int | None = None
    bootstrap_seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["at_bounds"] = list(self.at_bounds)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, source: str = "<fit>") -> FitDiagnostics:
        if not d:
            return cls()
        if not isinstance(d, Mapping):
            raise InputError(f"{source}: 'diagnostics' must be an object")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}  # fields of newer versions are ignored
        if "at_bounds" in values:
            values["at_bounds"] = tuple(str(p) for p in values["at_bounds"] or ())
        return cls(**values)

    def with_bootstrap(self, n: int, n_degenerate: int, seed: int | None) -> FitDiagnostics:
        return replace(self, bootstrap_n=n, bootstrap_n_degenerate=n_degenerate, bootstrap_seed=seed)

    def summary(self) -> str:
        """One line (two with a bootstrap) for people."""

        def f(v, digits):
            return "—" if v is None else f"{v:.{digits}g}" if isinstance(v, float) else str(v)

        line = (
            f"starts converged {f(self.n_converged, 6)}/{f(self.n_starts, 6)}, at the optimum "
            f"{f(self.n_at_optimum, 6)}, parameter spread {f(self.param_spread, 2)}, RMSE {f(self.rmse, 4)}, "
            f"condition {f(self.condition_number, 3)}"
            + (f", at bounds: {', '.join(self.at_bounds)}" if self.at_bounds else "")
        )
        if self.bootstrap_n is not None:
            line += (
                f"\nbootstrap: {self.bootstrap_n} usable resamples, {self.bootstrap_n_degenerate} dropped "
                "(their drawn runs cannot identify the law: too few distinct runs, or e.g. one M for Eq. 4)"
            )
        return line
