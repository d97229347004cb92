"""``seg-perception build-engine``: checkpoint or ONNX to a TensorRT engine (fp32, fp16, int8).

The ONNX steps (export, INT8 calibration to a Q/DQ model, FP16 conversion, accuracy check) run
anywhere; only the final engine build needs TensorRT and a GPU, so ``--onnx-only`` prepares the
models on a workstation and the Jetson builds (or the node builds at start-up) from them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seg_perception.core.fileio import file_sha256
from seg_perception.inference.factory import tensorrt_available
from seg_perception.inference.modelinfo import read_model_info
from seg_perception.inference.tensorrt.backend import resolve_engine
from seg_perception.inference.variants import INT8_SUFFIX, convert_fp16, find_qdq
from seg_perception.model.contract import read_metadata
from seg_perception.optimize.quantize import (
    CALIB_METHODS,
    DEFAULT_CALIB_METHOD,
    calibration_frames,
    evaluate_onnx,
    quantize_int8,
)

MAX_INT8_DROP = 0.5  # mIoU points INT8 may lose against FP32 on the evaluation split


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="seg_perception ONNX, or a checkpoint (.pt) to export first")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                   help="engine input size (default: the model's own)")
    p.add_argument("--engine-dir", help="engine cache directory (default: beside the model)")
    p.add_argument("--dla-core", type=int, default=-1, help="Jetson DLA core (-1: GPU only)")
    p.add_argument("--force", action="store_true", help="rebuild even if a valid engine exists")
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT workspace limit")
    p.add_argument("--onnx", help="where to export a checkpoint's ONNX (default: beside it)")
    g = p.add_argument_group("INT8 calibration")
    g.add_argument("--calib", help="image folder or rosbag2 with frames to calibrate on; "
                   f"writes <model>{INT8_SUFFIX} (needed for int8 unless it already exists)")
    g.add_argument("--calib-topic", help="image topic in the bag (default: its only one)")
    g.add_argument("--calib-frames", type=int, default=100, help="frames, spread over the source")
    g.add_argument("--calib-method", choices=CALIB_METHODS, default=DEFAULT_CALIB_METHOD,
                   help="activation range calibration (default %(default)s: the measured best, "
                        "docs/int8.md)")
    p.add_argument("--onnx-only", action="store_true",
                   help="stop after the ONNX steps (no TensorRT needed)")
    p.add_argument("--eval", metavar="DATASET",
                   help="CamVid-layout root: print fp32 and int8 (Q/DQ, ONNX Runtime CPU) mIoU "
                        "and file sizes")
    p.add_argument("--eval-split", default="val")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for calibration/eval")
    p.add_argument("--json", help="also write the evaluation as JSON here")


def prepare_onnx(model: Path, onnx_out: str | None) -> Path:
    """The ONNX for ``model``: itself, or a checkpoint's export (re-exported when stale)."""
    if not model.exists():
        raise FileNotFoundError(f"model not found: {model}")
    if model.suffix != ".pt":
        return model
    from seg_perception.optimize.export import export_onnx  # torch: only for a .pt input

    out = Path(onnx_out) if onnx_out else model.with_suffix(".onnx")
    if out.is_file() and read_metadata(out).get("checkpoint_sha256") == file_sha256(model):
        print(f"{out} is up to date with {model.name}")
        return out
    export_onnx(model, out)
    print(f"exported {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return out


def run(args: argparse.Namespace) -> int:
    onnx_path = prepare_onnx(Path(args.model), args.onnx)
    info = read_model_info(onnx_path)
    size = tuple(args.input_size) if args.input_size else info.input_size
    qdq: Path | None = None
    if args.calib:
        frames = calibration_frames(args.calib, size, args.calib_frames,
                                    args.calib_topic)
        qdq = quantize_int8(onnx_path, frames, method=args.calib_method)
        print(f"wrote {qdq} ({qdq.stat().st_size / 1e6:.2f} MB, {len(frames)} frames, "
              f"{args.calib_method})")
    elif args.precision == "int8" or args.eval:
        qdq = find_qdq(onnx_path)
    if args.onnx_only and args.precision == "fp16":
        half = convert_fp16(onnx_path)
        print(f"wrote {half} ({half.stat().st_size / 1e6:.2f} MB)")
    if args.eval:
        assert qdq is not None
        code = evaluate(onnx_path, qdq, args.eval, args.eval_split, args.threads, args.json)
        if code:
            return code
    if args.onnx_only:
        return 0

    ok, why = tensorrt_available()
    if not ok:
        raise RuntimeError(f"cannot build a TensorRT engine here: {why} (use --onnx-only to "
                           "prepare the ONNX models, then build on the Jetson/GPU machine)")

    path = resolve_engine(onnx_path, args.precision, size, args.engine_dir,
                          args.dla_core, args.force, workspace_mb=args.workspace_mb)
    side = json.loads(path.with_suffix(".json").read_text())
    print(f"engine {path} ({path.stat().st_size / 1e6:.2f} MB)")
    print(json.dumps(side["key"], indent=2))
    return 0


def evaluate(fp32: Path, int8: Path, root: str, split: str, threads: int,
             json_out: str | None) -> int:
    """Prints both mIoUs and sizes; exit 1 when INT8 loses more than 0.5 mIoU point."""
    rows = [evaluate_onnx(fp32, root, split, threads), evaluate_onnx(int8, root, split, threads)]
    print(f"\n{'model':<34}{'mIoU %':>8}{'pixel acc %':>13}{'size MB':>9}")
    for name, r in zip(("fp32 " + fp32.name, "int8 " + int8.name), rows, strict=True):
        print(f"{name:<34}{r['miou'] * 100:>8.2f}{r['pixel_accuracy'] * 100:>13.2f}"
              f"{r['bytes'] / 1e6:>9.2f}")
    drop = (rows[0]["miou"] - rows[1]["miou"]) * 100
    print(f"int8 - fp32: {-drop:+.2f} mIoU points on {rows[0]['frames']} {split} frames "
          "(ONNX Runtime CPU)")
    if json_out:
        Path(json_out).write_text(json.dumps({"fp32": rows[0], "int8": rows[1],
                                              "drop_points": drop}, indent=2) + "\n")
    if drop > MAX_INT8_DROP:
        print(f"error: INT8 loses more than {MAX_INT8_DROP} mIoU point; try another "
              "--calib-method or more --calib-frames")
        return 1
    return 0
