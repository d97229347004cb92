"""Serialised "engines" and timing caches of the TensorRT stand-in.

A plan is ``MAGIC | u32 header length | JSON header | ONNX bytes | sha256 of all before``. The
header holds what a real plan is bound to and built with: the TensorRT version, the device's name
and compute capability, the typing mode, the builder flags, the optimisation profiles, DLA, the
network's I/O tensors. Deserialisation refuses, like TensorRT, bytes without the magic tag,
truncated or altered bytes, another TensorRT version's plan and another compute capability's.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

PLAN_MAGIC = b"SPTRTPLN"
CACHE_MAGIC = b"SPTRTTC1"


class PlanError(ValueError):
    """Why bytes are not a loadable plan: ``kind`` is magic, corrupt, version or device."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass
class Plan:
    header: dict[str, Any]
    onnx: bytes


def pack(magic: bytes, header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    body = magic + struct.pack("<I", len(head)) + head + payload
    return body + hashlib.sha256(body).digest()


def _unpack(magic: bytes, data: bytes) -> tuple[dict[str, Any], bytes]:
    data = bytes(data)
    if len(data) < len(magic) or data[:len(magic)] != magic:
        raise PlanError("magic", "Magic tag does not match")
    if len(data) < len(magic) + 4 + 32:
        raise PlanError("corrupt", f"{len(data)} bytes is shorter than any plan")
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise PlanError("corrupt", "checksum mismatch: the plan is truncated or altered")
    (n,) = struct.unpack_from("<I", body, len(magic))
    start = len(magic) + 4
    try:
        header = json.loads(body[start:start + n])
    except ValueError as exc:
        raise PlanError("corrupt", f"unreadable header ({exc})") from None
    return header, body[start + n:]


def write_plan(header: dict[str, Any], onnx_bytes: bytes) -> bytes:
    return pack(PLAN_MAGIC, {**header, "onnx_bytes": len(onnx_bytes)}, onnx_bytes)


def read_plan(data: bytes, trt_version: str, compute_capability: str) -> Plan:
    header, payload = _unpack(PLAN_MAGIC, data)
    if len(payload) != header.get("onnx_bytes"):
        raise PlanError("corrupt", "payload size does not match the header")
    if header.get("trt_version") != trt_version:
        raise PlanError("version", f"The engine plan file is not compatible with this version of "
                                   f"TensorRT, expecting library version {trt_version} got "
                                   f"{header.get('trt_version')}, please rebuild.")
    if header.get("compute_capability") != compute_capability:
        raise PlanError("device", f"The engine plan file is generated on an incompatible device, "
                                  f"expecting compute {compute_capability} got compute "
                                  f"{header.get('compute_capability')}, please rebuild.")
    return Plan(header, payload)


def write_cache(env: dict[str, Any], entries: dict[str, Any]) -> bytes:
    return pack(CACHE_MAGIC, {"env": env, "entries": entries})


def read_cache(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    header, _ = _unpack(CACHE_MAGIC, data)
    return header["env"], header["entries"]


def peek(data: bytes) -> dict[str, Any]:
    """The header of a plan written by the stand-in, unchecked (for tests that inspect one)."""
    header, _ = _unpack(PLAN_MAGIC, data)
    return header


def payload(data: bytes) -> bytes:
    """The ONNX a plan written by the stand-in runs (for tests that inspect one)."""
    _, onnx_bytes = _unpack(PLAN_MAGIC, data)
    return onnx_bytes
