"""Optional dependencies: training, evaluation and plotting libraries the operator image leaves out.

Modules that need one import it through ``require`` inside the function that uses it, so the runtime
path (simulator, policy inference, operator) imports without them and a missing one names the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# pip extra -> what it is for; pyproject.toml's [project.optional-dependencies] holds the packages
EXTRAS = {"train": "training, evaluation and the Gymnasium environment", "plots": "plots (PNG figures)"}


class MissingExtra(ImportError):
    """An optional library is not installed; the message says which extra brings it."""


def require(module: str, extra: str) -> ModuleType:
    """``importlib.import_module(module)``, or ``MissingExtra`` naming ``pip install 'scale-scheduler[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(
            f"{module.partition('.')[0]} is not installed: {EXTRAS[extra]} need it; "
            f"install it with: pip install 'scale-scheduler[{extra}]'"
        ) from error
