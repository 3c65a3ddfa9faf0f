#!/usr/bin/env python3
"""Agreement check between two bnscope JSONL logs written with --log-bn full (e.g. --device cpu vs cuda).

Passes when every epoch has the same train / eval-running / eval-batch accuracy in both logs and every BN layer's
running mean and variance agree within 1e-3 relative (‖a − b‖₂ / ‖b‖₂, per layer and epoch). Exit 0 on agreement.
"""
import json
import math
import sys

TOL = 1e-3


def load(path):
    epochs, bns = {}, {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["type"] == "epoch":
                epochs[r["epoch"]] = r
            elif r["type"] == "bn":
                bns[r["epoch"]] = r
    return epochs, bns


def rel(a, b):
    num = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    den = math.sqrt(sum(y * y for y in b))
    return num / (den + 1e-12)


def main():
    a_ep, a_bn = load(sys.argv[1])
    b_ep, b_bn = load(sys.argv[2])
    problems = []
    if sorted(a_ep) != sorted(b_ep) or not a_ep:
        problems.append(f"epochs differ: {sorted(a_ep)[-1:]} vs {sorted(b_ep)[-1:]}")
    worst = (0.0, None)
    acc_diffs = 0
    for e in sorted(set(a_ep) & set(b_ep)):
        for k in ("train", "eval_running", "eval_batch"):
            if a_ep[e][k]["acc"] != b_ep[e][k]["acc"]:
                acc_diffs += 1
                problems.append(f"epoch {e} {k} acc {a_ep[e][k]['acc']:.3f} vs {b_ep[e][k]['acc']:.3f}")
        for la, lb in zip(a_bn[e]["layers"], b_bn[e]["layers"]):
            for k in ("running_mean", "running_var"):
                d = rel(la[k], lb[k])
                if d > worst[0]:
                    worst = (d, f"epoch {e} {la['name']} {k}")
                if d > TOL:
                    problems.append(f"epoch {e} {la['name']} {k}: relative difference {d:.2e}")
    last = max(a_ep) if a_ep else 0
    print(f"epochs compared: {len(set(a_ep) & set(b_ep))}; accuracy mismatches: {acc_diffs}; "
          f"largest BN running-stat difference {worst[0]:.2e} ({worst[1]})")
    if last:
        for name, ep in (("first", a_ep), ("second", b_ep)):
            m = ep[last]
            print(f"{name}: epoch {last} train {m['train']['acc']:.3f} eval running {m['eval_running']['acc']:.3f} "
                  f"eval batch {m['eval_batch']['acc']:.3f} loss {m['train']['loss']:.4g}")
    if problems:
        print("DISAGREE:\n  " + "\n  ".join(problems[:20]))
        sys.exit(1)
    print(f"AGREE (tolerance {TOL})")


if __name__ == "__main__":
    main()
