"""Write bnscope's JSONL log (docs/LOG_FORMAT.md) from PyTorch or Keras 3, for `bnscope replay` / `bnscope watch`.

PyTorch::

    scope = bnscope.watch(model, "run.jsonl")     # forward hooks on every BatchNorm layer
    for epoch in range(epochs):
        ...                                       # train as usual
        scope.epoch(train={"loss": loss, "acc": acc}, eval_running={"loss": .., "acc": ..})
    scope.close()                                 # or: with bnscope.watch(...) as scope:

Keras 3::

    model.fit(x, y, epochs=5, callbacks=[bnscope.KerasCallback("run.jsonl", eval_data=(x, y))])

`control=True` (both) lets `bnscope watch run.jsonl` steer the run through `run.jsonl.control` (docs/CONTROL.md).

torch and keras are imported only when `watch` / `Scope` or `KerasCallback` is first used, so this package imports
without either.
"""
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from ._extras import need
from ._log import SCHEMA, LogFileError, rank_path

if TYPE_CHECKING:
    from ._inspect import inspect
    from ._keras import KerasCallback
    from ._keras_inspect import keras_inspect
    from ._report import Report
    from ._torch import Scope, watch

__all__ = ["SCHEMA", "KerasCallback", "LogFileError", "Report", "Scope", "inspect", "keras_inspect", "rank_path",
           "watch"]
try:
    # The one version: Cargo.toml's, which the wheel's metadata carries (pyproject.toml: dynamic = ["version"]).
    __version__ = _metadata.version("bnscope")
except _metadata.PackageNotFoundError:  # imported from a source tree (PYTHONPATH=python), not installed
    __version__ = "unknown"


def __getattr__(name: str) -> Any:
    if name in ("watch", "Scope"):
        need("torch", f"bnscope.{name}")
        from . import _torch

        return getattr(_torch, name)
    if name == "KerasCallback":
        need("keras", "bnscope.KerasCallback")
        from . import _keras

        return _keras.KerasCallback
    # bnscope.inspect / keras_inspect / Report (issue #25): any model, any training loop.
    if name == "inspect":
        need("torch", "bnscope.inspect")
        from ._inspect import inspect

        return inspect
    if name == "keras_inspect":
        need("keras", "bnscope.keras_inspect")
        from ._keras_inspect import keras_inspect

        return keras_inspect
    if name == "Report":
        from ._report import Report

        return Report
    raise AttributeError(f"module 'bnscope' has no attribute {name!r}")
