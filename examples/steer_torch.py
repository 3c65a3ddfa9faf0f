#!/usr/bin/env python3
"""A plain PyTorch training loop with bnscope's two lines and control on: the run `bnscope watch run.jsonl` steers.

torchvision's resnet18 (random weights) at PyTorch BatchNorm momentum 0.01 (Keras 0.99) learns the three seed images
(data/seed3) in a few epochs, while evaluation with the running statistics stays near 0.33: the seed's gap. In a
second terminal, `bnscope watch run.jsonl`: `-` lowers the momentum, `c` recalibrates, `space` pauses, here, in this
process. At the end the script prints its layers' momentum and its own `model.eval()` accuracy.

    python examples/steer_torch.py run.jsonl [--epochs 300] [--pace 5] [--size 64]
    torchrun --nproc_per_node 2 examples/steer_torch.py run.jsonl      # gloo: each rank logs run.rank{R}.jsonl
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

import bnscope

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["cat", "coffee", "rocket"]


def images(size: int) -> torch.Tensor:
    xs = []
    for c in CLASSES:
        img = Image.open(ROOT / "data" / "seed3" / c / f"{c}.png").convert("RGB").resize((size, size))
        xs.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(xs)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    with torch.no_grad():
        out = model(x)
    return {"loss": float(nn.functional.cross_entropy(out, y)), "acc": float((out.argmax(1) == y).float().mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--pace", type=float, default=5.0, help="epochs a second (0: as fast as it goes)")
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if distributed:
        torch.distributed.init_process_group("gloo")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.01  # Keras 0.99
    x, y = images(a.size), torch.tensor([0, 1, 2])
    net: nn.Module = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def evaluate(m: nn.Module) -> dict:
        return accuracy(m, x, y)

    # The two lines (plus control): hooks on every BatchNorm layer, the log, and the control channel.
    scope = bnscope.watch(net, a.log, control=True, recalibrate=[x], evaluate=evaluate)
    for epoch in range(a.epochs):
        started = time.monotonic()
        net.train()
        opt.zero_grad()
        out = net(x)
        loss = nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        train = {"loss": loss.item(), "acc": float((out.argmax(1) == y).float().mean())}
        model.eval()
        running = accuracy(model, x, y)
        with scope.batch_eval():
            batch = accuracy(model, x, y)
        scope.epoch(train=train, eval_running=running, eval_batch=batch)
        if a.pace > 0:
            time.sleep(max(0.0, 1.0 / a.pace - (time.monotonic() - started)))
    scope.close()
    model.eval()
    final = accuracy(model, x, y)
    momenta = sorted({m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}, key=str)
    rank = torch.distributed.get_rank() if distributed else 0
    print(f"rank {rank}: BatchNorm momentum (PyTorch) {momenta}; model.eval() accuracy {final['acc']:.3f} "
          f"(loss {final['loss']:.4f})", flush=True)
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
