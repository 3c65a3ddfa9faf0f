#!/usr/bin/env python3
"""Makes tests/fixtures/weights/tiny_blame.json: PyTorch's own computation of `bnscope inspect`'s blame for the tiny
torchvision fixture (tests/fixtures/weights/tiny_torchvision.safetensors) on the three seed images, ImageNet-normalised
as `--weights` implies, evaluated as one batch: for each BatchNorm layer in forward order, the loss and accuracy with
that layer alone, and with the first k layers, in train mode (batch statistics) and every other module in eval().

Run: /path/to/venv/bin/python scripts/make_blame_fixture.py   (needs torch, torchvision, safetensors, pillow)
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Callable, Dict, List

import torch
from safetensors.torch import load_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_weights_fixture import MEAN, OUT, STD, Tiny, seed_images  # noqa: E402


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: Callable[[int], bool]) -> Dict[str, float]:
    m = copy.deepcopy(model)  # a train-mode forward would move the running statistics
    m.eval()
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    for i, bn in enumerate(bns):
        bn.train(batch(i))
    with torch.no_grad():
        logits = m(x)
    loss = float(nn.functional.cross_entropy(logits.double(), y))
    acc = float((logits.argmax(1) == y).double().mean())
    return {"loss": loss, "acc": acc}


def main() -> None:
    model = Tiny()
    model.load_state_dict(load_file(str(OUT / "tiny_torchvision.safetensors")), strict=True)
    x = (seed_images() - MEAN) / STD
    y = torch.tensor([0, 1, 2])
    names: List[str] = [n for n, mod in model.named_modules() if isinstance(mod, nn.BatchNorm2d)]
    out = {
        "eval_running": evaluate(model, x, y, lambda i: False),
        "eval_batch": evaluate(model, x, y, lambda i: True),
        "blame": [
            {
                "name": name,
                "alone": evaluate(model, x, y, lambda j, i=i: j == i),
                "prefix": evaluate(model, x, y, lambda j, i=i: j <= i),
            }
            for i, name in enumerate(names)
        ],
    }
    path = OUT / "tiny_blame.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{path}: {len(names)} layers")


if __name__ == "__main__":
    main()
