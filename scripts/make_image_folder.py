#!/usr/bin/env python3
"""Writes a synthetic image folder DIR/<class>/<image> for measuring bnscope's data loading (issue #12).

    python scripts/make_image_folder.py /tmp/folder5000 --images 5000 --classes 10

Each class has its own colour and shape; every image differs (random size around 300 px, position, noise), and
one in five is a PNG, the rest JPEG (quality 90), as a photo folder would be. Needs Pillow and NumPy. Deterministic
for a given --seed. Write it outside the repository.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw


def image(rng, label, classes):
    w = int(rng.integers(260, 341))
    h = int(rng.integers(260, 341))
    hue = label / classes
    base = np.array([np.sin(2 * np.pi * (hue + k / 3)) * 0.5 + 0.5 for k in range(3)]) * 255
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)[..., None]
    arr = base * (0.55 + 0.45 * grad) + rng.normal(0, 18, (h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        x1, y1 = x0 + int(rng.integers(30, 120)), y0 + int(rng.integers(30, 120))
        fill = tuple(int(v) for v in 255 - base)
        if label % 3 == 0:
            d.ellipse((x0, y0, x1, y1), fill=fill)
        elif label % 3 == 1:
            d.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            d.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=fill)
    return img


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.classes < 2 or a.images < a.classes:
        sys.exit("need at least 2 classes and one image per class")
    rng = np.random.default_rng(a.seed)
    for c in range(a.classes):
        os.makedirs(os.path.join(a.dir, f"class{c:02d}"), exist_ok=True)
    for i in range(a.images):
        label = i % a.classes
        img = image(rng, label, a.classes)
        folder = os.path.join(a.dir, f"class{label:02d}")
        if i % 5 == 0:
            img.save(os.path.join(folder, f"img{i:05d}.png"))
        else:
            img.save(os.path.join(folder, f"img{i:05d}.jpg"), quality=90)
    print(f"{a.images} images in {a.classes} classes under {a.dir}")


if __name__ == "__main__":
    main()
