"""Hugging Face transformers: the bnscope log of `Trainer.train()` (docs/LOG_FORMAT.md), through a `bnscope.watch`
Scope::

    from bnscope.hf import BnscopeCallback
    trainer = Trainer(model, args, ..., callbacks=[BnscopeCallback("run.jsonl")])

Each epoch writes an `epoch` record with the Trainer's own metrics: `train` from the last training `loss` it logged
in that epoch (`logging_strategy="epoch"` logs one per epoch), `eval_running` from its evaluation (`eval_loss`, and
`eval_accuracy` / `eval_acc` where `compute_metrics` returns `accuracy` / `acc`; the Trainer evaluates in eval mode,
i.e. with the running statistics), and a `bn` record. With `eval_strategy="epoch"` the Trainer logs and evaluates
after its epoch-end callback, so the record is written when that evaluation arrives (else at the next epoch's start
or at the end of training). Imports `transformers` when this module is imported.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from ._extras import need

transformers = need("transformers", "bnscope.hf")

from ._log import PathLike  # noqa: E402
from ._torch import Scope, watch  # noqa: E402  (torch comes with the Trainer)

TRAIN_KEYS = {"loss": ("loss",), "acc": ("accuracy", "acc", "train_accuracy", "train_acc")}
EVAL_KEYS = {"loss": ("eval_loss",), "acc": ("eval_accuracy", "eval_acc")}


def pick(metrics: Mapping[str, Any], keys: Mapping[str, Sequence[str]]) -> Dict[str, float]:
    """`{loss, acc}` from a Trainer log or metrics dict: for each, the first of its names present."""
    out: Dict[str, float] = {}
    for what, names in keys.items():
        for name in names:
            if metrics.get(name) is not None:
                out[what] = float(metrics[name])
                break
    return out


class BnscopeCallback(transformers.TrainerCallback):  # type: ignore[misc,name-defined]
    """Writes the bnscope log of a Hugging Face `Trainer` run. `train_keys` / `eval_keys` name the logged metrics
    for `{"loss": (names..), "acc": (names..)}`; `log_bn`, `momentum_note` and `info` are `bnscope.watch`'s."""

    def __init__(
        self,
        path: PathLike,
        *,
        train_keys: Optional[Mapping[str, Sequence[str]]] = None,
        eval_keys: Optional[Mapping[str, Sequence[str]]] = None,
        log_bn: str = "full",
        momentum_note: Optional[str] = None,
        info: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.path = path
        self.train_keys = dict(train_keys or TRAIN_KEYS)
        self.eval_keys = dict(eval_keys or EVAL_KEYS)
        self.log_bn = log_bn
        self.momentum_note = momentum_note
        self.info = dict(info or {})
        self.scope: Optional[Scope] = None
        self._train: Dict[str, float] = {}
        self._eval: Dict[str, float] = {}
        self._pending = False

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None:
            raise ValueError("bnscope.hf.BnscopeCallback: the Trainer passed no model")
        info = {"model": type(model).__name__, **self.info}
        if getattr(args, "learning_rate", None) is not None:
            info.setdefault("lr", float(args.learning_rate))
        if getattr(args, "per_device_train_batch_size", None) is not None:
            info.setdefault("batch_size", int(args.per_device_train_batch_size))
        self.scope = watch(model, self.path, self.momentum_note, log_bn=self.log_bn, info=info)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush()
        self._train, self._eval = {}, {}

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[Mapping[str, Any]] = None, **kw: Any) -> None:
        if logs and "eval_loss" not in logs:  # a training log (evaluations come through on_evaluate)
            self._train.update(pick(logs, self.train_keys))

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Optional[Mapping[str, Any]] = None, **kw: Any
    ) -> None:
        self._eval = pick(metrics or {}, self.eval_keys)
        self._flush()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._pending = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush()
        if self.scope is not None:
            self.scope.close()

    def _flush(self) -> None:
        """Writes the finished epoch's record, once."""
        if self._pending and self.scope is not None:
            self._pending = False
            self.scope.epoch(train=self._train or None, eval_running=self._eval or None)
