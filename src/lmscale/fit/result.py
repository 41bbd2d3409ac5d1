"""The :class:`FitResult`: a fitted law with named parameters, the data it was fitted on,
diagnostics, and (optionally) bootstrap samples. Saves to JSON and loads back exactly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmscale._io import atomic_write_text, read_json
from lmscale.errors import InputError
from lmscale.fit.diagnostics import FitDiagnostics
from lmscale.laws import Law, get_law

FORMAT_VERSION = 1


@dataclass(frozen=True, repr=False)
class FitResult:
    """A fitted law. ``params`` are named; ``predict`` is the one way to evaluate it."""

    law: str
    method: str
    params: Mapping[str, float]
    target: str
    input_columns: Mapping[str, str]
    run_ids: tuple[str, ...]
    x: Mapping[str, tuple[float, ...]]
    y: tuple[float, ...]
    diagnostics: FitDiagnostics = field(default_factory=FitDiagnostics)
    #: bootstrap parameter samples, one row per resample, columns in the law's parameter order
    bootstrap: tuple[tuple[float, ...], ...] | None = None
    #: scale of run-to-run noise of the target (residual standard deviation, or a bootstrap-based
    #: estimate); used for prediction intervals
    noise_sd: float | None = None
    #: how this fit's prediction intervals are calibrated: an opaque payload to ``fit/`` (a
    #: :class:`lmscale.calibration.Calibration` as a dict, written and validated by
    #: :mod:`lmscale.calibration`): conformal scores from its own backtest, or the shipped reference's
    calibration: Mapping[str, object] | None = None
    #: the law object itself (a user-defined law need not be registered to predict); not saved:
    #: a fit file names its law, and :meth:`load` finds it in ``laws=`` or the registry
    law_impl: Law | None = field(default=None, repr=False, compare=False)

    # ----------------------------------------------------------------------------- evaluation
    @property
    def law_obj(self) -> Law:
        return self.law_impl if self.law_impl is not None else get_law(self.law)

    def predict(self, **inputs):
        """Evaluate the fitted law, e.g. ``fit.predict(n_params=6.9e9, multiplier=20)`` or
        ``fit.predict(n_params=6.9e9, n_tokens=1.4e11)`` (D and M convert through N)."""
        need = self.law_obj.inputs
        if (
            "n_tokens" in inputs
            and "multiplier" in need
            and "multiplier" not in inputs
            and "n_params" in inputs
        ):
            inputs["multiplier"] = np.asarray(inputs.pop("n_tokens"), dtype=float) / np.asarray(
                inputs["n_params"], dtype=float
            )
        elif (
            "multiplier" in inputs
            and "n_tokens" in need
            and "n_tokens" not in inputs
            and "n_params" in inputs
        ):
            inputs["n_tokens"] = np.asarray(inputs.pop("multiplier"), dtype=float) * np.asarray(
                inputs["n_params"], dtype=float
            )
        return self.law_obj(self.params, **inputs)

    # ------------------------------------------------------------------------------- display
    def __repr__(self) -> str:
        from lmscale.summaries import fit_repr

        return fit_repr(self)

    def summary(self) -> str:
        """The ``lmscale fit`` table as text: parameters (with bootstrap intervals), the paper form
        and M* for the over-training law, diagnostics and plausibility warnings."""
        from lmscale.summaries import fit_summary

        return fit_summary(self)

    def _repr_html_(self) -> str:
        from lmscale.summaries import fit_html

        return fit_html(self)

    def predict_samples(self, **inputs) -> np.ndarray:
        """Predictions of every bootstrap sample, shape (n_samples, *input shape)."""
        if not self.bootstrap:
            raise InputError("this fit has no bootstrap samples; refit with bootstrap > 0")
        law = self.law_obj
        x = law.inputs_from(inputs)
        shape = np.shape(next(iter(x.values())))
        x1 = {k: np.atleast_1d(v).ravel() for k, v in x.items()}
        p = np.asarray(self.bootstrap, dtype=float)
        return law.evaluate_vector(p, x1).reshape((len(p),) + shape)

    @property
    def x_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=float) for k, v in self.x.items()}

    @property
    def fitted(self) -> np.ndarray:
        return self.law_obj.evaluate_vector(self.law_obj.vector(self.params), self.x_arrays)

    @property
    def residuals(self) -> np.ndarray:
        """Observed minus fitted, in run order."""
        return np.asarray(self.y) - self.fitted

    # ------------------------------------------------------------------------------------ I/O
    def to_dict(self) -> dict:
        return {
            "format": "lmscale.FitResult",
            "version": FORMAT_VERSION,
            "law": self.law,
            "method": self.method,
            "params": dict(self.params),
            "target": self.target,
            "input_columns": dict(self.input_columns),
            "run_ids": list(self.run_ids),
            "x": {k: list(v) for k, v in self.x.items()},
            "y": list(self.y),
            "diagnostics": self.diagnostics.to_dict(),
            "bootstrap": None if self.bootstrap is None else [list(r) for r in self.bootstrap],
            "noise_sd": self.noise_sd,
            "calibration": None if self.calibration is None else dict(self.calibration),
        }

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "<dict>", laws=None) -> FitResult:
        """A fit from its JSON form; ``laws`` (a mapping or list of :class:`Law`) supplies laws that
        are not registered."""
        if d.get("format") != "lmscale.FitResult":
            raise InputError(f"{source}: not an lmscale fit file (missing 'format': 'lmscale.FitResult')")
        if d.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise InputError(
                f"{source}: fit file version {d.get('version')!r}; this lmscale reads version "
                f"{FORMAT_VERSION} (a newer lmscale wrote it, or the file was edited)"
            )
        try:
            law = get_law(d["law"], laws)
            params = {k: float(d["params"][k]) for k in law.params}
            if not isinstance(d["x"], Mapping) or not isinstance(d["y"], list):
                raise TypeError("'x' must be an object of input columns and 'y' a list")
            res = cls(
                law=d["law"],
                method=str(d["method"]),
                params=params,
                target=str(d["target"]),
                input_columns=dict(d["input_columns"]),
                run_ids=tuple(str(r) for r in d["run_ids"]),
                x={k: tuple(float(v) for v in vals) for k, vals in d["x"].items()},
                y=tuple(float(v) for v in d["y"]),
                diagnostics=FitDiagnostics.from_dict(d.get("diagnostics"), source),
                bootstrap=None
                if d.get("bootstrap") is None
                else tuple(tuple(map(float, r)) for r in d["bootstrap"]),
                noise_sd=None if d.get("noise_sd") is None else float(d["noise_sd"]),
                calibration=_calibration(d.get("calibration"), source),
                law_impl=law,
            )
        except KeyError as exc:
            raise InputError(f"{source}: fit file lacks field {exc.args[0]!r}") from None
        except InputError as exc:  # named once: some checks name the file already
            msg = str(exc)
            raise InputError(
                msg if msg.startswith(source) else f"{source}: malformed fit file: {msg}"
            ) from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{source}: malformed fit file: {exc}") from None
        _check(res, law, source)
        return res

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path, laws=None) -> FitResult:
        """A saved fit; ``laws`` as for :meth:`from_dict`."""
        return cls.from_dict(read_json(path), str(path), laws)


def _check(res: FitResult, law, source: str) -> None:
    """A saved fit must be one that could have been fitted: finite parameters and data, one value
    per run everywhere, bootstrap rows of the law's width, a non-negative noise scale."""
    problems = []
    bad = [k for k, v in res.params.items() if not np.isfinite(v)]
    if bad:
        problems.append(f"parameter(s) {', '.join(bad)} not finite")
    n = len(res.y)
    if set(res.x) != set(law.inputs):
        problems.append(f"inputs {sorted(res.x)} are not the law's {list(law.inputs)}")
    if any(len(v) != n for v in res.x.values()) or len(res.run_ids) != n:
        problems.append(f"'x', 'y' and 'run_ids' must each hold one value per run ({n} in 'y')")
    if not all(np.isfinite(res.y)) or not all(np.isfinite(v).all() for v in map(np.asarray, res.x.values())):
        problems.append("'x' and 'y' must be finite numbers")
    if res.bootstrap is not None and (
        not res.bootstrap
        or any(len(r) != law.n_fit_params for r in res.bootstrap)
        or not np.all(np.isfinite(np.asarray(res.bootstrap)))
    ):
        problems.append(
            f"every bootstrap row must hold {law.n_fit_params} finite parameters ({', '.join(law.params)})"
        )
    if res.noise_sd is not None and not (np.isfinite(res.noise_sd) and res.noise_sd >= 0):
        problems.append(f"noise_sd must be a non-negative number, found {res.noise_sd!r}")
    if problems:
        raise InputError(f"{source}: malformed fit file: " + "; ".join(problems))


def _calibration(data, source: str) -> dict | None:
    """The calibration payload as it is: an object, validated by whoever reads it
    (:func:`lmscale.calibration.of_fit`); ``fit/`` knows nothing of calibrations."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: malformed fit file: 'calibration' must be an object")
    return dict(data)


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
