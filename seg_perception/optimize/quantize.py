"""INT8 by explicit quantization, and the FP16 ONNX for strongly typed TensorRT.

Implicit (calibrator-driven) INT8 and weak typing are deprecated in TensorRT 10.x and gone in
11, so precision lives in the ONNX: a Q/DQ model calibrated here on real frames (symmetric int8,
zero point 0, per-channel weights, as TensorRT requires), or a float16 model. The Q/DQ model
also runs on ONNX Runtime's CPU provider, which is how its accuracy is measured without a GPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.codec import decode_message
from seg_perception.core.fileio import atomic_write_bytes, file_sha256
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.core.resize import resize_rgb
from seg_perception.datasets.camvid import (
    dataset_classes,
    find_split,
    list_images,
    read_label,
    read_rgb,
)
from seg_perception.inference.modelinfo import read_model_info
from seg_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
from seg_perception.inference.segmenter import Segmenter
from seg_perception.inference.variants import assert_tensorrt_shaped, qdq_path_for
from seg_perception.model.contract import get_metadata, set_metadata

CALIB_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIB_METHOD = "percentile"
QDQ_OP_TYPES = ("Conv", "Add", "MaxPool", "AveragePool")
"""Ops whose inputs get Q/DQ: the ones TensorRT fuses into int8 kernels. Concat is not one of
them (ModelOpt takes it out too: TensorRT moves a Q across a Concat itself; quantizing the
downsampling Concats here cost 0.2-0.3 mIoU point, docs/int8.md), but where its inputs are
quantized anyway they share one scale. Leaving out BatchNormalization (its per-channel weights),
Resize, ArgMax and the shape arithmetic keeps the head and the dynamic size logic in float, which
TensorRT needs and which costs no accuracy."""
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")






# -- calibration frames -----------------------------------------------------------------------
def is_bag(path: str | Path) -> bool:
    """A rosbag2 directory (metadata.yaml) or a single .mcap/.db3 file."""
    p = Path(path)
    return (p.is_dir() and (p / "metadata.yaml").is_file()) or p.suffix in (".mcap", ".db3")


def _spread(n_total: int, limit: int) -> np.ndarray:
    """Indices spread over the whole source, so calibration sees every part of a drive."""
    return np.unique(np.linspace(0, n_total - 1, min(limit, n_total)).round().astype(int))


def folder_frames(folder: str | Path, limit: int) -> Iterator[np.ndarray]:
    files = list_images(folder)
    if not files:
        raise ValueError(f"no images (png/jpg/bmp) in calibration folder {folder}")
    for i in _spread(len(files), limit):
        yield read_rgb(files[i])


def bag_frames(bag: str | Path, limit: int, topic: str | None = None) -> Iterator[np.ndarray]:
    """RGB frames from a sensor_msgs Image or CompressedImage topic of a rosbag2 (or ROS 1 bag)."""
    from rosbags.highlevel import AnyReader

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
                yield np.ascontiguousarray(decode_message(msg))  # the node's decoder


def calibration_frames(source: str | Path, size: tuple[int, int], limit: int = 100,
                       topic: str | None = None, progress: bool = True) -> list[np.ndarray]:
    """Frames from an image folder or a bag, resized to the model input size as the node does."""
    from tqdm import tqdm

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


def _producers(graph: Any) -> dict[str, Any]:  # noqa: ANN401 - onnx.GraphProto / NodeProto
    return {o: n for n in graph.node for o in n.output}


def _consumers(graph: Any) -> dict[str, list[Any]]:  # noqa: ANN401
    out: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _dq_of(tensor: str, producers: dict[str, Any]) -> Any:  # noqa: ANN401
    """The DequantizeLinear that produces ``tensor``, or None."""
    n = producers.get(tensor)
    return n if n is not None and n.op_type == "DequantizeLinear" else None


def _float_source(tensor: str, producers: dict[str, Any]) -> str:
    """The float tensor behind ``tensor``: itself, or what the Q -> DQ pair it leaves quantizes."""
    dq = _dq_of(tensor, producers)
    if dq is not None:
        q = producers.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            return q.input[0]
    return tensor


def _float_parents(graph: Any) -> dict[str, list[str]]:  # noqa: ANN401
    """tensor -> the float tensors its producer reads, looking through Q/DQ pairs, so the same
    graph analysis gives the same answer on the float model and on its Q/DQ model."""
    producers = _producers(graph)
    parents: dict[str, list[str]] = {}
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        ins = [_float_source(i, producers) for i in n.input if i]
        for o in n.output:
            parents[o] = ins
    return parents


def _depths(tensor: str, parents: dict[str, list[str]]) -> dict[str, int]:
    """Every ancestor tensor of ``tensor`` with its distance in nodes (breadth first: shortest)."""
    out, frontier = {tensor: 0}, [tensor]
    while frontier:
        nxt = []
        for t in frontier:
            for p in parents.get(t, ()):
                if p not in out:
                    out[p] = out[t] + 1
                    nxt.append(p)
        frontier = nxt
    return out


def residual_adds(model: Any) -> dict[str, tuple[str, str]]:  # noqa: ANN401 - onnx.ModelProto
    """Each residual Add's name -> (residual input, branch input), as float tensor names.

    The branch is the input with the longer path back to the two inputs' nearest common ancestor
    (ModelOpt's rule): in ``x + f(x)`` it is ``f(x)``, the output of the Conv that TensorRT fuses
    the Add into, so only the residual ``x`` needs Q/DQ. Adds of two equally long paths, of a
    constant or of a graph input are not residual and are left out.
    """
    g = model.graph
    producers = _producers(g)
    parents = _float_parents(g)
    consts = {t.name for t in g.initializer}
    consts |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
    out: dict[str, tuple[str, str]] = {}
    for n in g.node:
        if n.op_type != "Add" or len(n.input) != 2:
            continue
        a, b = (_float_source(i, producers) for i in n.input)
        if a in consts or b in consts or a not in parents or b not in parents:
            continue
        da, db = _depths(a, parents), _depths(b, parents)
        common = da.keys() & db.keys()
        if not common:
            continue
        lca = min(common, key=lambda t: (da[t] + db[t], t))
        if da[lca] != db[lca]:
            out[n.name] = (a, b) if da[lca] < db[lca] else (b, a)
    return out


def output_path(model: Any) -> list[str]:  # noqa: ANN401 - onnx.ModelProto
    """Names of the nodes between the last weighted layer and the graph outputs (the head's
    Resize, ArgMax and casts): they stay float, so the logits reach ArgMax unquantized."""
    g = model.graph
    producers = _producers(g)
    names: list[str] = []
    todo = [o.name for o in g.output]
    while todo:
        n = producers.get(todo.pop())
        if n is None or n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") or n.name in names:
            continue
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            names.append(n.name)
        todo.append(n.input[0])  # the data input; the rest is shape arithmetic
    return names


def _drop_branch_qdq(m: Any) -> None:  # noqa: ANN401 - onnx.ModelProto
    """quantize_static quantizes every input of an Add; feed the branch input in float again and
    remove the Q/DQ pairs nothing reads any more."""
    g = m.graph
    producers = _producers(g)
    branches = residual_adds(m)
    for n in g.node:
        if n.name not in branches:
            continue
        branch = branches[n.name][1]
        for k, t in enumerate(n.input):
            if t != branch and _float_source(t, producers) == branch:
                n.input[k] = branch
    freed: set[str] = set()
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            freed.update(n.input[1:])
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name in freed and t.name not in used]:
        g.initializer.remove(t)


def _concat_scale_groups(graph: Any) -> list[set[str]]:  # noqa: ANN401 - onnx.GraphProto
    """Scale initialisers that must be equal: those of each Concat's quantized inputs and of the
    Q that quantizes its output, merged where a tensor feeds two Concats."""
    producers, consumers = _producers(graph), _consumers(graph)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for n in graph.node:
        if n.op_type != "Concat":
            continue
        names = []
        for t in n.input:
            dq = _dq_of(t, producers)
            if dq is not None:
                names.append(dq.input[1])
                q = producers.get(dq.input[0])
                if q is not None and q.op_type == "QuantizeLinear":
                    names.append(q.input[1])
        names += [c.input[1] for c in consumers.get(n.output[0], [])
                  if c.op_type == "QuantizeLinear"]
        for x in names:
            parent[find(x)] = find(names[0])
    groups: dict[str, set[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), set()).add(x)
    return [s for s in groups.values() if len(s) > 1]


def _share_concat_scales(m: Any) -> None:  # noqa: ANN401 - onnx.ModelProto
    """One scale for a Concat's quantized inputs and output, the largest of theirs so nothing
    clips: TensorRT then writes every input straight into the int8 result instead of
    requantizing each one (what ModelOpt's concat elimination does at calibration)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in m.graph.initializer}
    for group in _concat_scale_groups(m.graph):
        values = {x: numpy_helper.to_array(inits[x]) for x in group}
        top = max(float(v) for v in values.values())
        for x, v in values.items():
            inits[x].CopyFrom(numpy_helper.from_array(np.array(top, dtype=v.dtype), x))


def qdq_placement_violations(model: Any) -> list[str]:  # noqa: ANN401 - ModelProto or path
    """Where a Q/DQ model breaks NVIDIA's placement rules (ModelOpt's, which TensorRT fuses best);
    empty when it keeps them all:

    - every zero point is an int8 zero (symmetric int8);
    - Conv weights per output channel (axis 0), activations per tensor;
    - a residual Add has Q/DQ on its residual input only, never on the Conv branch;
    - a Concat's quantized inputs and output share one scale;
    - nothing between the last weighted layer and a graph output (Resize, ArgMax) is quantized.
    """
    import onnx
    from onnx import numpy_helper

    m = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    producers = _producers(g)
    bad: list[str] = []

    def arr(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zp = arr(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is None or zp.dtype != np.int8 or zp.any():
            bad.append(f"{n.name}: zero point is not an int8 zero")
        scale = arr(n.input[1])
        is_weight = n.input[0] in inits or (
            n.op_type == "DequantizeLinear" and producers.get(n.input[0]) is not None
            and producers[n.input[0]].op_type == "QuantizeLinear"
            and producers[n.input[0]].input[0] in inits)
        if not is_weight and (scale is None or scale.size != 1):
            bad.append(f"{n.name}: activation scale is not per tensor")
    for n in g.node:
        if n.op_type != "Conv":
            continue
        w_dq, x_dq = _dq_of(n.input[1], producers), _dq_of(n.input[0], producers)
        if (w_dq is None) != (x_dq is None):
            bad.append(f"{n.name}: only one of input and weight is quantized")
        if w_dq is None:
            continue
        w_src = w_dq.input[0]  # an int8 initialiser, or a Q of the float one
        if producers.get(w_src) is not None and producers[w_src].op_type == "QuantizeLinear":
            w_src = producers[w_src].input[0]
        w = arr(w_src)
        scale = arr(w_dq.input[1])
        axis = next((a.i for a in w_dq.attribute if a.name == "axis"), 1)
        if w is None or scale is None or scale.shape != (w.shape[0],) or axis != 0:
            bad.append(f"{n.name}: weights are not quantized per output channel (axis 0)")
    for name, (residual, branch) in residual_adds(m).items():
        add = next(n for n in g.node if n.name == name)
        fed = {_float_source(t, producers): _dq_of(t, producers) is not None for t in add.input}
        if fed.get(branch):
            bad.append(f"{name}: the branch input {branch} is quantized (only the residual may be)")
        elif not fed.get(residual) and _dq_of(_conv_input(branch, producers), producers):
            bad.append(f"{name}: the residual input {residual} of a quantized branch is float")
    for group in _concat_scale_groups(g):
        # why the ignore below: initializer arrays of one element (Q/DQ scales)
        if len({float(arr(x)) for x in group}) > 1:  # type: ignore[arg-type]
            bad.append(f"a Concat's quantized inputs/output have different scales: {sorted(group)}")
    for name in output_path(m):
        node = next(n for n in g.node if n.name == name)
        if any(_dq_of(i, producers) is not None for i in node.input if i):
            bad.append(f"{name}: on the path to the output, yet fed by DequantizeLinear")
    for o in g.output:
        p = producers.get(o.name)
        if p is not None and p.op_type in ("QuantizeLinear", "DequantizeLinear"):
            bad.append(f"graph output {o.name} is produced by {p.op_type}")
    return bad


def _conv_input(tensor: str, producers: dict[str, Any]) -> str:
    """The activation input of the Conv that produces ``tensor`` (``tensor`` itself if none)."""
    n = producers.get(tensor)
    return n.input[0] if n is not None and n.op_type == "Conv" else tensor




def quantize_int8(model: str | Path, frames: Sequence[np.ndarray], out: str | Path | None = None,
                  method: str = DEFAULT_CALIB_METHOD, op_types: Sequence[str] = QDQ_OP_TYPES,
                  progress: bool = True) -> Path:
    """Writes a Q/DQ ONNX of ``model`` calibrated on ``frames`` and returns its path.

    Symmetric int8 activations (per tensor) and weights (per output channel), zero points 0,
    float biases, placed as NVIDIA's ModelOpt places them (see ``qdq_placement_violations``):
    the form TensorRT builds from and fuses best. The seg_perception metadata is carried over,
    plus the source model's sha256 so a stale Q/DQ model is never paired with a newer float one.
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
            nodes_to_exclude=output_path(src),
            extra_options={
                "ActivationSymmetric": True, "WeightSymmetric": True,
                "QuantizeBias": False,  # TensorRT takes float biases, not int32
                "QDQOpTypePerChannelSupportToAxis": {"Conv": 0},
                # Q/DQ on op *inputs* only (ModelOpt's placement): TensorRT fuses each
                # output quantization into the producer itself.
                "OpTypesToExcludeOutputQuantization": list(op_types),
                # Pooling is quantized whether or not its input already is.
                "ForceQuantizeNoInputCheck": True,
                "DedicatedQDQPair": False},
            calibration_providers=["CPUExecutionProvider"])
        q = onnx.load(str(raw))
    _drop_branch_qdq(q)
    _share_concat_scales(q)
    meta = get_metadata(src)
    meta["quantization"] = json.dumps({
        "format": "qdq", "precision": "int8", "symmetric": True, "per_channel_weights": True,
        "method": method, "frames": len(frames), "op_types": list(op_types),
        "placement": "modelopt"})
    meta["source_sha256"] = info.sha256
    set_metadata(q, meta)
    onnx.checker.check_model(q)
    bad = qdq_placement_violations(q)
    if bad:
        raise RuntimeError(f"Q/DQ model of {info.path.name} breaks the placement rules: "
                           + "; ".join(bad))
    assert_tensorrt_shaped(q, f"int8 Q/DQ model of {info.path.name}")
    return atomic_write_bytes(out, q.SerializeToString())














# -- accuracy on a labelled split -----------------------------------------------------------------
def evaluate_onnx(model: str | Path, root: str | Path, split: str = "val", threads: int = 2,
                  progress: bool = True) -> dict[str, Any]:
    """mIoU of an ONNX model on a CamVid-layout split, run on ONNX Runtime's CPU provider through
    the node's own resize path (Segmenter)."""
    from tqdm import tqdm

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
