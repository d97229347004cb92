"""What a backend needs to know about a model, read from the ONNX metadata (no torch)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_perception.core.classes import ClassSet
from seg_perception.core.errors import ModelError
from seg_perception.core.fileio import file_sha256
from seg_perception.model.contract import INPUT_NAME, LABELS_NAME

DEFAULT_MODEL_NAME = "seglite_camvid.onnx"


def package_share() -> Path:
    """Where launch/, config/ and engines/ live: the source tree, or share/ after colcon."""
    src = Path(__file__).resolve().parents[2]  # the checkout: seg_perception/inference/..
    if (src / "engines").is_dir():
        return src
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("seg_perception"))
    except Exception:  # noqa: BLE001 - no ament index: fall back to the source layout
        return src


def default_model_path() -> Path:
    return package_share() / "engines" / DEFAULT_MODEL_NAME


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    classes: ClassSet
    input_size: tuple[int, int]  # (height, width) the model was trained at
    sha256: str
    outputs: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name


def _io_contract_violation(sess: Any) -> str:  # noqa: ANN401 - onnxruntime.InferenceSession
    """What is wrong with the model's inputs and outputs, or ''."""
    ins = sess.get_inputs()
    if len(ins) != 1 or ins[0].name != INPUT_NAME or ins[0].type != "tensor(uint8)" \
            or len(ins[0].shape) != 4 or ins[0].shape[3] != 3:
        got = [(i.name, i.type, i.shape) for i in ins]
        return f"needs one input {INPUT_NAME!r} uint8 N x H x W x 3, has {got}"
    outs = {o.name: o for o in sess.get_outputs()}
    lab = outs.get(LABELS_NAME)
    if lab is None or lab.type != "tensor(uint8)" or len(lab.shape) != 3:
        return (f"needs an output {LABELS_NAME!r} uint8 N x H x W, has "
                f"{[(o.name, o.type, o.shape) for o in outs.values()]}")
    return ""


def read_model_info(path: str | Path) -> ModelInfo:
    """Reads a seg_perception ONNX; raises FileNotFoundError or ModelError naming the file.

    Through onnxruntime (the node needs it anyway; the ``onnx`` package is offline tooling and
    has no rosdep key): a session without graph optimisation reads the metadata in ~0.2 s.
    """
    import onnxruntime as ort

    p = Path(path)
    if p.is_dir():
        raise ModelError(p, f"{p} is a directory, not an ONNX model file")
    if not p.is_file():
        raise FileNotFoundError(f"model not found: {p}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3  # a file that is not ONNX is reported below, once
    try:
        sess = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises InvalidProtobuf, Fail, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(p, f"{p} is not a readable ONNX model: {first}") from exc
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    output_names = tuple(o.name for o in sess.get_outputs())
    contract = _io_contract_violation(sess)
    del sess
    if contract:
        raise ModelError(p, f"{p} does not follow the seg_perception model contract: {contract}")
    if "classes" not in meta or "input_size" not in meta:
        raise ModelError(p, f"{p} has no seg_perception metadata (classes, input_size): "
                         "export it with `seg-perception export`")
    try:
        h, w = (int(v) for v in meta["input_size"].split("x"))
        classes = ClassSet.from_dict(json.loads(meta["classes"]))
    except (ValueError, TypeError) as exc:
        raise ModelError(p, f"{p}: malformed seg_perception metadata: {exc}") from exc
    if min(h, w) < 16:
        raise ModelError(p, f"{p}: metadata input_size {meta['input_size']!r} must be HxW >= 16")
    return ModelInfo(path=p, classes=classes, input_size=(h, w), sha256=file_sha256(p),
                     outputs=output_names)
