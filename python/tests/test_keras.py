"""bnscope.KerasCallback with Keras 3 (on the torch backend unless KERAS_BACKEND says otherwise)."""
from pathlib import Path
from typing import Any, Tuple

import pytest

keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

import bnscope  # noqa: E402
import logspec  # noqa: E402


def small() -> Any:
    """A BatchNormalization on the input (so its batch statistics are the data's), conv, BN, pool, dense."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.BatchNormalization(name="bn_input")(inp)
    h = keras.layers.Conv2D(4, 3, name="conv")(h)
    h = keras.layers.BatchNormalization(name="bn_conv", momentum=0.9)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h), name="small")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data() -> Tuple[Any, Any]:
    rng = np.random.default_rng(0)
    return (rng.random((6, 8, 8, 3)) * 2 + 1).astype("float32"), np.array([0, 1, 2, 0, 1, 2])


def moving(model: Any) -> Any:
    value = keras.ops.convert_to_numpy
    return {layer.name: (value(layer.moving_mean.value), value(layer.moving_variance.value))
            for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}


def test_callback_logs_every_bn_layer(tmp_path: Path) -> None:
    model, (x, y) = small(), data()
    callback = bnscope.KerasCallback(tmp_path / "k.jsonl", eval_data=(x, y), info={"seed": 0})
    model.fit(x, y, epochs=3, batch_size=3, verbose=0, callbacks=[callback])
    records = logspec.read(tmp_path / "k.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run"] + ["epoch", "bn"] * 3 + ["end"]
    run = records[0]
    assert run["source"] == "keras" and run["framework"] == "keras" and run["bn_variance"] == "biased"
    assert run["bn_layers"] == [{"name": "bn_input", "channels": 3, "eps": 0.001, "momentum": 0.99},
                                {"name": "bn_conv", "channels": 4, "eps": 0.001, "momentum": 0.9}]
    assert "momentum" not in run and run["labels"] == [0, 1, 2, 0, 1, 2] and run["seed"] == 0
    epoch = records[-3]
    assert epoch["epoch"] == 3 and epoch["step"] == 6 and set(epoch["train"]) == {"loss", "acc"}
    assert set(epoch["eval_running"]) == {"loss", "acc"} and set(epoch["eval_batch"]) == {"loss", "acc"}
    assert len(epoch["predictions_running"]) == 6
    bn = records[-2]
    assert bn["batch"] == "eval_data"
    final = moving(model)
    for entry in bn["layers"]:  # the last bn record holds the moving statistics fit left behind
        assert np.allclose(entry["running_mean"], final[entry["name"]][0], rtol=1e-6, atol=1e-7)
        assert np.allclose(entry["running_var"], final[entry["name"]][1], rtol=1e-6)
    first = bn["layers"][0]
    assert np.allclose(first["batch_mean"], x.mean((0, 1, 2)), rtol=1e-5)
    assert np.allclose(first["batch_var"], x.var((0, 1, 2)), rtol=1e-4)  # biased, as Keras updates with
    assert first["n"] == 6 * 8 * 8 and bn["layers"][1]["n"] == 6 * 6 * 6
    assert records[-1] == {"type": "end", "epochs": 3, "reason": "done"}


def test_eval_batch_leaves_moving_statistics_unchanged(tmp_path: Path) -> None:
    model, (x, y) = small(), data()
    callback = bnscope.KerasCallback(tmp_path / "k.jsonl", eval_data=(x, y))
    model.fit(x, y, epochs=1, batch_size=6, verbose=0, callbacks=[callback])
    before = moving(model)
    out, stats = callback.batch_pass(x + 3)
    after = moving(model)
    for name in before:
        assert np.array_equal(before[name][0], after[name][0]) and np.array_equal(before[name][1], after[name][1])
    assert [layer.momentum for layer in model.layers if hasattr(layer, "moving_mean")] == [0.99, 0.9]
    assert np.allclose(stats["bn_input"][0].ravel(), (x + 3).mean((0, 1, 2)), rtol=1e-5)
    assert out.shape == (6, 3)


def test_without_eval_data_and_summary(tmp_path: Path) -> None:
    model, (x, y) = small(), data()
    callback = bnscope.KerasCallback(tmp_path / "k.jsonl", log_bn="summary")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])  # a second fit appends a second run
    records = logspec.read(tmp_path / "k.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "epoch", "bn", "end"] * 2
    epoch, bn = records[1], records[2]
    assert "eval_running" not in epoch and "eval_batch" not in epoch and "batch" not in bn
    assert bn["layers"][0] == {"name": "bn_input", "channels": 3, "momentum": 0.99}


# --- the log file under hostile input (#24) ------------------------------------------------------------------------

def test_a_second_callback_on_the_same_path_appends(tmp_path: Path) -> None:
    model, (x, y) = small(), data()
    for _ in range(2):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[bnscope.KerasCallback(tmp_path / "k.jsonl")])
    records = logspec.read(tmp_path / "k.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "epoch", "bn", "epoch", "bn", "end"] * 2


def test_the_callback_refuses_a_file_that_is_not_a_log_before_fit(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print(1)\n")
    with pytest.raises(bnscope.LogFileError, match=r"train\.py: exists and is not a bnscope log"):
        bnscope.KerasCallback(script)
    for kwargs in ({"info": {"x": object()}}, {"log_bn": "x"}, {"eval_data": (1, 2, 3)}, {"overwrite": 1}, {"control": 1},
                   {"recalibrate": 3}, {"recalibrate_batch_size": 0}):
        with pytest.raises(ValueError):
            bnscope.KerasCallback(tmp_path / "k.jsonl", **kwargs)
    assert script.read_text() == "print(1)\n" and not (tmp_path / "k.jsonl").exists()
    model, (x, y) = small(), data()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[bnscope.KerasCallback(script, overwrite=True)])
    assert logspec.read(script)[0]["type"] == "run"


class Boom(keras.callbacks.Callback):  # type: ignore[misc]
    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        raise RuntimeError("boom")


def test_after_a_fit_that_raised_the_log_is_free_again(tmp_path: Path) -> None:
    """Keras calls no on_train_end when fit raises: the callback's file stays open and locked. A new fit, with the
    same callback or a new one in the same thread, ends that run (reason error) and appends a new one."""
    model, (x, y) = small(), data()
    path = tmp_path / "k.jsonl"
    first = bnscope.KerasCallback(path)
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[first, Boom()])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[first])  # the same callback again
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[first, Boom()])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[bnscope.KerasCallback(path)])  # a new one
    records = logspec.read(path)
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "end", "run", "epoch", "bn", "end"] * 2
    assert records[1]["reason"] == "error" and records[7]["reason"] == "error"
