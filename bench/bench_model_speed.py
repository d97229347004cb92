"""Two ONNX models' ONNX Runtime CPU time at one input size, side by side in one run.

Interleaved rounds (A, B, A, B, ...) so the machine's drift hits both alike; prints the median
per round and the ratio. Used to hold a new bundled model to the speed class of the old one.

    python bench/bench_model_speed.py OLD.onnx NEW.onnx [--size 360 480] [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from seg_perception.inference.onnxruntime_backend import OnnxRuntimeBackend


def median_ms(backend: OnnxRuntimeBackend, frame: np.ndarray, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend.infer(frame)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", type=Path, nargs=2)
    p.add_argument("--size", type=int, nargs=2, default=(360, 480), metavar=("H", "W"))
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    frame = np.random.default_rng(0).integers(0, 256, (*args.size, 3), dtype=np.uint8)
    backends = [OnnxRuntimeBackend(m, threads=args.threads) for m in args.models]
    for b in backends:
        median_ms(b, frame, 10)  # warm-up
    rows: list[list[float]] = [[], []]
    for r in range(args.rounds):
        for i, b in enumerate(backends):
            rows[i].append(median_ms(b, frame, args.runs))
        print(f"round {r + 1}: " + "  ".join(f"{m.name} {rows[i][-1]:.2f} ms"
                                              for i, m in enumerate(args.models)), flush=True)
    ms_a, ms_b = statistics.median(rows[0]), statistics.median(rows[1])
    print(f"median of rounds: {args.models[0]} {ms_a:.2f} ms, {args.models[1]} {ms_b:.2f} ms, "
          f"ratio {ms_b / ms_a:.3f} (range {min(rows[1]) / max(rows[0]):.3f}-"
          f"{max(rows[1]) / min(rows[0]):.3f})")
    for bk in backends:
        bk.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
