#!/usr/bin/env python3
"""The seed's Keras code with bnscope's callback: keras.applications.ResNet50 (weights=None, 3 classes) trained on
the three seed images (data/seed3) as one batch of 3, Adam 1e-3, BatchNormalization momentum 0.99 (Keras' default),
writing a bnscope log with `bnscope.KerasCallback(..., eval_data=(x, y))`. Then `bnscope replay OUT` shows the
53 BatchNorm layers and the gap: training accuracy 1.0 while evaluation with the moving statistics stays low.

Usage: python scripts/keras_resnet50_callback.py [--out run.jsonl] [--epochs 5] [--size 224]
Needs keras 3 (run here on the torch backend, CPU) and Pillow; a few seconds per epoch at 224 px on two cores.
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "scripts"))

import bnscope  # noqa: E402
from make_log_fixtures import images  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("keras_resnet50.jsonl"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    import keras

    x, y, classes, names = images(args.size)
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, classes=3, input_shape=(args.size, args.size, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    info = {"model": "resnet50 (keras.applications)", "image_size": args.size, "batch_size": 3,
            "classes": classes, "image_names": names, "seed": 0, "lr": 1e-3, "optimizer": "adam"}
    t0 = time.perf_counter()
    callback = bnscope.KerasCallback(args.out, eval_data=(x, y), info=info)
    model.fit(x, y, epochs=args.epochs, batch_size=3, shuffle=False, verbose=0, callbacks=[callback])
    print(f"{args.out}: {args.epochs} epochs in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
