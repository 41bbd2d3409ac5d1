"""Fitting: one routine (:func:`fit`) over methods (objective × solver × weighting,
:mod:`lmscale.fit.method`), and :class:`FitResult`. The names load on first use, so that the CLI can
list the methods (:data:`lmscale.fit.method.NAMES`) without importing SciPy."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmscale.fit.core import fit
    from lmscale.fit.method import METHODS, Method
    from lmscale.fit.result import FitResult

_LAZY = {
    "fit": "lmscale.fit.core",
    "FitResult": "lmscale.fit.result",
    "METHODS": "lmscale.fit.method",
    "Method": "lmscale.fit.method",
}

__all__ = ["METHODS", "FitResult", "Method", "fit"]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'lmscale.fit' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
