"""INT8 by explicit quantization, and the FP16 ONNX for strongly typed TensorRT.

TensorRT 10.12+ and 11 dropped implicit (calibrator-driven) INT8 and weak typing, so precision
lives in the ONNX: a Q/DQ model calibrated here on real frames (symmetric int8, zero point 0,
per-channel weights, as TensorRT requires), or a float16 model. The Q/DQ model also runs on ONNX
Runtime's CPU provider, which is how its accuracy is measured without a GPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .engine_cache import atomic_write_bytes
from .modelinfo import ModelInfo, file_sha256, read_model_info

CALIB_METHODS = ("minmax", "entropy", "percentile")
QDQ_OP_TYPES = ("Conv", "Add", "Concat", "MaxPool", "AveragePool")
"""Ops that get Q/DQ: the ones TensorRT fuses into int8 kernels. Leaving out BatchNormalization
(its per-channel weights), Resize, ArgMax and the shape arithmetic keeps the head and the dynamic
size logic in float, which TensorRT needs and which costs no accuracy."""
INT8_SUFFIX = ".int8.onnx"
FP16_SUFFIX = ".fp16.onnx"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def qdq_path_for(model: str | Path) -> Path:
    """Where the Q/DQ model of ``model`` lives: beside it, ``<stem>.int8.onnx``."""
    p = Path(model)
    return p.with_name(p.name.removesuffix(".onnx") + INT8_SUFFIX)


def fp16_path_for(model: str | Path) -> Path:
    p = Path(model)
    return p.with_name(p.name.removesuffix(".onnx") + FP16_SUFFIX)


# -- calibration frames -----------------------------------------------------------------------
def is_bag(path: str | Path) -> bool:
    """A rosbag2 directory (metadata.yaml) or a single .mcap/.db3 file."""
    p = Path(path)
    return (p.is_dir() and (p / "metadata.yaml").is_file()) or p.suffix in (".mcap", ".db3")


def _spread(n_total: int, limit: int) -> np.ndarray:
    """Indices spread over the whole source, so calibration sees every part of a drive."""
    return np.unique(np.linspace(0, n_total - 1, min(limit, n_total)).round().astype(int))


def folder_frames(folder: str | Path, limit: int) -> Iterator[np.ndarray]:
    from .data import list_images, read_rgb

    files = list_images(folder)
    if not files:
        raise ValueError(f"no images (png/jpg/bmp) in calibration folder {folder}")
    for i in _spread(len(files), limit):
        yield read_rgb(files[i])


def bag_frames(bag: str | Path, limit: int, topic: str | None = None) -> Iterator[np.ndarray]:
    """RGB frames from a sensor_msgs Image or CompressedImage topic of a rosbag2 (or ROS 1 bag)."""
    from rosbags.highlevel import AnyReader
    from rosbags.image import message_to_cvimage

    with AnyReader([Path(bag)]) as reader:
        images = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        if topic is not None:
            conns = [c for c in images if c.topic == topic]
            if not conns:
                found = sorted({c.topic for c in images}) or "none"
                raise ValueError(f"bag {bag} has no image topic {topic!r} (image topics: {found})")
        else:
            topics = sorted({c.topic for c in images})
            if len(topics) != 1:
                raise ValueError(f"bag {bag} has image topics {topics or 'none'}: name one "
                                 "with --calib-topic")
            conns = images
        total = sum(c.msgcount for c in conns)
        keep = set(_spread(total, limit).tolist()) if total else set()
        for i, (conn, _, raw) in enumerate(reader.messages(connections=conns)):
            if i in keep:
                msg = reader.deserialize(raw, conn.msgtype)
                yield np.ascontiguousarray(message_to_cvimage(msg, "rgb8"))


def calibration_frames(source: str | Path, size: tuple[int, int], limit: int = 100,
                       topic: str | None = None, progress: bool = True) -> list[np.ndarray]:
    """Frames from an image folder or a bag, resized to the model input size as the node does."""
    from tqdm import tqdm

    from .pipeline import resize_rgb

    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"calibration source not found: {src}")
    if limit < 1:
        raise ValueError(f"calibration frame count must be >= 1, got {limit}")
    it = bag_frames(src, limit, topic) if is_bag(src) else folder_frames(src, limit)
    frames = [resize_rgb(f, size) for f in tqdm(it, desc="calibration frames", total=limit,
                                                 unit="frame", disable=not progress)]
    if not frames:
        raise ValueError(f"no frames read from {src}")
    return frames


# -- Q/DQ export --------------------------------------------------------------------------------
def _reader(frames: Sequence[np.ndarray], input_name: str, progress: bool) -> Any:  # noqa: ANN401
    from onnxruntime.quantization import CalibrationDataReader
    from tqdm import tqdm

    class FrameReader(CalibrationDataReader):
        """Feeds one uint8 NHWC frame per call, exactly what the node feeds at run time."""

        def __init__(self) -> None:
            self._bar = tqdm(total=len(frames), desc="calibrating", unit="frame",
                             disable=not progress)
            self._it = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            f = next(self._it, None)
            if f is None:
                self._bar.close()
                return None
            self._bar.update(1)
            return {input_name: f[None]}

    return FrameReader()


def quantize_int8(model: str | Path, frames: Sequence[np.ndarray], out: str | Path | None = None,
                  method: str = "minmax", op_types: Sequence[str] = QDQ_OP_TYPES,
                  progress: bool = True) -> Path:
    """Writes a Q/DQ ONNX of ``model`` calibrated on ``frames`` and returns its path.

    Symmetric int8 activations and per-channel symmetric int8 weights (zero points 0), float
    biases: the Q/DQ form TensorRT accepts. The seg_perception metadata is carried over, plus
    the source model's sha256 so a stale Q/DQ model is never paired with a newer float model.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIB_METHODS:
        raise ValueError(f"calibration method must be one of {CALIB_METHODS}, got {method!r}")
    if not frames:
        raise ValueError("calibration needs at least one frame")
    info = read_model_info(model)
    out = Path(out) if out else qdq_path_for(model)
    src = onnx.load(str(info.path))
    input_name = src.graph.input[0].name
    cal = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory(prefix="seg_qdq_") as tmp:
        raw = Path(tmp) / "qdq.onnx"
        quantize_static(
            str(info.path), str(raw), _reader(frames, input_name, progress),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types), per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=cal,
            extra_options={
                "ActivationSymmetric": True, "WeightSymmetric": True,
                "QuantizeBias": False,  # TensorRT takes float biases, not int32
                # Q/DQ on conv *inputs* only (NVIDIA's placement): TensorRT fuses the
                # output quantization itself, and the logits reach ArgMax unquantized.
                "OpTypesToExcludeOutputQuantization": ["Conv"]},
            calibration_providers=["CPUExecutionProvider"])
        q = onnx.load(str(raw))
    meta = {e.key: e.value for e in src.metadata_props}
    meta["quantization"] = json.dumps({
        "format": "qdq", "precision": "int8", "symmetric": True, "per_channel_weights": True,
        "method": method, "frames": len(frames), "op_types": list(op_types)})
    meta["source_sha256"] = info.sha256
    del q.metadata_props[:]
    for k, v in meta.items():
        e = q.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(q)
    return atomic_write_bytes(out, q.SerializeToString())


def model_meta(path: str | Path) -> dict[str, str]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return {e.key: e.value for e in m.metadata_props}


def check_derived(derived: str | Path, source: ModelInfo, kind: str) -> None:
    """Raises ValueError unless ``derived`` was made from exactly ``source`` (by sha256)."""
    meta = model_meta(derived)
    if kind == "int8" and "quantization" not in meta:
        raise ValueError(f"{derived} is not a Q/DQ model made by seg_perception")
    if meta.get("source_sha256") != source.sha256:
        raise ValueError(f"{derived} was made from another model than {source.path.name} "
                         f"(source sha256 {meta.get('source_sha256', 'missing')[:12]}, model "
                         f"{source.sha256[:12]}); make it again")


def find_qdq(model: str | Path) -> Path:
    """The Q/DQ model made from ``model``; ValueError (with the command to make it) if absent."""
    info = read_model_info(model)
    if "quantization" in model_meta(info.path):
        return info.path  # already a Q/DQ model
    q = qdq_path_for(info.path)
    if not q.is_file():
        raise ValueError(
            f"precision int8 needs the calibrated Q/DQ model {q}; make it with `seg-perception "
            f"build-engine {info.path} --precision int8 --calib <image folder or bag> --onnx-only`")
    check_derived(q, info, "int8")
    return q


# -- FP16 conversion ----------------------------------------------------------------------------
def fp16_model(model: str | Path) -> Any:  # noqa: ANN401 - onnx.ModelProto, imported lazily
    """A float16 copy of the float graph for strongly typed TensorRT and GPU providers; uint8
    input and label output are unchanged, and Resize scales stay float32 (the converter knows
    which inputs must)."""
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise RuntimeError("fp16 conversion needs onnxconverter-common (pip install "
                           "onnxconverter-common)") from exc
    info = read_model_info(model)
    src = onnx.load(str(info.path))
    # Resize runs fine in fp16 on TensorRT; the converter's default would wrap it in casts.
    block = [op for op in float16.DEFAULT_OP_BLOCK_LIST if op != "Resize"]
    half = float16.convert_float_to_float16(src, keep_io_types=True, op_block_list=block)
    _fix_casts(half)
    meta = {e.key: e.value for e in src.metadata_props}
    meta["source_sha256"] = info.sha256
    meta["precision"] = "fp16"
    del half.metadata_props[:]
    for k, v in meta.items():
        e = half.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(half)
    return half


def _fix_casts(m: Any) -> None:  # noqa: ANN401 - onnx.ModelProto
    """The converter retypes a Cast's output to float16 but leaves its ``to`` at float32 (the
    uint8 -> float input cast), an invalid graph; point such casts at float16."""
    import onnx

    half = onnx.TensorProto.FLOAT16
    declared = {v.name: v.type.tensor_type.elem_type for v in m.graph.value_info}
    for n in m.graph.node:
        if n.op_type != "Cast" or declared.get(n.output[0]) != half:
            continue
        for a in n.attribute:
            if a.name == "to" and a.i == onnx.TensorProto.FLOAT:
                a.i = half


def convert_fp16(model: str | Path, out: str | Path | None = None) -> Path:
    """Writes ``fp16_model(model)`` (default: ``<stem>.fp16.onnx`` beside it)."""
    return atomic_write_bytes(Path(out) if out else fp16_path_for(model),
                              fp16_model(model).SerializeToString())


# -- accuracy on a labelled split -----------------------------------------------------------------
def evaluate_onnx(model: str | Path, root: str | Path, split: str = "val", threads: int = 2,
                  progress: bool = True) -> dict[str, Any]:
    """mIoU of an ONNX model on a CamVid-layout split, run on ONNX Runtime's CPU provider through
    the node's own resize path (Segmenter)."""
    from tqdm import tqdm

    from .backends.onnxruntime_backend import OnnxRuntimeBackend
    from .data import dataset_classes, find_split, read_label, read_rgb
    from .metrics import ConfusionMatrix
    from .pipeline import Segmenter

    backend = OnnxRuntimeBackend(model, threads=threads)
    try:
        seg = Segmenter(backend)
        classes = dataset_classes(root)
        s = find_split(root, split)
        cm = ConfusionMatrix(classes.num_classes)
        pairs = list(zip(s.images, s.labels, strict=True))
        for img, lab in tqdm(pairs, desc=f"{Path(model).name} {split}", unit="frame",
                             disable=not progress):
            cm.update(seg.predict(read_rgb(img)), read_label(lab, classes))
    finally:
        backend.close()
    return {"model": str(model), "miou": cm.miou(), "pixel_accuracy": cm.pixel_accuracy(),
            "iou": [round(float(v), 4) for v in cm.iou()], "frames": len(s.images),
            "bytes": Path(model).stat().st_size, "sha256": file_sha256(model)}
