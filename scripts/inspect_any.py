"""`bnscope.inspect` on architectures bnscope itself does not build: each with random weights and randomised
BatchNorm statistics and affine parameters, on generated images, printing the three accuracies, the layer the blame
names first and the wall time.

    PYTHONPATH=python KERAS_BACKEND=torch /work/venv/bin/python scripts/inspect_any.py [--images 256] [--size 64]

The images are generated (class k: a smooth random field plus a bright square in the k-th of four places), so the
accuracies of random weights are about chance; what the table shows is that every architecture is inspected, how
far the randomised running statistics put "running" from "batch" and "recalibrated", and what that costs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import bnscope  # noqa: E402

CLASSES = 4


def images(n: int, size: int, seed: int = 0) -> Tuple[Any, Any]:
    """`n` generated RGB images `(n, 3, size, size)` in [0, 1] and their labels (torch tensors)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False) * 0.6
    q = size // 2
    for i in range(n):
        r, c = divmod(int(y[i]), 2)
        x[i, :, r * q + q // 4 : r * q + 3 * q // 4, c * q + q // 4 : c * q + 3 * q // 4] += 0.4
    return x.clamp(0, 1), y


def randomise(model: Any, seed: int = 0) -> Any:
    """Random running statistics and affine parameters in every BatchNorm layer (a model "trained" elsewhere)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
                m.num_batches_tracked.fill_(1000)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.2)
    return model.eval()


def torchvision_model(name: str) -> Callable[[], Any]:
    def build() -> Any:
        import torch
        import torchvision

        torch.manual_seed(0)
        return randomise(getattr(torchvision.models, name)(weights=None, num_classes=CLASSES))

    return build


def mlp() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return randomise(
        nn.Sequential(
            nn.Flatten(), nn.LazyLinear(64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32), nn.BatchNorm1d(32),
            nn.ReLU(), nn.Linear(32, CLASSES),
        )
    )


def keras_mobilenet_v2(size: int) -> Any:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), classes=CLASSES)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.2, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.25, 1.75, shape).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.2, shape).astype("float32"))
    return model


ARCHITECTURES: Dict[str, Callable[[], Any]] = {
    "mobilenet_v3_small": torchvision_model("mobilenet_v3_small"),
    "efficientnet_b0": torchvision_model("efficientnet_b0"),
    "densenet121": torchvision_model("densenet121"),
    "vgg11_bn": torchvision_model("vgg11_bn"),
    "regnet_x_400mf": torchvision_model("regnet_x_400mf"),
    "mlp (BatchNorm1d)": mlp,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--blame-samples", type=int, default=64)
    ap.add_argument("--shuffles", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="architectures to run (default: all, and Keras MobileNetV2)")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 is steadier on a shared machine)")
    ap.add_argument("--verbose", action="store_true", help="print each full report")
    args = ap.parse_args()
    import torch

    # Random weights drive activations into float32's denormal range, where CPU kernels are 10-30x slower (regnet,
    # MobileNetV2 here); flushing them to zero changes no figure that matters and keeps the table's times honest.
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)

    x, y = images(args.images, args.size)
    data = [(x[i : i + args.batch_size], y[i : i + args.batch_size]) for i in range(0, len(x), args.batch_size)]
    rows: List[Tuple[str, Any, float]] = []
    for name, build in ARCHITECTURES.items():
        if args.only and name.split()[0] not in args.only:
            continue
        model = build()
        if name.startswith("mlp"):
            with torch.no_grad():
                model(x[:2])  # materialise the lazy first layer
        t = time.perf_counter()
        report = bnscope.inspect(model, data, blame_samples=args.blame_samples, shuffles=args.shuffles)
        rows.append((name, report, time.perf_counter() - t))
        if args.verbose:
            print(report)
        print(f"{name}: {rows[-1][2]:.1f} s", file=sys.stderr)
    if not args.no_keras and (not args.only or "keras_mobilenet_v2" in args.only):
        model = keras_mobilenet_v2(args.size)
        xk, yk = x.permute(0, 2, 3, 1).numpy(), y.numpy()
        t = time.perf_counter()
        report = bnscope.keras_inspect(
            model, xk, yk, batch_size=args.batch_size, blame_samples=args.blame_samples, shuffles=args.shuffles
        )
        rows.append(("keras MobileNetV2", report, time.perf_counter() - t))
        if args.verbose:
            print(report)
    print(
        f"{args.images} generated images {args.size}x{args.size}, batches of {args.batch_size}, blame on "
        f"{args.blame_samples}, {args.shuffles} shuffles, torch {torch.get_num_threads()} threads\n"
    )
    print("| model | BN layers | running acc | batch acc | recalibrated acc (spread) | top blamed layer | wall |")
    print("|---|---|---|---|---|---|---|")
    for name, r, seconds in rows:
        s = r.recalibration_spread
        spread = (
            f" ({100 * s.acc_min:.1f}–{100 * s.acc_max:.1f})" if s is not None and s.acc_min is not None else ""
        )
        top = f"{r.blamed[0][0]} ({100 * r.blamed[0][1]:.0f} % of the {r.blame_by} gap)" if r.blamed else "–"
        print(
            f"| {name} | {len(r.layers)} | {pct(r.eval_running.acc)} | {pct(r.eval_batch.acc)} | "
            f"{pct(r.recalibrated.acc)}{spread} | {top} | {seconds:.1f} s |"
        )


def pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


if __name__ == "__main__":
    main()
