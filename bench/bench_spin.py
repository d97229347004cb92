"""ONNX Runtime spin-waiting at camera rate: CPU seconds per frame and latency, spin on and off.

Frames arrive at a fixed rate (default 30 Hz, 480x360) as a camera's would; the backend runs each
on arrival. Prints, per setting and round, latency p50/p95 and the process's CPU time per frame
(user + system, all threads), so the cost of busy-waiting between frames shows. Run on an idle
machine; name its CPU (`lscpu`) with the figures.

    .venv/bin/python bench/bench_spin.py [--rate 30] [--frames 150] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seg_perception.inference.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402


def run(spin: bool, rate: float, frames: int, threads: int) -> tuple[float, float, float]:
    b = OnnxRuntimeBackend(ROOT / "engines" / "seglite_camvid.onnx", threads=threads,
                           spin_wait=spin)
    img = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    for _ in range(5):
        b.infer(img)
    period = 1.0 / rate
    lat = []
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(frames):
        due = t0 + i * period
        while time.perf_counter() < due:
            time.sleep(max(due - time.perf_counter(), 0))
        s = time.perf_counter()
        b.infer(img)
        lat.append(time.perf_counter() - s)
    # The wait after the last frame counts too: spinning threads burn it.
    time.sleep(period)
    cpu = (time.process_time() - c0) / frames
    b.close()
    return statistics.median(lat) * 1e3, float(np.percentile(lat, 95)) * 1e3, cpu * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    print(f"{a.frames} frames at {a.rate:g} Hz, 480x360, {a.threads} threads; rounds interleaved")
    print("spin  | latency p50 ms | p95 ms | CPU ms per frame | CPU % at this rate")
    for r in range(a.rounds):
        for spin in (True, False):
            p50, p95, cpu = run(spin, a.rate, a.frames, a.threads)
            print(f"{'on ' if spin else 'off'}   | {p50:14.2f} | {p95:6.2f} | {cpu:16.2f} | "
                  f"{cpu * a.rate / 10:6.1f}   (round {r + 1})")


if __name__ == "__main__":
    main()
