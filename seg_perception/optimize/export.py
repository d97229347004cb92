"""``seg-perception export``: checkpoint to a self-describing ONNX.

The graph takes ``image`` (uint8, N x H x W x 3 RGB, any H and W), normalises inside, and returns
``labels`` (uint8 class ids, N x H x W, argmax in the graph) and optionally ``logits``. Class
names, palette, mean/std and the training input size ride in the ONNX metadata, so a backend
needs nothing but the file.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from seg_perception.core.fileio import atomic_write, file_sha256
from seg_perception.datasets.camvid import list_images, read_rgb
from seg_perception.inference.tensorrt.conformance import assert_conformant
from seg_perception.model.checkpoint import load_model
from seg_perception.model.contract import (
    CONFIDENCE_NAME,
    INPUT_NAME,
    LABELS_NAME,
    LOGITS_NAME,
    set_metadata,
)
from seg_perception.model.deploy import ExportWrapper

OPSET = 17




def onnx_metadata(meta: dict, checkpoint_sha256: str) -> dict[str, str]:
    h, w = meta["input_size"]
    return {
        "seg_perception.format": "1",
        "arch": meta["arch"],
        "classes": json.dumps(meta["classes"]),
        "input_size": f"{h}x{w}",
        "mean": json.dumps([float(v) for v in meta["mean"]]),
        "std": json.dumps([float(v) for v in meta["std"]]),
        "checkpoint_sha256": checkpoint_sha256,
        "val_miou": str(meta.get("val_miou", "")),
    }


def export_onnx(checkpoint: str | Path, out: str | Path, with_logits: bool = False,
                opset: int = OPSET) -> Path:
    """Writes the ONNX atomically and returns its path."""
    import onnx


    if opset < 17:
        raise ValueError(f"opset {opset} too old: at least 17")
    model, meta = load_model(checkpoint)
    wrapper = ExportWrapper(model, with_logits).eval()
    h, w = meta["input_size"]
    dummy = torch.zeros(1, h, w, 3, dtype=torch.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    outputs = [LABELS_NAME, CONFIDENCE_NAME] + ([LOGITS_NAME] if with_logits else [])
    dyn = {INPUT_NAME: {0: "batch", 1: "height", 2: "width"},
           LABELS_NAME: {0: "batch", 1: "height", 2: "width"},
           CONFIDENCE_NAME: {0: "batch", 1: "height", 2: "width"}}
    if with_logits:
        dyn[LOGITS_NAME] = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but gives a plain, TensorRT-friendly graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapper, (dummy,), str(tmp), input_names=[INPUT_NAME],
                          output_names=outputs, dynamic_axes=dyn, opset_version=opset,
                          dynamo=False)
    m = onnx.load(str(tmp))
    tmp.unlink()
    set_metadata(m, onnx_metadata(meta, file_sha256(checkpoint)))
    m.producer_name = "seg_perception"
    onnx.checker.check_model(m)
    # Refuse a graph TensorRT would reject, before it replaces a working file.
    assert_conformant(m, what=f"exported graph {out.name}")
    return atomic_write(out, lambda t: onnx.save(m, str(t)))


def parity(checkpoint: str | Path, onnx_path: str | Path, frames: list[np.ndarray]) -> float:
    """Fraction of pixels whose ids agree between PyTorch and ONNX Runtime on the frames."""
    import onnxruntime as ort

    model, _ = load_model(checkpoint)
    wrapper = ExportWrapper(model, False).eval()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    agree = total = 0
    for f in frames:
        x = f[None]
        with torch.no_grad():
            ref = wrapper(torch.from_numpy(x))[0].numpy()
        got = sess.run([LABELS_NAME], {INPUT_NAME: x})[0]
        agree += int((ref == got).sum())
        total += ref.size
    return agree / total


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training checkpoint (.pt)")
    p.add_argument("-o", "--out", help="ONNX path (default: checkpoint with .onnx)")
    p.add_argument("--logits", action="store_true", help="also output the logits")
    p.add_argument("--opset", type=int, default=OPSET)
    p.add_argument("--check-frames", help="image folder: report PyTorch/ONNX Runtime id agreement")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    export_onnx(args.checkpoint, out, args.logits, args.opset)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    if args.check_frames:
        frames = [read_rgb(p) for p in list_images(args.check_frames)[:20]]
        agree = parity(args.checkpoint, out, frames)
        print(f"ids agree on {agree * 100:.3f}% of pixels over {len(frames)} frames")
        if agree < 0.999:
            print("error: PyTorch and ONNX Runtime disagree on more than 0.1% of pixels")
            return 1
    return 0
