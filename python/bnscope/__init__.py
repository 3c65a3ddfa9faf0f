"""Write bnscope's JSONL log (docs/LOG_FORMAT.md) from PyTorch or Keras 3, for `bnscope replay` / `bnscope watch`.

PyTorch::

    scope = bnscope.watch(model, "run.jsonl")     # forward hooks on every BatchNorm layer
    for epoch in range(epochs):
        ...                                       # train as usual
        scope.epoch(train={"loss": loss, "acc": acc}, eval_running={"loss": .., "acc": ..})
    scope.close()                                 # or: with bnscope.watch(...) as scope:

Keras 3::

    model.fit(x, y, epochs=5, callbacks=[bnscope.KerasCallback("run.jsonl", eval_data=(x, y))])

torch and keras are imported only when `watch` / `Scope` or `KerasCallback` is first used, so this package imports
without either.
"""
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from ._log import SCHEMA, rank_path

if TYPE_CHECKING:
    from ._keras import KerasCallback
    from ._torch import Scope, watch

__all__ = ["SCHEMA", "KerasCallback", "Scope", "rank_path", "watch"]
try:
    # The one version: Cargo.toml's, which the wheel's metadata carries (pyproject.toml: dynamic = ["version"]).
    __version__ = _metadata.version("bnscope")
except _metadata.PackageNotFoundError:  # imported from a source tree (PYTHONPATH=python), not installed
    __version__ = "unknown"


def _needs(what: str, framework: str, extra: str, e: ModuleNotFoundError) -> ModuleNotFoundError:
    msg = f"bnscope.{what} needs {framework}, which is not installed: pip install 'bnscope[{extra}]'"
    return ModuleNotFoundError(msg, name=e.name)


def __getattr__(name: str) -> Any:
    if name in ("watch", "Scope"):
        try:
            from . import _torch
        except ModuleNotFoundError as e:
            if e.name != "torch":
                raise
            raise _needs(name, "PyTorch", "torch", e) from e

        return getattr(_torch, name)
    if name == "KerasCallback":
        try:
            from . import _keras
        except ModuleNotFoundError as e:
            if e.name != "keras":
                raise
            raise _needs(name, "Keras 3", "keras", e) from e

        return _keras.KerasCallback
    raise AttributeError(f"module 'bnscope' has no attribute {name!r}")
