"""Two models' mIoU on a split under photometric shifts the split does not have.

A weak stand-in for other light, not for other streets: the frames are the split's own (for
the bundled model, training frames), only darker, brighter, tinted, blurred or noisier. What it
tells apart is how much each model's score falls under a shift, not how well either generalises.

    python bench/bench_shift.py A.onnx B.onnx [--data ../shared/data/camvid] [--split val]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.datasets.camvid import dataset_classes, load_split
from seg_perception.inference.onnxruntime_backend import OnnxRuntimeBackend


def _gamma(g: float) -> Callable[[np.ndarray], np.ndarray]:
    lut = (255.0 * (np.arange(256) / 255.0) ** g + 0.5).astype(np.uint8)
    return lambda im: lut[im]


def _cast(rgb: tuple[float, float, float]) -> Callable[[np.ndarray], np.ndarray]:
    gain = np.array(rgb, np.float32)
    return lambda im: np.clip(im * gain, 0, 255).astype(np.uint8)


def _noise(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    return lambda im: np.clip(im + rng.normal(0, sigma, im.shape), 0, 255).astype(np.uint8)


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda im: im,
    "dusk (gamma 1.8)": _gamma(1.8),
    "glare (gamma 0.55)": _gamma(0.55),
    "warm cast (1.15, 1.0, 0.8)": _cast((1.15, 1.0, 0.8)),
    "blue cast (0.85, 0.95, 1.2)": _cast((0.85, 0.95, 1.2)),
    "blur (sigma 1.5)": lambda im: cv2.GaussianBlur(im, (0, 0), 1.5),
    "noise (sigma 12)": _noise(12.0),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs=2, type=Path)
    p.add_argument("--data", default="../shared/data/camvid")
    p.add_argument("--split", default="val")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    classes = dataset_classes(args.data)
    images, labels = load_split(args.data, args.split, classes)
    backends = [OnnxRuntimeBackend(m, threads=args.threads) for m in args.models]
    same = args.models[0].name == args.models[1].name  # then the paths tell them apart
    names = [str(m) if same else m.name for m in args.models]
    print(f"{len(images)} {args.split} frames; mIoU % per shift")
    print(f"{'shift':30s} {names[0]:>24s} {names[1]:>24s}")
    try:
        for shift, fn in SHIFTS.items():
            cms = [ConfusionMatrix(classes.num_classes) for _ in backends]
            for im, lab in zip(images, labels, strict=True):
                x = fn(im)
                for b, cm in zip(backends, cms, strict=True):
                    cm.update(b.infer(x), lab)
            print(f"{shift:30s} " + " ".join(f"{100 * cm.miou():24.2f}" for cm in cms))
    finally:
        for b in backends:
            b.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
