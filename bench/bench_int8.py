"""INT8 for TensorRT two ways, side by side: the project's quantizer (``quantize_int8``: ONNX
Runtime's quantize_static with ModelOpt's Q/DQ placement) and NVIDIA ModelOpt's ONNX PTQ.

The steps run in different environments, because ModelOpt's ``[onnx]`` extra brings
onnxruntime-gpu, cupy and a CUDA torch that the project's venv must not have:

  # calibration frames, exactly those `build-engine --calib` uses (project venv)
  .venv/bin/python bench/bench_int8.py frames --data ../shared/data/camvid --frames 100 \\
      --out /tmp/int8/calib100.npy
  # a Q/DQ model by the project's quantizer (project venv)
  .venv/bin/python bench/bench_int8.py project /tmp/int8/seglite_camvid.onnx \\
      --calib /tmp/int8/calib100.npy --method percentile --out /tmp/int8/proj.int8.onnx
  # a Q/DQ model by ModelOpt (a throwaway venv with nvidia-modelopt[onnx])
  $MODELOPT_VENV/bin/python bench/bench_int8.py modelopt /tmp/int8/seglite_camvid.onnx \\
      --calib /tmp/int8/calib100.npy --method entropy --out /tmp/int8/mo.int8.onnx
  # CPU-oriented variants for ONNX Runtime only (QOperator u8s8, dynamic): not for TensorRT
  .venv/bin/python bench/bench_int8.py cpu /tmp/int8/seglite_camvid.onnx \\
      --calib /tmp/int8/calib100.npy --out-dir /tmp/int8
  # conformance, placement, CamVid val mIoU and ONNX Runtime CPU latency of them all
  .venv/bin/python bench/bench_int8.py measure /tmp/int8/seglite_camvid.onnx \\
      /tmp/int8/*.int8.onnx --data ../shared/data/camvid --json /tmp/int8/measure.json

Latency is ``InferenceSession.run`` on one 480x360 CamVid val frame with the node's session
options (``--threads`` intra-op threads, one inter-op thread, all graph optimisations): p50 of
``--runs`` runs after ``--warmup``, in ``--rounds`` rounds that visit the models in turn, so a
busy machine slows every model alike. The CPU (lscpu model name and its int8 dot-product flags)
and the load average are recorded with the figures; no pass/fail.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "avx512bw", "avx2")


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cpu_info() -> dict[str, Any]:
    """The CPU by name and the flags that decide ONNX Runtime's int8 kernels (VNNI or not)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = ""
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {"model_name": fields.get("Model name", platform.processor()).strip(),
            "vendor": fields.get("Vendor ID", "").strip(), "cpus": os.cpu_count(),
            "family": fields.get("CPU family", "").strip(),
            "model": fields.get("Model", "").strip(),
            "hypervisor": fields.get("Hypervisor vendor", "").strip() or None,
            "flags": {f: f in flags for f in VNNI_FLAGS}}


def copy_meta(src: Any, dst: Any, quantization: dict[str, Any], source_sha256: str) -> None:
    """The float model's seg_perception metadata plus what made the Q/DQ model and from what,
    so the node, ``find_qdq`` and ``evaluate_onnx`` treat it like the project's own."""
    meta = {e.key: e.value for e in src.metadata_props}
    meta["quantization"] = json.dumps(quantization)
    meta["source_sha256"] = source_sha256
    del dst.metadata_props[:]
    for k, v in meta.items():
        e = dst.metadata_props.add()
        e.key, e.value = k, v


# -- steps ----------------------------------------------------------------------------------------
def cmd_frames(args: argparse.Namespace) -> None:
    """``--offset 0`` gives exactly build-engine's frames; other offsets shift every index by
    that many frames, a different calibration set of the same spread (for the spread of mIoU
    between calibration sets)."""
    from seg_perception.core.resize import resize_rgb
    from seg_perception.datasets.camvid import list_images, read_rgb
    from seg_perception.optimize.quantize import calibration_frames

    size = tuple(args.size) if args.size else (360, 480)
    train = Path(args.data) / "train"
    if args.offset:
        files = list_images(train)
        idx = np.linspace(0, len(files) - 1 - args.offset, args.frames).round().astype(int)
        frames = [resize_rgb(read_rgb(files[i + args.offset]), size) for i in np.unique(idx)]
    else:
        frames = calibration_frames(train, size, args.frames)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, np.stack(frames))
    print(f"wrote {args.out}: {len(frames)} frames {frames[0].shape}")


def load_calib(path: str, limit: int | None) -> np.ndarray:
    """The saved frames, or ``limit`` of them spread over the set (as calibration_frames does)."""
    frames = np.load(path)
    if limit and limit < len(frames):
        frames = frames[np.unique(np.linspace(0, len(frames) - 1, limit).round().astype(int))]
    return frames


def cmd_project(args: argparse.Namespace) -> None:
    from seg_perception.optimize.quantize import quantize_int8

    frames = list(load_calib(args.calib, args.frames))
    t0 = time.perf_counter()
    kw = {"op_types": args.op_types} if args.op_types else {}
    out = quantize_int8(args.model, frames, args.out, method=args.method, **kw)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s ({len(frames)} frames, {args.method})")


def cmd_modelopt(args: argparse.Namespace) -> None:
    """ModelOpt's INT8 PTQ on the CPU, floats kept FP32, then the project's metadata copied
    over (ModelOpt writes none), so the result runs through the same backend and checks."""
    import onnx
    from modelopt.onnx.quantization import quantize

    from seg_perception.optimize.quantize import output_path

    frames = load_calib(args.calib, args.frames)
    src = onnx.load(args.model)
    inp = src.graph.input[0].name
    shape = "x".join(str(d) for d in (1, *frames.shape[1:]))
    exclude = ([f"^{re.escape(n)}$" for n in output_path(src)] if args.exclude_output_path
               else None)
    with tempfile.TemporaryDirectory(prefix="modelopt_") as tmp:
        # ModelOpt writes intermediate copies beside its input: give it a private copy.
        model = Path(tmp) / Path(args.model).name
        shutil.copy(args.model, model)
        raw = Path(tmp) / "q.onnx"
        t0 = time.perf_counter()
        quantize(str(model), quantize_mode="int8", calibration_data=frames,
                 calibration_method=args.method, calibration_shapes=f"{inp}:{shape}",
                 calibration_eps=["cpu"], high_precision_dtype="fp32", dq_only=args.dq_only,
                 nodes_to_exclude=exclude, output_path=str(raw), log_level="WARNING")
        took = time.perf_counter() - t0
        q = onnx.load(str(raw))
    import modelopt

    copy_meta(src, q, {"format": "qdq", "precision": "int8", "tool": "modelopt",
                       "modelopt": modelopt.__version__, "method": args.method,
                       "frames": len(frames), "dq_only": args.dq_only,
                       "output_path_excluded": args.exclude_output_path}, sha256(args.model))
    Path(args.out).write_bytes(q.SerializeToString())
    print(f"wrote {args.out} in {took:.0f} s ({len(frames)} frames, {args.method}, opset "
          f"{q.opset_import[0].version})")


def cmd_cpu(args: argparse.Namespace) -> None:
    """CPU-only INT8 forms for ONNX Runtime: QOperator (QLinearConv, uint8 activations, int8
    weights), with and without reduce_range (7-bit, for CPUs without VNNI), and dynamic. Not
    TensorRT inputs: measured only to answer whether an INT8 model pays off on a CPU."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    frames = load_calib(args.calib, args.frames)
    src = onnx.load(args.model)
    inp = src.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            f = next(self.it, None)
            return None if f is None else {inp: f[None]}

    stem = Path(args.model).name.removesuffix(".onnx")
    out_dir = Path(args.out_dir)
    made: list[tuple[Path, dict[str, Any]]] = []
    for reduce in (False, True):
        out = out_dir / f"{stem}.cpu_qop_u8s8{'_rr' if reduce else ''}.onnx"
        quantize_static(args.model, str(out), Reader(), quant_format=QuantFormat.QOperator,
                        op_types_to_quantize=["Conv", "Add", "MaxPool", "AveragePool", "Concat"],
                        per_channel=True, reduce_range=reduce, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile)
        made.append((out, {"format": "qoperator", "activations": "uint8", "weights": "int8",
                           "reduce_range": reduce, "method": "percentile",
                           "frames": len(frames)}))
    out = out_dir / f"{stem}.cpu_dynamic.onnx"
    quantize_dynamic(args.model, str(out), op_types_to_quantize=["Conv"], per_channel=True,
                     weight_type=QuantType.QUInt8)
    made.append((out, {"format": "dynamic", "weights": "uint8", "ops": ["Conv"]}))
    for path, q_meta in made:
        q = onnx.load(str(path))
        copy_meta(src, q, q_meta, sha256(args.model))
        path.write_bytes(q.SerializeToString())
        print(f"wrote {path}")


# -- measure --------------------------------------------------------------------------------------
def structure(path: str, ref: Any) -> dict[str, Any]:  # noqa: ANN401 - onnx.ModelProto
    """Conformance, placement and interface of one model, against the float reference."""
    import onnx

    from seg_perception.inference.tensorrt.conformance import TARGETS, check_model
    from seg_perception.optimize.quantize import qdq_placement_violations

    m = onnx.load(path)
    io = [(v.name, v.type.tensor_type.elem_type) for v in (*m.graph.input, *m.graph.output)]
    ref_io = [(v.name, v.type.tensor_type.elem_type) for v in (*ref.graph.input, *ref.graph.output)]
    ops: dict[str, int] = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    found = check_model(m, TARGETS)
    qdq = ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0)
    return {
        "opset": next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
        "io_same_as_fp32": io == ref_io,
        "metadata_keys": sorted(e.key for e in m.metadata_props),
        "trt_conformance": {t: [str(v) for v in found if v.target == t] for t in TARGETS},
        "placement_violations": qdq_placement_violations(m) if qdq else None,
        "quantize_linear": ops.get("QuantizeLinear", 0),
        "dequantize_linear": ops.get("DequantizeLinear", 0),
        "qlinear_ops": sum(v for k, v in ops.items() if k.startswith(("QLinear", "ConvInteger"))),
    }


def session(path: str, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def camvid_frame(data: str, size: tuple[int, int]) -> np.ndarray:
    from seg_perception.core.resize import resize_rgb
    from seg_perception.datasets.camvid import find_split, read_rgb

    return resize_rgb(read_rgb(find_split(data, "val").images[0]), size)[None]


def cmd_measure(args: argparse.Namespace) -> None:
    import onnx
    import onnxruntime as ort

    from seg_perception.datasets.camvid import dataset_classes
    from seg_perception.inference.modelinfo import read_model_info
    from seg_perception.optimize.quantize import evaluate_onnx

    ref = onnx.load(args.models[0])
    info = read_model_info(args.models[0])
    res: dict[str, Any] = {
        "cpu": cpu_info(), "onnxruntime": ort.__version__, "python": platform.python_version(),
        "threads": args.threads, "runs": args.runs, "warmup": args.warmup, "rounds": args.rounds,
        "input": f"1x{info.input_size[0]}x{info.input_size[1]}x3 uint8 (CamVid val frame)",
        "loadavg_start": os.getloadavg(), "fp32": args.models[0], "models": {}}
    names = [Path(p).name for p in args.models]
    for path, name in zip(args.models, names, strict=True):
        r = res["models"][name] = {"path": path, "sha256": sha256(path),
                                   "bytes": Path(path).stat().st_size, **structure(path, ref)}
        placement = r["placement_violations"]
        print(f"{name}: conformance violations "
              f"{ {t: len(v) for t, v in r['trt_conformance'].items()} }, placement violations "
              f"{'n/a' if placement is None else len(placement)}", flush=True)
    if not args.no_latency:
        frame = camvid_frame(args.data, info.input_size) if args.data else \
            np.random.default_rng(0).integers(0, 255, (1, *info.input_size, 3), np.uint8)
        sessions = {n: session(p, args.threads) for p, n in zip(args.models, names, strict=True)}
        feeds = {n: {s.get_inputs()[0].name: frame} for n, s in sessions.items()}
        p50s: dict[str, list[float]] = {n: [] for n in names}
        for rnd in range(args.rounds):
            for n, s in sessions.items():
                for _ in range(args.warmup):
                    s.run(None, feeds[n])
                t = np.empty(args.runs)
                for i in range(args.runs):
                    t0 = time.perf_counter()
                    s.run(None, feeds[n])
                    t[i] = time.perf_counter() - t0
                p50s[n].append(float(np.median(t)) * 1e3)
                print(f"round {rnd + 1} {n}: p50 {p50s[n][-1]:.2f} ms", flush=True)
        for n in names:
            v = p50s[n]
            res["models"][n]["latency_ms"] = {
                "p50_per_round": [round(x, 2) for x in v],
                "p50_median": round(float(np.median(v)), 2),
                "spread_pct": round((max(v) - min(v)) / float(np.median(v)) * 100, 1)}
        del sessions
    if args.data and not args.no_eval:
        classes = dataset_classes(args.data).names
        res["classes"] = list(classes)
        for path, n in zip(args.models, names, strict=True):
            ev = evaluate_onnx(path, args.data, "val", args.threads)
            res["models"][n].update(miou=ev["miou"], pixel_accuracy=ev["pixel_accuracy"],
                                    iou=ev["iou"], frames=ev["frames"])
            print(f"{n}: mIoU {ev['miou'] * 100:.2f}", flush=True)
        base = res["models"][names[0]]["miou"]
        for n in names:
            res["models"][n]["miou_drop_points"] = round((base - res["models"][n]["miou"]) * 100, 3)
    res["loadavg_end"] = os.getloadavg()
    text = json.dumps(res, indent=2) + "\n"
    if args.json:
        Path(args.json).write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("frames", help="save the calibration frames (project venv)")
    f.add_argument("--data", required=True, help="CamVid-layout root (its train split is used)")
    f.add_argument("--frames", type=int, default=100)
    f.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    f.add_argument("--offset", type=int, default=0, help="shift the spread indices (0: as "
                   "build-engine picks them)")
    f.add_argument("--out", required=True)
    for name, hlp in (("project", "the project's quantize_int8 (project venv)"),
                      ("modelopt", "ModelOpt's ONNX PTQ (a venv with nvidia-modelopt[onnx])")):
        q = sub.add_parser(name, help=hlp)
        q.add_argument("model")
        q.add_argument("--calib", required=True, help="frames saved by `frames`")
        q.add_argument("--frames", type=int, help="use this many of them, spread")
        q.add_argument("--method", required=True)
        q.add_argument("--out", required=True)
        if name == "project":
            q.add_argument("--op-types", nargs="+", help="ops whose inputs get Q/DQ (default: "
                           "QDQ_OP_TYPES)")
        if name == "modelopt":
            q.add_argument("--exclude-output-path", action="store_true",
                           help="keep the head's Resize/ArgMax path float")
            q.add_argument("--dq-only", action=argparse.BooleanOptionalAction, default=True,
                           help="int8 weight initialisers (default) instead of float Q/DQ pairs")
    c = sub.add_parser("cpu", help="CPU-only QOperator/dynamic variants (project venv)")
    c.add_argument("model")
    c.add_argument("--calib", required=True)
    c.add_argument("--frames", type=int)
    c.add_argument("--out-dir", required=True)
    m = sub.add_parser("measure", help="conformance, placement, mIoU, latency (project venv)")
    m.add_argument("models", nargs="+", help="the FP32 model first, then the INT8 ones")
    m.add_argument("--data", help="CamVid-layout root for val mIoU and the timed frame")
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--runs", type=int, default=50)
    m.add_argument("--warmup", type=int, default=10)
    m.add_argument("--rounds", type=int, default=3)
    m.add_argument("--no-eval", action="store_true")
    m.add_argument("--no-latency", action="store_true")
    m.add_argument("--json")
    args = p.parse_args()
    {"frames": cmd_frames, "project": cmd_project, "modelopt": cmd_modelopt, "cpu": cmd_cpu,
     "measure": cmd_measure}[args.cmd](args)


if __name__ == "__main__":
    main()
