"""Per-version name tables of the TensorRT stand-in, copied from NVIDIA/TensorRT's sources.

Member names are the Python bindings' (``.value("NAME", ...)``), values the C++ enumerators'.
Checked against (``git show <branch>:<file>`` in a mirror of github.com/NVIDIA/TensorRT):

* 8.6: branch ``release/8.6`` at a0215c1a16c6413c7ac566a498871a4fa36f6f62:
  ``python/src/infer/pyCore.cpp``, ``python/src/infer/pyFoundationalTypes.cpp``,
  ``python/src/parsers/pyOnnx.cpp``, ``python/packaging/bindings_wheel/tensorrt/__init__.py``;
  values from ``include/NvInfer.h``, ``include/NvInferRuntimeBase.h``.
* 10.3: branch ``release/10.3`` at 5b990f0a739d8faf962dfe54f4829942633c639c, same files.
* 10.13: branch ``release/10.13`` at b8db91e15be2cae4465ac17fab19e0f969e45407, same files.
* 11.1: branch ``release/11.1`` at 905361629f22836090d75ea77cba732a25107148 (``NvInferVersion.h``:
  11.1.0.106), same files plus ``include/NvInferRuntime.h`` (Severity, DeviceType) and
  ``include/NvOnnxParser.h`` (ErrorCode): BuilderFlag ``pyCore.cpp`` 1599-1623 / ``NvInfer.h``
  9958-10101, NetworkDefinitionCreationFlag ``pyCore.cpp`` 1771-1778 / ``NvInfer.h`` 11462-11481,
  MemoryPoolType ``pyCore.cpp`` 1625-1631 / ``NvInfer.h`` 10288-10341, DataType
  ``pyFoundationalTypes.cpp`` 179-205 / ``NvInferRuntimeBase.h`` 148-198, ErrorCode
  ``pyOnnx.cpp`` 221-238 / ``NvOnnxParser.h`` 55-72.
* ONNX parser ``ErrorCode`` values: github.com/onnx/onnx-tensorrt ``NvOnnxParser.h`` at main
  (7ecb49a435bd881b9ac4011450315192885e5cc3); 8.6 binds only the first nine.

Facts the tables encode (each one an AttributeError on the other versions, as with the real
module): STRONGLY_TYPED exists from 9.x on (so already in 10.3), EXPLICIT_BATCH is still bound in
10.x (deprecated, ignored by the builder) and EXPLICIT_PRECISION only in 8.6; STRICT_TYPES and
ENABLE_TACTIC_HEURISTIC are 8.6 only, BF16/INT64/INT4 are 10.x and 11.x; ``IProgressMonitor`` and
the ``progress_monitor`` config property are 10.x and 11.x only.

TensorRT 11 is strongly typed only (11.1 ``NvInfer.h`` 11567-11568: "The network is always strongly
typed ... The kSTRONGLY_TYPED flag is deprecated and ignored"; 11469-11471). It dropped
EXPLICIT_BATCH, the precision builder flags FP16, INT8, BF16, FP8, INT4, FP4 and
OBEY_/PREFER_PRECISION_CONSTRAINTS, and REJECT_EMPTY_ALGORITHMS and the WEIGHTLESS alias; DIRECT_IO
and SAFETY_SCOPE stay bound (deprecated). It renumbered enumerators: BuilderFlag from
VERSION_COMPATIBLE on (12, was 13), NetworkDefinitionCreationFlag STRONGLY_TYPED 0 (was 1) and
PREFER_JIT/AOT_PYTHON_PLUGINS 1/2 (were 2/3). It removed these bindings: ``IBuilderConfig
.int8_calibrator``, ``Builder.platform_has_fast_fp16``/``platform_has_fast_int8`` and
``ICudaEngine.device_memory_size`` (``device_memory_size_v2`` stays); 11.1 ``pyCore.cpp``
1414-1545 (ICudaEngine), 1707-1769 (IBuilderConfig), 1782-1829 (Builder).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tables:
    family: str  # "8.6", "10.3", "10.13", "11.1"
    severity: tuple[tuple[str, int], ...]
    builder_flag: tuple[tuple[str, int], ...]
    network_flag: tuple[tuple[str, int], ...]
    memory_pool: tuple[tuple[str, int], ...]
    data_type: tuple[tuple[str, int], ...]
    device_type: tuple[tuple[str, int], ...]
    tensor_io_mode: tuple[tuple[str, int], ...]
    parser_error_code: tuple[tuple[str, int], ...]
    progress_monitor: bool  # IProgressMonitor / IBuilderConfig.progress_monitor
    parser_error_detail: bool  # ParserError.node_name/node_operator/local_function_stack
    always_strongly_typed: bool = False  # 11.x: every network, whatever the flags say
    int8_calibrator: bool = True  # IBuilderConfig.int8_calibrator (gone in 11.0)
    platform_has_fast: bool = True  # Builder.platform_has_fast_fp16/_int8 (gone in 11.0)
    device_memory_size: bool = True  # ICudaEngine.device_memory_size (gone in 11.0; _v2 stays)


SEVERITY = (("INTERNAL_ERROR", 0), ("ERROR", 1), ("WARNING", 2), ("INFO", 3), ("VERBOSE", 4))
DEVICE_TYPE = (("GPU", 0), ("DLA", 1))
TENSOR_IO_MODE = (("NONE", 0), ("INPUT", 1), ("OUTPUT", 2))
PARSER_ERROR_CODE_86 = (("SUCCESS", 0), ("INTERNAL_ERROR", 1), ("MEM_ALLOC_FAILED", 2),
                        ("MODEL_DESERIALIZE_FAILED", 3), ("INVALID_VALUE", 4),
                        ("INVALID_GRAPH", 5), ("INVALID_NODE", 6), ("UNSUPPORTED_GRAPH", 7),
                        ("UNSUPPORTED_NODE", 8))
PARSER_ERROR_CODE_10 = PARSER_ERROR_CODE_86 + (
    ("UNSUPPORTED_NODE_ATTR", 9), ("UNSUPPORTED_NODE_INPUT", 10),
    ("UNSUPPORTED_NODE_DATATYPE", 11), ("UNSUPPORTED_NODE_DYNAMIC", 12),
    ("UNSUPPORTED_NODE_SHAPE", 13), ("REFIT_FAILED", 14))

BUILDER_FLAG_10_3 = (
    ("FP16", 0), ("BF16", 17), ("INT8", 1), ("DEBUG", 2), ("GPU_FALLBACK", 3), ("REFIT", 4),
    ("DISABLE_TIMING_CACHE", 5), ("TF32", 6), ("SPARSE_WEIGHTS", 7), ("SAFETY_SCOPE", 8),
    ("OBEY_PRECISION_CONSTRAINTS", 9), ("PREFER_PRECISION_CONSTRAINTS", 10), ("DIRECT_IO", 11),
    ("REJECT_EMPTY_ALGORITHMS", 12), ("VERSION_COMPATIBLE", 13), ("EXCLUDE_LEAN_RUNTIME", 14),
    ("FP8", 15), ("ERROR_ON_TIMING_CACHE_MISS", 16), ("DISABLE_COMPILATION_CACHE", 18),
    ("WEIGHTLESS", 19), ("STRIP_PLAN", 19), ("REFIT_IDENTICAL", 20), ("WEIGHT_STREAMING", 21),
    ("INT4", 22), ("REFIT_INDIVIDUAL", 23))

MEMORY_POOL_10 = (("WORKSPACE", 0), ("DLA_MANAGED_SRAM", 1), ("DLA_LOCAL_DRAM", 2),
                  ("DLA_GLOBAL_DRAM", 3), ("TACTIC_DRAM", 4), ("TACTIC_SHARED_MEMORY", 5))
DATA_TYPE_10_13 = (("FLOAT", 0), ("HALF", 1), ("BF16", 7), ("INT8", 2), ("INT32", 3),
                   ("INT64", 8), ("BOOL", 4), ("UINT8", 5), ("FP8", 6), ("INT4", 9),
                   ("FP4", 10), ("E8M0", 11))  # unchanged in 11.1

TABLES = {
    "8.6": Tables(
        family="8.6", severity=SEVERITY,
        builder_flag=(("FP16", 0), ("INT8", 1), ("DEBUG", 2), ("GPU_FALLBACK", 3),
                      ("STRICT_TYPES", 4), ("REFIT", 5), ("DISABLE_TIMING_CACHE", 6),
                      ("TF32", 7), ("SPARSE_WEIGHTS", 8), ("SAFETY_SCOPE", 9),
                      ("OBEY_PRECISION_CONSTRAINTS", 10), ("PREFER_PRECISION_CONSTRAINTS", 11),
                      ("DIRECT_IO", 12), ("REJECT_EMPTY_ALGORITHMS", 13),
                      ("ENABLE_TACTIC_HEURISTIC", 14), ("VERSION_COMPATIBLE", 15),
                      ("EXCLUDE_LEAN_RUNTIME", 16), ("FP8", 17)),
        network_flag=(("EXPLICIT_BATCH", 0), ("EXPLICIT_PRECISION", 1)),
        memory_pool=(("WORKSPACE", 0), ("DLA_MANAGED_SRAM", 1), ("DLA_LOCAL_DRAM", 2),
                     ("DLA_GLOBAL_DRAM", 3), ("TACTIC_DRAM", 4)),
        data_type=(("FLOAT", 0), ("HALF", 1), ("INT8", 2), ("INT32", 3), ("BOOL", 4),
                   ("UINT8", 5), ("FP8", 6)),
        device_type=DEVICE_TYPE, tensor_io_mode=TENSOR_IO_MODE,
        parser_error_code=PARSER_ERROR_CODE_86, progress_monitor=False,
        parser_error_detail=False),
    "10.3": Tables(
        family="10.3", severity=SEVERITY, builder_flag=BUILDER_FLAG_10_3,
        network_flag=(("EXPLICIT_BATCH", 0), ("STRONGLY_TYPED", 1)),
        memory_pool=MEMORY_POOL_10,
        data_type=(("FLOAT", 0), ("HALF", 1), ("BF16", 7), ("INT8", 2), ("INT32", 3),
                   ("INT64", 8), ("BOOL", 4), ("UINT8", 5), ("FP8", 6), ("INT4", 9)),
        device_type=DEVICE_TYPE, tensor_io_mode=TENSOR_IO_MODE,
        parser_error_code=PARSER_ERROR_CODE_10, progress_monitor=True,
        parser_error_detail=True),
    "10.13": Tables(
        family="10.13", severity=SEVERITY,
        builder_flag=BUILDER_FLAG_10_3[:7] + (("EDITABLE_TIMING_CACHE", 27),)
        + BUILDER_FLAG_10_3[7:] + (("STRICT_NANS", 24), ("MONITOR_MEMORY", 25), ("FP4", 26),
                                   ("DISTRIBUTIVE_INDEPENDENCE", 28)),
        network_flag=(("EXPLICIT_BATCH", 0), ("STRONGLY_TYPED", 1),
                      ("PREFER_AOT_PYTHON_PLUGINS", 3), ("PREFER_JIT_PYTHON_PLUGINS", 2)),
        memory_pool=MEMORY_POOL_10, data_type=DATA_TYPE_10_13,
        device_type=DEVICE_TYPE, tensor_io_mode=TENSOR_IO_MODE,
        parser_error_code=PARSER_ERROR_CODE_10, progress_monitor=True,
        parser_error_detail=True),
    "11.1": Tables(
        family="11.1", severity=SEVERITY,
        builder_flag=(("DEBUG", 2), ("GPU_FALLBACK", 3), ("REFIT", 4),
                      ("DISABLE_TIMING_CACHE", 5), ("EDITABLE_TIMING_CACHE", 26), ("TF32", 6),
                      ("SPARSE_WEIGHTS", 7), ("SAFETY_SCOPE", 8), ("DIRECT_IO", 11),
                      ("VERSION_COMPATIBLE", 12), ("EXCLUDE_LEAN_RUNTIME", 13),
                      ("ERROR_ON_TIMING_CACHE_MISS", 15), ("DISABLE_COMPILATION_CACHE", 17),
                      ("STRIP_PLAN", 18), ("REFIT_IDENTICAL", 19), ("WEIGHT_STREAMING", 20),
                      ("REFIT_INDIVIDUAL", 22), ("STRICT_NANS", 23), ("MONITOR_MEMORY", 24),
                      ("DISTRIBUTIVE_INDEPENDENCE", 27)),
        network_flag=(("STRONGLY_TYPED", 0), ("PREFER_AOT_PYTHON_PLUGINS", 2),
                      ("PREFER_JIT_PYTHON_PLUGINS", 1)),
        memory_pool=MEMORY_POOL_10, data_type=DATA_TYPE_10_13,
        device_type=DEVICE_TYPE, tensor_io_mode=TENSOR_IO_MODE,
        parser_error_code=PARSER_ERROR_CODE_10, progress_monitor=True,
        parser_error_detail=True, always_strongly_typed=True, int8_calibrator=False,
        platform_has_fast=False, device_memory_size=False),
}

# The lower-case DataType aliases bound at module level (``m.attr("float32") = ...``) and the
# numpy types of ``tensorrt.nptype`` (bindings_wheel/tensorrt/__init__.py).
DTYPE_ALIASES = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16", "int8": "INT8",
                 "int32": "INT32", "int64": "INT64", "bool": "BOOL", "uint8": "UINT8",
                 "fp8": "FP8", "int4": "INT4", "fp4": "FP4", "e8m0": "E8M0"}
NPTYPE = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32",
          "INT64": "int64", "BOOL": "bool_", "UINT8": "uint8"}  # INT64 from 10.x on
# ``DataType.itemsize`` (bindings_wheel/tensorrt/__init__.py ``_itemsize``, 10.x and 11.1): INT4 and
# FP4 are half a byte; E8M0 is not in that mapping, so its itemsize is None.
ITEMSIZE: dict[str, float] = {"FLOAT": 4, "HALF": 2, "BF16": 2, "INT8": 1, "INT32": 4,
                              "INT64": 8, "BOOL": 1, "UINT8": 1, "FP8": 1, "INT4": 0.5,
                              "FP4": 0.5}
# ONNX TensorProto element type -> TensorRT DataType name (what the parser maps an I/O tensor to).
ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64",
               9: "BOOL", 16: "BF16"}


def family_of(version: tuple[int, ...]) -> str:
    if version[:2] == (8, 6):
        return "8.6"
    if version[0] == 10 and version[1] < 12:
        return "10.3"
    if version[0] == 10:
        return "10.13"
    if version[:2] == (11, 1):
        return "11.1"
    raise ValueError(f"the stand-in emulates TensorRT 8.6, 10.x and 11.1 only, not {version}")
