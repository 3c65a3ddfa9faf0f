"""The control channel on Keras 3 (torch backend unless KERAS_BACKEND says otherwise): commands appended to the file
as the TUI does, applied in the callback's on_train_batch_begin."""
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

import bnscope  # noqa: E402
import logspec  # noqa: E402
from test_control import send  # noqa: E402
from test_log import deadline  # noqa: E402

rng = np.random.default_rng(0)
X = (rng.random((24, 8, 8, 3)) * 2 + np.arange(24).reshape(24, 1, 1, 1) / 8).astype("float32")
Y = np.arange(24) % 3


def small(jit_compile: Any = "auto") -> Any:
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.BatchNormalization(name="bn_input", momentum=0.9)(inp)
    h = keras.layers.Conv2D(4, 3, name="conv")(h)
    h = keras.layers.BatchNormalization(name="bn_conv", momentum=0.9)(h)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(h))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h), name="small")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit_compile)
    return model


def value(v: Any) -> Any:
    return np.asarray(keras.ops.convert_to_numpy(v.value if isinstance(v, keras.Variable) else v), dtype=np.float64)


class Probe(keras.callbacks.Callback):  # type: ignore[misc]
    """After bnscope's callback: sends `script[step]` before bnscope's boundary of the NEXT step (so a command
    sent at step S-1's end is read at S), and records the momenta and bn_input's moving mean around each step."""

    def __init__(self, log: Path, script: Dict[int, str]) -> None:
        super().__init__()
        self.log, self.script, self.step = log, script, 0
        self.momenta: List[List[float]] = []
        self.before: List[Any] = []
        self.after: List[Any] = []

    def layer(self) -> Any:
        return self.model.get_layer("bn_input")

    def on_train_begin(self, logs: Any = None) -> None:
        if 0 in self.script:
            send(self.log, self.script[0])

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.momenta.append([layer.momentum for layer in self.model.layers
                             if isinstance(layer, keras.layers.BatchNormalization)])
        self.before.append(value(self.layer().moving_mean))

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.after.append(value(self.layer().moving_mean))
        self.step += 1
        if self.step in self.script:
            send(self.log, self.script[self.step])


def fit(tmp_path: Path, script: Dict[int, str], model: Optional[Any] = None, **kwargs: Any) -> Any:
    log = tmp_path / "k.jsonl"
    model = model or small()
    callback = bnscope.KerasCallback(log, control=True, **kwargs)
    probe = Probe(log, script)
    model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[callback, probe])
    records = logspec.read(log)
    logspec.check(records)
    return model, probe, [r for r in records if r["type"] == "event"], records


def batch_mean(step: int) -> Any:
    b = step % 6
    return X[4 * b:4 * b + 4].mean((0, 1, 2))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_momentum_changes_the_moving_statistics_update(tmp_path: Path, jit_compile: bool) -> None:
    model, probe, events, _ = fit(tmp_path, {3: "cmd m1 momentum 0.5"}, small(jit_compile))
    assert probe.momenta[2] == [0.9, 0.9] and probe.momenta[3] == [0.5, 0.5]
    for step, m in ((2, 0.9), (3, 0.5), (8, 0.5)):  # the update really uses it (not a value traced before)
        expected = m * probe.before[step] + (1 - m) * batch_mean(step)
        assert np.allclose(probe.after[step], expected, rtol=1e-5, atol=1e-6), step
    assert [(e["step"], e["what"], e["value"], e["id"]) for e in events] == [(3, "momentum", 0.5, "m1")]


def test_cumulative_is_emulated_batch_by_batch(tmp_path: Path) -> None:
    model, probe, events, records = fit(tmp_path, {2: "cmd u1 cumulative on", 6: "cmd u2 cumulative off"})
    assert [round(m[0], 6) for m in probe.momenta[1:8]] == [0.9, 0.5, round(2 / 3, 6), 0.75, 0.8, 0.9, 0.9]
    # From `on`, the moving mean is the plain average of the statistics at `on` (counted as one) and each batch.
    start = probe.before[2]
    expected = (start + sum(batch_mean(s) for s in range(2, 6))) / 5
    assert np.allclose(probe.after[5], expected, rtol=1e-5, atol=1e-6)
    assert [(e["step"], e["what"], e["value"]) for e in events] == [(2, "cumulative", True), (6, "cumulative", False)]
    assert all(layer.momentum == 0.9 for layer in model.layers if hasattr(layer, "moving_mean"))


def test_reset_and_recalibrate(tmp_path: Path) -> None:
    xr = (rng.random((10, 8, 8, 3)) * 3 - 1).astype("float32")
    model, probe, events, _ = fit(tmp_path, {2: "cmd r1 reset", 5: "cmd c1 recalibrate"}, recalibrate=(xr, None),
                                  recalibrate_batch_size=4)
    assert np.array_equal(probe.before[2], np.zeros(3))
    # After recalibrating: the plain average of the three batches' means (4, 4 and 2 images), momenta as before.
    means = [xr[i:i + 4].mean((0, 1, 2)) for i in (0, 4, 8)]
    assert np.allclose(probe.before[5], np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    assert probe.momenta[5] == [0.9, 0.9]
    assert [(e["step"], e["what"], e.get("value")) for e in events] == [(2, "reset_stats", None),
                                                                         (5, "recalibrate", "3 batches")]


def test_recalibrate_variance_is_the_average_of_biased_batch_variances(tmp_path: Path) -> None:
    xr = (rng.random((8, 8, 8, 3)) * 3).astype("float32")
    model = small()
    callback = bnscope.KerasCallback(tmp_path / "k.jsonl", control=True, recalibrate=xr, recalibrate_batch_size=4)
    callback.set_model(model)
    callback.layers = bnscope._keras.bn_layers(model)
    assert callback.recalibrate() == 2
    layer = model.get_layer("bn_input")
    var = np.mean([xr[i:i + 4].var((0, 1, 2)) for i in (0, 4)], axis=0)
    assert np.allclose(value(layer.moving_variance), var, rtol=1e-4)
    assert layer.momentum == 0.9


def test_evaluate_changes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "k.jsonl"
    model = small()
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    callback = bnscope.KerasCallback(log, eval_data=(X[:6], Y[:6]), control=True)
    states: List[Any] = []

    # `self.model`, not `model`: under JAX, Keras syncs the model's variables when a callback asks for it.
    class Around(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            states.append([value(v) for v in self.model.non_trainable_variables])

    class Send(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if batch == 1:
                states.append([value(v) for v in self.model.non_trainable_variables])
                send(log, "cmd e1 evaluate")

    model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[Send(), callback, Around()])
    sent, after = states[1], states[2]  # at step 1: before bnscope's boundary (Send runs first) and after it
    events = [r for r in logspec.read(log) if r["type"] == "event"]
    assert events[0]["what"] == "evaluate" and events[0]["step"] == 1
    assert set(events[0]["eval_running"]) == {"loss", "acc"} and set(events[0]["eval_batch"]) == {"loss", "acc"}
    assert len(sent) == len(after) and all(np.array_equal(a, b) for a, b in zip(sent, after))


def test_pause_step_resume(tmp_path: Path) -> None:
    log = tmp_path / "k.jsonl"
    ends: List[float] = []
    sent: Dict[str, float] = {}
    done = [threading.Event() for _ in range(8)]

    def writer() -> None:
        for after, line in ((1, "cmd s1 step"), (2, "cmd r1 resume")):
            done[after].wait(30)  # batch `after` has ended: the next boundary is where it blocks
            time.sleep(0.4)
            sent[line] = time.monotonic()
            send(log, line)

    class Clock(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            ends.append(time.monotonic())
            done[len(ends) - 1].set()
            if len(ends) == 2:
                send(log, "cmd p1 pause")
                threading.Thread(target=writer, daemon=True).start()

    with deadline(90):
        small().fit(X, Y, batch_size=4, epochs=1, verbose=0,
                    callbacks=[bnscope.KerasCallback(log, control=True), Clock()])
    # Batch 2 ended only after the step command, batch 3 only after the resume: blocked at 2 and at 3.
    assert ends[2] >= sent["cmd s1 step"] and ends[3] >= sent["cmd r1 resume"], (ends, sent)
    events = [r for r in logspec.read(log) if r["type"] == "event"]
    assert [(e["step"], e["what"]) for e in events] == [(2, "pause"), (2, "step"), (3, "resume")]


def test_run_record_and_refusals(tmp_path: Path) -> None:
    model, probe, events, records = fit(tmp_path, {1: "cmd c1 recalibrate", 2: "cmd e1 evaluate"})
    control = records[0]["control"]
    assert control["path"] == str(tmp_path / "k.jsonl.control")
    assert control["recalibrate"] is False and control["evaluate"] is False
    assert [(e["what"], e["reason"]) for e in events] == [("refused", "no recalibrate data was given"),
                                                          ("refused", "no evaluate function or data was given")]


def test_a_second_fit_is_a_new_run_on_the_same_channel(tmp_path: Path) -> None:
    log = tmp_path / "k.jsonl"
    model = small()
    callback = bnscope.KerasCallback(log, control=True)
    probe = Probe(log, {1: "cmd a momentum 0.5"})
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[callback, probe])
    probe2 = Probe(log, {2: "cmd b momentum 0.7"})
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[callback, probe2])
    records = logspec.read(log)
    logspec.check(records)
    runs = [i for i, r in enumerate(records) if r["type"] == "run"]
    assert len(runs) == 2 and all("path" in records[i]["control"] for i in runs)
    events = [(r["step"], r["id"]) for r in records[runs[1]:] if r["type"] == "event"]
    assert events == [(2, "b")]  # steps count from the new fit; the first fit's command is not replayed
