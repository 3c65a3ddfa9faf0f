#!/usr/bin/env python3
"""A plain Keras 3 `fit` with bnscope's callback and control on: the run `bnscope watch run.jsonl` steers.

A small convolutional network with Keras' default BatchNormalization (momentum 0.99) learns the three seed images
(data/seed3) in a few epochs, while evaluation with the moving statistics stays near chance: the seed's gap. In a
second terminal, `bnscope watch run.jsonl`: `-` lowers the momentum, `c` recalibrates, `space` pauses, in this fit.
At the end the script prints its layers' momentum and its own `model.evaluate` accuracy.

    KERAS_BACKEND=torch python examples/steer_keras.py run.jsonl [--epochs 300] [--pace 3] [--size 32]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image

import bnscope

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["cat", "coffee", "rocket"]


def images(size: int) -> np.ndarray:
    xs = [
        np.asarray(Image.open(ROOT / "data" / "seed3" / c / f"{c}.png").convert("RGB").resize((size, size)),
                   dtype=np.float32) / 255.0
        for c in CLASSES
    ]
    return np.stack(xs)


class Pace(keras.callbacks.Callback):
    """At most `pace` epochs a second, so that a person can watch and press keys."""

    def __init__(self, pace: float) -> None:
        super().__init__()
        self.gap = 1.0 / pace if pace > 0 else 0.0
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        time.sleep(max(0.0, self.gap - (time.monotonic() - self.started)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--pace", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=32)
    a = ap.parse_args()
    keras.utils.set_random_seed(0)
    x, y = images(a.size), np.array([0, 1, 2])
    model = keras.Sequential([
        keras.Input((a.size, a.size, 3)),
        keras.layers.Conv2D(16, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    scope = bnscope.KerasCallback(a.log, eval_data=(x, y), control=True, recalibrate=x)
    model.fit(x, y, batch_size=3, epochs=a.epochs, verbose=0, callbacks=[scope, Pace(a.pace)])
    loss, acc = model.evaluate(x, y, verbose=0)
    momenta = sorted({layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)})
    print(f"Keras BatchNormalization momentum {momenta}; model.evaluate accuracy {acc:.3f} (loss {loss:.4f})",
          flush=True)


if __name__ == "__main__":
    main()
