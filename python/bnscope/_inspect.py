"""PyTorch: `bnscope.inspect(model, data)`: any `nn.Module` with BatchNorm layers looked at on the data, without
training and without changing anything of it (see `_report` for the passes and the diagnosis).

`data` is what `torch.optim.swa_utils.update_bn` takes: an iterable of batches, each a tensor (the input) or a
sequence whose first element is the input and second the labels. A single tensor, or a single `(x, y)` tuple of
tensors, is one batch. Every pass runs the model's own module (inside a DDP or torch.compile wrapper) eagerly under
`torch.no_grad()` with every module in eval mode except the BatchNorm layers a pass puts on batch statistics (those
in training mode with `track_running_stats` off, so that nothing is updated). Afterwards every buffer, every
module's `training` flag and every BatchNorm layer's `momentum` and `track_running_stats` are what they were.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Collection, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from ._compat import dtype_str, uninitialized
from ._log import PathLike
from ._report import Backend, Layer, Report, Score, Sums, examine
from ._torch import BatchNorm, Scope, bn_layers, host, unwrap

Batch = Tuple[Tensor, Optional[Tensor]]
ScoreFn = Callable[[Tensor, Tensor], Any]


def logits_of(out: Any) -> Tensor:
    """The tensor a model's output carries: itself, `.logits` (Hugging Face), `["out"]` / `["logits"]` (torchvision
    segmentation, dicts), or the first element of a tuple or list (auxiliary outputs)."""
    if isinstance(out, Tensor):
        return out
    if isinstance(getattr(out, "logits", None), Tensor):
        return out.logits  # type: ignore[no-any-return]
    if isinstance(out, Mapping):
        for key in ("out", "logits"):
            if isinstance(out.get(key), Tensor):
                return out[key]  # type: ignore[no-any-return]
    if isinstance(out, (tuple, list)) and out:
        return logits_of(out[0])
    raise TypeError(f"bnscope.inspect: cannot find the output tensor in a {type(out).__name__}; pass loss_fn/metric_fn")


def default_scores(out: Tensor, y: Tensor) -> Tuple[Optional[float], Optional[float]]:
    """Classification's mean loss and accuracy of one batch: cross-entropy and arg-max accuracy for `(N, C, ...)`
    logits with integer (or one-hot) labels, binary cross-entropy for one logit per sample with 0/1 labels; else
    (None, None)."""
    out = out.float()
    if out.dim() >= 2 and out.shape[1] > 1:
        target = y.argmax(1) if y.is_floating_point() and y.shape == out.shape else y
        if target.is_floating_point() or target.shape != out.shape[:1] + out.shape[2:]:
            return None, None
        target = target.long()
        loss = nn.functional.cross_entropy(out, target)
        return float(loss), float((out.argmax(1) == target).float().mean())
    if out.numel() == y.numel() == out.shape[0] and bool(((y == 0) | (y == 1)).all()):
        o, t = out.reshape(-1), y.reshape(-1).float()
        loss = nn.functional.binary_cross_entropy_with_logits(o, t)
        return float(loss), float(((o > 0) == (t > 0.5)).float().mean())
    return None, None


def _number(v: Any) -> float:
    return float(v.item() if hasattr(v, "item") else v)


def collect(data: Any, max_samples: int, device: torch.device, batch_size: Optional[int]) -> List[Batch]:
    """At most `max_samples` samples of `data` as `(x, y)` batches on `device` (re-split into `batch_size` ones)."""
    if isinstance(data, Tensor) or (
        isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data)
    ):
        data = [data]
    out: List[Batch] = []
    seen = 0
    for item in data:
        if seen >= max_samples:
            break
        if isinstance(item, Tensor):
            x, y = item, None
        elif isinstance(item, (list, tuple)) and item and isinstance(item[0], Tensor):
            x = item[0]
            y = item[1] if len(item) > 1 else None
            if y is not None and not isinstance(y, Tensor):
                y = torch.as_tensor(y)
        else:
            raise TypeError(
                f"bnscope.inspect: a batch is a tensor or an (x, y) pair of tensors (as update_bn takes), not "
                f"{type(item).__name__}"
            )
        take = min(len(x), max_samples - seen)
        out.append((x[:take].to(device), None if y is None else y[:take].to(device)))
        seen += take
    if not out:
        raise ValueError("bnscope.inspect: no batches in data")
    if batch_size is not None:
        xs = torch.cat([x for x, _ in out])
        ys = None if any(y is None for _, y in out) else torch.cat([y for _, y in out if y is not None])
        out = [
            (xs[i : i + batch_size], None if ys is None else ys[i : i + batch_size])
            for i in range(0, len(xs), batch_size)
        ]
    return out


class TorchBackend(Backend):
    """The passes on a PyTorch model; use as a context manager (it restores the model on exit)."""

    def __init__(
        self,
        model: nn.Module,
        batches: List[Batch],
        loss_fn: Optional[ScoreFn] = None,
        metric_fn: Optional[ScoreFn] = None,
    ) -> None:
        self.model = model
        self.root = unwrap(model)
        named = bn_layers(model)
        self.bn: List[BatchNorm] = [m for _, m in named]
        self.layers = [
            Layer(
                name,
                int(m.num_features),
                float(m.eps),
                dtype=dtype_str(m.running_mean.dtype) if m.running_mean is not None else None,
                tracks=m.running_mean is not None and m.running_var is not None,
            )
            for name, m in named
        ]
        self.batches = batches
        self.samples = sum(len(x) for x, _ in batches)
        self.batch_sizes = [len(x) for x, _ in batches]
        y0 = batches[0][1]
        self.labels = (
            [int(v) for y in (y for _, y in batches) if y is not None for v in y.tolist()]
            if y0 is not None and y0.dim() == 1 and not y0.is_floating_point()
            else []
        )
        self.loss_fn, self.metric_fn = loss_fn, metric_fn
        self._order: List[int] = []
        self._n: Dict[int, int] = {}
        self._recording = False
        self._saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False)} for m in self.bn]

    # --- the model's state -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def opened(self) -> Iterator["TorchBackend"]:
        """Hooks that note the forward order and the values per channel; on exit everything restored."""
        modes = [(module, module.training) for module in self.model.modules()]
        attrs = [(m, m.momentum, m.track_running_stats) for m in self.bn]
        handles = [m.register_forward_pre_hook(self._pre_hook(i)) for i, m in enumerate(self.bn)]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
            self.restore()
            for m, momentum, track in attrs:
                m.momentum, m.track_running_stats = momentum, track
            for module, training in modes:
                module.training = training

    def _pre_hook(self, i: int) -> Callable[[nn.Module, Tuple[Any, ...]], None]:
        def hook(module: nn.Module, inputs: Tuple[Any, ...]) -> None:
            if not self._recording:
                return
            x = inputs[0]
            if i not in self._n:
                self._order.append(i)
            n = x.numel() // x.shape[1] if x.dim() > 1 else x.numel()
            self._n[i] = min(n, self._n.get(i, n))

        return hook

    def restore(self) -> None:
        with torch.no_grad():
            for m, buffers in zip(self.bn, self._saved):
                for key, b in buffers.items():
                    getattr(m, key).copy_(b)

    # --- the passes ----------------------------------------------------------------------------------------------

    def evaluate(self, batch_layers: Collection[int], limit: Optional[int] = None, logits: int = 0) -> Score:
        switched = [self.bn[i] for i in batch_layers]
        tracks = [m.track_running_stats for m in switched]
        self.root.eval()
        for m in switched:
            m.train()
            m.track_running_stats = False  # batch statistics, and no update of the running ones
        self._recording = limit is None
        sums = Sums()
        try:
            with torch.no_grad():
                for x, y in self.batches:
                    if limit is not None:
                        if sums.n >= limit:
                            break
                        x, y = x[: limit - sums.n], None if y is None else y[: limit - sums.n]
                    out = logits_of(self.root(x))
                    loss, acc = self._score(out, y)
                    if len(sums.logits) < logits and out.dim() == 2:
                        sums.logits.extend(host(row) for row in out[: logits - len(sums.logits)])
                    sums.add(len(x), loss, acc)
        finally:
            self._recording = False
            for m, track in zip(switched, tracks):
                m.track_running_stats = track
                m.eval()
        return sums.score()

    def _score(self, out: Tensor, y: Optional[Tensor]) -> Tuple[Optional[float], Optional[float]]:
        if y is None:
            return None, None
        loss, acc = default_scores(out, y) if self.loss_fn is None or self.metric_fn is None else (None, None)
        if self.loss_fn is not None:
            loss = _number(self.loss_fn(out, y))
        if self.metric_fn is not None:
            acc = _number(self.metric_fn(out, y))
        return loss, acc

    def order(self) -> List[int]:
        return list(self._order)

    def min_n(self) -> Dict[int, int]:
        return dict(self._n)

    def recalibrate(self, seed: Optional[int] = None) -> None:
        batches = self.batches if seed is None else self._split(seed)
        layers = [m for m, layer in zip(self.bn, self.layers) if layer.tracks]
        momenta = [m.momentum for m in layers]
        self.root.eval()
        with torch.no_grad():
            for m in layers:
                m.reset_running_stats()
                m.momentum = None  # the cumulative average, as update_bn
                m.train()
            try:
                for x, _ in batches:
                    self.root(x)
            finally:
                for m, momentum in zip(layers, momenta):
                    m.momentum = momentum
                    m.eval()

    def can_shuffle(self) -> Optional[str]:
        shapes = {tuple(x.shape[1:]) for x, _ in self.batches}
        return None if len(shapes) == 1 else "the batches' inputs differ in shape: they cannot be re-split"

    def _split(self, seed: int) -> List[Batch]:
        xs = torch.cat([x for x, _ in self.batches])
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(xs), generator=g).to(xs.device)
        shuffled = xs[perm]
        out: List[Batch] = []
        start = 0
        for size in self.batch_sizes:
            out.append((shuffled[start : start + size], None))
            start += size
        return out

    def stats(self) -> List[Tuple[List[float], List[float]]]:
        return [
            (host(m.running_mean), host(m.running_var))
            if m.running_mean is not None and m.running_var is not None
            else ([], [])
            for m in self.bn
        ]

    def nonfinite_weight(self) -> Optional[str]:
        running = {id(b) for m in self.bn for b in m.buffers(recurse=False)}
        for name, t in [*self.root.named_parameters(), *self.root.named_buffers()]:
            if id(t) not in running and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return name
        return None

    def tracked(self) -> Optional[int]:
        for m in self.bn:
            if m.num_batches_tracked is not None:
                return int(m.num_batches_tracked)
        return None


def inspect(
    model: nn.Module,
    data: Iterable[Any],
    path: Optional[PathLike] = None,
    *,
    loss_fn: Optional[ScoreFn] = None,
    metric_fn: Optional[ScoreFn] = None,
    max_samples: int = 512,
    batch_size: Optional[int] = None,
    shuffles: int = 5,
    blame: bool = True,
    blame_samples: int = 128,
    logits: int = 32,
    progress: Optional[bool] = None,
    arrays: bool = True,
    info: Optional[Mapping[str, Any]] = None,
) -> Report:
    """Looks at `model`'s BatchNorm layers on `data` without training: evaluation with running statistics, with
    each batch's own statistics and after a recalibration on the data; per-layer gaps between the running statistics
    and the data's; which layers carry the gap (blame); the recalibration's spread over `shuffles` re-splits of the
    samples; a diagnosis in words. Nothing of the model changes.

    `data`: an iterable of batches as `torch.optim.swa_utils.update_bn` takes (a tensor, or `(x, y)`; labels are
    needed for loss and accuracy); at most `max_samples` samples are used, in the data's batches or re-split into
    `batch_size` ones. `loss_fn(logits, y)` / `metric_fn(logits, y)` return a batch's mean (default: classification,
    cross-entropy and accuracy). The blame pass makes two evaluations per layer on the first `blame_samples` samples
    (`blame=False` skips it); `progress` prints its progress to stderr (None: only when it takes long). `logits`:
    how many samples' logits each evaluation keeps. With `path`, writes the report as a bnscope log: a `run` record,
    the `inspect` record (`arrays=False`: without the per-channel arrays) and an `end` record; `info` adds `run`
    fields."""
    root = unwrap(model)
    if not bn_layers(model):
        raise ValueError(f"{type(root).__name__} has no BatchNorm layers to inspect")
    if uninitialized(root):
        raise ValueError(
            "bnscope.inspect: the model has lazy layers that have not run yet (no sizes, no statistics): call it once "
            "on a batch first"
        )
    first = next(iter([*root.parameters(), *root.buffers()]), None)
    device = first.device if first is not None else torch.device("cpu")
    batches = collect(data, max_samples, device, batch_size)
    backend = TorchBackend(model, batches, loss_fn, metric_fn)
    with backend.opened():
        report = examine(
            backend,
            source="torch",
            model=type(root).__name__,
            shuffles=shuffles,
            blame=blame,
            blame_samples=blame_samples,
            logits_cap=logits,
            progress=progress,
        )
    if path is not None:
        write(model, path, report, arrays, info)
    return report


def write(model: nn.Module, path: PathLike, report: Report, arrays: bool, info: Optional[Mapping[str, Any]]) -> None:
    """The report as a bnscope log: `run` (written by a `Scope`, as `watch` does), `inspect`, `end`."""
    extra: Dict[str, Any] = {"images": report.samples}
    if report.labels:
        extra["labels"] = report.labels
    extra.update(info or {})
    scope = Scope(model, path, info=extra)
    try:
        scope._log.write(report.record(arrays))
    except BaseException as e:
        scope.close("error", f"{type(e).__name__}: {e}")
        raise
    scope.close()
