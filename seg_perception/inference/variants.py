"""The models derived from a deployed ONNX (int8 Q/DQ, fp16): where they live, and whether they
were made from exactly that model.

Backends and the engine build use these rules at run time; making a Q/DQ model (calibration) is
offline work in ``optimize.quantize``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seg_perception.core.errors import OptionError
from seg_perception.core.fileio import atomic_write_bytes
from seg_perception.inference.modelinfo import ModelInfo, read_model_info
from seg_perception.model.contract import get_metadata, read_metadata, set_metadata

INT8_SUFFIX = ".int8.onnx"
FP16_SUFFIX = ".fp16.onnx"


def qdq_path_for(model: str | Path) -> Path:
    """Where the Q/DQ model of ``model`` lives: beside it, ``<stem>.int8.onnx``."""
    p = Path(model)
    return p.with_name(p.name.removesuffix(".onnx") + INT8_SUFFIX)


def fp16_path_for(model: str | Path) -> Path:
    p = Path(model)
    return p.with_name(p.name.removesuffix(".onnx") + FP16_SUFFIX)


def assert_tensorrt_shaped(model: Any, what: str) -> None:  # noqa: ANN401 - onnx.ModelProto
    """Raises ConformanceError before a derived model (int8, fp16) is written or run if any
    targeted TensorRT version would refuse it: the robot is the wrong place to find out."""
    # onnx: offline tooling without a rosdep key; only derived models need the check
    from seg_perception.inference.tensorrt.conformance import TARGETS, assert_conformant

    assert_conformant(model, TARGETS, what)


def check_derived(derived: str | Path, source: ModelInfo, kind: str) -> None:
    """Raises ValueError unless ``derived`` was made from exactly ``source`` (by sha256)."""
    meta = read_metadata(derived)
    if kind == "int8" and "quantization" not in meta:
        raise ValueError(f"{derived} is not a Q/DQ model made by seg_perception")
    if meta.get("source_sha256") != source.sha256:
        raise ValueError(f"{derived} was made from another model than {source.path.name} "
                         f"(source sha256 {meta.get('source_sha256', 'missing')[:12]}, model "
                         f"{source.sha256[:12]}); make it again")


def find_qdq(model: str | Path) -> Path:
    """The Q/DQ model made from ``model``; ValueError (with the command to make it) if absent."""
    info = read_model_info(model)
    if "quantization" in read_metadata(info.path):
        return info.path  # already a Q/DQ model
    q = qdq_path_for(info.path)
    if not q.is_file():
        raise OptionError(
            "precision", f"precision int8 needs the calibrated Q/DQ model {q}; make it with "
            f"`seg-perception build-engine {info.path} --precision int8 --calib <image folder or "
            "bag> --onnx-only`")
    check_derived(q, info, "int8")
    return q


# -- FP16 conversion ----------------------------------------------------------------------------
# Bump when fp16_model's own steps (op block list, cast fixes) change what it makes.
FP16_RECIPE = 1


def fp16_recipe() -> str:
    """Names what ``fp16_model`` makes: engines built from its output are keyed by it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        conv = version("onnxconverter-common")
    except PackageNotFoundError:
        conv = "none"
    return f"fp16-v{FP16_RECIPE}-onnxconverter-common-{conv}"


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
    meta = get_metadata(src)
    meta["source_sha256"] = info.sha256
    meta["precision"] = "fp16"
    set_metadata(half, meta)
    onnx.checker.check_model(half)
    assert_tensorrt_shaped(half, f"fp16 model of {info.path.name}")
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
