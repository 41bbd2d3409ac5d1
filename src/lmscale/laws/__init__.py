"""Scaling laws as data plus pure functions, in a registry: ``get_law(name)`` returns one by name,
and ``register_law`` adds your own :class:`Law` so that its fits save, load and predict like the
built-in ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lmscale.errors import InputError
from lmscale.laws.base import Law
from lmscale.laws.chinchilla import CHINCHILLA
from lmscale.laws.error import ERROR
from lmscale.laws.overtrain import OVERTRAIN
from lmscale.laws.power import POWER

BUILTIN_LAWS: tuple[Law, ...] = (OVERTRAIN, CHINCHILLA, ERROR, POWER)

#: name → law: the built-in laws and every law added with :func:`register_law`
LAWS: dict[str, Law] = {law.name: law for law in BUILTIN_LAWS}


def register_law(law: Law, *, replace: bool = False) -> Law:
    """Make ``law`` known by its name (fit files name their law). A built-in or already registered
    name needs ``replace=True``. Returns the law, so it can decorate a module-level constant."""
    if not isinstance(law, Law):
        raise InputError(f"register_law takes a Law, got {type(law).__name__}")
    if law.name in LAWS and LAWS[law.name] is not law and not replace:
        raise InputError(f"a law named {law.name!r} is already registered; pass replace=True to replace it")
    LAWS[law.name] = law
    return law


def get_law(name: str, laws: Mapping[str, Law] | Iterable[Law] | None = None) -> Law:
    """The law called ``name``: from ``laws`` (a mapping or a list of laws) when given, else from
    the registry."""
    if laws is not None:
        extra = dict(laws) if isinstance(laws, Mapping) else {law.name: law for law in laws}
        if name in extra:
            return extra[name]
    try:
        return LAWS[name]
    except KeyError:
        raise InputError(
            f"unknown law {name!r}; known laws: {', '.join(LAWS)} (register your own with "
            "lmscale.laws.register_law, or pass laws= when loading)"
        ) from None


__all__ = [
    "BUILTIN_LAWS",
    "CHINCHILLA",
    "ERROR",
    "LAWS",
    "OVERTRAIN",
    "POWER",
    "Law",
    "get_law",
    "register_law",
]
