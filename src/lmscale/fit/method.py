"""Fitting methods: an objective × a solver × a weighting of the runs, the names they go by, and the
one place where a name a user gave becomes a :class:`Method`.

A name is checked once, where it comes in (:func:`check_method`: the CLI's ``click.Choice`` lists
:data:`NAMES`; library entry points call it), and resolved per law by :func:`method_for` inside
:func:`lmscale.fit.fit`. ``default`` (old name ``recommended``) is an alias: lmscale's default
method for the law being fitted. This module imports nothing heavy, so the CLI can list the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lmscale.errors import InputError

if TYPE_CHECKING:
    from lmscale.laws import Law


@dataclass(frozen=True)
class Method:
    """A fitting method. ``objective``: ``ls`` (least squares on the target), ``ls-log`` or
    ``huber-log`` (on its logarithm); ``solver``: ``lm`` (multi-start Levenberg–Marquardt), ``varpro``
    (variable projection) or ``lbfgs``; ``weighting``: ``uniform``, ``relative`` (1/y²) or
    ``relative-size`` (as relative, times (N / largest N)^SIZE_WEIGHT_POWER)."""

    #: the name a fit records (``FitResult.method``) and the CLI accepts
    name: str
    #: what is minimised
    objective: str
    #: how it is minimised
    solver: str
    #: how the runs are weighted (:func:`lmscale.fit.core.run_weights`)
    weighting: str = "uniform"
    #: a method that minimises the same objective to the same optimum faster, or None; the backtest
    #: (hundreds of fits) fits with it and still reports this method's name
    fast: str | None = None

    @property
    def least_squares(self) -> bool:
        """Exact least squares on the target: the batched bootstrap and calibrated intervals need it."""
        return self.objective == "ls"


#: method name → :class:`Method`. ``paper`` is the authors' procedure (PAPER.md §4).
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        # the authors' multi-start LM; variable projection reaches the same least-squares optimum
        Method("paper", "ls", "lm", fast="varpro"),
        Method("varpro", "ls", "varpro"),
        Method("ls-log", "ls-log", "lbfgs"),
        Method("huber-log", "huber-log", "lbfgs"),
        # least squares on relative residuals (f − y)/y: the exact-least-squares twin of ls-log, so
        # it keeps variable projection and the batched bootstrap
        Method("rel-ls", "ls", "varpro", "relative"),
        # as rel-ls, each run also weighted by (N / largest N)^SIZE_WEIGHT_POWER: the runs nearest
        # the target in size count more. lmscale's default for loss laws (accuracy benchmark)
        Method("rel-ls-size", "ls", "varpro", "relative-size"),
    )
}

#: the default of every user-facing fitting entry point (``lmscale fit``/``backtest``/``plan``/
#: ``loop``/``report``, :func:`lmscale.fit`, :func:`lmscale.fit_table`, :func:`lmscale.fit_runs`,
#: :class:`lmscale.Study`). The paper report (``lmscale reproduce``, ``analyses.Setting``) keeps
#: ``paper`` so that it reproduces the authors' numbers.
DEFAULT = "default"

#: names of lmscale's default method (``recommended`` is its old name)
ALIASES = ("default", "recommended")

#: lmscale's default method per law: relative least squares with size weights for loss laws, exact
#: least squares for the error law (its residuals are small and symmetric). Chosen by the held-out
#: accuracy benchmark on the paper testbed.
DEFAULT_FOR_LAW = {"error": "varpro"}
DEFAULT_LOSS_METHOD = "rel-ls-size"

#: every name a user may give (the CLI's ``--method`` choices)
NAMES: tuple[str, ...] = (*ALIASES, *METHODS)


def check_method(method: str | Method) -> str:
    """The name of ``method`` if it is a fitting method or an alias of the default; the one error
    message for an unknown name otherwise."""
    name = method.name if isinstance(method, Method) else method
    if name not in METHODS and name not in ALIASES:
        raise InputError(f"unknown fitting method {name!r}; known: {', '.join(NAMES)}")
    return name


def resolve_method(method: str | Method, law: Law | str) -> str:
    """``default`` (or ``recommended``) → lmscale's default method for ``law``; other names pass through."""
    name = method.name if isinstance(method, Method) else method
    if name in ALIASES:
        law_name = law if isinstance(law, str) else law.name
        return DEFAULT_FOR_LAW.get(law_name, DEFAULT_LOSS_METHOD)
    return name


def method_for(method: str | Method, law: Law | str) -> Method:
    """The :class:`Method` that ``method`` (a name, an alias or a Method) means for ``law``."""
    if isinstance(method, Method):
        return method
    return METHODS[resolve_method(check_method(method), law)]
