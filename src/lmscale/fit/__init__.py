"""Fitting: one routine (:func:`fit`) over objectives and solvers, and :class:`FitResult`."""

from lmscale.fit.core import METHODS, fit
from lmscale.fit.result import FitResult

__all__ = ["METHODS", "FitResult", "fit"]
