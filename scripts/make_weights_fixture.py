#!/usr/bin/env python3
"""Makes tests/fixtures/weights/: bnscope's `tiny` built in PyTorch with torchvision's names, and what PyTorch
computes with it on the three seed images, for tests/weights.rs to match to 1e-4.

* tiny_torchvision.safetensors: the state_dict (random weights, randomised BatchNorm buffers and
  num_batches_tracked), as `safetensors.torch.save_file(model.state_dict(), F)` writes it.
* tiny_expected.safetensors: logits on data/seed3 at 224 px (no resize, so PIL's and bnscope's pixels agree
  exactly) in eval() and train() mode, without and with ImageNet normalisation; and the state_dict after 3
  full-batch SGD steps (lr 0.01, no momentum, cross-entropy, train mode), prefixed `sgd3.`.

Run: /path/to/venv/bin/python scripts/make_weights_fixture.py   (needs torch, torchvision, safetensors, pillow)
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision.models.resnet import BasicBlock

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "weights"
CLASSES = ["cat", "coffee", "rocket"]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class Tiny(nn.Module):
    """bnscope's tiny: conv3×3(3→16) + BN + ReLU + max-pool 2×2, three BasicBlocks (16, 32, 64), avg-pool, fc."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2, 2)
        layers = []
        cin = 16
        for i, cout in enumerate([16, 32, 64]):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride, down)))
            cin = cout
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def randomise(model: nn.Module, g: torch.Generator) -> None:
    """Weights away from their init and BatchNorm buffers away from (0, 1), so that a mix-up cannot pass."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.5 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
            m.num_batches_tracked.fill_(int(torch.randint(1, 500, (1,), generator=g)))


def seed_images() -> torch.Tensor:
    xs = []
    for c in CLASSES:
        img = Image.open(ROOT / "data" / "seed3" / c / f"{c}.png").convert("RGB")
        assert img.size == (224, 224), img.size
        xs.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(xs)


def logits(model: nn.Module, x: torch.Tensor, train: bool) -> torch.Tensor:
    m = copy.deepcopy(model)  # a train-mode forward updates the running statistics
    m.train(train)
    with torch.no_grad():
        return m(x)


def main() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    model = Tiny()
    randomise(model, g)
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(OUT / "tiny_torchvision.safetensors"))

    x = seed_images()
    xn = (x - MEAN) / STD
    y = torch.tensor([0, 1, 2])
    expected = {
        "logits_eval": logits(model, x, False),
        "logits_train": logits(model, x, True),
        "logits_eval_imagenet": logits(model, xn, False),
        "logits_train_imagenet": logits(model, xn, True),
    }
    m = copy.deepcopy(model)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
    for k, v in m.state_dict().items():
        expected[f"sgd3.{k}"] = v
    save_file({k: v.contiguous() for k, v in expected.items()}, str(OUT / "tiny_expected.safetensors"))
    for f in sorted(OUT.iterdir()):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
