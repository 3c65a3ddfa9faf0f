#!/usr/bin/env python3
"""Writes the log fixtures in tests/fixtures/logs with the Python module in python/ (format: docs/LOG_FORMAT.md).

* torch_resnet18.jsonl: torchvision resnet18 (seed 0), 5 epochs full batch on data/seed3 at 64 px, Adam 1e-3, BN
  momentum 0.01 PyTorch = 0.99 Keras, so evaluation with running statistics stays poor; eval_running and
  eval_batch each epoch. Per-channel arrays in the last bn record only (with them in all five the file is ~1 MB).
* compare_torch_m001.jsonl, compare_torch_m01.jsonl: the same resnet18 run (seed 0, 12 epochs) at PyTorch BN momentum
  0.01 and 0.1 (Keras 0.99 and 0.9), for `bnscope compare`.
* keras_small.jsonl: a small Keras 3 conv net with two BatchNormalization layers (momentum 0.99), 5 epochs,
  batch 3, the same images at 32 px, through bnscope.KerasCallback with eval_data.
* ddp.rank0.jsonl, ddp.rank1.jsonl: a 2-process gloo DDP run on the CPU started with torchrun (`python -m
  torch.distributed.run --standalone --nproc_per_node 2`): bnscope's `tiny` model (scripts/pytorch_reference.py),
  rank 0 trains on two images and rank 1 on the third, no SyncBatchNorm, so the ranks' running statistics differ.
* bnscope_seed.jsonl: bnscope's own log of the default run, headless, 12 epochs (`cargo run --release -- --headless
  --epochs 12 --log …`): the seed's gap, BatchNorm gaps only (bnscope's default `--log-bn summary`).

Usage: python scripts/make_log_fixtures.py [--out DIR] [--only torch,keras,ddp,bnscope]
Needs torch, torchvision and keras (Keras runs on the torch backend here). About a minute on two cores.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "scripts"))

import bnscope  # noqa: E402

DATA = REPO / "data" / "seed3"


def images(size):
    """data/seed3/<class>/<image> as bnscope reads it: classes and files sorted, RGB, bilinear resize, [0, 1].
    Returns (x as float32 N×H×W×3 numpy, labels, classes, file names)."""
    import numpy as np
    from PIL import Image

    classes = sorted(d.name for d in DATA.iterdir() if d.is_dir() and not d.name.startswith("."))
    xs, ys, names = [], [], []
    for label, cls in enumerate(classes):
        for f in sorted(p for p in (DATA / cls).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
            img = Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)
            xs.append(np.asarray(img, dtype=np.float32) / 255.0)
            ys.append(label)
            names.append(f.name)
    return np.stack(xs), np.array(ys), classes, names


def torch_images(size):
    import torch

    x, y, classes, names = images(size)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y), classes, names


def accuracy(logits, y):
    return float((logits.argmax(1) == y).float().mean())


def torch_resnet18(out, momentum=0.01, epochs=5, name="torch_resnet18.jsonl", full_last=True):
    import torch
    import torchvision
    from torch import nn

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y, classes, names = torch_images(64)
    info = {"model": "resnet18", "image_size": 64, "batch_size": 3, "classes": classes, "images": 3,
            "image_names": names, "labels": y.tolist(), "seed": 0, "lr": 1e-3, "optimizer": "adam"}
    note = f"PyTorch momentum={momentum:g}, i.e. Keras {1 - momentum:g}"
    with bnscope.watch(model, out / name, note, log_bn="summary", info=info,
                       overwrite=True) as scope:
        for epoch in range(1, epochs + 1):
            model.train()
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            train = {"loss": loss.item(), "acc": accuracy(logits, y)}
            model.eval()
            with torch.no_grad():
                logits = model(x)
            running = {"loss": nn.functional.cross_entropy(logits, y).item(), "acc": accuracy(logits, y)}
            with scope.batch_eval():
                logits = model(x)
            batch = {"loss": nn.functional.cross_entropy(logits, y).item(), "acc": accuracy(logits, y)}
            full = full_last and epoch == epochs
            scope.epoch(train=train, eval_running=running, eval_batch=batch, bn="full" if full else None)
            print(f"torch resnet18 epoch {epoch}: train {train['acc']:.3f} running {running['acc']:.3f} "
                  f"batch {batch['acc']:.3f}")


def torch_pair(out):
    """Two torchvision runs from the hook for `bnscope compare`: the same seed at PyTorch momentum 0.01 and 0.1."""
    torch_resnet18(out, 0.01, 12, "compare_torch_m001.jsonl", full_last=False)
    torch_resnet18(out, 0.1, 12, "compare_torch_m01.jsonl", full_last=False)


def keras_small(out):
    import keras

    x, y, classes, names = images(32)
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h), name="keras_small")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    info = {"image_size": 32, "batch_size": 3, "classes": classes, "image_names": names, "seed": 0, "lr": 1e-2,
            "optimizer": "adam"}
    callback = bnscope.KerasCallback(out / "keras_small.jsonl", eval_data=(x, y), info=info, overwrite=True)
    model.fit(x, y, epochs=5, batch_size=3, shuffle=False, verbose=0, callbacks=[callback])
    print("keras small: written")


def ddp(out):
    """Starts the two DDP processes with torchrun and waits for them."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).resolve()), "--ddp-worker", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env)
    print("ddp: written", sorted(p.name for p in out.glob("ddp.rank*.jsonl")))


def ddp_worker(out):
    """One torchrun process: RANK / WORLD_SIZE / MASTER_ADDR come from torchrun's environment."""
    import torch
    from torch import nn
    from pytorch_reference import tiny_model

    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(tiny_model(3))  # broadcast_buffers=True, the default
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y, classes, names = torch_images(32)
        mine = [0, 1] if rank == 0 else [2]
        info = {"model": "tiny", "image_size": 32, "batch_size": len(mine), "classes": classes, "images": 3,
                "image_names": names, "labels": y.tolist(), "seed": 0, "lr": 1e-3, "optimizer": "adam",
                "broadcast_buffers": True}
        with bnscope.watch(model, out / "ddp.jsonl", info=info, overwrite=True) as scope:
            for _ in range(5):
                model.train()
                logits = model(x[mine])
                loss = nn.functional.cross_entropy(logits, y[mine])
                opt.zero_grad()
                loss.backward()
                opt.step()
                train = {"loss": loss.item(), "acc": accuracy(logits, y[mine])}
                # Evaluate this rank's copy (its own running statistics) on all images, without DDP collectives.
                model.module.eval()
                with torch.no_grad():
                    logits = model.module(x)
                running = {"loss": nn.functional.cross_entropy(logits, y).item(), "acc": accuracy(logits, y)}
                with scope.batch_eval():
                    logits = model.module(x)
                batch = {"loss": nn.functional.cross_entropy(logits, y).item(), "acc": accuracy(logits, y)}
                scope.epoch(train=train, eval_running=running, eval_batch=batch)
    finally:
        torch.distributed.destroy_process_group()


def bnscope_seed(out):
    log = out / "bnscope_seed.jsonl"
    cmd = ["cargo", "run", "--release", "--quiet", "--", "--headless", "--epochs", "12", "--log", str(log),
           "--overwrite-log"]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "logs")
    ap.add_argument("--only", default="torch,torch_pair,keras,ddp,bnscope")
    ap.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ddp_worker:
        return ddp_worker(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in (("torch", torch_resnet18), ("torch_pair", torch_pair), ("keras", keras_small), ("ddp", ddp), ("bnscope", bnscope_seed)):
        if name in args.only.split(","):
            t0 = time.perf_counter()
            make(args.out)
            print(f"  {name}: {time.perf_counter() - t0:.1f} s")
    for p in sorted(args.out.glob("*.jsonl")):
        print(f"{p.relative_to(REPO) if p.is_relative_to(REPO) else p}: {p.stat().st_size / 1000:.1f} kB")


if __name__ == "__main__":
    main()
