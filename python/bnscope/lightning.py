"""PyTorch Lightning: the bnscope log of `trainer.fit` (docs/LOG_FORMAT.md), through a `bnscope.watch` Scope::

    from bnscope.lightning import BnscopeCallback
    trainer = L.Trainer(max_epochs=10, callbacks=[BnscopeCallback("run.jsonl")])

Each training epoch writes an `epoch` record with the trainer's own metrics, as the LightningModule logged them
(`self.log("train_loss", ..)`, `self.log("val_acc", ..)`: `train` from the training metrics, `eval_running` from
the validation ones, which Lightning computes in eval mode, i.e. with the running statistics), and a `bn` record
with every BatchNorm layer's running statistics and last training batch. Imports `lightning` (or the older
`pytorch_lightning`) when this module is imported.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Dict, Mapping, Optional, Sequence

from ._extras import need
from ._log import PathLike


def _lightning() -> ModuleType:
    try:
        return importlib.import_module("lightning.pytorch")
    except ImportError:
        try:
            return importlib.import_module("pytorch_lightning")
        except ImportError:
            return need("lightning", "bnscope.lightning")  # raises, naming the extra


pl = _lightning()

from ._torch import Scope, watch  # noqa: E402  (torch comes with Lightning)

TRAIN_KEYS = {"loss": ("train_loss", "loss"), "acc": ("train_acc", "train_accuracy", "acc", "accuracy")}
VAL_KEYS = {"loss": ("val_loss", "valid_loss", "validation_loss"), "acc": ("val_acc", "val_accuracy", "valid_acc")}


def pick(metrics: Mapping[str, Any], keys: Mapping[str, Sequence[str]]) -> Optional[Dict[str, float]]:
    """`{loss, acc}` from Lightning's `callback_metrics`: for each, the first of its names that was logged (the
    epoch-reduced `NAME_epoch` before `NAME`); None when neither was."""
    out: Dict[str, float] = {}
    for what, names in keys.items():
        for name in names:
            value = metrics.get(f"{name}_epoch", metrics.get(name))
            if value is not None:
                out[what] = float(value.item() if hasattr(value, "item") else value)
                break
    return out or None


class BnscopeCallback(pl.Callback):  # type: ignore[misc,name-defined]
    """Writes the bnscope log of `trainer.fit`. `train_keys` / `val_keys` name the logged metrics to use for
    `{"loss": (names..), "acc": (names..)}` (defaults: `train_loss`/`train_acc`, `val_loss`/`val_acc` and a few
    spellings); `log_bn`, `momentum_note` and `info` are `bnscope.watch`'s."""

    def __init__(
        self,
        path: PathLike,
        *,
        train_keys: Optional[Mapping[str, Sequence[str]]] = None,
        val_keys: Optional[Mapping[str, Sequence[str]]] = None,
        log_bn: str = "full",
        momentum_note: Optional[str] = None,
        info: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.train_keys = dict(train_keys or TRAIN_KEYS)
        self.val_keys = dict(val_keys or VAL_KEYS)
        self.log_bn = log_bn
        self.momentum_note = momentum_note
        self.info = dict(info or {})
        self.scope: Optional[Scope] = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        info = {"model": type(pl_module).__name__, **self.info}
        self.scope = watch(pl_module, self.path, self.momentum_note, log_bn=self.log_bn, info=info)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.scope is None or getattr(trainer, "sanity_checking", False):
            return
        metrics = dict(trainer.callback_metrics)
        self.scope.epoch(
            train=pick(metrics, self.train_keys),
            eval_running=pick(metrics, self.val_keys),
            epoch=int(trainer.current_epoch) + 1,
        )

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.scope is not None:
            self.scope.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.scope is not None:
            if isinstance(exception, KeyboardInterrupt):
                self.scope.close("signal")
            else:
                self.scope.close("error", f"{type(exception).__name__}: {exception}")
