"""PyTorch: `watch(model, "run.jsonl")` hooks every BatchNorm layer and writes the log (docs/LOG_FORMAT.md).

The hooks keep the last training batch's per-channel mean and variance as tensors on the model's device (no host
sync per step): the ones PyTorch's kernel saved for the backward pass where autograd recorded them, else computed
from the layer's input. `Scope.epoch()` moves them and the running statistics to the host once an epoch.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Type

import torch
from torch import Tensor, nn

from ._compat import LAZY_BN, compiling, dtype_name, params_dtype, uninitialized
from ._log import SCHEMA, JsonlWriter, PathLike, Record, add_info, common, gap, metric, rank_path, short

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, *LAZY_BN)
BatchNorm = nn.modules.batchnorm._BatchNorm


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP / DataParallel or any wrapper whose only child is `.module`, or inside torch.compile's
    wrapper (`._orig_mod`); else `model` itself."""
    compiled = getattr(model, "_orig_mod", None)
    if isinstance(compiled, nn.Module):
        return unwrap(compiled)
    inner = getattr(model, "module", None)
    if isinstance(inner, nn.Module) and list(model.children()) == [inner]:
        return inner
    return model


def bn_layers(model: nn.Module) -> List[Tuple[str, BatchNorm]]:
    """Every BatchNorm layer with its `named_modules()` name (a wrapper's leading `module.` dropped)."""
    return [(n, m) for n, m in unwrap(model).named_modules() if isinstance(m, BN_TYPES)]


def keras_momentum(layer: BatchNorm) -> Record:
    """`{"momentum": 1 − m}` (Keras convention), or `{"cumulative": True}` for PyTorch's `momentum=None`."""
    if layer.momentum is None:
        return {"cumulative": True}
    return {"momentum": round(1.0 - float(layer.momentum), 12)}


class Batch(NamedTuple):
    """One training batch's per-channel statistics as a hook left them, on the device. `spread` is the biased
    variance when `eps` is None, else `1/sqrt(var + eps)` as BatchNorm kernels save it; `n` values per channel."""

    mean: Tensor
    spread: Tensor
    n: int
    eps: Optional[float] = None

    def var(self) -> Tensor:
        if self.eps is None:
            return self.spread.float()
        invstd = self.spread.float()  # the CPU kernel saves invstd 0 for a zero variance with eps 0
        return torch.where(invstd > 0, invstd.pow(-2) - self.eps, 0.0).clamp_min(0.0)


def saved_batch(output: Any, x: Tensor) -> Optional[Batch]:
    """The statistics PyTorch's native kernel saved for the backward pass of this forward (free: nothing is
    computed), or None when autograd did not record it (no_grad, torch.compile, cuDNN: not verified)."""
    fn: Any = getattr(output, "grad_fn", None)
    if type(fn).__name__ != "NativeBatchNormBackward0":
        return None
    try:
        mean, invstd = fn._saved_result1.detach(), fn._saved_result2.detach()  # detached: keep no graph alive
        return Batch(mean, invstd, x.numel() // x.shape[1], float(fn._saved_eps))
    except (AttributeError, RuntimeError):
        return None


def batch_stats(x: Tensor) -> Batch:
    """Computes the statistics of a BatchNorm input `(N, C, ...)` with the kernel BatchNorm itself runs (ε = 0):
    on the CPU about the cost of one BatchNorm forward (torch.var_mean: about four)."""
    n = x.numel() // x.shape[1]
    with torch.no_grad():
        x = x.detach()
        try:
            _, mean, invstd = torch.native_batch_norm(x, None, None, None, None, True, 0.0, 0.0)
            return Batch(mean.float(), invstd, n, 0.0)
        except (RuntimeError, NotImplementedError):  # a backend without it
            var, mean = torch.var_mean(x.float(), dim=[0, *range(2, x.dim())], correction=0)
            return Batch(mean, var, n)


def host(t: Tensor) -> List[float]:
    return [float(v) for v in t.detach().float().flatten().cpu().tolist()]


def distributed() -> Optional[Tuple[int, int]]:
    """(rank, world size) under an initialised torch.distributed, else None."""
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d.get_rank(), d.get_world_size()
    return None


class Scope:
    """The hooks on one model and its log file. Use `watch()` to make one."""

    def __init__(
        self,
        model: nn.Module,
        path: PathLike,
        momentum_note: Optional[str] = None,
        log_bn: str = "full",
        info: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if log_bn not in ("full", "summary"):
            raise ValueError(f"log_bn={log_bn!r}: must be 'full' or 'summary'")
        self.model = model
        self.layers = bn_layers(model)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no BatchNorm layers to watch")
        self.log_bn = log_bn
        self.epochs = 0
        self._last: Dict[str, Batch] = {}
        self._paused = False
        self._dist = distributed()
        world = self._dist[1] if self._dist else 1
        self.path = rank_path(path, self._dist[0]) if self._dist and world > 1 else Path(path)
        self._log = JsonlWriter(self.path)
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.layers]
        self._run_args = (momentum_note, dict(info or {}))
        self._started = False
        if not uninitialized(model):  # lazy layers get their sizes at the first forward: the run record waits
            self._start()

    def _start(self, strict: bool = True) -> None:
        """Writes the `run` record once (at `watch()`, or at the first record after lazy layers materialised)."""
        if self._started:
            return
        if strict and uninitialized(self.model):
            raise ValueError("the model's lazy layers have no size yet: run a forward pass before epoch()/event()")
        self._started = True
        self._log.write(self._run_record(*self._run_args))

    def _hook(self, name: str) -> Callable[[nn.Module, Tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> None:
            if module.training and not self._paused:
                # Under torch.compile reading grad_fn breaks the graph: compute the statistics in the trace instead.
                saved = None if compiling() else saved_batch(output, inputs[0])
                self._last[name] = saved or batch_stats(inputs[0])

        return hook

    def _run_record(self, momentum_note: Optional[str], info: Mapping[str, Any]) -> Record:
        first = next(self.model.parameters(), None)
        rec: Record = {
            "type": "run",
            "schema": SCHEMA,
            "source": "torch",
            "framework": "torch",
            "framework_version": torch.__version__.split("+")[0],
            "convention": "keras",
            "model": type(unwrap(self.model)).__name__,
            **({} if uninitialized(self.model) else {"params": sum(p.numel() for p in self.model.parameters())}),
            "device": str(first.device) if first is not None else "cpu",
            "bn_variance": "unbiased",
            "bn_layers": [
                {"name": n, "channels": m.num_features, "eps": m.eps, **keras_momentum(m), **dtype_name(m)}
                for n, m in self.layers
                if m.num_features  # a lazy layer that never ran (close() before any forward) has no size
            ],
            **params_dtype(self.model),
        }
        eps = common([m.eps for _, m in self.layers])
        if eps is not None:
            rec["bn_eps"] = eps
        rec.update(self._momentum())
        if self._dist:
            rec["rank"], rec["world_size"] = self._dist
        if momentum_note is not None:
            rec["momentum_note"] = momentum_note
        add_info(rec, info)
        return rec

    def _momentum(self) -> Record:
        """The run-wide `momentum` / `cumulative`, as far as the layers agree."""
        each = [keras_momentum(m) for _, m in self.layers]
        if all(e.get("cumulative") for e in each):
            return {"cumulative": True}
        if any(e.get("cumulative") for e in each):
            return {}
        shared = common([e["momentum"] for e in each])
        return {"cumulative": False} if shared is None else {"momentum": shared, "cumulative": False}

    def _t(self) -> Optional[int]:
        for _, m in self.layers:
            if m.num_batches_tracked is not None:
                return int(m.num_batches_tracked)
        return None

    def epoch(
        self,
        train: Optional[Mapping[str, Any]] = None,
        eval_running: Optional[Mapping[str, Any]] = None,
        eval_batch: Optional[Mapping[str, Any]] = None,
        *,
        epoch: Optional[int] = None,
        bn: Optional[str] = None,
    ) -> None:
        """Writes an `epoch` and a `bn` record. Each metric is `{"loss": .., "acc": ..}` (either may be left out).
        `epoch` defaults to the previous one + 1; `bn` ("full"/"summary") overrides `log_bn` for this record."""
        self._start()
        self.epochs = self.epochs + 1 if epoch is None else epoch
        rec: Record = {"type": "epoch", "epoch": self.epochs}
        t = self._t()
        if t is not None:
            rec["t"] = t
        rec.update(self._momentum())
        for key, value in (("train", train), ("eval_running", eval_running), ("eval_batch", eval_batch)):
            m = metric(value)
            if m is not None:
                rec[key] = m
        self._log.write(rec)
        self._log.write(self._bn_record(bn or self.log_bn, t))

    def _bn_record(self, mode: str, t: Optional[int]) -> Record:
        sync = self._dist is not None and self._dist[1] > 1
        layers = []
        for name, m in self.layers:
            layer: Record = {"name": name, "channels": m.num_features, **keras_momentum(m)}
            if m.num_batches_tracked is not None:
                layer["num_batches_tracked"] = int(m.num_batches_tracked)
            if sync and isinstance(m, nn.SyncBatchNorm):
                layer["batch_local"] = True
            arrays: Dict[str, List[float]] = {}
            if m.running_mean is not None and m.running_var is not None:
                arrays["running_mean"], arrays["running_var"] = host(m.running_mean), host(m.running_var)
            if name in self._last:
                batch = self._last[name]
                layer["n"] = batch.n
                arrays["batch_mean"] = host(batch.mean)
                # Always the biased variance, the one that normalised the batch (docs/LOG_FORMAT.md); the running
                # variance moves toward n/(n-1) times it (bn_variance "unbiased").
                arrays["batch_var"] = host(batch.var())
            for which in ("mean", "var"):
                run, bat = arrays.get(f"running_{which}"), arrays.get(f"batch_{which}")
                if run is not None and bat is not None:
                    layer[f"{which}_gap"] = gap(run, bat)
            if mode == "full":
                layer.update({k: short(v) for k, v in arrays.items()})
            layers.append(layer)
        rec: Record = {"type": "bn", "epoch": self.epochs, "batch": "train", "layers": layers}
        if t is not None:
            rec["t"] = t
        return rec

    def event(self, what: str, value: Any = None) -> None:
        """Writes an `event` record (e.g. `scope.event("momentum", 0.9)` after changing it)."""
        self._start()
        rec: Record = {"type": "event", "epoch": self.epochs, "what": what}
        if value is not None:
            rec["value"] = value
        self._log.write(rec)

    @contextlib.contextmanager
    def batch_eval(self) -> Iterator[None]:
        """Forwards inside use each batch's own statistics and change nothing (evaluation with batch statistics,
        Keras `learning_phase=1`): BatchNorm layers in train mode, every other module in eval mode, no autograd,
        the hooks paused, and the running statistics and `num_batches_tracked` restored afterwards."""
        modes = [(module, module.training) for module in self.model.modules()]
        saved = [(m, {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for _, m in self.layers]
        self.model.eval()
        for _, m in self.layers:
            m.train()
        self._paused = True
        try:
            with torch.no_grad():
                yield
        finally:
            self._paused = False
            with torch.no_grad():
                for m, buffers in saved:
                    for key, b in buffers.items():
                        getattr(m, key).copy_(b)
            for module, training in modes:
                module.training = training

    def close(self, reason: str = "done", message: Optional[str] = None) -> None:
        """Removes the hooks and writes the `end` record (once; later calls do nothing)."""
        if self._log.closed:
            return
        self._start(strict=False)
        for h in self._handles:
            h.remove()
        rec: Record = {"type": "end", "epochs": self.epochs, "reason": reason}
        if message is not None:
            rec["message"] = message
        self._log.write(rec)
        self._log.close()

    def __enter__(self) -> "Scope":
        return self

    def __exit__(
        self, kind: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        if kind is None:
            self.close()
        elif issubclass(kind, KeyboardInterrupt):
            self.close("signal")
        else:
            self.close("error", f"{kind.__name__}: {exc}")


def watch(
    model: nn.Module,
    path: PathLike,
    momentum_note: Optional[str] = None,
    *,
    log_bn: str = "full",
    info: Optional[Mapping[str, Any]] = None,
) -> Scope:
    """Hooks every BatchNorm layer of `model` and writes the `run` record to `path` at once.

    Under torch.distributed with several processes each writes `NAME.rank{R}.jsonl`. `momentum_note` is free text
    for the log (e.g. why the momentum is what it is); `log_bn="summary"` keeps only the gaps per layer; `info`
    adds fields to the `run` record (`model`, `seed`, `lr`, `batch_size`, `classes`, `labels`, ...)."""
    return Scope(model, path, momentum_note=momentum_note, log_bn=log_bn, info=info)
