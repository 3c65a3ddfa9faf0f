"""Keras 3: `bnscope.keras_inspect(model, x, y)`: any model with BatchNormalization layers looked at on the data,
without training and without changing anything of it (see `_report` for the passes and the diagnosis).

Every pass calls `model(x_batch, training=False)` (Dropout and the like off) while each BatchNormalization layer's
`call` is wrapped, for the duration of `keras_inspect` only, so that the layers a pass puts on batch statistics run
with `training=True`; the moving statistics they update are put back after the pass. The recalibration resets the
moving statistics to (0, 1) and averages over the batches (momentum `(i−1)/i` at the i-th batch). Frozen layers
(`trainable=False`) normalise with their moving statistics even in training: they are not switched or recalibrated
(`tracks: false` in the report). Afterwards every moving statistic, momentum and `call` is what it was.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Collection, ContextManager, Dict, Iterator, List, Mapping, Optional, Tuple

import keras
import numpy as np

from ._keras import KerasCallback, bn_layers, class_indices, probabilities
from ._log import PathLike
from ._report import Backend, Layer, Report, Score, Sums, examine

ScoreFn = Callable[[Any, Any], Any]


def _raw(variable: Any) -> np.ndarray:
    """A variable's value in its own dtype (for a bit-identical restore)."""
    return np.array(keras.ops.convert_to_numpy(variable.value))


def _f64(x: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def default_scores(y: np.ndarray, p: np.ndarray) -> Tuple[Optional[float], Optional[float]]:
    """Classification's mean loss and accuracy of one batch: `(N, C)` outputs (probabilities, or logits that get a
    softmax) with integer or one-hot labels, or one output per sample (a probability, or a logit) with 0/1 labels."""
    if p.ndim == 2 and p.shape[1] > 1:
        labels = class_indices(y, p.shape[1])
        if len(labels) != len(p):
            return None, None
        prob = probabilities(p)
        loss = -np.log(np.clip(prob[np.arange(len(p)), labels], 1e-7, 1.0))
        return float(loss.mean()), float(np.mean(p.argmax(-1) == labels))
    flat, t = p.reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if len(flat) == len(t) == len(p) and np.isin(t, (0.0, 1.0)).all():
        prob = flat if ((flat >= 0) & (flat <= 1)).all() else 1.0 / (1.0 + np.exp(-flat))
        prob = np.clip(prob, 1e-7, 1 - 1e-7)
        loss = -(t * np.log(prob) + (1 - t) * np.log(1 - prob))
        return float(loss.mean()), float(np.mean((prob > 0.5) == (t > 0.5)))
    return None, None


def _no_grad() -> ContextManager[Any]:
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


class KerasBackend(Backend):
    """The passes on a Keras model; use `opened()` (it restores the model on exit)."""

    def __init__(
        self,
        model: Any,
        batches: List[Tuple[np.ndarray, Optional[np.ndarray]]],
        loss_fn: Optional[ScoreFn] = None,
        metric_fn: Optional[ScoreFn] = None,
    ) -> None:
        self.model = model
        named = bn_layers(model)
        self.bn = [layer for _, layer in named]
        self.layers = [
            Layer(
                name,
                int(np.prod(layer.moving_mean.shape)),
                float(layer.epsilon),
                dtype=str(layer.moving_mean.dtype),
                tracks=bool(layer.trainable) and not getattr(layer, "renorm", False),
            )
            for name, layer in named
        ]
        self.batches = batches
        self.samples = sum(len(x) for x, _ in batches)
        self.batch_sizes = [len(x) for x, _ in batches]
        y0 = batches[0][1]
        self.labels = (
            [int(v) for _, y in batches if y is not None for v in np.asarray(y).reshape(-1)]
            if y0 is not None and np.asarray(y0).ndim == 1 and np.issubdtype(np.asarray(y0).dtype, np.integer)
            else []
        )
        self.loss_fn, self.metric_fn = loss_fn, metric_fn
        self.compiled_loss = self._compiled_loss()
        self.mode = [False] * len(self.bn)
        self._order: List[int] = []
        self._n: Dict[int, int] = {}
        self._recording = False
        self._saved = [(_raw(layer.moving_mean), _raw(layer.moving_variance)) for layer in self.bn]

    def _compiled_loss(self) -> Optional[Any]:
        loss = getattr(self.model, "loss", None)
        if isinstance(loss, str) or callable(loss):
            try:
                return keras.losses.get(loss)
            except (ValueError, TypeError):
                return None
        return None

    @contextlib.contextmanager
    def opened(self) -> Iterator["KerasBackend"]:
        momenta = [layer.momentum for layer in self.bn]
        had_call = ["call" in vars(layer) for layer in self.bn]
        for i, layer in enumerate(self.bn):
            object.__setattr__(layer, "call", self._wrap(i, layer.call))
        try:
            yield self
        finally:
            for layer, had in zip(self.bn, had_call):
                if not had:
                    object.__delattr__(layer, "call")
            for layer, momentum in zip(self.bn, momenta):
                layer.momentum = momentum
            self.restore()

    def _wrap(self, i: int, call: Callable[..., Any]) -> Callable[..., Any]:
        axis = self.bn[i].axis

        def wrapped(inputs: Any, *args: Any, training: Any = None, **kwargs: Any) -> Any:
            if self._recording:
                shape = [int(s) for s in inputs.shape]
                if i not in self._n:
                    self._order.append(i)
                n = int(np.prod([s for k, s in enumerate(shape) if k != axis % len(shape)]))
                self._n[i] = min(n, self._n.get(i, n))
            return call(inputs, *args, training=self.mode[i], **kwargs)

        return wrapped

    def restore(self) -> None:
        for layer, (mean, var) in zip(self.bn, self._saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(var)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        with _no_grad():
            return _f64(self.model(x, training=False))

    def evaluate(self, batch_layers: Collection[int], limit: Optional[int] = None, logits: int = 0) -> Score:
        for i in batch_layers:
            self.mode[i] = True
        self._recording = limit is None
        sums = Sums()
        try:
            for x, y in self.batches:
                if limit is not None:
                    if sums.n >= limit:
                        break
                    x, y = x[: limit - sums.n], None if y is None else y[: limit - sums.n]
                p = self._forward(x)
                loss, acc = self._score(y, p)
                if len(sums.logits) < logits and p.ndim == 2:
                    sums.logits.extend(row.tolist() for row in p[: logits - len(sums.logits)])
                sums.add(len(x), loss, acc)
        finally:
            self._recording = False
            self.mode = [False] * len(self.bn)
            if batch_layers:
                self.restore()  # training=True moved the moving statistics of the switched layers
        return sums.score()

    def _score(self, y: Optional[np.ndarray], p: np.ndarray) -> Tuple[Optional[float], Optional[float]]:
        if y is None:
            return None, None
        loss, acc = default_scores(y, p) if self.loss_fn is None or self.metric_fn is None else (None, None)
        if self.loss_fn is not None:
            loss = float(np.mean(_f64(self.loss_fn(y, p.astype(np.float32)))))
        elif self.compiled_loss is not None:
            try:
                loss = float(np.mean(_f64(self.compiled_loss(y, p.astype(np.float32)))))
            except Exception:  # a compiled loss that cannot be called on (y, p) alone: the default stays
                pass
        if self.metric_fn is not None:
            acc = float(np.mean(_f64(self.metric_fn(y, p.astype(np.float32)))))
        return loss, acc

    def order(self) -> List[int]:
        return list(self._order)

    def min_n(self) -> Dict[int, int]:
        return dict(self._n)

    def recalibrate(self, seed: Optional[int] = None) -> None:
        batches = self.batches if seed is None else self._split(seed)
        tracked = [i for i, layer in enumerate(self.layers) if layer.tracks]
        momenta = [self.bn[i].momentum for i in tracked]
        for i in tracked:
            layer = self.bn[i]
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, dtype="float32"))
            layer.moving_variance.assign(np.ones(layer.moving_variance.shape, dtype="float32"))
            self.mode[i] = True
        try:
            for k, (x, _) in enumerate(batches, start=1):
                for i in tracked:
                    self.bn[i].momentum = (k - 1) / k  # moving = the average of the k batches so far
                self._forward(x)
        finally:
            self.mode = [False] * len(self.bn)
            for i, momentum in zip(tracked, momenta):
                self.bn[i].momentum = momentum

    def _split(self, seed: int) -> List[Tuple[np.ndarray, Optional[np.ndarray]]]:
        xs = np.concatenate([x for x, _ in self.batches])
        perm = np.random.default_rng(seed).permutation(len(xs))
        out: List[Tuple[np.ndarray, Optional[np.ndarray]]] = []
        start = 0
        for size in self.batch_sizes:
            out.append((xs[perm[start : start + size]], None))
            start += size
        return out

    def stats(self) -> List[Tuple[List[float], List[float]]]:
        return [
            (_f64(layer.moving_mean.value).ravel().tolist(), _f64(layer.moving_variance.value).ravel().tolist())
            for layer in self.bn
        ]

    def nonfinite_weight(self) -> Optional[str]:
        moving = {id(v) for layer in self.bn for v in (layer.moving_mean, layer.moving_variance)}
        for w in self.model.weights:
            if id(w) not in moving and not np.isfinite(_f64(w.value)).all():
                return str(getattr(w, "path", w.name))
        return None


def split(x: Any, y: Any, max_samples: int, batch_size: int) -> List[Tuple[np.ndarray, Optional[np.ndarray]]]:
    """At most `max_samples` samples of `x` (and `y`) in batches of `batch_size`."""
    xs = np.asarray(keras.ops.convert_to_numpy(x))[:max_samples]
    ys = None if y is None else np.asarray(keras.ops.convert_to_numpy(y))[:max_samples]
    if len(xs) == 0:
        raise ValueError("bnscope.keras_inspect: no samples in x")
    return [
        (xs[i : i + batch_size], None if ys is None else ys[i : i + batch_size]) for i in range(0, len(xs), batch_size)
    ]


def keras_inspect(
    model: Any,
    x: Any,
    y: Any = None,
    path: Optional[PathLike] = None,
    *,
    batch_size: int = 32,
    loss_fn: Optional[ScoreFn] = None,
    metric_fn: Optional[ScoreFn] = None,
    max_samples: int = 512,
    shuffles: int = 5,
    blame: bool = True,
    blame_samples: int = 128,
    logits: int = 32,
    progress: Optional[bool] = None,
    arrays: bool = True,
    info: Optional[Mapping[str, Any]] = None,
) -> Report:
    """Looks at a Keras 3 model's BatchNormalization layers on `(x, y)` without training: evaluation with the moving
    statistics, with each batch's own statistics and after a recalibration on the data; per-layer gaps; blame; the
    recalibration's spread over `shuffles` re-splits; a diagnosis in words. Nothing of the model changes.

    At most `max_samples` samples, in batches of `batch_size`. `loss_fn(y_true, y_pred)` / `metric_fn(y_true,
    y_pred)` in Keras' argument order (a Keras loss or metric function works); by default the compiled loss if the
    model has one, else classification's cross-entropy, and accuracy. The other arguments are `bnscope.inspect`'s.
    With `path`, writes a bnscope log: `run` (as `KerasCallback` writes it), `inspect`, `end`."""
    if not bn_layers(model):
        raise ValueError(f"{model.name} has no BatchNormalization layers to inspect")
    backend = KerasBackend(model, split(x, y, max_samples, batch_size), loss_fn, metric_fn)
    with backend.opened():
        report = examine(
            backend,
            source="keras",
            model=str(model.name),
            shuffles=shuffles,
            blame=blame,
            blame_samples=blame_samples,
            logits_cap=logits,
            progress=progress,
        )
    if path is not None:
        write(model, path, report, arrays, info)
    return report


def write(model: Any, path: PathLike, report: Report, arrays: bool, info: Optional[Mapping[str, Any]]) -> None:
    """The report as a bnscope log: `run` (written by a `KerasCallback`, as in `fit`), `inspect`, `end`."""
    extra: Dict[str, Any] = {"images": report.samples}
    if report.labels:
        extra["labels"] = report.labels
    extra.update(info or {})
    callback = KerasCallback(path, info=extra)
    callback.set_model(model)
    callback.on_train_begin()
    assert callback._log is not None
    try:
        callback._log.write(report.record(arrays))
    finally:
        callback.on_train_end()
