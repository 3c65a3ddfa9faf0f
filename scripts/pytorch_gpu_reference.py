#!/usr/bin/env python3
"""PyTorch's resnet50@224 training step on a GPU, for comparison with `bnscope bench --device cuda`.

torchvision resnet50 (3 classes), batch 3, Adam lr 1e-3, median of --steps steps after --warmup, with
torch.cuda.synchronize() around each step. Prints one JSON object in bnscope bench's shape.
"""
import argparse
import json
import statistics
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=224)
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=3).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=dev)
    y = torch.arange(args.batch_size, device=dev) % 3
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for i in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times)
    print(json.dumps({
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "results": [{
            "model": "resnet50", "image_size": args.image_size, "batch_size": args.batch_size, "kernels": "pytorch",
            "median_ms": med, "min_ms": min(times), "max_ms": max(times),
            "images_per_s": args.batch_size / (med / 1e3),
        }],
    }))


if __name__ == "__main__":
    main()
