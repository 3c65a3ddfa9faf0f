"""PyTorch: `watch(model, "run.jsonl")` hooks every BatchNorm layer and writes the log (docs/LOG_FORMAT.md).

The hooks keep the last training batch's per-channel mean and variance as tensors on the model's device (no host
sync per step): the ones PyTorch's kernel saved for the backward pass where autograd recorded them, else computed
from the layer's input. `Scope.epoch()` moves them and the running statistics to the host once an epoch.
"""
from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Type

import torch
from torch import Tensor, nn

from ._compat import LAZY_BN, compiling, dtype_name, params_dtype, uninitialized
from ._control import Command, Control, Refused
from ._log import (SCHEMA, JsonlWriter, PathLike, Record, add_info, check_info, check_options, check_path, common,
                   encode, gap, metric, rank_path, short)

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
        *,
        overwrite: bool = False,
        control: bool = False,
        recalibrate: Optional[Iterable[Any]] = None,
        evaluate: Optional[Callable[[nn.Module], Mapping[str, Any]]] = None,
    ) -> None:
        # Every argument is checked before anything is opened or hooked.
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: a torch.nn.Module, not {type(model).__name__}")
        given = check_path(path)
        check_options(log_bn, momentum_note, overwrite)
        extra = check_info(info)
        if not isinstance(control, bool):
            raise ValueError(f"control={control!r}: must be True or False")
        if recalibrate is not None:
            if isinstance(recalibrate, Tensor) or not isinstance(recalibrate, Iterable):
                raise ValueError("recalibrate: an iterable of batches (a DataLoader, a list of tensors), "
                                 "as for torch.optim.swa_utils.update_bn; one tensor goes in a list: [x]")
            if iter(recalibrate) is recalibrate:
                raise ValueError("recalibrate: an iterator runs out after one pass; give a DataLoader or a list")
        if evaluate is not None and not callable(evaluate):
            raise ValueError("evaluate: a function of the model that returns {'loss': .., 'acc': ..}")
        self.model = model
        self.layers = bn_layers(model)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no BatchNorm layers to watch")
        self.log_bn = log_bn
        self.epochs = 0
        self.recalibrate_data = recalibrate
        self.evaluate_fn = evaluate
        self._last: Dict[str, Batch] = {}
        self._paused = False  # the BatchNorm hooks (batch_eval, recalibration)
        self._busy = False  # the control boundary (its own forwards)
        self._saved_momenta: Optional[List[Optional[float]]] = None  # from before `cumulative on`
        self._dist = distributed()
        world = self._dist[1] if self._dist else 1
        self.path = rank_path(given, self._dist[0]) if self._dist and world > 1 else given
        self._run_args = (momentum_note, extra)
        self._started = False
        # Lazy layers get their sizes at the first forward: the run record waits for them (see `_start`).
        run = None if uninitialized(model) else self._run_record(momentum_note, extra)
        if run is not None:
            encode(run)  # raises here, before the file is touched, if a value cannot be written
        else:
            encode({"info": extra})
        self._handles: List[Any] = []
        self.control: Optional[Control] = None
        self._log = JsonlWriter(self.path, overwrite=overwrite, owner=f"bnscope.watch of {type(model).__name__}")
        try:
            if control:
                rank = self._dist[0] if self._dist else 0
                self.control = Control(given, self._apply, self._event, recalibrate=recalibrate is not None,
                                       evaluate=evaluate is not None, rank=rank, world=world,
                                       store=dist_store() if world > 1 else None)
            self._handles = [m.register_forward_hook(self._hook(name, m)) for name, m in self.layers]
            if self.control is not None:
                self._handles.append(model.register_forward_pre_hook(self._pre_hook()))
            if run is not None:
                self._write_run(run)
        except BaseException:
            self._unhook()
            self._log.close()
            raise

    def _write_run(self, run: Record) -> None:
        if self.control is not None:
            run["control"] = self.control.info
        self._started = True
        self._log.write(run)

    def _start(self, strict: bool = True) -> None:
        """Writes the `run` record once (at `watch()`, or at the first record after lazy layers materialised)."""
        if self._started:
            return
        if strict and uninitialized(self.model):
            raise ValueError("the model's lazy layers have no size yet: run a forward pass before epoch()/event()")
        self._write_run(self._run_record(*self._run_args))

    # The hooks are closures, not bound methods: `copy.deepcopy(model)` (EMA, `AveragedModel`) copies a model's
    # hooks, and would copy a bound method's Scope with its open files. The copy's hooks stay this Scope's, and
    # do nothing for the copy's modules.

    def _hook(self, name: str, layer: nn.Module) -> Callable[[nn.Module, Tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> None:
            if module.training and not self._paused and module is layer:
                # Under torch.compile reading grad_fn breaks the graph: compute the statistics in the trace instead.
                saved = None if compiling() else saved_batch(output, inputs[0])
                self._last[name] = saved or batch_stats(inputs[0])

        return hook

    def _pre_hook(self) -> Callable[[nn.Module, Any], None]:
        watched = self.model

        def boundary(module: nn.Module, args: Any) -> None:
            """A training forward of the watched model is a step boundary."""
            # A model with lazy layers: its run record (and so its ledger) waits for their sizes; commands wait too.
            if module.training and not self._busy and module is watched and self.control is not None and self._started:
                self.control.boundary()

        return boundary

    def _unhook(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self.control is not None:
            self.control.close()

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

    def _event(self, fields: Record) -> None:
        self._log.write({"type": "event", "epoch": self.epochs, **fields})

    # --- the control channel's commands (docs/CONTROL.md) ------------------------------------------------------

    def _apply(self, cmd: Command) -> Record:
        layers = [m for _, m in self.layers]
        if cmd.verb == "momentum":
            assert isinstance(cmd.value, float)
            for m in layers:
                m.momentum = 1.0 - cmd.value  # PyTorch's convention
            self._saved_momenta = None
            return {"value": cmd.value}
        if cmd.verb == "cumulative":
            if cmd.value:
                if self._saved_momenta is None:
                    self._saved_momenta = [m.momentum for m in layers]
                for m in layers:
                    m.momentum = None
                return {"value": True}
            saved = self._saved_momenta
            if saved is None:
                raise Refused("cumulative is not on (no momentum from before `cumulative on`)")
            for m, momentum in zip(layers, saved):
                m.momentum = momentum
            self._saved_momenta = None
            return {"value": False}
        if cmd.verb == "reset":
            for m in layers:
                m.reset_running_stats()
            return {}
        if cmd.verb == "recalibrate":
            n = self._recalibrate()
            return {"value": f"{n} batch" if n == 1 else f"{n} batches"}
        if cmd.verb == "evaluate":
            return self._evaluate()
        raise Refused(f"{cmd.verb} is not a model command")  # pragma: no cover (Control handles the others)

    def _recalibrate(self) -> int:
        """`torch.optim.swa_utils.update_bn(recalibrate, model)` on the model inside any DDP wrapper (no collective
        but SyncBatchNorm's own), without autograd, the hooks quiet; each module's train/eval flag restored. If it
        fails, the statistics are put back as they were."""
        assert self.recalibrate_data is not None
        inner = unwrap(self.model)
        modes = [(module, module.training) for module in inner.modules()]
        norms = [m for m in inner.modules() if isinstance(m, BatchNorm)]
        saved = [(m, m.momentum, {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for m in norms]
        first = next(inner.parameters(), None)
        batches = 0

        def counted() -> Iterator[Any]:
            nonlocal batches
            for batch in self.recalibrate_data or ():
                batches += 1
                yield batch

        self._busy = self._paused = True
        try:
            with torch.no_grad():
                torch.optim.swa_utils.update_bn(counted(), inner, first.device if first is not None else None)
        except BaseException:
            with torch.no_grad():
                for m, momentum, buffers in saved:
                    m.momentum = momentum
                    for key, b in buffers.items():
                        getattr(m, key).copy_(b)
            raise
        finally:
            self._busy = self._paused = False
            for module, training in modes:
                module.training = training
        return batches

    def _evaluate(self) -> Record:
        """The user's `evaluate(model)` in eval mode without autograd, then with batch statistics (`batch_eval`)."""
        assert self.evaluate_fn is not None
        fn = self.evaluate_fn
        modes = [(module, module.training) for module in self.model.modules()]
        self._busy = True
        try:
            self.model.eval()
            with torch.no_grad():
                running = fn(self.model)
            for module, training in modes:
                module.training = training
            with self.batch_eval():
                batch = fn(self.model)
        finally:
            self._busy = False
            for module, training in modes:
                module.training = training
        out: Record = {}
        for key, value in (("eval_running", running), ("eval_batch", batch)):
            if not isinstance(value, Mapping):
                raise Refused(f"evaluate returned {type(value).__name__}, not a dict with loss and acc")
            out[key] = metric(value)
        return out

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
        self._unhook()
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


def dist_store() -> Any:
    """The torch.distributed default store (rank 0 tells the other ranks there where its control channel starts),
    or None where this torch has none to give."""
    try:
        from torch.distributed import distributed_c10d

        return distributed_c10d._get_default_store()
    except Exception:
        return None


def watch(
    model: nn.Module,
    path: PathLike,
    momentum_note: Optional[str] = None,
    *,
    log_bn: str = "full",
    info: Optional[Mapping[str, Any]] = None,
    overwrite: bool = False,
    control: bool = False,
    recalibrate: Optional[Iterable[Any]] = None,
    evaluate: Optional[Callable[[nn.Module], Mapping[str, Any]]] = None,
) -> Scope:
    """Hooks every BatchNorm layer of `model` and writes the `run` record to `path` at once.

    `path` is created, or appended to if it is a bnscope log (a new run in the same file); any other file is
    refused unless `overwrite=True` (which empties it). Under torch.distributed with several processes each writes
    `NAME.rank{R}.jsonl`. `momentum_note` is free text for the log (e.g. why the momentum is what it is);
    `log_bn="summary"` keeps only the gaps per layer; `info` adds fields to the `run` record (`model`, `seed`,
    `lr`, `batch_size`, `classes`, `labels`, ...).

    `control=True` opens the control channel `PATH.control` (docs/CONTROL.md): `bnscope watch PATH` can then change
    the momentum, reset or recalibrate the statistics, pause, step and evaluate this training at its step
    boundaries (every training-mode forward of `model`). `recalibrate` (an iterable of batches, as for
    `torch.optim.swa_utils.update_bn`) and `evaluate` (a function `evaluate(model) -> {"loss": .., "acc": ..}`)
    enable those two commands."""
    return Scope(model, path, momentum_note=momentum_note, log_bn=log_bn, info=info, overwrite=overwrite,
                 control=control, recalibrate=recalibrate, evaluate=evaluate)
