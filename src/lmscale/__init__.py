"""lmscale: predict the loss and downstream error of large, over-trained language-model runs
from a ladder of small ones (Gadre et al. 2024, "Language models scale reliably with
over-training and on downstream tasks").

The curated API below is what a notebook needs; each name is imported on first use, so
``import lmscale`` does no work and never imports torch or matplotlib::

    import lmscale
    runs = lmscale.load_runs("runs.jsonl")
    loss_fit = lmscale.fit_runs(runs, "overtrain", "loss_c4_val", where="n_params <= 5e8", n_boot=200)
    print(lmscale.forecast(loss_fit, lmscale.ScalePoint.make(6.9e9, multiplier=20)).to_dict())
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

#: public name → "module:attribute"
_API = {
    # run tables
    "RunTable": "lmscale.run_table:RunTable",
    "load_runs": "lmscale.testbed:load_runs",
    "Selection": "lmscale.selection:Selection",
    "FitSpec": "lmscale.selection:FitSpec",
    "load_spec": "lmscale.selection:load_spec",
    # laws
    "Law": "lmscale.laws:Law",
    "get_law": "lmscale.laws:get_law",
    "register_law": "lmscale.laws:register_law",
    "OVERTRAIN": "lmscale.laws:OVERTRAIN",
    "CHINCHILLA": "lmscale.laws:CHINCHILLA",
    "ERROR": "lmscale.laws:ERROR",
    "POWER": "lmscale.laws:POWER",
    # fitting
    "fit": "lmscale.fit.core:fit",
    "Method": "lmscale.fit.method:Method",
    "fit_table": "lmscale.fit.runs:fit_table",
    "fit_runs": "lmscale.calibrated_fit:fit_runs",
    "bootstrap": "lmscale.fit.bootstrap:bootstrap",
    "FitResult": "lmscale.fit.result:FitResult",
    "FitDiagnostics": "lmscale.fit.diagnostics:FitDiagnostics",
    # predicting
    "ScalePoint": "lmscale.predict:ScalePoint",
    "predict_chain": "lmscale.predict:predict_chain",
    "forecast": "lmscale.forecasting:forecast",
    "Forecast": "lmscale.forecasting:Forecast",
    # held-out evaluation, backtests, planning
    "Study": "lmscale.study:Study",
    "backtest": "lmscale.backtest:backtest",
    "propose_ladder": "lmscale.plan:plan",
    # training ladders (torch is imported only to train)
    "LadderConfig": "lmscale.train.ladder:LadderConfig",
    "ladder_preset": "lmscale.train.ladder:preset",
    "ladder_plan": "lmscale.train.ladder:plan",
    "run_ladder": "lmscale.ladder_run:run_ladder",
    # importers (lmscale.interop; the W&B API, lm-eval and TensorBoard need the interop extra)
    "MetricMap": "lmscale.interop.mapping:MetricMap",
    "import_wandb_csv": "lmscale.interop.wandb_exports:import_wandb_csv",
    "import_wandb_project": "lmscale.interop.wandb_api:import_wandb_project",
    "import_tensorboard": "lmscale.interop.tensorboard_events:import_tensorboard",
    "merge_lm_eval": "lmscale.interop.lm_eval_results:merge_lm_eval",
    # notebook figures: lmscale.plot.fit / runs / backtest / forecast onto a matplotlib Axes
    "plot": "lmscale.plot",
    "BacktestResult": "lmscale.backtest:BacktestResult",
    "submit_ladder": "lmscale.ladder_submit:submit_ladder",
    "ladder_status": "lmscale.ladder_folder:ladder_status",
    # errors
    "LmscaleError": "lmscale.errors:LmscaleError",
    "InputError": "lmscale.errors:InputError",
    "FitError": "lmscale.errors:FitError",
}

__all__ = ["__version__", *_API.keys()]  # noqa: PLE0604 - the keys are strings


class _Package(types.ModuleType):
    """The ``lmscale`` package object. Two curated names are also submodules (``fit``, the package of
    the fitting routine; ``backtest``). Importing a submodule makes Python set it as an attribute of
    its parent, which would turn ``lmscale.backtest(...)`` into "'module' object is not callable".
    Such a set is dropped, so an API name always means its curated function (the submodules stay
    reachable as ``from lmscale.backtest import backtest`` and through ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if ":" in _API.get(name, "") and isinstance(value, types.ModuleType):
            self.__dict__.pop(name, None)  # resolved again, to the function, on the next access
            return
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    try:
        module, _, attr = _API[name].partition(":")
    except KeyError:
        raise AttributeError(f"module 'lmscale' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(__all__)
