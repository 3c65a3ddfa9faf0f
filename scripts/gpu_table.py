#!/usr/bin/env python3
"""Prints the summary table of scripts/gpu-check.sh from its result folder."""
import json
import os
import statistics
import sys

res = sys.argv[1]


def read(name, default=""):
    try:
        with open(os.path.join(res, name)) as f:
            return f.read()
    except OSError:
        return default


def rc(name):
    return read(name + ".rc", "?").strip()


def epochs(name):
    out = []
    for line in read(name + ".jsonl").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("type") == "epoch":
            out.append(r)
    return out


print()
print("=" * 100)
print("bnscope GPU check ·", read("gpu.txt").strip())
print("=" * 100)
print(f"{'run':<28} {'exit':>4} {'epoch':>5} {'train':>6} {'eval run':>8} {'eval bat':>8} {'ms/step':>8}  verdict")
for model in ("tiny", "resnet18", "resnet50"):
    for m, want in (("0.99", "mystery"), ("0.01", "converged")):
        name = f"seed-{model}-m{m}"
        eps = epochs(name)
        if not eps:
            print(f"{model + ' m ' + m:<28} {rc(name):>4}  (no epochs) {read(name + '.err').strip()[:60]}")
            continue
        last = eps[-1]
        ms = statistics.median(e["step_ms"] for e in eps)
        tr, er, eb = last["train"]["acc"], last["eval_running"]["acc"], last["eval_batch"]["acc"]
        if want == "mystery":
            ok = tr == 1.0 and er < 1.0 and eb == 1.0
        else:
            ok = er == 1.0
        print(f"{model + ' m ' + m + ' (Keras)':<28} {rc(name):>4} {last['epoch']:>5} {tr:>6.3f} {er:>8.3f} {eb:>8.3f} "
              f"{ms:>8.1f}  {'reproduced' if ok else 'NOT reproduced'}")

print()
print(f"{'bench --device cuda':<28} {'size':>5} {'batch':>5} {'median ms':>10} {'min':>8} {'max':>8} {'img/s':>8} {'GFLOP/s':>8}")
ours50 = None
for name in ("bench-all", "bench-resnet50"):
    try:
        rep = json.loads(read(name + ".txt").strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"{name}: exit {rc(name)} {read(name + '.err').strip()[:80]}")
        continue
    for r in rep["results"]:
        print(f"{r['model'] + ' (' + name + ')':<28} {r['image_size']:>5} {r['batch_size']:>5} {r['median_ms']:>10.1f} "
              f"{r['min_ms']:>8.1f} {r['max_ms']:>8.1f} {r['images_per_s']:>8.1f} {r['gflops']:>8.1f}")
        if r["model"] == "resnet50" and r["image_size"] == 224 and name == "bench-resnet50":
            ours50 = r["median_ms"]

try:
    t = json.loads(read("torch.json").strip().splitlines()[-1])
    torch50 = t["results"][0]["median_ms"]
    print(f"{'PyTorch ' + t.get('torch', '') + ' resnet50':<28} {224:>5} {3:>5} {torch50:>10.1f}")
except (ValueError, IndexError, KeyError):
    torch50 = None
    print(f"PyTorch reference: exit {rc('torch')} {read('torch.err').strip()[-200:]}")

print()
pty = read("pty.txt")
print(f"PTY end-to-end (keys e + space ? q, SIGTERM, SIGHUP, trainer panic, resizes) on the CUDA binary: exit {rc('pty')} ·",
      next((l for l in pty.splitlines() if l.startswith("test result")), "no result line"))
for v in ("adam", "sgd", "lr0"):
    print(f"CPU vs GPU agreement (tiny, seed 0, 20 epochs, {v}): exit {rc('agree-' + v)} ·",
          " ".join(l for l in read(f"agree-{v}.txt").splitlines() if l.startswith(("AGREE", "DISAGREE", "epochs compared"))))
print()
print(read("breakdown.txt").strip())
if ours50 and torch50:
    print(f"resnet50@224 step: bnscope {ours50:.1f} ms vs PyTorch {torch50:.1f} ms → ratio {ours50 / torch50:.2f}×")
