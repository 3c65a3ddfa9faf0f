#!/usr/bin/env python3
"""Overhead of bnscope.watch's forward hooks on a PyTorch training step.

torchvision resnet18 (3 classes), batch 8, 64 px, Adam 1e-3, CPU by default: median time of one training step
(forward, backward, optimizer) with and without the hooks, in alternating blocks so that other load on the machine
hits both alike; then the cost of one `scope.epoch()` (the once-an-epoch host transfer and the log line).

Usage: python scripts/hook_overhead.py [--steps 30] [--block 5] [--batch 8] [--size 64] [--threads N] [--device cpu]
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import torch  # noqa: E402
import torchvision  # noqa: E402

import bnscope  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    ap.add_argument("--block", type=int, default=5, help="steps per alternating block")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    y = torch.randint(0, 3, (args.batch,), device=dev)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(n):
        out = []
        for _ in range(n):
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            out.append(time.perf_counter() - t0)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):  # warm-up, both variants
            step()
        with bnscope.watch(model, Path(tmp) / "warm.jsonl"):
            step()
        plain, hooked = [], []
        i = 0
        while len(plain) < args.steps or len(hooked) < args.steps:
            plain += timed(args.block)
            with bnscope.watch(model, Path(tmp) / f"h{i}.jsonl") as scope:
                hooked += timed(args.block)
                epoch_times = []
                for mode in ("summary", "full"):
                    sync()
                    t0 = time.perf_counter()
                    scope.epoch(train={"loss": 0.0}, bn=mode)
                    epoch_times.append(time.perf_counter() - t0)
            i += 1
    a, b = statistics.median(plain) * 1e3, statistics.median(hooked) * 1e3
    threads = torch.get_num_threads()
    print(f"resnet18 batch {args.batch} {args.size}px {dev} threads {threads} torch {torch.__version__}")
    print(f"step without hooks: median {a:.2f} ms (min {min(plain) * 1e3:.2f}, {len(plain)} steps)")
    print(f"step with hooks:    median {b:.2f} ms (min {min(hooked) * 1e3:.2f}, {len(hooked)} steps)")
    print(f"overhead: {b - a:+.2f} ms per step ({(b - a) / a * 100:+.1f} %)")
    print(f"scope.epoch(): summary {epoch_times[0] * 1e3:.1f} ms, full {epoch_times[1] * 1e3:.1f} ms (last block)")


if __name__ == "__main__":
    main()
