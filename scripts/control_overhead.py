#!/usr/bin/env python3
"""Cost of bnscope.watch's hooks per training step, with the control channel off and on (idle), on the CPU.

A small conv net (conv 3→16, BN, ReLU, conv 16→32, BN, ReLU, pool, linear; batch 32 of 3×16×16), SGD. Three
variants trained in alternating blocks so that other load on the machine hits all alike: no bnscope at all,
`watch(model, log)` (BatchNorm forward hooks), `watch(model, log, control=True)` (plus the model's forward pre-hook
and one `fstat` of the control file per step). Prints the median and mean step time of each, then, measured on
their own (the step times of a shared machine are noisier than these few microseconds): one idle
`Control.boundary()`, and a module call with and without a pre-hook that calls it.

Usage: python scripts/control_overhead.py [--steps 2000] [--block 100] [--threads 1]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import bnscope  # noqa: E402
from bnscope._control import Control  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000, help="timed steps per variant")
    ap.add_argument("--block", type=int, default=100, help="steps per alternating block")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    ).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))

    def timed(n: int) -> list:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            out.append(time.perf_counter() - t0)
        return out

    times = {"no hook": [], "watch, control off": [], "watch, control on (idle)": []}
    with tempfile.TemporaryDirectory() as tmp:
        timed(50)  # warm-up
        i = 0
        while min(len(v) for v in times.values()) < args.steps:
            times["no hook"] += timed(args.block)
            with bnscope.watch(model, Path(tmp) / f"off{i}.jsonl"):
                times["watch, control off"] += timed(args.block)
            with bnscope.watch(model, Path(tmp) / f"on{i}.jsonl", control=True) as scope:
                times["watch, control on (idle)"] += timed(args.block)
                assert scope.control is not None and not scope.control.quiet
            i += 1
        base = statistics.median(times["no hook"])
        print(f"torch {torch.__version__}, {args.threads} thread(s), {args.steps} steps per variant, "
              f"blocks of {args.block}")
        for name, ts in times.items():
            med, mean = statistics.median(ts), statistics.fmean(ts)
            print(f"  {name:26s} median {med * 1e6:8.1f} µs  mean {mean * 1e6:8.1f} µs  "
                  f"(median − no hook: {(med - base) * 1e6:+6.1f} µs)")
        control = Control(Path(tmp) / "alone.jsonl", lambda c: {}, lambda r: None, recalibrate=False,
                          evaluate=False)
        n = 200_000
        t0 = time.perf_counter()
        for _ in range(n):
            control.boundary()
        per = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        fd = control.channel.fd if control.channel is not None else -1
        for _ in range(n):
            os.fstat(fd)
        fstat = (time.perf_counter() - t0) / n
        print(f"  one idle Control.boundary(): {per * 1e6:.2f} µs (of which one os.fstat: {fstat * 1e6:.2f} µs)")
        # The forward pre-hook's share: a trivial module called with and without such a pre-hook.
        ident, t = nn.Identity().train(), torch.zeros(1)

        def pre(module: nn.Module, inputs: object) -> None:
            if module.training:
                control.boundary()

        def calls() -> float:
            best = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n // 5):
                    ident(t)
                best.append((time.perf_counter() - t0) / (n // 5))
            return min(best)

        bare = calls()
        handle = ident.register_forward_pre_hook(pre)
        hooked = calls()
        handle.remove()
        print(f"  a module call: {bare * 1e6:.2f} µs bare, {hooked * 1e6:.2f} µs with the pre-hook and an idle "
              f"boundary (+{(hooked - bare) * 1e6:.2f} µs per step)")
        control.close()


if __name__ == "__main__":
    main()
