"""bnscope.keras_inspect with Keras 3 (torch backend unless KERAS_BACKEND says otherwise): every figure against a
plain Keras computation written here, and the model left bit-identical."""
from pathlib import Path
from typing import Any, Iterator, List, Sequence, Tuple

import pytest

keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

import bnscope  # noqa: E402
import logspec  # noqa: E402
from bnscope._log import gap  # noqa: E402


@pytest.fixture(autouse=True)
def quick_cpu() -> Iterator[None]:
    """As in test_inspect: denormals flushed to zero, one thread (on the torch backend)."""
    if keras.backend.backend() != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


def bns(model: Any) -> List[Any]:
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def randomise(model: Any, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    for layer in bns(model):
        shape = layer.moving_mean.shape
        layer.moving_mean.assign(rng.normal(0, 0.3, shape).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.25, 1.75, shape).astype("float32"))
        layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        layer.beta.assign(rng.normal(0, 0.2, shape).astype("float32"))
    return model


def values(model: Any) -> List[Any]:
    return [np.array(keras.ops.convert_to_numpy(w.value)) for w in model.weights]


def scores(probs: Any, y: Any) -> Tuple[float, float]:
    """Mean sparse categorical cross-entropy (Keras clips at 1e-7) and accuracy of softmax outputs."""
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(np.mean(-np.log(p))), float(np.mean(probs.argmax(1) == y))


def run(model: Any, batches: Sequence[Tuple[Any, Any]], training: bool) -> Any:
    return np.concatenate([keras.ops.convert_to_numpy(model(x, training=training)) for x, _ in batches]).astype(
        np.float64
    )


def batch_stats_only(model: Any, names: Sequence[str], batches: Sequence[Tuple[Any, Any]]) -> Any:
    """Outputs with only the named BatchNormalization layers on batch statistics: every other one frozen (a frozen
    layer normalises with its moving statistics even in training), `training=True`; the model put back after."""
    saved = values(model)
    layers = bns(model)
    flags = [layer.trainable for layer in layers]
    for layer in layers:
        layer.trainable = layer.name in names
    try:
        return run(model, batches, training=True)
    finally:
        for layer, flag in zip(layers, flags):
            layer.trainable = flag
        for w, v in zip(model.weights, saved):
            w.assign(v)


def recalibrated(model: Any, batches: Sequence[Tuple[Any, Any]]) -> Any:
    """A clone whose moving statistics are the cumulative average over the batches (momentum (k−1)/k)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in bns(clone):
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, "float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, "float32"))
    for k, (x, _) in enumerate(batches, start=1):
        for layer in bns(clone):
            layer.momentum = (k - 1) / k
        clone(x, training=True)
    return clone


@pytest.mark.heavy
def test_mobilenet_v2_figures_match_plain_keras_and_nothing_changes(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = randomise(keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=3))
    rng = np.random.default_rng(1)
    x, y = rng.random((8, 32, 32, 3)).astype("float32"), rng.integers(0, 3, 8)
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    before, momenta = values(model), [layer.momentum for layer in bns(model)]
    report = bnscope.keras_inspect(model, x, y, tmp_path / "k.jsonl", batch_size=4, blame_samples=2, shuffles=2)
    assert all(np.array_equal(a, b) for a, b in zip(before, values(model)))
    assert [layer.momentum for layer in bns(model)] == momenta and all("call" not in vars(b) for b in bns(model))
    approx = lambda v: pytest.approx(v, rel=2e-5, abs=2e-6)  # noqa: E731

    loss, acc = scores(run(model, batches, training=False), y)
    assert (report.eval_running.loss, report.eval_running.acc) == (approx(loss), approx(acc))
    names = [layer.name for layer in bns(model)]
    loss, acc = scores(batch_stats_only(model, names, batches), y)
    assert (report.eval_batch.loss, report.eval_batch.acc) == (approx(loss), approx(acc))
    clone = recalibrated(model, batches)
    loss, acc = scores(run(clone, batches, training=False), y)
    assert (report.recalibrated.loss, report.recalibrated.acc) == (approx(loss), approx(acc))
    assert [layer.name for layer in report.layers] == names  # a functional model's layers run in this order
    first = report.layers[0]
    theirs = {layer.name: layer for layer in bns(clone)}[first.name]
    data_mean = keras.ops.convert_to_numpy(theirs.moving_mean.value).tolist()
    assert first.mean_gap == pytest.approx(gap(first.running_mean, data_mean), rel=1e-5)
    assert first.n == 4 * 16 * 16 and report.layers[-1].n == 4 * 1 * 1

    head = [(x[:2], y[:2])]
    zero = scores(run(model, head, training=False), y[:2])
    for k in (0, 25):
        layer = report.layers[k]
        for kind, switched in (("alone", names[k : k + 1]), ("prefix", names[: k + 1])):
            loss, acc = scores(batch_stats_only(model, switched, head), y[:2])
            b = getattr(layer, kind)
            assert (b.loss, b.acc) == (approx(loss), approx(acc)), f"{kind} of {layer.name}"
    assert report.blame_running is not None and report.blame_running.loss == approx(zero[0])

    records = logspec.read(tmp_path / "k.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "inspect", "end"]
    assert records[0]["source"] == "keras" and records[1]["source"] == "keras"
    assert len(records[1]["layers"]) == 52 and records[1]["layers"][0]["dtype"] == "float32"


def small() -> Any:
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    h = keras.layers.Dense(16)(inp)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.Dropout(0.5)(h)
    h = keras.layers.Dense(8)(keras.layers.ReLU()(h))
    h = keras.layers.BatchNormalization(name="bn2")(h)
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.ReLU()(h)), name="small")


def test_small_model_frozen_layer_and_compiled_loss(tmp_path: Path) -> None:
    model = randomise(small())
    bns(model)[1].trainable = False  # frozen: on its moving statistics in training too, so never switched
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(2)
    x, y = rng.normal(1, 2, (40, 6)).astype("float32"), rng.integers(0, 3, 40)
    before = values(model)
    report = bnscope.keras_inspect(model, x, y, tmp_path / "s.jsonl", batch_size=16, shuffles=3)
    assert all(np.array_equal(a, b) for a, b in zip(before, values(model)))
    assert report.batches == 3 and report.samples == 40
    bn1, bn2 = report.layers
    assert bn1.tracks and bn1.mean_gap is not None and bn1.alone is not None
    assert not bn2.tracks and bn2.mean_gap is None and bn2.alone is None
    logits = run(model, [(x, y)], training=False)
    expected = float(np.mean(keras.ops.convert_to_numpy(model.loss(y, logits.astype("float32")))))
    assert report.eval_running.loss == pytest.approx(expected, rel=1e-5)  # the compiled loss, from logits
    assert report.eval_running.acc == pytest.approx(float(np.mean(logits.argmax(1) == y)))
    s = report.recalibration_spread
    assert s is not None and s.shuffles == 3 and s.acc_min <= s.acc_mean <= s.acc_max
    records = logspec.read(tmp_path / "s.jsonl")
    logspec.check(records)
    assert records[1]["layers"][1]["tracks"] is False
