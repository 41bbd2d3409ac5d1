"""Selections as data: which runs fit the loss law, which fit the error law, which are held out.

A :class:`Selection` is an OR of clauses; a clause is an AND of conditions ``field op value`` on
run-table columns (``n_params``, ``n_tokens``, ``multiplier``, ``flops``, ``dataset``, ``model``,
``run_id``, or any other column). Operators: ``==`` ``!=`` ``<`` ``<=`` ``>`` ``>=`` and ``in``.
Numeric equality is relative (1e-6), so ``multiplier == 20`` matches D/N = 19.9999999.

Text form, as on the command line: ``"n_params <= 5e8 and multiplier == 20"``; several ``--where``
options are OR-ed. JSON form: ``[[["n_params", "<=", 5e8], ["multiplier", "==", 20]], ...]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmscale._io import read_json
from lmscale.errors import InputError
from lmscale.run_table import RunTable

OPS = ("==", "!=", "<=", ">=", "<", ">", "in")
_COND = re.compile(r"^\s*([A-Za-z_][\w\-.]*)\s*(==|!=|<=|>=|<|>|=|\bin\b)\s*(.+?)\s*$")
_REL = 1e-6
#: longest selection text accepted (a run table's ids listed in full fit in far less)
MAX_SELECTION_CHARS = 10_000


def _number(text):
    """A number, or a size such as 1B or 900M (compared with a numeric field)."""
    from lmscale.units import number_or_size

    return number_or_size(text)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: object

    def __post_init__(self):
        if self.op not in OPS:
            raise InputError(
                f"unknown operator {self.op!r} in condition on {self.field!r}; use one of {', '.join(OPS)}"
            )

    def mask(self, runs: RunTable) -> np.ndarray:
        if self.field not in runs.frame.columns:
            raise InputError(
                f"selection names unknown field {self.field!r}; fields: {', '.join(runs.frame.columns)}"
            )
        col = runs.frame[self.field]
        values = self.value if self.op == "in" else [self.value]
        if not isinstance(values, (list, tuple)):
            raise InputError(f"'in' needs a list of values for {self.field!r}, got {self.value!r}")
        numeric = col.dtype.kind in "fiu"
        if numeric:
            nums = [_number(v) for v in values]
            if any(v is None for v in nums):
                raise InputError(
                    f"field {self.field!r} is numeric but the selection compares it with {self.value!r}"
                )
            a = col.to_numpy(dtype=float)
            if self.op in ("==", "in", "!="):
                eq = np.zeros(len(a), bool)
                for v in nums:
                    eq |= np.abs(a - v) <= _REL * max(abs(v), 1e-300)
                return ~eq if self.op == "!=" else eq
            v = nums[0]
            tol = _REL * abs(v)
            return {"<": a < v, "<=": a <= v + tol, ">": a > v, ">=": a >= v - tol}[self.op]
        a = col.astype(str).to_numpy()
        strs = [str(v) for v in values]
        if self.op in ("==", "in"):
            return np.isin(a, strs)
        if self.op == "!=":
            return ~np.isin(a, strs)
        raise InputError(f"operator {self.op!r} needs a numeric field; {self.field!r} is text")

    def values(self) -> list:
        """The compared value(s) as a list (``in`` takes several)."""
        return list(self.value) if isinstance(self.value, (list, tuple)) else [self.value]

    def to_list(self) -> list:
        return [self.field, self.op, list(self.value) if isinstance(self.value, tuple) else self.value]

    def __str__(self) -> str:
        v = "[" + ", ".join(str(x) for x in self.values()) + "]" if self.op == "in" else str(self.value)
        return f"{self.field} {self.op} {v}"


@dataclass(frozen=True)
class Selection:
    """OR of AND-clauses. An empty selection selects nothing; ``Selection.all()`` selects all."""

    clauses: tuple[tuple[Condition, ...], ...] = ()

    @classmethod
    def all(cls) -> Selection:
        return cls(((),))

    @classmethod
    def parse(cls, texts: str | Sequence[str]) -> Selection:
        """Parse ``--where`` strings: each is ``cond and cond ...``; several are OR-ed."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise InputError(f"a selection is text such as 'n_params <= 5e8', got {texts!r}")
        if sum(map(len, texts)) > MAX_SELECTION_CHARS:
            raise InputError(
                f"selection of {sum(map(len, texts))} characters; at most {MAX_SELECTION_CHARS} are "
                "accepted (use a fit-spec JSON file for long lists)"
            )
        clauses = []
        for text in texts:
            conds = []
            for part in re.split(r"\s+and\s+|\s*&&\s*", text.strip()):
                m = _COND.match(part)
                if not m:
                    raise InputError(
                        f"cannot parse selection condition {part!r}; expected e.g. "
                        "'n_params <= 5e8', 'multiplier == 20', 'dataset in [rpj, c4_original]'"
                    )
                name, op, raw = m.groups()
                op = "==" if op == "=" else op
                value: object
                if op == "in":
                    inner = raw.strip()
                    if not (inner.startswith("[") and inner.endswith("]")):
                        raise InputError(f"'in' needs a bracketed list in {part!r}, e.g. 'model in [a, b]'")
                    value = tuple(v.strip() for v in inner[1:-1].split(",") if v.strip())
                else:
                    value = raw.strip().strip("'\"")
                conds.append(Condition(name, op, value))
            clauses.append(tuple(conds))
        return cls(tuple(clauses))

    @classmethod
    def from_json(cls, data) -> Selection:
        try:
            return cls(
                tuple(
                    tuple(
                        Condition(c[0], c[1], tuple(c[2]) if isinstance(c[2], list) else c[2]) for c in clause
                    )
                    for clause in data
                )
            )
        except (TypeError, IndexError) as exc:
            raise InputError(f"malformed selection {data!r}: {exc}") from None

    def to_json(self) -> list:
        return [[c.to_list() for c in clause] for clause in self.clauses]

    def mask(self, runs: RunTable) -> np.ndarray:
        out = np.zeros(len(runs), bool)
        for clause in self.clauses:
            m = np.ones(len(runs), bool)
            for cond in clause:
                m &= cond.mask(runs)
            out |= m
        return out

    def apply(self, runs: RunTable) -> RunTable:
        return runs.subset(self.mask(runs))

    def __or__(self, other: Selection) -> Selection:
        return Selection(self.clauses + other.clauses)

    def __str__(self) -> str:
        if not self.clauses:
            return "(nothing)"
        return " or ".join("(" + (" and ".join(map(str, c)) or "all") + ")" for c in self.clauses)


@dataclass(frozen=True)
class FitSpec:
    """Which runs fit the loss law, which fit the error law, and which are held out. Applied within
    one training set (the laws are fitted per training distribution)."""

    name: str
    loss_fit: Selection
    error_fit: Selection
    heldout: Selection
    description: str = ""
    extras: Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "loss_fit": self.loss_fit.to_json(),
            "error_fit": self.error_fit.to_json(),
            "heldout": self.heldout.to_json(),
        }

    def with_selections(
        self,
        loss_fit: Selection | Sequence[str] | str | None = None,
        error_fit: Selection | Sequence[str] | str | None = None,
        heldout: Selection | Sequence[str] | str | None = None,
    ) -> FitSpec:
        """A copy with some of the three run selections replaced (given as :class:`Selection`
        objects or as selection text); the name says it was modified."""
        if loss_fit is None and error_fit is None and heldout is None:
            return self

        def sel(v, old: Selection) -> Selection:
            if v is None:
                return old
            if isinstance(v, Selection):
                return v
            return Selection.parse(v if isinstance(v, str) else list(v))

        return FitSpec(
            self.name + " (modified)",
            sel(loss_fit, self.loss_fit),
            sel(error_fit, self.error_fit),
            sel(heldout, self.heldout),
            self.description,
        )

    @classmethod
    def from_json(cls, data: Mapping) -> FitSpec:
        try:
            return cls(
                data["name"],
                Selection.from_json(data["loss_fit"]),
                Selection.from_json(data["error_fit"]),
                Selection.from_json(data["heldout"]),
                data.get("description", ""),
            )
        except KeyError as exc:
            raise InputError(f"fit spec lacks field {exc.args[0]!r}") from None


#: Named presets, stored as data (PAPER.md §4 for ``paper-default``).
PRESETS: dict[str, dict] = {
    "paper-default": {
        "name": "paper-default",
        "description": "Gadre et al. default: loss law on the 0.011-0.411B runs at M=20 plus 0.011B at "
        "M=320; error law on those plus 1.4B at M=20; runs >= 1B parameters held out.",
        "loss_fit": [
            [["n_params", "<=", 5e8], ["multiplier", "==", 20]],
            [["n_params", "<=", 2e7], ["multiplier", "==", 320]],
        ],
        "error_fit": [
            [["n_params", "<=", 5e8], ["multiplier", "==", 20]],
            [["n_params", "<=", 2e7], ["multiplier", "==", 320]],
            [["n_params", ">=", 1e9], ["n_params", "<=", 2e9], ["multiplier", "==", 20]],
        ],
        "heldout": [[["n_params", ">=", 1e9]]],
    },
    "paper-no-1b": {
        "name": "paper-no-1b",
        "description": "As paper-default, but the error law is fitted without the 1.4B run (paper Table 7).",
        "loss_fit": [
            [["n_params", "<=", 5e8], ["multiplier", "==", 20]],
            [["n_params", "<=", 2e7], ["multiplier", "==", 320]],
        ],
        "error_fit": [
            [["n_params", "<=", 5e8], ["multiplier", "==", 20]],
            [["n_params", "<=", 2e7], ["multiplier", "==", 320]],
        ],
        "heldout": [[["n_params", ">=", 1e9]]],
    },
}


def load_spec(spec: str | Path) -> FitSpec:
    """A fit spec by preset name (``paper-default``, ``paper-no-1b``) or from a JSON file."""
    if isinstance(spec, str) and spec in PRESETS:
        return preset(spec)
    path = Path(spec)
    if not path.is_file():
        raise InputError(
            f"unknown fit spec {str(spec)!r}: not a preset ({', '.join(PRESETS)}) nor a JSON file"
        )

    return FitSpec.from_json(read_json(path))


def preset(name: str) -> FitSpec:
    try:
        return FitSpec.from_json(PRESETS[name])
    except KeyError:
        raise InputError(f"unknown fit-spec preset {name!r}; known: {', '.join(PRESETS)}") from None
