"""Planner outputs' own costs: lossless PNG masks (bytes and encode time) and the ground grid.

A real mask: the bundled model on a CamVid sample frame, at 480x360 and enlarged to 1920x1080
as the node publishes it. Prints p50 over runs; name the CPU (`lscpu`) with the figures.

    .venv/bin/python bench/bench_planner.py [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seg_perception.core.geometry import GridSpec, GroundGrid, Intrinsics  # noqa: E402
from seg_perception.core.masks import group_lut  # noqa: E402
from seg_perception.inference.factory import create_backend  # noqa: E402
from seg_perception.node.node import PNG_FAST  # noqa: E402 - the node's own settings
from seg_perception.optimize.quantize import calibration_frames  # noqa: E402


def timed(fn, runs: int) -> float:  # noqa: ANN001
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    a = p.parse_args()
    b = create_backend(ROOT / "engines" / "seglite_camvid.onnx", "onnxruntime", threads=2)
    frames = calibration_frames(ROOT / "data" / "camvid_sample" / "camvid_sample.mcap",
                                (360, 480), 4, topic="/camera/image_raw/compressed",
                                progress=False)
    masks = [b.infer(f) for f in frames]
    print("lossless PNG mask (the node's settings), mean over 4 CamVid sample frames:")
    for w, h in ((480, 360), (1920, 1080)):
        big = [cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in masks]
        sizes = [len(cv2.imencode(".png", m, PNG_FAST)[1]) for m in big]
        ms = statistics.mean(timed(lambda m=m: cv2.imencode(".png", m, PNG_FAST), a.runs)
                             for m in big)
        for m in big:  # lossless: the planner gets the ids back exactly
            back = cv2.imdecode(cv2.imencode(".png", m, PNG_FAST)[1], cv2.IMREAD_UNCHANGED)
            assert back is not None and np.array_equal(back, m)
        print(f"  {w}x{h}: {statistics.mean(sizes) / 1e3:.1f} kB per frame (raw {w * h / 1e3:.0f}"
              f" kB, {w * h / statistics.mean(sizes):.0f}x smaller), encode {ms:.2f} ms p50")
    k = Intrinsics.from_fields([400.0, 0, 239.5, 0, 400.0, 179.5, 0, 0, 1], [], [], 480, 360)
    t = time.perf_counter()
    grid = GroundGrid(k, [0, 0, 1.3, 0, 0.02, 0], GridSpec(0.1, (0.0, 30.0), (-10.0, 10.0)))
    build = (time.perf_counter() - t) * 1e3
    d, o = group_lut([3]), group_lut([2, 6, 7, 8, 9, 10])
    ms = statistics.mean(timed(lambda m=m: grid.render(m, d, o), a.runs) for m in masks)
    print(f"ground grid 300x200 cells from 480x360 ids: render {ms:.3f} ms p50 per frame "
          f"(mapping built once per camera_info: {build:.0f} ms)")


if __name__ == "__main__":
    main()
