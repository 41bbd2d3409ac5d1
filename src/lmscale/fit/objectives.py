"""The fitting objectives as one object each: a loss ρ on residuals, and the residual's map from
predictions. ``ls`` = Σ w·(f − y)², ``ls-log`` = Σ w·(log f − log y)², ``huber-log`` =
Σ w·Huber_δ(log f − log y) (summed, not averaged, so L-BFGS-B does not stop early). The value
that ranks starts and the value + gradient that L-BFGS-B follows come from the same formulas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmscale.errors import InputError

OBJECTIVES = ("ls", "ls-log", "huber-log")


@dataclass(frozen=True)
class Objective:
    name: str
    #: Huber threshold (huber-log only)
    delta: float = 1e-3

    def __post_init__(self):
        if self.name not in OBJECTIVES:
            raise InputError(f"unknown objective {self.name!r}; known: {', '.join(OBJECTIVES)}")

    @property
    def on_logs(self) -> bool:
        return self.name != "ls"

    def rho(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ρ(r) and ρ'(r), element-wise."""
        if self.name == "huber-log":
            a, d = np.abs(r), self.delta
            return np.where(a <= d, 0.5 * r**2, d * (a - 0.5 * d)), np.clip(r, -d, d)
        return r**2, 2.0 * r

    def value(self, f: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
        """The objective at predictions ``f`` (infinite where a log objective meets f ≤ 0)."""
        w = np.ones_like(y) if w is None else w
        if self.on_logs:
            if np.any(f <= 0):
                return float("inf")
            r = np.log(f) - np.log(y)
        else:
            r = f - y
        return float(np.sum(w * self.rho(r)[0]))

    def value_and_grad(
        self, f: np.ndarray, y: np.ndarray, w: np.ndarray, floor: float | None = None
    ) -> tuple[float, np.ndarray]:
        """Value and d value / d f for a gradient solver. Log objectives continue log f linearly
        below ``floor`` (finite and smooth, with a gradient pointing back to f > 0); they equal
        :meth:`value` wherever f ≥ floor."""
        if not self.on_logs:
            r = f - y
            val, dr = self.rho(r)
            return float(np.sum(w * val)), w * dr
        if np.any(~np.isfinite(f)):
            return 1e30, np.zeros_like(f)
        floor = 1e-3 * float(np.min(y)) if floor is None else floor
        low = f < floor
        safe = np.where(low, floor, f)
        logf = np.where(low, np.log(floor) + (f - floor) / floor, np.log(safe))
        dlog = np.where(low, 1.0 / floor, 1.0 / safe)
        val, dr = self.rho(logf - np.log(y))
        return float(np.sum(w * val)), w * dr * dlog
