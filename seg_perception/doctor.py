"""``seg-perception doctor``: the one command a Jetson user runs after installing.

Each check prints PASS or FAIL and, on failure, what to do; the exit code is the number of failed
checks (capped at 1 for the shell: 0 all good, 1 something to fix). It never prints a traceback:
a check that raises is a FAIL with the exception's message.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.logs import collected
from seg_perception.inference.backend import PRECISIONS
from seg_perception.inference.modelinfo import default_model_path, package_share, read_model_info
from seg_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
from seg_perception.inference.tensorrt.backend import TensorRTBackend
from seg_perception.inference.tensorrt.build import trt_logger
from seg_perception.optimize.quantize import calibration_frames

AGREEMENT = {"fp32": 0.995, "fp16": 0.99, "int8": 0.97}
"""Least share of pixels whose ids equal ONNX Runtime FP32's for a precision to pass."""


@dataclass
class Report:
    out: Callable[[str], None] = print
    failed: list[str] = field(default_factory=list)

    def check(self, name: str, fn: Callable[[], str], fix: str) -> Any:  # noqa: ANN401
        """Runs ``fn``; its return value is the detail printed after PASS."""
        try:
            detail = fn()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none is raised
            self.failed.append(name)
            msg = str(exc).strip().replace("\n", "\n         ")
            self.out(f"FAIL  {name}: {type(exc).__name__}: {msg}\n      fix: {fix}")
            return None
        self.out(f"PASS  {name}: {detail}")
        return detail


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="", help="seg_perception ONNX (default: the bundled one)")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["fp16", "int8"],
                   help="engines to build or find and check")
    p.add_argument("--engine-dir", help="engine cache directory (default: beside the model)")
    p.add_argument("--frames", default="",
                   help="image folder or bag to compare ids on (default: the bundled sample)")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--runs", type=int, default=50, help="timed runs per engine")


def _import(name: str) -> Any:  # noqa: ANN401 - a module
    import importlib

    return importlib.import_module(name)


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    r = Report(out)

    model = Path(args.model) if args.model else default_model_path()
    if not args.frames:
        args.frames = str(package_share() / "data" / "camvid_sample" / "camvid_sample.mcap")
    engine_dir = Path(args.engine_dir) if args.engine_dir else model.parent
    out(f"seg_perception doctor: model {model}, engines in {engine_dir}")

    trt = r.check("tensorrt", lambda: f"TensorRT {_import('tensorrt').__version__}",
                  "install TensorRT's Python bindings: on JetPack `sudo apt install "
                  "python3-libnvinfer`, elsewhere NVIDIA's tensorrt wheel for your CUDA")
    cuda = r.check("pycuda", lambda: _pycuda(), "`pip install pycuda` (needs nvcc on the PATH; "
                   "on JetPack: export PATH=/usr/local/cuda/bin:$PATH)")
    if cuda is not None:
        r.check("gpu", _gpu, "check the driver (`nvidia-smi` or `tegrastats`) and that this "
                "user may open /dev/nvidia*")
    if trt is not None:
        r.check("dla", _dla, "DLA exists on Jetson AGX/NX Orin and Xavier only; no action needed")
    r.check("engine directory", lambda: _writable(engine_dir),
            f"make {engine_dir} writable for this user or pass --engine-dir / engine_dir:=")
    r.check("model", lambda: _model(model), "pass --model with a seg_perception ONNX "
            "(`seg-perception export CHECKPOINT`)")
    if trt is None or cuda is None or "model" in r.failed:
        out("skipped: engine build, agreement and timing (they need TensorRT, pycuda and a model)")
        r.failed.append("engines")
    else:
        frames: list[np.ndarray] = []
        ok = r.check("sample frames", lambda: _frames(args, model, frames),
                     "pass --frames with an image folder or a bag")
        ref = _reference(model, frames) if ok is not None else []
        for precision in args.precision:
            r.check(f"engine {precision}",
                    functools.partial(_engine, model, precision, engine_dir, frames, ref,
                                      args.runs),
                    _engine_fix(precision))
    out(f"{len(r.failed)} check(s) failed: {', '.join(r.failed)}" if r.failed
        else "all checks passed")
    return 1 if r.failed else 0


def _pycuda() -> str:
    drv = _import("pycuda.driver")
    drv.init()
    v = drv.get_driver_version()
    return (f"pycuda {_import('pycuda').VERSION_TEXT}, CUDA {'.'.join(map(str, drv.get_version()))}"
            f" (toolkit), driver API {v // 1000}.{(v % 1000) // 10}")


def _gpu() -> str:
    drv = _import("pycuda.driver")
    n = drv.Device.count()
    if n < 1:
        raise RuntimeError("no CUDA GPU visible")
    d = drv.Device(0)
    cc = "{}.{}".format(*d.compute_capability())
    return f"{n} GPU(s); 0: {d.name()}, compute capability {cc}, {d.total_memory() >> 20} MiB"


def _dla() -> str:
    trt = _import("tensorrt")

    n = int(trt.Builder(trt_logger(trt)).num_DLA_cores)
    return f"{n} DLA core(s)" + ("" if n else " (GPU only)")


def _writable(d: Path) -> str:
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=d, prefix=".doctor.", delete=True) as f:
        f.write(b"ok")
    free = os.statvfs(d)
    return f"{d} writable, {free.f_bavail * free.f_frsize / 2**30:.1f} GiB free"


def _model(model: Path) -> str:
    info = read_model_info(model)
    h, w = info.input_size
    return f"{info.name}: {len(info.classes.names)} classes, input {h}x{w}"


def _frames(args: argparse.Namespace, model: Path, frames: list[np.ndarray]) -> str:
    size = read_model_info(model).input_size
    frames[:] = calibration_frames(args.frames, size, args.num_frames, progress=False)
    return f"{len(frames)} frames from {args.frames}"


def _reference(model: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    b = OnnxRuntimeBackend(model, "fp32", threads=2)
    try:
        return [b.infer(f) for f in frames]
    finally:
        b.close()


def _engine(model: Path, precision: str, engine_dir: Path, frames: list[np.ndarray],
            ref: list[np.ndarray], runs: int) -> str:
    with collected() as msgs:
        b = TensorRTBackend(model, precision, engine_dir=engine_dir,
                            progress=sys.stderr.isatty())
    try:
        how = "built" if any(m.startswith("wrote TensorRT engine") for m in msgs) else "cached"
        detail = f"{how} {b.engine_path.name}"
        if ref:
            same = sum(int((b.infer(f) == t).sum()) for f, t in zip(frames, ref, strict=True))
            agree = same / sum(t.size for t in ref)
            detail += f", ids agree with ONNX Runtime fp32 on {agree * 100:.2f}% of pixels"
            if agree < AGREEMENT[precision]:
                raise RuntimeError(f"{detail}: below {AGREEMENT[precision] * 100:.1f}%")
            frame = frames[0]
            for _ in range(5):
                b.infer(frame)
            times = []
            for _ in range(max(runs, 1)):
                t0 = time.perf_counter()
                b.infer(frame)
                times.append(time.perf_counter() - t0)
            detail += f", {statistics.median(times) * 1e3:.2f} ms p50 over {len(times)} runs"
        return detail
    finally:
        b.close()


def _engine_fix(precision: str) -> str:
    if precision == "int8":
        return ("int8 needs the calibrated Q/DQ model beside the float one: `seg-perception "
                "build-engine MODEL --precision int8 --calib <frames>`; read TensorRT's lines")
    return "read TensorRT's lines above; `--engine-dir` elsewhere, or report them with the model"
