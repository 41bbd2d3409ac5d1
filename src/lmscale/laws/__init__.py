"""Scaling laws as data plus pure functions. ``get_law(name)`` returns one by name."""

from lmscale.errors import InputError
from lmscale.laws.base import Law
from lmscale.laws.chinchilla import CHINCHILLA
from lmscale.laws.error import ERROR
from lmscale.laws.overtrain import OVERTRAIN
from lmscale.laws.power import POWER

LAWS: dict[str, Law] = {law.name: law for law in (OVERTRAIN, CHINCHILLA, ERROR, POWER)}


def get_law(name: str) -> Law:
    try:
        return LAWS[name]
    except KeyError:
        raise InputError(f"unknown law {name!r}; known laws: {', '.join(LAWS)}") from None


__all__ = ["CHINCHILLA", "ERROR", "LAWS", "OVERTRAIN", "POWER", "Law", "get_law"]
