"""TensorRT conformance check: real ONNX graphs (exports, onnxruntime Q/DQ, hand-built ones)
against the rule tables in seg_perception/trt_rules, no TensorRT needed."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from seg_perception.inference.tensorrt import conformance as tc
from seg_perception.inference.tensorrt.conformance import (
    TARGETS,
    ConformanceError,
    Violation,
    assert_conformant,
    check_model,
    check_profile,
    check_profiles,
    target_for,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "engines" / "seglite_camvid.onnx", ROOT / "engines" / "seglite_camvid.int8.onnx"]
UINT8_IN = "a UINT8 network input must feed a Cast to FLOAT/FLOAT16 directly"
UINT8_OUT = "a UINT8 network output must be produced by a Cast from FLOAT/FLOAT16"


def _lines(found: list[Violation], target: str | None = None) -> list[str]:
    return [str(v) for v in found if target is None or v.target == target]


def _has(found: list[Violation], node: str, text: str, target: str | None = None) -> bool:
    return any(v.node == node and text in v.rule and (target is None or v.target == target)
               for v in found)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _f(name: str, shape, elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _init(name: str, value) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


# --- the project's graphs -------------------------------------------------------------------


def test_new_export_passes_every_target(tiny_onnx):
    assert check_model(tiny_onnx) == []
    assert_conformant(tiny_onnx, what="tiny export")
    g = onnx.load(str(tiny_onnx)).graph
    first = next(n for n in g.node if "image" in n.input)
    assert first.op_type == "Cast" and first.attribute[0].i == TensorProto.FLOAT


def test_fp16_and_int8_variants_pass_every_target(tiny_onnx, tmp_path, rng):
    from seg_perception.inference.variants import fp16_model
    from seg_perception.optimize.quantize import quantize_int8

    assert check_model(fp16_model(tiny_onnx)) == []
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(2)]
    qdq = quantize_int8(tiny_onnx, frames, tmp_path / "tiny.int8.onnx", progress=False)
    found = check_model(qdq)
    assert found == [], "\n".join(_lines(found))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_models_pass_every_target(path):
    if not path.is_file():
        pytest.skip(f"{path.name} not shipped")
    found = check_model(path)
    assert found == [], f"{path.name} needs re-exporting:\n" + "\n".join(_lines(found)[:12])


class _OldWrapper:
    """The export before the boundary fix: Transpose on the UINT8 image, ArgMax cast straight
    to UINT8."""

    @staticmethod
    def build(model):
        import torch
        import torch.nn.functional as F
        from torch import nn

        class Old(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, image: torch.Tensor) -> torch.Tensor:
                x = image.permute(0, 3, 1, 2).float()
                logits = F.interpolate(self.model(x), size=x.shape[-2:], mode="bilinear",
                                       align_corners=False)
                return logits.argmax(1).to(torch.uint8)

        return Old().eval()


def _old_forward(self, image):
    import torch
    import torch.nn.functional as F

    x = image.permute(0, 3, 1, 2).float()
    logits = F.interpolate(self.model(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
    return (logits.argmax(1).to(torch.uint8),)


@pytest.fixture(scope="module")
def old_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    import torch

    from seg_perception.model.checkpoint import load_model

    model, meta = load_model(tiny_checkpoint)
    h, w = meta["input_size"]
    out = tmp_path_factory.mktemp("old") / "old.onnx"
    dyn = {"image": {0: "batch", 1: "height", 2: "width"},
           "labels": {0: "batch", 1: "height", 2: "width"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_OldWrapper.build(model), (torch.zeros(1, h, w, 3, dtype=torch.uint8),),
                          str(out), input_names=["image"], output_names=["labels"],
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
    return out


def test_old_style_export_is_rejected_with_both_rules(old_onnx):
    g = onnx.load(str(old_onnx)).graph
    into = next(n for n in g.node if "image" in n.input)
    out = next(n for n in g.node if "labels" in n.output)
    assert into.op_type == "Transpose" and out.op_type == "Cast"
    found = check_model(old_onnx)
    for target in TARGETS:
        assert _has(found, into.name, UINT8_IN, target), _lines(found, target)
        assert _has(found, out.name, UINT8_OUT, target), _lines(found, target)
        assert _has(found, out.name, "comes from a Cast from INT64", target)
    line = next(s for s in _lines(found, "10.3") if UINT8_IN in s)
    assert line.startswith(f"TensorRT 10.3: node '{into.name}' (Transpose): input 'image' is UINT8")
    assert line.endswith("(NvInferRuntimeBase.h kUINT8)")
    with pytest.raises(ConformanceError) as err:
        assert_conformant(old_onnx, what="old export")
    assert str(err.value).startswith("old export does not conform to TensorRT")
    assert len(err.value.violations) == len(found)


def test_export_onnx_refuses_a_non_conformant_graph(tiny_checkpoint, tmp_path, monkeypatch):
    from seg_perception.optimize import export

    def old_with_confidence(self, image):  # today's two outputs, the old boundaries
        labels = _old_forward(self, image)[0]
        return labels, labels + 0

    monkeypatch.setattr(export.ExportWrapper, "forward", old_with_confidence)
    out = tmp_path / "refused.onnx"
    with pytest.raises(ConformanceError) as err:
        export.export_onnx(tiny_checkpoint, out)
    assert UINT8_IN in str(err.value) and UINT8_OUT in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("*.onnx"))


def test_docs_only_shows_the_8_6_constant_of_shape_entry(tiny_onnx):
    """docs/operators.md@8.6-GA lists ConstantOfShape as FP32 only; the exporter's expand gives
    an INT64 one, which the 8.6 importer casts to INT32 (the table's override says why)."""
    found = check_model(tiny_onnx, docs_only=True)
    assert found and {v.target for v in found} == {"8.6"}
    assert all(v.op == "ConstantOfShape" and "supports FP32 (" in v.rule for v in found)


def test_module_imports_no_torch_tensorrt_or_rclpy():
    code = ("import sys, seg_perception.inference.tensorrt.conformance\n"
            "bad = [m for m in ('torch', 'tensorrt', 'rclpy') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# --- Q/DQ -----------------------------------------------------------------------------------


def _qdq_conv(x_scale=0.02, x_zp=0, w_scale=None, w_axis=0, w_shape=(8, 4, 3, 3),
              x_axis=None, scale_input=False, with_zp=True) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(W = DQ(int8 weights)) -> y; every Q/DQ knob one argument."""
    k = w_shape[0]
    w_scale = np.full(k, 0.01, np.float32) if w_scale is None else np.asarray(w_scale, np.float32)
    xs = np.asarray(x_scale, np.float32)
    inits = [_init("w_q", np.ones(w_shape, np.int8)), _init("w_s", w_scale),
             _init("w_z", np.zeros(w_scale.shape, np.int8)), _init("x_z", np.full(xs.shape, x_zp,
                                                                                 np.int8))]
    inputs = [_f("x", [1, 4, 8, 8])]
    if scale_input:
        inputs.append(_f("x_s", list(xs.shape)))
    else:
        inits.append(_init("x_s", xs))
    q_in = ["x", "x_s", "x_z"] if with_zp else ["x", "x_s"]
    axis = {} if x_axis is None else {"axis": x_axis}
    nodes = [helper.make_node("QuantizeLinear", q_in, ["x_q"], "q_x", **axis),
             helper.make_node("DequantizeLinear", ["x_q", *q_in[1:]], ["x_dq"], "dq_x", **axis),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], "dq_w",
                              axis=w_axis),
             helper.make_node("Conv", ["x_dq", "w"], ["y"], "conv", pads=[1, 1, 1, 1])]
    return _model(nodes, inputs, [_f("y", None)], inits)


def test_well_formed_qdq_passes_every_target():
    assert check_model(_qdq_conv()) == []


def test_qdq_nonzero_zero_point():
    found = check_model(_qdq_conv(x_zp=3))
    for target in TARGETS:
        assert _has(found, "q_x", "zero point 'x_z' is not all zeros", target)
        assert _has(found, "dq_x", "TensorRT only supports symmetric quantization", target)


def test_qdq_negative_and_infinite_scales():
    found = check_model(_qdq_conv(x_scale=-0.02))
    assert all(_has(found, "q_x", "scale coefficients must all be positive", t) for t in TARGETS)
    found = check_model(_qdq_conv(w_scale=[0.01] * 7 + [np.inf]))
    assert all(_has(found, "dq_w", "a scale must be positive and finite", t) for t in TARGETS)


def test_qdq_per_channel_scale_on_an_activation():
    found = check_model(_qdq_conv(x_scale=np.full(4, 0.02), x_axis=1))
    for target in TARGETS:
        assert _has(found, "q_x", "per-channel quantization is supported only for weight inputs",
                    target)
        assert _has(found, "dq_x", "which is not a constant weight", target)


def test_qdq_wrong_axis_on_conv_weights():
    found = check_model(_qdq_conv(w_axis=1))  # 8 scales along the 4 input channels
    for target in TARGETS:
        assert _has(found, "dq_w", "the number of scales must equal the number of output "
                    "channels", target)
        assert _has(found, "dq_w", "the quantization axis must be 0 (output channels)", target)
    square = check_model(_qdq_conv(w_axis=1, w_shape=(4, 4, 3, 3)))  # sizes agree, axis still 1
    assert all(_has(square, "dq_w", "quantization axis must be 0", t) for t in TARGETS)
    assert not any("number of scales" in v.rule for v in square)


def test_qdq_scale_and_zero_point_rules_per_version():
    found = check_model(_qdq_conv(scale_input=True))
    bad = {v.target for v in found if "is not a build-time constant" in v.rule}
    assert bad == {"8.6", "10.3"}  # NvInfer.h dropped the constant-scale rule by 10.16
    found = check_model(_qdq_conv(with_zp=False))
    assert {v.target for v in found} == {"8.6"}
    assert _has(found, "q_x", "has no zero point", "8.6")


def test_qdq_fp16_scale_is_misread_by_the_8_6_importer():
    """8.6's importer casts a constant scale to float*: an fp16 scale (opset 19) is refused
    there and taken by the 10.x/11.x importers."""
    h = np.float16
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], "q_x"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], "dq_x")]
    m = _model(nodes, [_f("x", [1, 4, 8, 8], TensorProto.FLOAT16)],
               [_f("y", None, TensorProto.FLOAT16)],
               [_init("s", np.asarray(0.02, h)), _init("z", np.asarray(0, np.int8))], opset=19)
    found = [v for v in check_model(m) if "scales only" in v.rule]
    assert {v.target for v in found} == {"8.6"} and _has(found, "q_x", "FP16; this version")
    assert check_model(_qdq_conv(), ["8.6"]) == []  # fp32 scales pass


def test_qdq_uint8_zero_point_rejected_at_8_6_taken_as_int8_later():
    m = _qdq_conv()
    for t in m.graph.initializer:
        if t.name == "x_z":
            t.CopyFrom(_init("x_z", np.uint8(0)))
    found = check_model(m)
    assert {v.target for v in found} == {"8.6"}
    assert _has(found, "q_x", "zero point 'x_z' is UINT8; the 8.6-GA importer rejects UINT8")
    weights = _qdq_conv()
    for t in weights.graph.initializer:
        if t.name in ("w_q", "w_z"):
            t.CopyFrom(_init(t.name, numpy_helper.to_array(t).astype(np.uint8)))
    found = check_model(weights)  # UINT8 weights are a UINT8 tensor inside the network
    assert all(_has(found, "dq_w", "tensor 'w_q' is UINT8 inside the network", t)
               for t in TARGETS)


# --- op support, types, UINT8, restrictions -------------------------------------------------


def test_unknown_and_unsupported_ops():
    made_up = _model([helper.make_node("Frobnicate", ["x"], ["y"], "frob")],
                     [_f("x", [4])], [_f("y", [4])])
    found = check_model(made_up)
    assert all(_has(found, "frob", "op is not listed in onnx-tensorrt docs/operators.md", t)
               for t in TARGETS)
    custom = _model([helper.make_node("Gelu", ["x"], ["y"], "ms_gelu", domain="com.microsoft")],
                    [_f("x", [4])], [_f("y", [4])])
    custom.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert all(_has(check_model(custom), "ms_gelu", "custom domain 'com.microsoft'", t)
               for t in TARGETS)
    # HannWindow: "N" in the 8.6 and 10.1 tables, "Y" from 10.4 on.
    hann = _model([helper.make_node("HannWindow", ["n"], ["w"], "hann")],
                  [_f("n", [], TensorProto.INT64)], [_f("w", [None])])
    found = check_model(hann)
    assert {v.target for v in found} == {"8.6", "10.3"}
    assert _has(found, "hann", "op is listed as not supported in onnx-tensorrt "
                "docs/operators.md@8.6-GA", "8.6")


def test_wrong_input_types():
    relu = _model([helper.make_node("Relu", ["x"], ["y"], "relu_i32")],
                  [_f("x", [4], TensorProto.INT32)], [_f("y", [4], TensorProto.INT32)])
    found = check_model(relu)
    assert {v.target for v in found} == {"8.6"}  # INT32 Relu is listed from 10.x on
    assert _has(found, "relu_i32", "input 'x' is INT32; Relu supports FP32, FP16, INT8")
    mm = _model([helper.make_node("MatMul", ["a", "b"], ["c"])],
                [_f("a", [2, 2], TensorProto.INT32), _f("b", [2, 2], TensorProto.INT32)],
                [_f("c", [2, 2], TensorProto.INT32)])
    found = check_model(mm)
    assert all(_has(found, "MatMul#0", "input 'a' is INT32; MatMul supports FP32", t)
               for t in TARGETS)
    add = _model([helper.make_node("Add", ["a", "a"], ["b"], "add16")],
                 [_f("a", [2], TensorProto.INT16)], [_f("b", [2], TensorProto.INT16)])
    assert all(_has(check_model(add), "add16", "is INT16, not a TensorRT data type", t)
               for t in TARGETS)


def test_uint8_rules_on_hand_built_graphs():
    to_int = _model([helper.make_node("Cast", ["img"], ["i"], "cast_i32", to=TensorProto.INT32),
                     helper.make_node("Cast", ["i"], ["f"], "cast_f", to=TensorProto.FLOAT)],
                    [_f("img", [2], TensorProto.UINT8)], [_f("f", [2])])
    found = check_model(to_int)
    assert _has(found, "cast_i32", "feeds a Cast to INT32; " + UINT8_IN)
    inside = _model([helper.make_node("Cast", ["x"], ["u"], "to_u8", to=TensorProto.UINT8),
                     helper.make_node("Cast", ["u"], ["y"], "from_u8", to=TensorProto.FLOAT)],
                    [_f("x", [2])], [_f("y", [2])])
    assert _has(check_model(inside), "to_u8", "tensor 'u' is UINT8 inside the network")
    ok = _model([helper.make_node("Cast", ["img"], ["f"], to=TensorProto.FLOAT16),
                 helper.make_node("Cast", ["f"], ["out"], to=TensorProto.UINT8)],
                [_f("img", [2], TensorProto.UINT8)], [_f("out", [2], TensorProto.UINT8)])
    assert check_model(ok) == []


def test_restriction_texts_that_are_checked():
    x = _f("x", [1, 3, 8, 8])
    cubic = _model([helper.make_node("Resize", ["x", "", "s"], ["y"], "rs", mode="cubic")],
                   [x], [_f("y", None)], [_init("s", np.array([1, 1, 2, 2], np.float32))])
    assert all(_has(check_model(cubic), "rs", "mode='cubic' is not supported", t) for t in TARGETS)
    idx = _model([helper.make_node("MaxPool", ["x"], ["y", "i"], "mp", kernel_shape=[2, 2])],
                 [x], [_f("y", None), _f("i", None, TensorProto.INT64)])
    assert all(_has(check_model(idx), "mp", "output Indices 'i' is used", t) for t in TARGETS)
    one_d = _model([helper.make_node("MaxPool", ["v"], ["y"], "mp1", kernel_shape=[2])],
                   [_f("v", [1, 3, 8])], [_f("y", None)])
    assert all(_has(check_model(one_d), "mp1", "has rank 3", t) for t in TARGETS)
    unsq = _model([helper.make_node("Unsqueeze", ["x", "ax"], ["y"], "unsq")],
                  [x, _f("ax", [1], TensorProto.INT64)], [_f("y", None)])
    assert all(_has(check_model(unsq), "unsq", "input 'ax' (axes) is not a build-time constant",
                    t) for t in TARGETS)
    # Slice axes: "must be an initializer" at 8.6; tensor axes allowed from 10.3 (Changelog).
    sl = _model([helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"], "slice")],
                [x, _f("ax", [1], TensorProto.INT64)], [_f("y", None)],
                [_init("st", np.array([0])), _init("en", np.array([2]))])
    found = check_model(sl)
    assert {v.target for v in found} == {"8.6"}
    assert _has(found, "slice", "is not an initializer or Constant", "8.6")


def test_opset_range():
    hi = _model([helper.make_node("Relu", ["x"], ["y"])], [_f("x", [2])], [_f("y", [2])], opset=21)
    found = check_model(hi)
    assert {v.target for v in found} == {"8.6", "10.3"}
    assert _has(found, "(model)", "ONNX opset 21 is outside the parser's range 9..20", "10.3")


# --- profiles -------------------------------------------------------------------------------


def _image_model() -> onnx.ModelProto:
    img = helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", 3])
    return _model([helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT)], [img],
                  [_f("f", None)])


def test_profile_rules():
    m = _image_model()
    assert check_profile(m, "image", (1, 64, 64, 3), (1, 96, 128, 3), (2, 480, 640, 3)) == []

    def rules(*shapes):
        found = check_profile(m, "image", *shapes)
        assert found and all(v.node == "image" and v.op == tc.PROFILE_OP for v in found)
        return " | ".join(v.rule for v in found)

    assert "rank mismatch" in rules((1, 64, 64), (1, 96, 128, 3), (1, 480, 640, 3))
    assert "every profile dim must be positive" in rules((0, 64, 64, 3), (1, 96, 128, 3),
                                                         (1, 480, 640, 3))
    assert "min <= opt <= max elementwise" in rules((1, 128, 128, 3), (1, 96, 128, 3),
                                                    (1, 480, 640, 3))
    assert "a non-dynamic dim must equal the network's" in rules((1, 64, 64, 4), (1, 96, 128, 4),
                                                                 (1, 480, 640, 4))
    assert "dynamic dims [?, ?, ?, 3] but no profile" in rules(None, None, None)
    assert "no input 'images'" in check_profile(m, "images", None, None, None)[0].rule
    line = str(check_profile(m, "image", None, None, None, target="10.3.0.30")[0])
    assert line.startswith("TensorRT 10.3: input 'image' (optimization profile): input has dynamic")
    assert check_profiles(m, {}) and check_profiles(
        m, {"image": ((1, 8, 8, 3), (1, 8, 8, 3), (1, 8, 8, 3))}) == []
    static = _model([helper.make_node("Relu", ["x"], ["y"])], [_f("x", [1, 3])], [_f("y", [1, 3])])
    assert check_profile(static, "x", None, None, None) == []


def test_profile_of_the_exported_model(tiny_onnx):
    assert check_profile(tiny_onnx, "image", (1, 96, 128, 3), (1, 96, 128, 3),
                         (1, 96, 128, 3)) == []
    assert check_profile(tiny_onnx, "image", None, None, None)


# --- API and CLI ----------------------------------------------------------------------------


def test_target_for():
    assert target_for("10.3.0.30") == "10.3"
    assert target_for("8.6.2.3") == "8.6"
    assert target_for("10.13.3") == "10.3"
    assert target_for("10.16.1") == "10.16"
    assert target_for("11.1") == "11.1"
    assert target_for("12.0") == TARGETS[-1]
    with pytest.raises(ValueError):
        target_for("8.5.3")
    with pytest.raises(ValueError):
        target_for("latest")
    assert {v.target for v in check_model(_image_model(), ["10.3.0.30"])} <= {"10.3"}


def test_conformance_error_caps_its_lines():
    found = [Violation("10.3", f"n{i}", "Relu", "rule") for i in range(25)]
    text = str(ConformanceError(found, "m.onnx"))
    lines = text.splitlines()
    assert lines[0] == "m.onnx does not conform to TensorRT (25 violations):"
    assert lines[1] == "TensorRT 10.3: node 'n0' (Relu): rule"
    assert len(lines) == 22 and lines[-1] == "... and 5 more"
    assert isinstance(ConformanceError(found), ValueError)


def test_cli(tiny_onnx, old_onnx, tmp_path, capsys):
    assert tc.main([str(tiny_onnx)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"TensorRT {t}: PASS" for t in TARGETS]
    assert tc.main([str(old_onnx), "--target", "10.3.0.30"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("TensorRT 10.3: FAIL (2)") and UINT8_IN in out
    assert tc.main([str(tmp_path / "missing.onnx")]) == 2
    assert tc.main([str(tiny_onnx), "--target", "7.0"]) == 2
    with pytest.raises(SystemExit) as usage:
        tc.main([])
    assert usage.value.code == 2
    capsys.readouterr()
