#!/usr/bin/env python3
"""PyTorch reference timings for `bnscope bench --all --json`.

The same three presets (tiny@64, resnet18@64, resnet50@224), batch 3, Adam lr 1e-3, the same FLOP count
(3 x forward FLOPs of the convolutions and the classifier, 2 per multiply-accumulate), median / min / max of
`--steps` timed steps after `--warmup` untimed ones. Each preset runs in a fresh subprocess so that its peak RSS is
its own. Prints one JSON object shaped like bnscope's:

    {"device", "threads", "results": [{"model", "image_size", "batch_size", "kernels": "pytorch", "median_ms",
      "min_ms", "max_ms", "images_per_s", "gflops", "eval_median_ms", "peak_rss_mb"}]}

Usage: python scripts/pytorch_reference.py [--threads 2] [--steps 20] [--warmup 3] [--models tiny,resnet18,resnet50]
Needs torch and torchvision (CPU is enough).
"""
import argparse
import json
import resource
import subprocess
import sys
import time

PRESETS = {"tiny": 64, "resnet18": 64, "resnet50": 224}


def tiny_model(classes):
    """`tiny` exactly as src/model/mod.rs documents it (77,587 parameters for 3 classes)."""
    import torch.nn as nn
    from torchvision.models.resnet import BasicBlock

    def block(cin, cout, stride):
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return BasicBlock(cin, cout, stride, down)

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
        block(16, 16, 1),
        block(16, 32, 2),
        block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, classes),
    )


def build(name, classes=3):
    import torchvision

    if name == "tiny":
        return tiny_model(classes)
    return getattr(torchvision.models, name)(num_classes=classes)


def forward_flops(model, x):
    """2 x multiply-accumulates of every Conv2d and Linear in one forward pass, per image."""
    import torch
    import torch.nn as nn

    macs = [0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs[0] += out.numel() // out.shape[0] * k

    def linear_hook(m, inp, out):
        macs[0] += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model.eval()
        model(x[:1])
        model.train()
    for h in hooks:
        h.remove()
    return 2.0 * macs[0]


def stats(v):
    v = sorted(v)
    n = len(v)
    med = v[n // 2] if n % 2 == 1 else (v[n // 2 - 1] + v[n // 2]) / 2
    return med, v[0], v[-1]


def bench_one(name, threads, steps, warmup, batch):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    size = PRESETS[name]
    model = build(name)
    if name == "tiny":
        assert sum(p.numel() for p in model.parameters()) == 77_587, "tiny must match src/model/mod.rs"
    x = torch.randn(batch, 3, size, size)
    y = torch.arange(batch) % 3
    flops = 3.0 * forward_flops(model, x) * batch
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    model.eval()
    evals = []
    with torch.no_grad():
        for _ in range(max(1, min(steps, 10))):
            t0 = time.perf_counter()
            model(x).numpy()
            evals.append((time.perf_counter() - t0) * 1e3)
    med, lo, hi = stats(times)
    return {
        "model": name,
        "image_size": size,
        "batch_size": batch,
        "kernels": "pytorch",
        "median_ms": med,
        "min_ms": lo,
        "max_ms": hi,
        "images_per_s": batch / (med / 1e3),
        "gflops": flops / (med / 1e3) / 1e9,
        "eval_median_ms": stats(evals)[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=3)
    ap.add_argument("--models", default="tiny,resnet18,resnet50")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(bench_one(a.one, a.threads, a.steps, a.warmup, a.batch_size)))
        return
    import torch

    results = []
    for name in a.models.split(","):
        if name not in PRESETS:
            sys.exit(f"unknown model {name!r}; expected one of {', '.join(PRESETS)}")
        cmd = [sys.executable, __file__, "--one", name, "--threads", str(a.threads), "--steps", str(a.steps),
               "--warmup", str(a.warmup), "--batch-size", str(a.batch_size)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps({"device": f"cpu (torch {torch.__version__}, {a.threads} threads)", "threads": a.threads,
                      "results": results}))


if __name__ == "__main__":
    main()
