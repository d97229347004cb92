"""TensorRT conformance check for ONNX graphs, from TensorRT's own published rules.

TensorRT cannot be installed where models are exported and tested, so a graph TensorRT would
refuse (or would build into something other than what ONNX Runtime ran) used to surface only
on the robot. This module encodes, per targeted TensorRT version, the rules the ONNX parser and
the network API publish, and checks a graph against them offline:

1. operator support and input types: onnx-tensorrt ``docs/operators.md`` (tables trimmed into
   ``trt_rules/trt_<version>.json``) plus the restriction texts this module knows how to check;
2. UINT8 at the network boundary: ``NvInferRuntimeBase.h`` ``DataType::kUINT8``;
3. Q/DQ: the onnx-tensorrt ``QuantDequantLinearHelper`` importer and ``NvInfer.h``
   ``IQuantizeLayer``/``IDequantizeLayer``;
4. build profiles: ``NvInferRuntime.h`` ``IOptimizationProfile::setDimensions``.

Sources, branches and commits of every table are in ``trt_rules/README.md``. Offline tooling:
imports onnx and numpy only (no torch, tensorrt or rclpy).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from seg_perception.core.errors import SegPerceptionError

RULES_DIR = Path(__file__).with_name("trt_rules")

#: Versions with a rule table, oldest first: JetPack 6.0 (8.6), JetPack 6.1/6.2 (10.3), the
#: newest 10.x and the newest 11.x that onnx-tensorrt publishes.
TARGETS: tuple[str, ...] = ("8.6", "10.3", "10.16", "11.1")

PROFILE_OP = "optimization profile"
MAX_LINES = 20

UINT8_CITE = "NvInferRuntimeBase.h kUINT8"
PROFILE_CITE = "NvInferRuntime.h IOptimizationProfile::setDimensions"

_TYPE_NAMES: dict[int, str] = {
    TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
    TensorProto.DOUBLE: "DOUBLE", TensorProto.INT32: "INT32", TensorProto.INT64: "INT64",
    TensorProto.INT8: "INT8", TensorProto.UINT8: "UINT8", TensorProto.BOOL: "BOOL",
    TensorProto.FLOAT8E4M3FN: "FP8",
}
for _name, _label in (("INT4", "INT4"), ("FLOAT4E2M1", "FP4")):
    if hasattr(TensorProto, _name):
        _TYPE_NAMES[getattr(TensorProto, _name)] = _label
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16)
_INDEX_TYPES = {"tensor(int32)", "tensor(int64)"}
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (node or input), for which TensorRT version, and why."""

    target: str
    node: str
    op: str
    rule: str

    def __str__(self) -> str:
        where = "input" if self.op == PROFILE_OP else "node"
        return f"TensorRT {self.target}: {where} '{self.node}' ({self.op}): {self.rule}"


class ConformanceError(SegPerceptionError, ValueError):
    """A graph TensorRT would refuse; ``violations`` holds every broken rule."""

    def __init__(self, violations: Sequence[Violation], what: str = "model") -> None:
        self.violations: list[Violation] = list(violations)
        self.what = what
        lines = [str(v) for v in self.violations[:MAX_LINES]]
        if len(self.violations) > MAX_LINES:
            lines.append(f"... and {len(self.violations) - MAX_LINES} more")
        n = len(self.violations)
        head = f"{what} does not conform to TensorRT ({n} violation{'s' if n != 1 else ''}):"
        super().__init__("\n".join([head, *lines]))


def _key(version: str) -> tuple[int, int]:
    m = re.match(r"^\s*(\d+)(?:\.(\d+))?", str(version))
    if not m:
        raise ValueError(f"not a TensorRT version: {version!r}")
    return int(m.group(1)), int(m.group(2) or 0)


def target_for(trt_version: str) -> str:
    """The rule table for an installed TensorRT: the newest target not newer than it, because a
    newer table may allow what that TensorRT still refuses ("10.3.0.30" -> "10.3")."""
    v = _key(trt_version)
    older = [t for t in TARGETS if _key(t) <= v]
    if not older:
        raise ValueError(f"TensorRT {trt_version} is older than the oldest rule table "
                         f"({TARGETS[0]})")
    return max(older, key=_key)


def _resolve(target: str) -> str:
    return target if target in TARGETS else target_for(target)


@cache
def load_table(target: str) -> dict[str, Any]:
    """The trimmed rule table of one target (see trt_rules/README.md)."""
    path = RULES_DIR / f"trt_{target.replace('.', '_')}.json"
    if target not in TARGETS or not path.is_file():
        raise ValueError(f"no TensorRT rule table for {target!r} (have {', '.join(TARGETS)})")
    return json.loads(path.read_text())


def _load(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    return onnx.load(str(model))


def _type_name(elem: int) -> str:
    return _TYPE_NAMES.get(elem) or TensorProto.DataType.Name(elem)


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:  # noqa: ANN401
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


class _Graph:
    """Types, shapes, producers, consumers and constants of the top-level graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - a graph inference rejects still gets the other checks
            inferred = model
        g = inferred.graph
        self.model = inferred
        self.opset = next((o.version for o in inferred.opset_import
                           if o.domain in _DEFAULT_DOMAINS), 0)
        self.nodes: list[onnx.NodeProto] = list(g.node)
        self.initializers = {t.name: t for t in g.initializer}
        self.inputs = [v for v in g.input if v.name not in self.initializers]
        self.outputs = list(g.output)
        self.input_names = {v.name for v in self.inputs}
        self.output_names = {v.name for v in self.outputs}
        self.types: dict[str, int] = {}
        self.shapes: dict[str, list[int | str | None]] = {}
        for v in [*g.input, *g.output, *g.value_info]:
            tt = v.type.tensor_type
            if tt.elem_type:
                self.types[v.name] = tt.elem_type
            if tt.HasField("shape"):
                self.shapes[v.name] = [d.dim_value if d.HasField("dim_value")
                                       else (d.dim_param or None) for d in tt.shape.dim]
        for t in g.initializer:
            self.types[t.name] = t.data_type
            self.shapes[t.name] = list(t.dims)
        self.constants: dict[str, TensorProto] = {}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for o in n.output:
                if o:
                    self.producer[o] = i
            for x in n.input:
                if x:
                    self.consumers.setdefault(x, []).append(i)
            if n.op_type == "Constant" and n.domain in _DEFAULT_DOMAINS and n.output:
                value = self._constant_tensor(n)
                if value is not None:
                    self.constants[n.output[0]] = value
                    self.types[n.output[0]] = value.data_type
                    self.shapes[n.output[0]] = list(value.dims)
        self._const_memo: dict[str, bool] = {}

    @staticmethod
    def _constant_tensor(n: onnx.NodeProto) -> TensorProto | None:
        for a in n.attribute:
            if a.name == "value":
                return a.t
            if a.name in ("value_float", "value_floats"):
                return numpy_helper.from_array(np.asarray(onnx.helper.get_attribute_value(a),
                                                          dtype=np.float32))
            if a.name in ("value_int", "value_ints"):
                return numpy_helper.from_array(np.asarray(onnx.helper.get_attribute_value(a),
                                                          dtype=np.int64))
        return None

    def label(self, i: int) -> str:
        n = self.nodes[i]
        return n.name or f"{n.op_type}#{i}"

    def rank(self, name: str) -> int | None:
        s = self.shapes.get(name)
        return None if s is None else len(s)

    def value(self, name: str, through_casts: bool = True) -> np.ndarray | None:
        """Constant value of a tensor (initializer or Constant node), optionally looking back
        through Cast/Identity, which is how TensorRT finds Q/DQ scales and zero points."""
        seen = 0
        while name and seen < 16:
            if name in self.initializers:
                return numpy_helper.to_array(self.initializers[name])
            if name in self.constants:
                return numpy_helper.to_array(self.constants[name])
            i = self.producer.get(name)
            if not through_casts or i is None or self.nodes[i].op_type not in ("Cast", "Identity"):
                return None
            name = self.nodes[i].input[0]
            seen += 1
        return None

    def is_const(self, name: str, strict: bool) -> bool:
        """Strict: an initializer or a Constant node output (the parser imports both as
        weights). Otherwise also anything computed from constants only (build-time constant)."""
        if name in self.initializers or name in self.constants:
            return True
        if strict:
            return False
        if name in self._const_memo:
            return self._const_memo[name]
        self._const_memo[name] = False  # cycles are not constant
        i = self.producer.get(name)
        ok = False
        if i is not None:
            n = self.nodes[i]
            ins = [x for x in n.input if x]
            ok = bool(ins) and all(self.is_const(x, False) for x in ins)
        self._const_memo[name] = ok
        return ok


def _schema(node: onnx.NodeProto, opset: int) -> Any:  # noqa: ANN401 - onnx.defs.OpSchema
    try:
        return onnx.defs.get_schema(node.op_type, opset, node.domain)
    except Exception:  # noqa: BLE001 - unknown op or opset: no schema to consult
        return None


def _typed_operands(node: onnx.NodeProto, opset: int) -> list[tuple[str, str]]:
    """(role, tensor) pairs whose element type the Supported Types column speaks of: the data
    operands, not shape/index operands fixed to INT32/INT64 by the ONNX schema."""
    op = node.op_type
    if op in ("QuantizeLinear", "DequantizeLinear"):
        return [("input", node.input[0])] if node.input else []
    if op in ("Constant", "ConstantOfShape"):
        return [("output", node.output[0])] if node.output else []
    out = []
    schema = _schema(node, opset)
    for i, x in enumerate(node.input):
        if not x:
            continue
        if schema is not None and schema.inputs:
            formal = schema.inputs[min(i, len(schema.inputs) - 1)]
            allowed = next((set(c.allowed_type_strs) for c in schema.type_constraints
                            if c.type_param_str == formal.type_str), {formal.type_str})
            if allowed and allowed <= _INDEX_TYPES:
                continue
        out.append(("input", x))
    if op in ("Cast", "CastLike") and node.output:
        out.append(("output", node.output[0]))
    return out


def _cite(table: Mapping[str, Any]) -> str:
    return f"onnx-tensorrt docs/operators.md@{table['source']['ref']}"


def _opset_rules(g: _Graph, t: Mapping[str, Any], target: str) -> Iterator[Violation]:
    lo, hi = t["opset_range"]
    if g.opset and not lo <= g.opset <= hi:
        yield Violation(target, "(model)", "opset",
                        f"ONNX opset {g.opset} is outside the parser's range {lo}..{hi} "
                        f"({_cite(t)})")


def _op_rules(g: _Graph, t: Mapping[str, Any], target: str,
              docs_only: bool) -> Iterator[Violation]:
    ops = t["ops"]
    overrides = {} if docs_only else t.get("overrides", {})
    aliases = t.get("type_aliases", {})
    known = set(t["data_types"])
    for i, n in enumerate(g.nodes):
        label = g.label(i)
        if n.domain not in _DEFAULT_DOMAINS:
            yield Violation(target, label, n.op_type,
                            f"op of custom domain '{n.domain}' has no built-in importer "
                            f"(not listed in {_cite(t)}); it needs a TensorRT plugin")
            continue
        entry = ops.get(n.op_type)
        if entry is None:
            yield Violation(target, label, n.op_type,
                            f"op is not listed in {_cite(t)}")
            continue
        if not entry["supported"]:
            extra = f": {entry['restrictions']}" if entry.get("restrictions") else ""
            yield Violation(target, label, n.op_type,
                            f"op is listed as not supported in {_cite(t)}{extra}")
            continue
        allowed = overrides.get(n.op_type, {}).get("types", entry["types"])
        for role, x in _typed_operands(n, g.opset):
            elem = g.types.get(x)
            if not elem or (elem == TensorProto.UINT8 and n.op_type not in ("Cast", "CastLike")):
                continue  # unknown, or UINT8, which the UINT8 rule reports
            name = _type_name(elem)
            mapped = aliases.get(name, name)
            via = f" (taken as {mapped})" if mapped != name else ""
            if mapped not in known:
                yield Violation(target, label, n.op_type,
                                f"{role} '{x}' is {name}, not a TensorRT data type "
                                f"({_cite(t)}: {', '.join(t['data_types'])})")
            elif mapped not in allowed:
                yield Violation(target, label, n.op_type,
                                f"{role} '{x}' is {name}{via}; {n.op_type} supports "
                                f"{', '.join(allowed)} ({_cite(t)})")
        yield from _restriction_rules(g, t, target, i, entry)


def _restriction_rules(g: _Graph, t: Mapping[str, Any], target: str, i: int,
                       entry: Mapping[str, Any]) -> Iterator[Violation]:
    n = g.nodes[i]
    label = g.label(i)
    text = entry.get("restrictions", "")
    for c in entry.get("checks", []):
        kind = c["check"]
        if kind == "const_input":
            schema = _schema(n, g.opset)
            names = [f.name for f in schema.inputs] if schema is not None else []
            if c["input"] not in names:
                continue  # an attribute at this opset, not an input
            k = names.index(c["input"])
            if k < len(n.input) and n.input[k] and not g.is_const(n.input[k], c["strict"]):
                need = "an initializer or Constant" if c["strict"] else "a build-time constant"
                yield Violation(target, label, n.op_type,
                                f"input '{n.input[k]}' ({c['input']}) is not {need}; "
                                f"{_cite(t)}: {text}")
        elif kind == "input_rank":
            r = g.rank(n.input[0]) if n.input else None
            if r is not None and r not in c["ranks"]:
                yield Violation(target, label, n.op_type,
                                f"input '{n.input[0]}' has rank {r}; {_cite(t)}: {text}")
        elif kind == "no_output":
            k = c["index"]
            if k < len(n.output) and n.output[k]:
                yield Violation(target, label, n.op_type,
                                f"output {c['name']} '{n.output[k]}' is used; {_cite(t)}: {text}")
        elif kind == "unit_attr":
            v = _attr(n, c["attr"])
            if v is not None and any(int(d) != 1 for d in v):
                yield Violation(target, label, n.op_type,
                                f"{c['attr']}={list(v)}; {_cite(t)}: {text}")
        elif kind == "attr_in":
            when = c.get("when", {})
            mode_ok = all(_attr(n, k, "nearest" if k == "mode" else None) == v
                          for k, v in when.items())
            v = _attr(n, c["attr"], c.get("default"))
            if mode_ok and v not in c["values"]:
                yield Violation(target, label, n.op_type,
                                f"{c['attr']}={v!r} is not supported "
                                f"(supported: {', '.join(map(str, c['values']))}; {_cite(t)})")
        elif kind == "no_attr":
            used = [a.name for a in n.attribute if a.name in c["attrs"]]
            if used:
                yield Violation(target, label, n.op_type,
                                f"attribute {', '.join(used)} is used; {_cite(t)}: {text}")


def _uint8_rules(g: _Graph, target: str) -> Iterator[Violation]:
    """A UINT8 tensor may only be a network input that Casts feed to float at once, or a network
    output a Cast from float makes: TensorRT converts UINT8 only to and from FP32/FP16."""
    flagged: set[int] = set()
    for v in g.inputs:
        if g.types.get(v.name) != TensorProto.UINT8:
            continue
        for i in g.consumers.get(v.name, []):
            n = g.nodes[i]
            if n.op_type == "Cast" and _attr(n, "to") in _FLOATS:
                continue
            flagged.add(i)
            what = (f"a Cast to {_type_name(_attr(n, 'to', 0))}" if n.op_type == "Cast"
                    else n.op_type)
            yield Violation(target, g.label(i), n.op_type,
                            f"input '{v.name}' is UINT8 and feeds {what}; a UINT8 network input "
                            f"must feed a Cast to FLOAT/FLOAT16 directly ({UINT8_CITE})")
    for v in g.outputs:
        if g.types.get(v.name) != TensorProto.UINT8:
            continue
        pi = g.producer.get(v.name)
        if pi is None:
            yield Violation(target, "(graph)", "output",
                            f"output '{v.name}' is UINT8 but no Cast makes it; a UINT8 network "
                            f"output must be produced by a Cast from FLOAT/FLOAT16 ({UINT8_CITE})")
            continue
        n = g.nodes[pi]
        src = g.types.get(n.input[0]) if n.input else None
        if n.op_type == "Cast" and src in _FLOATS:
            continue
        flagged.add(pi)
        what = (f"a Cast from {_type_name(src) if src else 'an unknown type'}"
                if n.op_type == "Cast" else n.op_type)
        yield Violation(target, g.label(pi), n.op_type,
                        f"output '{v.name}' is UINT8 and comes from {what}; a UINT8 network "
                        f"output must be produced by a Cast from FLOAT/FLOAT16 ({UINT8_CITE}: "
                        f"kUINT8 conversions are only supported for kFLOAT, kHALF)")
    # Q/DQ zero points are weights, not network tensors, and a QuantizeLinear that ONNX types
    # UINT8 (UINT8 or no zero point) is INT8 in TensorRT; the Q/DQ rules judge those.
    exempt = g.input_names | g.output_names
    for n in g.nodes:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.domain in _DEFAULT_DOMAINS:
            exempt.update(n.input[2:3])
            if n.op_type == "QuantizeLinear":
                exempt.update(n.output[:1])
    for name, elem in g.types.items():
        if elem != TensorProto.UINT8 or name in exempt:
            continue
        users = g.consumers.get(name, [])
        ti = g.producer.get(name, users[0] if users else None)
        if ti is None or ti in flagged:
            continue
        flagged.add(ti)
        yield Violation(target, g.label(ti), g.nodes[ti].op_type,
                        f"tensor '{name}' is UINT8 inside the network; UINT8 is only supported "
                        f"as a network input or output type ({UINT8_CITE})")


def _qdq_rules(g: _Graph, t: Mapping[str, Any], target: str) -> Iterator[Violation]:
    q = t["qdq"]
    src = q["source"]
    imp = f"onnx-tensorrt {src['path']}@{src['ref']} {src['function']}"
    for i, n in enumerate(g.nodes):
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if n.domain not in _DEFAULT_DOMAINS:
            continue
        label = g.label(i)
        hdr = f"NvInfer.h I{'Deq' if n.op_type == 'DequantizeLinear' else 'Q'}uantizeLayer"

        def v(rule: str, _label: str = label, _op: str = n.op_type) -> Violation:
            return Violation(target, _label, _op, rule)

        ins = [*n.input, "", ""]
        x, s, z = ins[0], ins[1], ins[2]
        scale = g.value(s) if s else None
        allowed, st = q.get("scale_types"), g.types.get(s) if s else None
        if allowed and st is not None and _type_name(st) not in allowed:
            yield v(f"scale '{s}' is {_type_name(st)}; this version takes "
                    f"{'/'.join(allowed)} scales only ({q['scale_types_why']}; {imp})")
        if not s:
            yield v(f"has no scale input; at least 2 inputs are required ({imp})")
        elif scale is None:
            if q["scale_must_be_constant"]:
                yield v(f"scale '{s}' is not a build-time constant (initializer or Constant, "
                        f"optionally through a Cast) ({hdr})")
        elif scale.size == 0:
            yield v(f"scale '{s}' has no coefficients ({imp})")
        else:
            scale = scale.astype(np.float64)
            if not np.all(scale > 0):
                yield v(f"scale '{s}' has non-positive coefficients (min {np.nanmin(scale):g}); "
                        f"scale coefficients must all be positive ({imp}; {hdr})")
            elif not np.all(np.isfinite(scale)):
                yield v(f"scale '{s}' has non-finite coefficients; a scale must be positive and "
                        f"finite (an infinite scale passes the parser's x > 0 test but "
                        f"quantises everything to 0)")
        zp = g.value(z) if z else None
        if not z:
            if q["zero_point_required"]:
                yield v(f"has no zero point; the INT8 importer at {src['ref']} reads input 2 "
                        f"unconditionally ({imp})")
        elif zp is None:
            yield v(f"zero point '{z}' is not a build-time constant containing only zeros "
                    f"({hdr})")
        else:
            if (n.op_type == "QuantizeLinear" and g.types.get(z) == TensorProto.UINT8
                    and q["uint8_zero_point"] == "rejected"):
                yield v(f"zero point '{z}' is UINT8; the {src['ref']} importer rejects UINT8 "
                        f"quantization (notInvalidType(..., {{\"UINT8\"}}), {imp})")
            if np.any(zp != 0):
                nz = np.unique(zp[zp != 0])[:4].tolist()
                yield v(f"zero point '{z}' is not all zeros (e.g. {nz}); TensorRT only supports "
                        f"symmetric quantization, zero points must be 0 ({imp}; {_cite(t)})")
            if scale is not None and scale.size and zp.size != scale.size:
                yield v(f"zero point '{z}' has {zp.size} values and scale '{s}' {scale.size}; "
                        f"scale and zero point must have the same volume ({imp})")
        if scale is None or scale.size <= 1:
            continue
        if scale.ndim >= 2:
            zt = g.types.get(z) if z else None
            if zt != getattr(TensorProto, "INT4", -1):
                yield v(f"scale '{s}' has rank {scale.ndim}; INT8 takes a scalar (per-tensor) or "
                        f"1-D (per-channel) scale, block quantization is INT4 only ({hdr})")
            continue
        if not g.is_const(x, strict=False):
            yield v(f"per-channel scale '{s}' ({scale.size} coefficients) on '{x}', which is "
                    f"not a constant weight; per-channel quantization is supported only for "
                    f"weight inputs, activations take one scale ({hdr})")
        default = q["per_channel_default_axis"]
        axis = _attr(n, "axis")
        given = axis is not None
        axis = default if axis is None else int(axis)
        rank = g.rank(x)
        note = "" if given else f" (no axis attribute: the {src['ref']} parser uses {default})"
        if rank is not None:
            if not -rank <= axis < rank:
                yield v(f"axis {axis}{note} is out of range for rank-{rank} '{x}' ({imp})")
                continue
            axis %= rank
            dim = g.shapes[x][axis]
            if isinstance(dim, int) and dim and dim != scale.size:
                yield v(f"axis {axis}{note} of '{x}' has {dim} channels but scale '{s}' has "
                        f"{scale.size} coefficients; the number of scales must equal the "
                        f"number of output channels ({imp})")
        if n.op_type == "DequantizeLinear" and n.output:
            for k in g.consumers.get(n.output[0], []):
                c = g.nodes[k]
                if c.op_type == "Conv" and len(c.input) > 1 and c.input[1] == n.output[0] \
                        and axis != 0:
                    yield v(f"per-channel axis {axis}{note} on the weights of Conv "
                            f"'{g.label(k)}'; Conv weights are KCRS, so the quantization axis "
                            f"must be 0 (output channels) ({hdr})")


def check_model(model: onnx.ModelProto | str | Path, targets: Sequence[str] = TARGETS, *,
                docs_only: bool = False) -> list[Violation]:
    """Every rule the graph breaks, per target (a target or a TensorRT version string).

    ``docs_only`` drops the importer-source overrides a table carries where docs/operators.md
    lists fewer types than the importer of that version accepts (see trt_rules/README.md)."""
    g = _Graph(_load(model))
    out: list[Violation] = []
    for target in dict.fromkeys(_resolve(t) for t in targets):
        t = load_table(target)
        found = [*_opset_rules(g, t, target), *_op_rules(g, t, target, docs_only),
                 *_uint8_rules(g, target), *_qdq_rules(g, t, target)]
        out.extend(dict.fromkeys(found))
    return out


def assert_conformant(model: onnx.ModelProto | str | Path, targets: Sequence[str] = TARGETS,
                      what: str = "model") -> None:
    """Raises ConformanceError when the graph breaks a rule of any target."""
    found = check_model(model, targets)
    if found:
        raise ConformanceError(found, what)


def _dims(v: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1
            for d in v.type.tensor_type.shape.dim]


def check_profile(model: onnx.ModelProto | str | Path, input_name: str,
                  min_shape: Sequence[int] | None, opt_shape: Sequence[int] | None,
                  max_shape: Sequence[int] | None, target: str = TARGETS[-1]) -> list[Violation]:
    """What an optimization profile for one input breaks: the three conditions of
    IOptimizationProfile::setDimensions, plus positive dims (an image dim of 0 is an empty
    tensor). Pass None shapes to check that the input needs no profile (no dynamic dims)."""
    target = _resolve(target)
    m = _load(model)
    inits = {t.name for t in m.graph.initializer}
    inputs = {v.name: v for v in m.graph.input if v.name not in inits}

    def v(rule: str) -> Violation:
        return Violation(target, input_name, PROFILE_OP, rule)

    if input_name not in inputs:
        return [v(f"the network has no input '{input_name}' (inputs: {', '.join(inputs)})")]
    net = _dims(inputs[input_name])
    shapes = {"min": min_shape, "opt": opt_shape, "max": max_shape}
    if all(s is None for s in shapes.values()):
        if any(d < 0 for d in net):
            return [v(f"input has dynamic dims {_show(net)} but no profile; min/opt/max must be "
                      f"set for every network input with dynamic dimensions ({PROFILE_CITE})")]
        return []
    missing = [k for k, s in shapes.items() if s is None]
    if missing:
        return [v(f"profile lacks {'/'.join(missing)}; min, opt and max must all be set "
                  f"({PROFILE_CITE})")]
    dims = {k: [int(d) for d in s] for k, s in shapes.items() if s is not None}
    out = []
    bad_rank = [k for k, s in dims.items() if len(s) != len(net)]
    if bad_rank:
        ranks = ", ".join(f"{k} {len(dims[k])}" for k in bad_rank)
        return [v(f"rank mismatch: the input has rank {len(net)}, the profile {ranks}; "
                  f"(1) minDims.nbDims == optDims.nbDims == maxDims.nbDims == networkDims.nbDims "
                  f"({PROFILE_CITE})")]
    for k, s in dims.items():
        if any(d < 1 for d in s):
            out.append(v(f"{k} {s} has a dim below 1; every profile dim must be positive "
                         f"((2) requires 0 <= min, and a 0-sized image dim is an empty tensor) "
                         f"({PROFILE_CITE})"))
    lo, mid, hi = dims["min"], dims["opt"], dims["max"]
    bad = [i for i in range(len(net)) if not lo[i] <= mid[i] <= hi[i]]
    if bad:
        out.append(v(f"min {lo} <= opt {mid} <= max {hi} fails at dim {bad}; (2) min <= opt <= "
                     f"max elementwise ({PROFILE_CITE})"))
    fixed = [i for i, d in enumerate(net) if d >= 0 and not lo[i] == mid[i] == hi[i] == d]
    if fixed:
        out.append(v(f"fixed dims {fixed} of {_show(net)} differ in the profile (min {lo}, opt "
                     f"{mid}, max {hi}); (3) a non-dynamic dim must equal the network's in min, "
                     f"opt and max ({PROFILE_CITE})"))
    return out


def check_profiles(model: onnx.ModelProto | str | Path,
                   profiles: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]],
                   target: str = TARGETS[-1]) -> list[Violation]:
    """One optimization profile for the whole network: every input, dynamic ones included."""
    m = _load(model)
    inits = {t.name for t in m.graph.initializer}
    names = [v.name for v in m.graph.input if v.name not in inits]
    out: list[Violation] = []
    for name in names:
        shapes = profiles.get(name)
        lo, opt, hi = shapes if shapes is not None else (None, None, None)
        out += check_profile(m, name, lo, opt, hi, target=target)
    for name in profiles:
        if name not in names:
            out += check_profile(m, name, None, None, None, target=target)
    return out


def _show(dims: Sequence[int]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in dims) + "]"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seg_perception.inference.tensorrt.conformance MODEL.onnx [--target V ...]``:
    pass/fail per target; exit 1 on violations, 2 on usage errors."""
    p = argparse.ArgumentParser(prog="python -m seg_perception.inference.tensorrt.conformance",
                                description="Check an ONNX graph against TensorRT's published "
                                            "rules, per TensorRT version.")
    p.add_argument("model", help="ONNX file")
    p.add_argument("--target", action="append", metavar="V",
                   help=f"TensorRT version or table ({', '.join(TARGETS)}); repeatable; "
                        "default: all")
    p.add_argument("--docs-only", action="store_true",
                   help="use docs/operators.md types as written, without importer overrides")
    args = p.parse_args(argv)
    try:
        targets = list(dict.fromkeys(_resolve(t) for t in (args.target or TARGETS)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not Path(args.model).is_file():
        print(f"error: no such file: {args.model}", file=sys.stderr)
        return 2
    try:
        model = onnx.load(args.model)
    except Exception as exc:  # noqa: BLE001 - any load failure is a usage error here
        print(f"error: cannot read {args.model} as ONNX: {exc}", file=sys.stderr)
        return 2
    found = check_model(model, targets, docs_only=args.docs_only)
    for target in targets:
        mine = [v for v in found if v.target == target]
        print(f"TensorRT {target}: {'PASS' if not mine else f'FAIL ({len(mine)})'}")
        for v in mine[:MAX_LINES]:
            print(f"  {v}")
        if len(mine) > MAX_LINES:
            print(f"  ... and {len(mine) - MAX_LINES} more")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
