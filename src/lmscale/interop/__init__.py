"""Meeting teams where their runs already are: importers that turn W&B exports, the W&B API,
lm-evaluation-harness results and TensorBoard event files into validated run tables, and the bridge
to Hugging Face (export a ladder run as a ``transformers`` model; score any local causal LM with
lmscale's evaluator). Heavy libraries are optional extras (``pip install 'lmscale[interop]'``);
each import error names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from lmscale.errors import InputError

EXTRA = "interop"


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"{purpose} needs the {module.split('.', maxsplit=1)[0]!r} package: pip install 'lmscale[{EXTRA}]'"
        ) from None
