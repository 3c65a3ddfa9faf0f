"""Keras 3: `KerasCallback("run.jsonl", eval_data=(x, y))` for `model.fit` (docs/LOG_FORMAT.md).

Each epoch: train loss/accuracy from fit's logs, every BatchNormalization layer's moving statistics and, with
`eval_data`, the accuracy and loss with the moving statistics (`model(x, training=False)`) and with the batch's own
statistics (`model(x, training=True)` with each layer's momentum set to 0 so that its moving statistics become
exactly that batch's statistics, which are read and then restored, with the momentum). `eval_data` goes through the
model as one batch. `training=True` also switches Dropout on, as Keras' `learning_phase=1` did.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import keras
import numpy as np

from ._control import Command, Control, Refused
from ._log import (SCHEMA, JsonlWriter, PathLike, Record, add_info, check_info, check_options, check_path, common,
                   encode, gap, metric, probe_log, short)

Stats = Dict[str, Tuple[np.ndarray, np.ndarray]]
ACC_KEYS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")
MAX_PREDICTIONS = 32


def bn_layers(model: Any) -> List[Tuple[str, Any]]:
    """Every BatchNormalization layer, nested models and layers included (`outer/inner` names for those)."""
    out: List[Tuple[str, Any]] = []
    seen: Set[int] = set()

    def walk(layer: Any, prefix: str) -> None:
        for sub in layer._flatten_layers(include_self=False, recursive=False):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if isinstance(sub, keras.layers.BatchNormalization):
                out.append((prefix + sub.name, sub))
            walk(sub, f"{prefix}{sub.name}/")

    walk(model, "")
    return out


def numpy(x: Any) -> np.ndarray:
    if isinstance(x, keras.Variable):
        x = x.value
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def class_indices(y: Any, classes: int) -> np.ndarray:
    """Integer labels from integer or one-hot `y`."""
    y = np.asarray(y)
    out: np.ndarray = y.argmax(-1) if y.ndim > 1 and y.shape[-1] == classes > 1 else y.reshape(-1).astype(int)
    return out


def probabilities(p: np.ndarray) -> np.ndarray:
    """Rows of class probabilities: the model's output if it already is one, else its softmax."""
    if (p >= 0).all() and np.allclose(p.sum(-1), 1.0, atol=1e-3):
        return p
    e = np.exp(p - p.max(-1, keepdims=True))
    out: np.ndarray = e / e.sum(-1, keepdims=True)
    return out


def retrace(model: Any) -> None:
    """Makes fit use the layers' new momentum. The torch backend reads `layer.momentum` at every step, also under
    `jit_compile` (torch.compile guards on it), so nothing is needed. JAX (and TensorFlow) trace the train function
    with the value as a constant, so it is rebuilt: verified with JAX 0.10 (without it, a jit-compiled fit goes on
    with the old momentum); TensorFlow is not verified (not installed where this was tested)."""
    if keras.backend.backend() != "torch" and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


@contextlib.contextmanager
def state_sync(model: Any) -> Iterator[None]:
    """Around reading or assigning variables from a callback: under JAX, fit keeps the state outside the model's
    variables; sync it in before and make fit take it back after (Keras 3.15 also syncs whenever a callback reads
    `self.model`, which this callback does)."""
    sync = getattr(model, "jax_state_sync", None)
    if keras.backend.backend() == "jax" and callable(sync):
        sync()
        try:
            yield
        finally:
            model._jax_state_synced = True
    else:
        yield


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """No autograd for the torch backend's eager forwards (Keras' own calls record it)."""
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            yield
    else:
        yield


class KerasCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Writes the bnscope log of `model.fit`. A second `fit` appends a new `run` to the same file."""

    def __init__(
        self,
        path: PathLike,
        eval_data: Optional[Tuple[Any, Any]] = None,
        *,
        log_bn: str = "full",
        momentum_note: Optional[str] = None,
        info: Optional[Mapping[str, Any]] = None,
        overwrite: bool = False,
        control: bool = False,
        recalibrate: Any = None,
        recalibrate_batch_size: int = 32,
    ) -> None:
        super().__init__()
        # Every argument is checked here, before fit; the file is opened (and re-checked) when fit begins.
        self.path = check_path(path)
        check_options(log_bn, momentum_note, overwrite)
        self.info = check_info(info)
        if eval_data is not None and not (isinstance(eval_data, (tuple, list)) and len(eval_data) == 2):
            raise ValueError("eval_data: an (x, y) pair")
        if not isinstance(control, bool):
            raise ValueError(f"control={control!r}: must be True or False")
        if isinstance(recalibrate_batch_size, bool) or not isinstance(recalibrate_batch_size, int) \
                or recalibrate_batch_size < 1:
            raise ValueError(f"recalibrate_batch_size={recalibrate_batch_size!r}: a positive int")
        if recalibrate is not None:
            if isinstance(recalibrate, (tuple, list)) and recalibrate and hasattr(recalibrate[0], "shape"):
                recalibrate = recalibrate[0]  # (x, y): the inputs
            if not hasattr(recalibrate, "shape") or not getattr(recalibrate, "shape", ()) or len(recalibrate) < 1:
                raise ValueError("recalibrate: an array of inputs (N, ...) or an (x, y) pair, N >= 1")
        probe_log(self.path, overwrite)  # a file that fit would refuse is refused now
        self.eval_data = eval_data
        self.log_bn = log_bn
        self.momentum_note = momentum_note
        self.overwrite = overwrite
        self.control_on = control
        self.recalibrate_data = recalibrate
        self.recalibrate_batch_size = recalibrate_batch_size
        self.control: Optional[Control] = None
        self.epochs = 0
        self.layers: List[Tuple[str, Any]] = []
        self._log: Optional[JsonlWriter] = None
        self._opened = False
        self._thread = 0
        self._times: List[float] = []
        self._t0 = 0.0
        self._saved_momenta: Optional[List[float]] = None  # from before `cumulative on`
        self._k = 0  # cumulative: this batch is the k-th update since `on` (or since a reset: k from 0)

    # --- fit's hooks ---------------------------------------------------------------------------------------------

    def on_train_begin(self, logs: Optional[Mapping[str, Any]] = None) -> None:
        self._end_stale("fit began again before the previous fit's end (it raised or was interrupted)")
        self.layers = bn_layers(self.model)
        self._saved_momenta, self._k = None, 0
        self.epochs = 0
        run = self._run_record()
        encode(run)
        # Only the first fit may empty the file (overwrite=True); later ones append a new run.
        self._log = JsonlWriter(self.path, overwrite=self.overwrite and not self._opened,
                                owner="a bnscope.KerasCallback", reclaim=self._reclaim)
        self._opened = True
        self._thread = threading.get_ident()
        try:
            if self.control_on:
                self.control = Control(self.path, self._apply, self._event,
                                       recalibrate=self.recalibrate_data is not None,
                                       evaluate=self.eval_data is not None)
                run["control"] = self.control.info
            self._log.write(run)
        except BaseException:
            if self.control is not None:
                self.control.close()
                self.control = None
            self._log.close()
            self._log = None
            raise

    def _reclaim(self) -> bool:
        """Another writer of this process wants our file. If it runs in the thread our fit ran in, our fit is over
        (it raised: Keras calls no on_train_end then), so we end our run and let go."""
        if self._log is None or self._thread != threading.get_ident():
            return False
        self._end_stale("another KerasCallback began writing this log after this fit raised or was interrupted")
        return True

    def _end_stale(self, why: str) -> None:
        if self._log is not None and not self._log.closed:
            with contextlib.suppress(Exception):
                self._log.write({"type": "end", "epochs": self.epochs, "reason": "error", "message": why})
            self._close()

    def _close(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def on_epoch_begin(self, epoch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        self._times = []

    def on_train_batch_begin(self, batch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        if self.control is not None:
            self.control.boundary()  # applies commands, blocks while paused; never raises (but KeyboardInterrupt)
            if self._saved_momenta is not None:
                try:
                    self._set_momenta(self._k / (self._k + 1))  # cumulative, emulated: the k-th update since on
                    self._k += 1
                except Exception as e:
                    self._saved_momenta = None
                    self.control.emit({"step": self.control.step - 1, "what": "refused", "reason":
                                       f"cumulative stopped: {type(e).__name__}: {e}", "source": "control"})
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        self._times.append(time.perf_counter() - self._t0)

    def on_epoch_end(self, epoch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        if self._log is None:
            return
        logs = logs or {}
        self.epochs = epoch + 1
        rec: Record = {"type": "epoch", "epoch": self.epochs}
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        if iterations is not None:
            rec["step"] = int(numpy(iterations))
        rec.update(self._momentum())
        acc = next((logs[k] for k in ACC_KEYS if k in logs), None)
        train = metric({"loss": logs.get("loss"), "acc": acc})
        if train:
            rec["train"] = train
        stats: Optional[Stats] = None
        if self.eval_data is not None:
            x, y = self.eval_data
            running = numpy(self.model(x, training=False))
            batch, stats = self.batch_pass(x)
            for key, p in (("running", running), ("batch", batch)):
                rec[f"eval_{key}"] = self._score(y, p)
                if p.ndim == 2 and p.shape[1] > 1:
                    rec[f"predictions_{key}"] = [short(r) for r in probabilities(p[:MAX_PREDICTIONS]).tolist()]
        if self._times:
            rec["step_ms"] = 1000.0 * sum(self._times) / len(self._times)
        self._log.write(rec)
        self._log.write(self._bn_record(stats))

    def on_train_end(self, logs: Optional[Mapping[str, Any]] = None) -> None:
        if self._saved_momenta is not None:  # a cumulative average stops with the fit: the momenta from before
            self._set_momenta(self._saved_momenta)
            self._saved_momenta = None
        try:
            if self._log is not None:
                self._log.write({"type": "end", "epochs": self.epochs, "reason": "done"})
        finally:
            self._close()

    # --- the control channel's commands (docs/CONTROL.md) --------------------------------------------------------

    def _event(self, fields: Record) -> None:
        if self._log is not None:
            self._log.write({"type": "event", "epoch": self.epochs, **fields})

    def _set_momenta(self, momenta: Union[float, Sequence[float]]) -> None:
        values = [momenta] * len(self.layers) if isinstance(momenta, float) else list(momenta)
        for (_, layer), m in zip(self.layers, values):
            layer.momentum = float(m)
        retrace(self.model)

    def _apply(self, cmd: Command) -> Record:
        if cmd.verb == "momentum":
            assert isinstance(cmd.value, float)
            self._saved_momenta = None
            self._set_momenta(cmd.value)
            return {"value": cmd.value}
        if cmd.verb == "cumulative":
            if cmd.value:
                if self._saved_momenta is None:
                    self._saved_momenta, self._k = [float(layer.momentum) for _, layer in self.layers], 1
                return {"value": True}
            if self._saved_momenta is None:
                raise Refused("cumulative is not on")
            saved, self._saved_momenta = self._saved_momenta, None
            self._set_momenta(saved)
            return {"value": False}
        if cmd.verb == "reset":
            with state_sync(self.model):
                for _, layer in self.layers:
                    layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, dtype="float32"))
                    layer.moving_variance.assign(np.ones(layer.moving_variance.shape, dtype="float32"))
            self._k = 0  # a cumulative average starts again with the next batch
            return {}
        if cmd.verb == "recalibrate":
            n = self.recalibrate()
            return {"value": f"{n} batch" if n == 1 else f"{n} batches"}
        if cmd.verb == "evaluate":
            assert self.eval_data is not None
            x, y = self.eval_data
            with state_sync(self.model):
                running = numpy(self.model(x, training=False))
                batch, _ = self.batch_pass(x)
            return {"eval_running": self._score(y, running), "eval_batch": self._score(y, batch)}
        raise Refused(f"{cmd.verb} is not a model command")  # pragma: no cover (Control handles the others)

    def recalibrate(self) -> int:
        """The moving statistics recomputed from the `recalibrate` data: mean 0 / variance 1, then
        `model(x, training=True)` on each batch with momentum k/(k+1) for the k-th (k from 0), so that they end as
        the plain average of the batches' statistics (biased variances, as Keras' own); the momenta restored. The
        statistics are put back if it fails. Returns the number of batches."""
        x = self.recalibrate_data
        assert x is not None
        size = self.recalibrate_batch_size
        saved = [(layer, layer.momentum, numpy(layer.moving_mean), numpy(layer.moving_variance))
                 for _, layer in self.layers]
        batches = 0
        try:
            with state_sync(self.model):
                for layer, *_ in saved:
                    layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, dtype="float32"))
                    layer.moving_variance.assign(np.ones(layer.moving_variance.shape, dtype="float32"))
                for start in range(0, len(x), size):
                    for layer, *_ in saved:
                        layer.momentum = batches / (batches + 1)
                    with no_grad():
                        self.model(x[start:start + size], training=True)
                    batches += 1
        except BaseException:
            with state_sync(self.model):
                for layer, _, mean, var in saved:
                    layer.moving_mean.assign(mean.astype(np.float32))
                    layer.moving_variance.assign(var.astype(np.float32))
            raise
        finally:
            for layer, momentum, *_ in saved:
                layer.momentum = momentum
        if self._saved_momenta is not None:
            self._k = batches  # cumulative goes on from the average of these batches
        return batches

    # --- measurements --------------------------------------------------------------------------------------------

    def batch_pass(self, x: Any) -> Tuple[np.ndarray, Stats]:
        """The model's output on `x` with batch statistics, and each layer's batch mean and (biased) variance;
        the moving statistics are left as they were."""
        saved = [(layer, layer.momentum, numpy(layer.moving_mean), numpy(layer.moving_variance))
                 for _, layer in self.layers]
        try:
            for layer, *_ in saved:
                layer.momentum = 0.0  # moving = 0·moving + 1·batch: exactly the batch's statistics
            out = numpy(self.model(x, training=True))
            # Frozen layers normalise with their moving statistics even in training; renorm updates differently.
            stats = {name: (numpy(layer.moving_mean), numpy(layer.moving_variance))
                     for name, layer in self.layers if layer.trainable and not getattr(layer, "renorm", False)}
        finally:
            for layer, momentum, mean, var in saved:
                layer.momentum = momentum
                layer.moving_mean.assign(mean.astype(np.float32))
                layer.moving_variance.assign(var.astype(np.float32))
        return out, stats

    def _score(self, y: Any, p: np.ndarray) -> Record:
        out: Record = {}
        loss_fn = getattr(self.model, "loss", None)
        if isinstance(loss_fn, str) or callable(loss_fn):
            try:
                out["loss"] = float(np.mean(numpy(keras.losses.get(loss_fn)(y, p.astype(np.float32)))))
            except Exception:  # a loss we cannot call on (y, p) alone: the loss stays "not in this log"
                pass
        if p.ndim == 2 and p.shape[1] > 1:
            out["acc"] = float(np.mean(p.argmax(-1) == class_indices(y, p.shape[1])))
        else:
            out["acc"] = float(np.mean((p.reshape(-1) > 0.5) == (np.asarray(y).reshape(-1) > 0.5)))
        return out

    # --- records -------------------------------------------------------------------------------------------------

    def _momentum(self) -> Record:
        if self._saved_momenta is not None:
            return {"cumulative": True}
        shared = common([float(layer.momentum) for _, layer in self.layers])
        return {"cumulative": False} if shared is None else {"momentum": shared, "cumulative": False}

    def _run_record(self) -> Record:
        rec: Record = {
            "type": "run",
            "schema": SCHEMA,
            "source": "keras",
            "framework": "keras",
            "framework_version": keras.__version__,
            "backend": keras.backend.backend(),
            "convention": "keras",
            "model": self.model.name,
            "params": int(self.model.count_params()),
            "bn_variance": "biased",
            "bn_layers": [
                {"name": n, "channels": int(np.prod(layer.moving_mean.shape)), "eps": float(layer.epsilon),
                 "momentum": float(layer.momentum)}
                for n, layer in self.layers
            ],
        }
        eps = common([float(layer.epsilon) for _, layer in self.layers])
        if eps is not None:
            rec["bn_eps"] = eps
        rec.update(self._momentum())
        if self.eval_data is not None:
            y = np.asarray(self.eval_data[1])
            rec["images"] = int(len(y))
            classes = y.shape[-1] if y.ndim > 1 else int(y.max()) + 1
            rec["labels"] = class_indices(y, classes)[:MAX_PREDICTIONS].tolist()
        if self.momentum_note is not None:
            rec["momentum_note"] = self.momentum_note
        add_info(rec, self.info)
        return rec

    def _bn_record(self, stats: Optional[Stats]) -> Record:
        layers = []
        for name, layer in self.layers:
            entry: Record = {"name": name, "channels": int(np.prod(layer.moving_mean.shape)),
                             "momentum": float(layer.momentum)}
            arrays = {"running_mean": numpy(layer.moving_mean).ravel().tolist(),
                      "running_var": numpy(layer.moving_variance).ravel().tolist()}
            if stats is not None and name in stats:
                arrays["batch_mean"], arrays["batch_var"] = (a.ravel().tolist() for a in stats[name])
                entry["mean_gap"] = gap(arrays["running_mean"], arrays["batch_mean"])
                entry["var_gap"] = gap(arrays["running_var"], arrays["batch_var"])
                n = self._values_per_channel(layer)
                if n is not None:
                    entry["n"] = n
            if self.log_bn == "full":
                entry.update({k: short(v) for k, v in arrays.items()})
            layers.append(entry)
        rec: Record = {"type": "bn", "epoch": self.epochs, "layers": layers}
        if stats is not None:
            rec["batch"] = "eval_data"
        return rec

    def _values_per_channel(self, layer: Any) -> Optional[int]:
        """N·H·W of the eval batch at this layer, where the layer's input shape is known (functional models)."""
        try:
            shape = list(layer.input.shape)
        except Exception:
            return None
        axis = layer.axis % len(shape)
        rest = [s for i, s in enumerate(shape) if i not in (0, axis)]
        if any(s is None for s in rest):
            return None
        return int(len(self.eval_data[0]) * np.prod(rest)) if self.eval_data is not None else None
