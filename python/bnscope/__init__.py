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
from typing import TYPE_CHECKING, Any

from ._log import SCHEMA, LogFileError, rank_path

if TYPE_CHECKING:
    from ._keras import KerasCallback
    from ._torch import Scope, watch

__all__ = ["SCHEMA", "KerasCallback", "LogFileError", "Scope", "rank_path", "watch"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("watch", "Scope"):
        from . import _torch

        return getattr(_torch, name)
    if name == "KerasCallback":
        from . import _keras

        return _keras.KerasCallback
    raise AttributeError(f"module 'bnscope' has no attribute {name!r}")
