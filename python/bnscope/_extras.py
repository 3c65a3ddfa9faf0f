"""Imports of the optional frameworks, with a message naming the extra to install when one is missing."""
from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {
    "torch": ("PyTorch", "pip install bnscope[torch]"),
    "keras": ("Keras 3", "pip install bnscope[keras]"),
    "lightning": ("PyTorch Lightning", "pip install bnscope[lightning]"),
    "transformers": ("Hugging Face transformers", "pip install bnscope[hf]"),
}
"""Each framework's name and how to install bnscope's extra for it."""


def need(framework: str, what: str) -> ModuleType:
    """`framework` imported, or a ModuleNotFoundError (an ImportError) saying that `what` needs it and how to install it."""
    try:
        return importlib.import_module(framework)
    except ImportError as e:
        name, install = EXTRAS[framework]
        raise ModuleNotFoundError(f"{what} needs {name}: {install} ({type(e).__name__}: {e})", name=framework) from e
