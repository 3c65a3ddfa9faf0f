#!/usr/bin/env python3
"""The round trip PyTorch → bnscope → PyTorch with torchvision ResNets (issue #12's acceptance check).

For each model (resnet18, resnet50 by default): export a torchvision model (random weights, randomised BatchNorm
buffers, a 3-class head: no pretrained download needed) with scripts/export_torchvision.py's code; then

1. `bnscope inspect --json` on the seed images must reproduce PyTorch's logits in eval() and train() mode;
2. full-batch SGD steps in bnscope (`--optimizer sgd --framework torch --batch-size 3`; 1 and 3 steps at lr 0.01,
   3 at lr 0.001) written with `--save-weights` must load strictly into torchvision and match PyTorch's own steps:
   within --tol of PyTorch's float64 result, or no farther from it than PyTorch's own float32 result is twice over
   (a few lr-0.01 steps on three images are ill-conditioned: float32 rounding alone moves resnet50 by O(1)).

Prints the largest relative differences (‖a−b‖∞/‖b‖∞ per tensor) and exits 1 if one is above --tol.

    /path/to/venv/bin/python scripts/check_torchvision.py [--bnscope target/release/bnscope] [--models resnet18 resnet50]
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_torchvision import randomize_bn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def seed_images(normalize: str) -> torch.Tensor:
    xs = []
    for c in ["cat", "coffee", "rocket"]:
        img = Image.open(ROOT / "data" / "seed3" / c / f"{c}.png").convert("RGB")
        xs.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))
    x = torch.stack(xs)
    return (x - MEAN) / STD if normalize == "imagenet" else x


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bnscope", default=str(ROOT / "target" / "release" / "bnscope"))
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--normalize", default="imagenet", choices=["none", "imagenet"])
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    x = seed_images(a.normalize)
    y = torch.tensor([0, 1, 2])
    ok = True
    with tempfile.TemporaryDirectory() as d:
        for name in a.models:
            torch.manual_seed(0)
            model = torchvision.models.get_model(name, weights=None, num_classes=3)
            randomize_bn(model, 1)
            src = Path(d) / f"{name}.safetensors"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(src))
            common = ["--weights", str(src), "--batch-size", "3"]
            if a.normalize != "none":
                common += ["--normalize", a.normalize]

            t0 = time.perf_counter()
            out = subprocess.run([a.bnscope, "inspect", "--json", *common], capture_output=True, text=True, check=True)
            inspect_s = time.perf_counter() - t0
            r = json.loads(out.stdout)
            ref = {}
            for mode, key in [(False, "eval_running"), (True, "eval_batch")]:
                m = copy.deepcopy(model).train(mode)
                with torch.no_grad():
                    ref[key] = m(x)
            d_eval = rel(torch.tensor(r["eval_running"]["logits"]), ref["eval_running"])
            d_train = rel(torch.tensor(r["eval_batch"]["logits"]), ref["eval_batch"])

            line = [f"{name}: inspect {inspect_s:.2f} s; logits eval {d_eval:.2e}, train-mode {d_train:.2e}"]
            ok &= max(d_eval, d_train) <= a.tol
            for steps, lr in [(1, 0.01), (3, 0.01), (3, 0.001)]:
                saved = Path(d) / f"{name}.{steps}.{lr}.safetensors"
                subprocess.run(
                    [a.bnscope, "--headless", "--epochs", str(steps), "--optimizer", "sgd", "--lr", str(lr),
                     "--framework", "torch", "--save-weights", str(saved), *common],
                    capture_output=True, text=True, check=True,
                )
                theirs = torchvision.models.get_model(name, weights=None, num_classes=3)
                theirs.load_state_dict(load_file(str(saved)), strict=True)
                got = theirs.state_dict()
                # PyTorch's own steps in float32 and, as the reference, in float64: a few full-batch steps on three
                # images can be ill-conditioned enough that float32 rounding alone moves the result (then PyTorch
                # float32 is as far from float64 as bnscope is).
                ref = {}
                for dt in (torch.float32, torch.float64):
                    m = copy.deepcopy(model).to(dt).train()
                    opt = torch.optim.SGD(m.parameters(), lr=lr)
                    for _ in range(steps):
                        opt.zero_grad()
                        torch.nn.functional.cross_entropy(m(x.to(dt)), y).backward()
                        opt.step()
                    ref[dt] = m.state_dict()

                def worst(sd: dict, want: dict) -> tuple[float, str]:
                    return max((rel(sd[k], want[k]) if want[k].is_floating_point() else float(sd[k] != want[k]), k)
                               for k in want)

                ours, torch32 = worst(got, ref[torch.float32]), worst(got, ref[torch.float64])
                spread = worst(ref[torch.float32], ref[torch.float64])
                line.append(f"{steps} SGD step(s) lr {lr}, loaded strictly into torchvision: vs PyTorch f32 "
                            f"{ours[0]:.2e} ({ours[1]}), vs f64 {torch32[0]:.2e}; PyTorch f32 vs f64 {spread[0]:.2e}")
                # bnscope must be as close to the float64 result as PyTorch's float32 is (or within --tol).
                ok &= torch32[0] <= max(a.tol, 2 * spread[0])
            print("\n  ".join(line))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
