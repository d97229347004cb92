"""Per-backend latency at camera resolutions: the backend alone and the node's full path.

For each backend that can run here (ONNX Runtime fp32 and Q/DQ int8 and torch on the CPU with
``--threads``; torch CUDA fp32/fp16 when CUDA exists; TensorRT fp16/int8 where it imports) it
times ``infer`` at the model input size, and ``Segmenter.predict`` on 480x360 and 1920x1080
frames (resize to the model input, infer, ids back to frame size). Prints p50/p95/mean in ms;
no pass/fail. The int8 Q/DQ model is calibrated into a temporary folder when the model has none.

  python bench/bench_backends.py [--model engines/seglite_camvid.onnx] [--iters 30]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seg_perception.datasets.camvid import read_rgb  # noqa: E402
from seg_perception.inference.factory import (  # noqa: E402
    create_backend,
    tensorrt_available,
    torch_cuda_available,
)
from seg_perception.inference.modelinfo import default_model_path, read_model_info  # noqa: E402
from seg_perception.inference.segmenter import Segmenter  # noqa: E402

CAMVID = ROOT.parent / "shared" / "data" / "camvid"
SIZES = ((360, 480), (1080, 1920))


def camera_frame(h: int, w: int) -> np.ndarray:
    """A real CamVid frame scaled to the camera size when present, else smooth noise."""
    import cv2

    files = sorted((CAMVID / "val").glob("*.png"))
    if files:
        img = read_rgb(files[0])
    else:
        rng = np.random.default_rng(0)
        img = rng.integers(0, 255, (45, 60, 3), np.uint8)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def timed(fn, arg, iters: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn(arg)
    out = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn(arg)
        out[i] = time.perf_counter() - t0
    return out * 1e3


def configs(args: argparse.Namespace) -> list[tuple[str, str, dict]]:
    out = [("onnxruntime", "fp32", {}), ("onnxruntime", "int8", {}),
           ("torch", "fp32", {"device": "cpu"})]
    if torch_cuda_available():
        out += [("torch", "fp32", {"device": "cuda"}), ("torch", "fp16", {"device": "cuda"})]
    if tensorrt_available()[0]:
        out += [("tensorrt", "fp16", {"engine_dir": args.engine_dir}),
                ("tensorrt", "int8", {"engine_dir": args.engine_dir})]
    return out


def ensure_qdq(model: Path, work: Path, frames: int) -> Path:
    """The model in ``work`` with a Q/DQ sibling (copied if it exists, else calibrated)."""
    from seg_perception.inference.variants import qdq_path_for
    from seg_perception.optimize.quantize import calibration_frames, quantize_int8

    dst = work / model.name
    shutil.copy(model, dst)
    if model.with_suffix(".pt").is_file():
        shutil.copy(model.with_suffix(".pt"), dst.with_suffix(".pt"))
    if qdq_path_for(model).is_file():
        shutil.copy(qdq_path_for(model), qdq_path_for(dst))
    elif (CAMVID / "train").is_dir():
        size = read_model_info(model).input_size
        quantize_int8(dst, calibration_frames(CAMVID / "train", size, frames, progress=False),
                      progress=False)
    return dst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--calib-frames", type=int, default=64)
    ap.add_argument("--engine-dir", default=None)
    ap.add_argument("--backends", nargs="*", help="only these (onnxruntime, torch, tensorrt)")
    args = ap.parse_args()
    model = Path(args.model)
    info = read_model_info(model)
    print(f"model {model.name}: input {info.input_size[0]}x{info.input_size[1]}, "
          f"{platform.processor() or platform.machine()}, {args.threads} CPU threads, "
          f"{args.iters} timed runs after {args.warmup} warm-up")
    head = f"{'backend':<24}{'stage':<22}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}"
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        work_model = ensure_qdq(model, Path(tmp), args.calib_frames)
        for name, precision, opts in configs(args):
            if args.backends and name not in args.backends:
                continue
            label = f"{name} {precision}" + (f" {opts['device']}" if "device" in opts else "")
            try:
                b = create_backend(work_model, name, precision, args.threads, **opts)
            except (ValueError, FileNotFoundError, RuntimeError) as exc:
                print(f"{label:<24}skipped: {exc}")
                continue
            try:
                seg = Segmenter(b)
                rows: list[tuple[str, Callable[[np.ndarray], np.ndarray], np.ndarray]] = [
                    ("infer @ model input", b.infer, camera_frame(*seg.input_size))]
                rows += [(f"frame {w}x{h} e2e", seg.predict, camera_frame(h, w))
                         for h, w in SIZES]
                for stage, fn, frame in rows:
                    ms = timed(fn, frame, args.iters, args.warmup)
                    print(f"{label:<24}{stage:<22}{np.percentile(ms, 50):>9.2f}"
                          f"{np.percentile(ms, 95):>9.2f}{ms.mean():>9.2f}")
            finally:
                b.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
