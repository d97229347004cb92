"""Models' mIoU on a split under photometric shifts the split does not have.

A weak stand-in for other light, not for other streets: the frames are the split's own (for
the bundled model, training frames), only darker, brighter, tinted, blurred or noisier. What it
tells apart is how much each model's score falls under a shift, not how well either generalises.

    python bench/bench_shift.py A.onnx B.onnx [C.onnx ...] [--data ../shared/data/camvid]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.datasets import photometric as ph
from seg_perception.datasets.camvid import dataset_classes, load_split
from seg_perception.inference.onnxruntime_backend import OnnxRuntimeBackend


def _float(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A colour change on float frames applied to a uint8 frame, as training applies it."""
    return lambda im: ph.to_uint8(fn(im.astype(np.float32)))


def _noise(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    return lambda im: ph.noise(im, sigma, rng)


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda im: im,
    "dusk (gamma 1.8)": _float(lambda f: ph.gamma(f, 1.8)),
    "glare (gamma 0.55)": _float(lambda f: ph.gamma(f, 0.55)),
    "warm cast (1.15, 1.0, 0.8)": _float(lambda f: ph.colour_cast(f, (1.15, 1.0, 0.8))),
    "blue cast (0.85, 0.95, 1.2)": _float(lambda f: ph.colour_cast(f, (0.85, 0.95, 1.2))),
    "blur (sigma 1.5)": lambda im: ph.blur(im, 1.5),
    "noise (sigma 12)": _noise(12.0),
}
"""The training augmentation's own changes (``datasets.photometric``) at fixed strengths, some
outside its training range (gamma 0.7-1.4, cast 0.85-1.15, blur 0.3-1.2, noise 2-8)."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--data", default="../shared/data/camvid")
    p.add_argument("--split", default="val")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    classes = dataset_classes(args.data)
    images, labels = load_split(args.data, args.split, classes)
    backends = [OnnxRuntimeBackend(m, threads=args.threads) for m in args.models]
    same = len({m.name for m in args.models}) < len(args.models)  # then paths tell them apart
    names = [str(m) if same else m.name for m in args.models]
    print(f"{len(images)} {args.split} frames; mIoU % per shift")
    print(f"{'shift':30s} " + " ".join(f"{n:>24s}" for n in names))
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
