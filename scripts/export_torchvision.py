#!/usr/bin/env python3
"""Saves a torchvision or timm ResNet's state_dict the way `bnscope --weights` reads it.

    python scripts/export_torchvision.py resnet18 resnet18.safetensors               # torchvision, ImageNet weights
    python scripts/export_torchvision.py resnet50 r50.safetensors --weights none     # random init
    python scripts/export_torchvision.py resnet50.a1_in1k r50.safetensors --timm     # timm (same key names)
    python scripts/export_torchvision.py resnet18 mine.safetensors --checkpoint my_finetuned.pt --classes 10

Then: bnscope inspect --weights resnet18.safetensors --data my_images/ ; and back in PyTorch:

    from safetensors.torch import load_file
    model.load_state_dict(load_file("bnscope_out.safetensors"), strict=True)

`--checkpoint` loads your own fine-tuned state_dict (torch.save(model.state_dict(), F), DataParallel/DDP's
`module.` prefix dropped) into the architecture first. `--randomize-bn SEED` replaces the BatchNorm buffers by random
values (tests: statistics that cannot be mistaken for their (0, 1) start). Needs torch and torchvision (or timm),
and safetensors.
"""
from __future__ import annotations

import argparse
import sys

import torch
from safetensors.torch import save_file

SUPPORTED = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def build(name: str, weights: str, use_timm: bool, classes: int | None) -> torch.nn.Module:
    if use_timm:
        import timm  # type: ignore[import-not-found]

        kw = {"num_classes": classes} if classes else {}
        return timm.create_model(name, pretrained=weights != "none", **kw)
    import torchvision

    if name not in SUPPORTED:
        sys.exit(f"export_torchvision.py: {name}: bnscope reads {', '.join(SUPPORTED)}")
    w = None if weights == "none" else weights
    kw = {"num_classes": classes} if classes else {}
    return torchvision.models.get_model(name, weights=w, **kw)


def randomize_bn(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="torchvision name (resnet18 … resnet152) or, with --timm, a timm model name")
    ap.add_argument("out", help="the .safetensors file to write")
    ap.add_argument("--weights", default="DEFAULT", help="torchvision weights enum name, or none [DEFAULT]")
    ap.add_argument("--timm", action="store_true", help="build the model with timm")
    ap.add_argument("--classes", type=int, help="classifier size (default: the model's, 1000)")
    ap.add_argument("--checkpoint", help="your own state_dict (.pt/.pth) to load into the model first")
    ap.add_argument("--randomize-bn", type=int, metavar="SEED", help="random BatchNorm weights and buffers")
    a = ap.parse_args()
    weights = "none" if a.checkpoint else a.weights
    try:
        model = build(a.model, weights, a.timm, a.classes)
    except OSError as e:
        # A download that failed (urllib's URLError, a DNS or connection error, requests' ConnectionError under
        # timm): one line with the way out, not a traceback. A missing or unreadable local file is another story.
        if weights == "none" or isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        why = getattr(e, "reason", None) or e
        sys.exit(f"export_torchvision.py: no network ({why}): pass --weights none for random weights, "
                 "or --checkpoint FILE")
    if a.checkpoint:
        sd = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        model.load_state_dict(sd, strict=True)
    if a.randomize_bn is not None:
        randomize_bn(model, a.randomize_bn)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, a.out)
    n = sum(v.numel() for v in sd.values())
    print(f"{a.out}: {len(sd)} tensors, {n:,} values")


if __name__ == "__main__":
    main()
