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
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_model
from .modelinfo import CONFIDENCE_NAME, INPUT_NAME, LABELS_NAME, LOGITS_NAME, file_sha256

OPSET = 17


class ExportWrapper(nn.Module):
    def __init__(self, model: nn.Module, with_logits: bool) -> None:
        super().__init__()
        self.model = model
        self.with_logits = with_logits

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # TensorRT's graph boundaries: a UINT8 input must feed a Cast to float directly (no
        # Transpose first), and only FP32/FP16 convert to UINT8, so the integer ArgMax goes
        # through float on its way out. Both casts are exact for pixel values and class ids.
        x = image.float().permute(0, 3, 1, 2)
        small = self.model(x)
        logits = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
        labels = logits.argmax(1).float().to(torch.uint8)
        # Confidence: the winning class's softmax probability, taken where the network computes
        # (1/4 resolution; a full-size softmax would cost a quarter of the inference) and
        # enlarged like the logits; 255 = certain, rounded on the way to UINT8.
        prob = torch.softmax(small, 1).amax(1, keepdim=True)
        prob = F.interpolate(prob, size=x.shape[-2:], mode="bilinear", align_corners=False)
        confidence = (prob[:, 0] * 255.0 + 0.5).clamp(0.0, 255.0).to(torch.uint8)
        return (labels, confidence, logits) if self.with_logits else (labels, confidence)


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

    from .trt_conformance import ConformanceError, assert_conformant

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
    for k, v in onnx_metadata(meta, file_sha256(checkpoint)).items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    m.producer_name = "seg_perception"
    onnx.checker.check_model(m)
    try:
        # Refuse a graph TensorRT would reject, before it replaces a working file.
        assert_conformant(m, what=f"exported graph {out.name}")
    except ConformanceError:
        tmp.unlink(missing_ok=True)
        raise
    onnx.save(m, str(tmp))
    tmp.replace(out)
    return out


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
        from .data import list_images, read_rgb

        frames = [read_rgb(p) for p in list_images(args.check_frames)[:20]]
        agree = parity(args.checkpoint, out, frames)
        print(f"ids agree on {agree * 100:.3f}% of pixels over {len(frames)} frames")
        if agree < 0.999:
            print("error: PyTorch and ONNX Runtime disagree on more than 0.1% of pixels")
            return 1
    return 0
