"""Stand-in for the ``tensorrt`` Python module, one version flavour per load (tests only).

Loaded only by ``standin.install``, which executes a fresh copy of this file as ``tensorrt`` with
``_STANDIN_FLAVOUR`` (version, machine, fault switches) and ``_STANDIN_GPU`` (the emulated GPU the
pycuda stand-in also uses) preset; imported any other way it raises ImportError.

Names, keyword names and semantics checked against NVIDIA/TensorRT (branch heads in the mirror):
``release/8.6`` a0215c1a16c6413c7ac566a498871a4fa36f6f62, ``release/10.3``
5b990f0a739d8faf962dfe54f4829942633c639c, ``release/10.13``
b8db91e15be2cae4465ac17fab19e0f969e45407, ``release/11.1``
905361629f22836090d75ea77cba732a25107148, files ``python/src/infer/pyCore.cpp`` (ILogger, Logger,
Severity, Builder, IBuilderConfig, IOptimizationProfile, ITimingCache, IProgressMonitor (10.x),
Runtime, ICudaEngine, IExecutionContext and their ``"name"_a`` keywords),
``python/src/infer/pyFoundationalTypes.cpp`` (DataType and its module aliases, Dims, IHostMemory),
``python/src/infer/pyGraph.cpp`` (INetworkDefinition, ITensor), ``python/src/parsers/pyOnnx.cpp``
(OnnxParser, ParserError and its ``__str__``: 8.6's ``parser_error_str``; for 10.x the
``pyonnx2trt::parserErrorStr`` copy in 10.13, which 10.3 binds from the parser submodule as
``onnx2trt::parserErrorStr``; ErrorCode), ``python/packaging/bindings_wheel/
tensorrt/__init__.py`` (``__version__``, ``nptype``, ``volume``, ``Logger.Severity``, the deprecated
context managers, ``DataType.itemsize``); enum values in ``include/NvInfer*.h``. The per-version
tables are in ``standin/_trt_tables.py``. A new IBuilderConfig has TF32 set ("kTF32 ... Enabled by
default", ``NvInfer.h`` on every branch: 8.6 8798-8801, 10.3 8317-8320, 10.13 8868-8871, 11.1
9973-9976; 11.1's ``getFlags`` comment "Defaults to 0" at 10642 contradicts it and is not
followed). INetworkDefinition has no typing property in any version (``pyGraph.cpp``: ``flags``
and ``get_flag`` from 10.x on, 11.1 lines 1188-1189); the stand-in keeps its own knowledge in
``_strongly_typed``: never on 8.6, the STRONGLY_TYPED flag on 10.x, always on 11.x ("The network is
always strongly typed ... The kSTRONGLY_TYPED flag is deprecated and ignored", 11.1 ``NvInfer.h``
11567-11568). Parser behaviour from github.com/onnx/onnx-tensorrt
``ModelImporter.cpp`` at 8.6-GA (ee0b139bc68567a89618c1d84dcd461cc144aad4): the EXPLICIT_BATCH
assertion text, "Parse was called with a non-empty network definition", "Failed to parse ONNX
model from file". Builder/runtime error texts (closed source) as TensorRT prints them in public
reports: INT8 without calibrator or Q/DQ (NVIDIA/TensorRT#1827, the "Calibration failure occurred
with no scaling factors detected" text), precision flags on a strongly typed network
(NVIDIA/TensorRT#4253: "Parameter check failed, condition: !config.getFlag(BuilderFlag::kFP16)"),
deserialisation failures (magic tag, library version, compute capability). Texts marked
"(stand-in)" are this emulation's own wording for a rule whose real text was not verified.

What it rejects (``build_serialized_network``/``parse*`` return None/False and log errors; API
misuse raises TypeError/AttributeError/RuntimeError as pybind11 would):
* any ONNX ``seg_perception.inference.tensorrt.conformance.check_model`` finds a violation in for
  ``target_for(__version__)`` (one parser error per violation), undecodable ONNX, an implicit batch
  network on 8.6, a second parse into the same network;
* a build with a profile ``trt_conformance.check_profile`` rejects, a dynamic input without a
  profile, INT8 on a weakly typed network with neither Q/DQ nor a calibrator, FP16/INT8/BF16/FP8/
  INT4 builder flags on a strongly typed network, DLA on a device without DLA cores or without
  GPU_FALLBACK for a network with UINT8 I/O, a build the progress monitor cancels;
* deserialising bytes that are not a plan, a truncated or altered plan, a plan of another
  TensorRT version or compute capability (None, and the errors logged);
* ``set_input_shape`` outside the profile, ``execute_async_v3`` with unset addresses or shapes,
  device memory that is too small or freed, a stream of another context, no current context.

Only what the project uses (and its close neighbours) is emulated: any other name is an
AttributeError here even where the real version has it (e.g. 8.6's deprecated
``IBuilderConfig.max_workspace_size``), so a new use must first be checked against the bindings
and added.

Stricter than TensorRT (documented, on purpose): building, deserialising, creating contexts and
executing need a current CUDA context (real TensorRT would fall back to the device's primary
context), and an engine or execution context destroyed with no current context, or after the
context was released, is recorded in ``_STANDIN_GPU.problems``.
"""

from __future__ import annotations

import array as _array
import builtins as _builtins  # the module binds `bool` to DataType.BOOL, as TensorRT does
import hashlib
import sys
import threading
import time
import warnings
import weakref
from typing import Any

import numpy as np

try:
    _FLAVOUR = _STANDIN_FLAVOUR  # type: ignore[name-defined]  # noqa: F821 - set by install()
    _GPU = _STANDIN_GPU  # type: ignore[name-defined]  # noqa: F821
except NameError:
    raise ImportError("the TensorRT stand-in is only loaded by the test fixture "
                      "(standin.install); real TensorRT is not installed here") from None

from standin import _gpu as _g  # noqa: E402 - after the guard
from standin import _plan, _trt_tables  # noqa: E402
from standin._pybind import TrampolineMeta, check, dims, make_enum  # noqa: E402

__version__ = _FLAVOUR.version
_VERSION = tuple(int(p) for p in __version__.split(".")[:3])
_T = _trt_tables.TABLES[_trt_tables.family_of(_VERSION)]
_TEN = _VERSION[0] >= 10
_CONTROLS = _FLAVOUR.controls


class _Strict:
    """pybind11 objects take no new attributes: ``obj.typo = 1`` is an AttributeError, so
    is setting a read-only property. Python subclasses (a user's ILogger) have a ``__dict__``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:  # noqa: ANN401
        if type(self).__module__ == "tensorrt" and not name.startswith("_") and \
                not isinstance(getattr(type(self), name, None), property):
            raise AttributeError(f"'tensorrt.{type(self).__name__}' object has no attribute "
                                 f"'{name}'")
        object.__setattr__(self, name, value)


# -- logging ------------------------------------------------------------------------------------
class ILogger(_Strict, metaclass=TrampolineMeta):
    _trampoline_base = True

    def __init__(self) -> None:
        self._pybind_initialised = True

    def log(self, severity: Any, msg: str) -> None:  # noqa: ANN401 - ILogger.Severity
        raise RuntimeError('Tried to call pure virtual function "ILogger::log"')


ILogger.Severity = make_enum("Severity", list(_T.severity), arithmetic=True, export_to=ILogger)
ILogger.Severity.__qualname__ = "ILogger.Severity"
_Severity = ILogger.Severity  # not a module attribute in real TensorRT: ILogger's


class Logger(ILogger):
    def __init__(self, min_severity: Any = _Severity.WARNING) -> None:  # noqa: ANN401
        ILogger.__init__(self)
        self.min_severity = min_severity

    @property
    def min_severity(self) -> Any:  # noqa: ANN401 - def_readwrite("min_severity")
        return self._min_severity

    @min_severity.setter
    def min_severity(self, value: Any) -> None:  # noqa: ANN401
        check("min_severity", "tensorrt.Logger.min_severity: tensorrt.ILogger.Severity", value,
              ILogger.Severity)
        self._min_severity = value

    def log(self, severity: Any, msg: str) -> None:  # noqa: ANN401
        if int(severity) > int(self.min_severity):
            return
        tag = "FEWIV"[int(severity)]
        print(f"[{time.strftime('%m/%d/%Y-%H:%M:%S')}] [TRT] [{tag}] {msg}")


Logger.Severity = ILogger.Severity
for _name, _member in ILogger.Severity.__members__.items():
    setattr(Logger, _name, _member)


def _log(logger: ILogger, severity: Any, msg: str) -> None:  # noqa: ANN401
    """The PyLogger trampoline: an exception in a Python ``log`` is printed, never raised."""
    try:
        logger.log(severity, msg)
    except Exception as exc:  # noqa: BLE001 - the bindings catch std::exception here
        print(f"[ERROR] Exception caught in log(): {exc}", file=sys.stderr)


def _error(logger: ILogger, code: int, api: str, what: str, text: str,
           site: str | None = None) -> None:
    """TensorRT's error line: 10.x "<api>: Error Code <code>: <what> (<text>)", 8.6
    "<code>: [<file::function::line>] Error Code <code>: <what> (<text>)"."""
    prefix = f"{api}: " if _TEN else f"{code}: [{site or api}] "
    _log(logger, _Severity.ERROR, f"{prefix}Error Code {code}: {what} ({text})")


# TensorRT keeps one logger pointer while any builder, runtime or refitter lives: one made later
# with another logger gets a warning on the existing one and uses it (NVIDIA/TensorRT#1475's
# "TensorRT maintains only a single logger pointer at any given time").
_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def _global_logger(owner: Any, logger: ILogger, factory: str) -> ILogger:  # noqa: ANN401
    with _LIVE_LOCK:
        existing = next((o._logger for o in _LIVE), None)
        _LIVE.add(owner)
    if existing is None or existing is logger:
        return logger
    _log(existing, _Severity.WARNING,
         f"The logger passed into {factory} differs from one already provided for an existing "
         "builder, runtime, or refitter. Uses of the global logger, returned by "
         "nvinfer1::getLogger(), will return the existing value. If you don't intend to use the "
         "existing value, please check your logger. TensorRT maintains only a single logger "
         "pointer at any given time, so the existing value, which can be retrieved with "
         "getLogger(), will be used instead. In order to use a new logger, first destroy all "
         "existing builder, runner or refitter objects.")
    return existing


# -- enums and foundational types -------------------------------------------------------------
BuilderFlag = make_enum("BuilderFlag", list(_T.builder_flag), arithmetic=True)
NetworkDefinitionCreationFlag = make_enum("NetworkDefinitionCreationFlag", list(_T.network_flag),
                                          arithmetic=True)
MemoryPoolType = make_enum("MemoryPoolType", list(_T.memory_pool))
DataType = make_enum("DataType", list(_T.data_type))
if _TEN:  # 10.0 on: how create_execution_context allocates the context's device memory
    ExecutionContextAllocationStrategy = make_enum(
        "ExecutionContextAllocationStrategy",
        [("STATIC", 0), ("ON_PROFILE_CHANGE", 1), ("USER_MANAGED", 2)])
DeviceType = make_enum("DeviceType", list(_T.device_type))
TensorIOMode = make_enum("TensorIOMode", list(_T.tensor_io_mode))
ErrorCode = make_enum("ErrorCode", list(_T.parser_error_code))
ErrorCode.__str__ = lambda self: self.name  # pyOnnx.cpp binds errorCodeStr as __str__/__repr__
ErrorCode.__repr__ = lambda self: self.name

for _alias, _dt in _trt_tables.DTYPE_ALIASES.items():
    if _dt in DataType.__members__:
        globals()[_alias] = DataType.__members__[_dt]
DataType.itemsize = property(lambda self: _trt_tables.ITEMSIZE.get(self.name))


def nptype(trt_type: Any) -> type:  # noqa: ANN401 - DataType
    name = _trt_tables.NPTYPE.get(trt_type.name) if isinstance(trt_type, DataType) else None
    if name is None or (name == "int64" and not _TEN):
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    return getattr(np, name)


def volume(iterable: Any) -> int:  # noqa: ANN401
    vol = 1
    for elem in iterable:
        vol *= elem
    return vol


class Dims(_Strict):
    """tensorrt.Dims: a sequence of ints; compares equal to tuples and lists of the same ints."""

    MAX_DIMS = 8

    def __init__(self, shape: Any = ()) -> None:  # noqa: ANN401
        self._d = dims("__init__", shape)

    def __len__(self) -> int:
        return len(self._d)

    def __getitem__(self, i: Any) -> Any:  # noqa: ANN401
        if isinstance(i, slice):
            return self._d[i]
        if not -len(self._d) <= i < len(self._d):
            raise IndexError("Out of bounds")
        return self._d[i]

    def __iter__(self) -> Any:  # noqa: ANN401
        return iter(self._d)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dims):
            return other._d == self._d
        if isinstance(other, (tuple, list)):
            return tuple(other) == self._d
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return str(self._d) if len(self._d) != 1 else f"({self._d[0]},)"

    __repr__ = __str__


class IHostMemory(_array.array):
    """Host memory TensorRT returns (a plan, a timing cache). The bindings give it only the
    buffer protocol, ``dtype`` and ``nbytes`` (``pyFoundationalTypes.cpp``, 11.1 lines 297-302):
    ``bytes(mem)``/``memoryview(mem)`` work, sequence operations do not, and it is no ``bytes``
    (``isinstance(mem, (bytes, bytearray))`` is False, as with the pybind11 class). Python 3.11
    code cannot offer a buffer without a C base (``__buffer__`` is 3.12), so the base is
    ``array.array('B')``, whose own methods are hidden."""

    __slots__ = ()
    _ALLOWED = frozenset({"dtype", "nbytes"})

    def __new__(cls, data: bytes) -> IHostMemory:
        return _array.array.__new__(cls, "B", data)

    def __getattribute__(self, name: str) -> Any:  # noqa: ANN401
        if not name.startswith("__") and name not in IHostMemory._ALLOWED:
            raise AttributeError(f"'tensorrt.IHostMemory' object has no attribute '{name}'")
        return super().__getattribute__(name)

    @property
    def dtype(self) -> Any:  # noqa: ANN401
        return DataType.UINT8

    @property
    def nbytes(self) -> int:
        return _array.array.__len__(self)

    def _no(self, *args: Any) -> Any:  # noqa: ANN401
        raise TypeError("'tensorrt.IHostMemory' object does not support this operation")

    __len__ = __getitem__ = __setitem__ = __delitem__ = __iter__ = __contains__ = _no
    __add__ = __iadd__ = __mul__ = __imul__ = __rmul__ = __lt__ = __le__ = __gt__ = __ge__ = _no
    __copy__ = __deepcopy__ = __reduce__ = __reduce_ex__ = _no
    __eq__ = object.__eq__  # type: ignore[assignment]
    __ne__ = object.__ne__  # type: ignore[assignment]
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<tensorrt.IHostMemory object ({self.nbytes} bytes) at {id(self):#x}>"

    __str__ = __repr__


def _buffer(fn: str, obj: Any) -> bytes:  # noqa: ANN401 - a py::buffer argument
    try:
        return bytes(memoryview(obj).cast("B"))
    except TypeError:
        raise TypeError(f"{fn}(): incompatible function arguments: expected a buffer "
                        f"(bytes, bytearray, memoryview, numpy array), got "
                        f"{type(obj).__name__}") from None


def _deprecated_enter(self: Any) -> Any:  # noqa: ANN401 - bindings_wheel/__init__.py
    warnings.warn("Context managers for TensorRT types are deprecated. Memory will be freed "
                  "automatically when the reference count reaches 0.", DeprecationWarning,
                  stacklevel=2)
    return self


def _exit(self: Any, exc_type: Any, exc_value: Any, traceback: Any) -> None:  # noqa: ANN401
    return None


# -- the device ---------------------------------------------------------------------------------
def _context(fn: str) -> _g.PrimaryContext:
    """The CUDA context TensorRT works in (stand-in: required; see the module docstring)."""
    ctx = _GPU.current()
    if ctx is None:
        raise RuntimeError(f"{fn}: no current CUDA context (stand-in: push the context first; "
                           "CUDA error 201 'invalid device context')")
    return ctx


def _device(ctx: _g.PrimaryContext) -> _g.DeviceSpec:
    return _GPU.devices[ctx.device]


def _cc(ctx: _g.PrimaryContext) -> str:
    return "{}.{}".format(*_device(ctx).compute_capability)


class _DeviceObject(_Strict):
    """Something TensorRT keeps device memory for; freed when the Python object goes away."""

    _kind = "object"

    def _hold(self, ctx: _g.PrimaryContext, nbytes: int) -> None:
        self._ctx = ctx
        self._mem = _GPU.alloc(nbytes, ctx, f"tensorrt:{self._kind}")

    def __del__(self) -> None:
        mem = getattr(self, "_mem", None)
        if mem is None or mem.freed:
            return
        current = _GPU.current()
        if self._ctx.retains <= 0:
            _GPU.problem(f"{self._kind} destroyed after its CUDA context was released")
        elif current is not self._ctx:
            _GPU.problem(f"{self._kind} destroyed with no current CUDA context (thread "
                         f"{threading.current_thread().name}): cudaFree fails")
        mem.freed = True


# -- network definition and the ONNX parser -----------------------------------------------------
class ITensor(_Strict):
    def __init__(self, name: str, dtype: Any, shape: tuple[int, ...], is_input: bool) -> None:  # noqa: ANN401
        self._name, self._dtype, self._shape = name, dtype, Dims(shape)
        self._is_input = is_input

    @property
    def name(self) -> str:
        return self._name

    @property
    def dtype(self) -> Any:  # noqa: ANN401
        return self._dtype

    @property
    def shape(self) -> Dims:
        return self._shape

    @property
    def is_network_input(self) -> bool:
        return self._is_input

    @property
    def is_network_output(self) -> bool:
        return not self._is_input


class INetworkDefinition(_Strict):
    def __init__(self, builder: Builder, flags: int) -> None:
        self._builder = builder
        self._flags = flags
        st = NetworkDefinitionCreationFlag.__members__.get("STRONGLY_TYPED")
        # No binding tells the typing mode: TensorRT's own knowledge (see the module docstring).
        self._strongly_typed = _T.always_strongly_typed or (
            st is not None and _builtins.bool(flags & (1 << int(st))))
        self._name = "Unnamed Network 0"
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._model: Any = None  # onnx.ModelProto once parsed
        self._onnx: bytes = b""
        self._nodes = 0

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        check("name", "(self, arg0: str) -> None", value, str)
        self._name = value

    @property
    def builder(self) -> Builder:
        return self._builder

    @property
    def num_layers(self) -> int:
        return self._nodes

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int) -> ITensor | None:
        return self._inputs[index] if 0 <= index < len(self._inputs) else None

    def get_output(self, index: int) -> ITensor | None:
        return self._outputs[index] if 0 <= index < len(self._outputs) else None

    @property
    def has_implicit_batch_dimension(self) -> bool:
        if _TEN:
            return False
        return not self._flags & (1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH))

    if _TEN:
        @property
        def flags(self) -> int:
            return self._flags

        def get_flag(self, flag: Any) -> bool:  # noqa: ANN401
            check("get_flag", "(self, flag: tensorrt.NetworkDefinitionCreationFlag) -> bool",
                  flag, NetworkDefinitionCreationFlag)
            return _builtins.bool(self._flags & (1 << int(flag)))
    else:
        @property
        def has_explicit_precision(self) -> bool:
            return False

    __enter__, __exit__ = _deprecated_enter, _exit


class ParserError(_Strict):
    def __init__(self, code: Any, desc: str, node: int, func: str,  # noqa: ANN401
                 node_name: str = "", node_operator: str = "") -> None:
        self._code, self._desc, self._node, self._func = code, desc, node, func
        self._node_name, self._node_operator = node_name, node_operator

    def code(self) -> Any:  # noqa: ANN401
        return self._code

    def desc(self) -> str:
        return self._desc

    def file(self) -> str:
        return "ModelImporter.cpp"

    def line(self) -> int:
        return 0

    def func(self) -> str:
        return self._func

    def node(self) -> int:
        return self._node

    if _T.parser_error_detail:
        def node_name(self) -> str:
            return self._node_name

        def node_operator(self) -> str:
            return self._node_operator

        def local_function_stack(self) -> list[str]:
            return []

        def local_function_stack_size(self) -> int:
            return 0

    def __str__(self) -> str:
        # pyOnnx.cpp: parser_error_str (8.6) / onnx2trt::parserErrorStr (10.x)
        info = f"({self._func}): {self._code}: {self._desc}"
        if not _T.parser_error_detail:
            return f"In node {self._node} {info}"
        if self._code in (ErrorCode.MODEL_DESERIALIZE_FAILED,
                          getattr(ErrorCode, "REFIT_FAILED", None)):
            return info
        return (f"In node {self._node} with name: {self._node_name} and operator: "
                f"{self._node_operator} {info}")

    __repr__ = __str__


class OnnxParser(_Strict):
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        check("__init__", "tensorrt.OnnxParser(network: tensorrt.INetworkDefinition, logger: "
              "tensorrt.ILogger)", network, INetworkDefinition)
        check("__init__", "tensorrt.OnnxParser(network: tensorrt.INetworkDefinition, logger: "
              "tensorrt.ILogger)", logger, ILogger)
        self._network = network
        self._logger = logger
        self._errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError | None:
        check("get_error", "(self, index: int) -> tensorrt.ParserError", index, int)
        return self._errors[index] if 0 <= index < len(self._errors) else None

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse(self, model: Any, path: str | None = None) -> bool:  # noqa: ANN401 - py::buffer
        data = _buffer("parse", model)
        if self._network._model is not None:
            _log(self._logger, _Severity.ERROR, "Parse was called with a non-empty network "
                                               "definition")
            return False
        import onnx

        try:
            proto = onnx.load_from_string(data)
            if not proto.graph.node:
                raise ValueError("no nodes")
        except Exception:  # noqa: BLE001 - protobuf raises DecodeError and others
            self._errors.append(ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED,
                                            "Failed to parse the ONNX model.", -1, "parse"))
            return False
        return self._import(proto, data)

    def parse_from_file(self, model: str) -> bool:
        check("parse_from_file", "(self, model: str) -> bool", model, str)
        import os

        if os.path.exists(model) and not os.path.isfile(model):
            _log(self._logger, _Severity.ERROR, f"Input is not a regular file: {model}")
            return False
        try:
            with open(model, "rb") as f:
                data = f.read()
            import onnx

            proto = onnx.load_from_string(data)
        except Exception:  # noqa: BLE001 - a missing file or a non-ONNX file alike
            _log(self._logger, _Severity.ERROR, f"Failed to parse ONNX model from file: {model}")
            return False
        if self._network._model is not None:
            _log(self._logger, _Severity.ERROR, "Parse was called with a non-empty network "
                                               "definition")
            return False
        if not self._import(proto, data):
            for e in self._errors:
                _log(self._logger, _Severity.ERROR,
                     f"ERROR: {e.file()}:{e.line()} In function {e.func()}:\n[{int(e.code())}] "
                     f"{e.desc()}")
            return False
        return True

    def supports_operator(self, op_name: str) -> bool:
        from seg_perception.inference.tensorrt.conformance import load_table, target_for

        entry = load_table(target_for(__version__))["ops"].get(op_name)
        return _builtins.bool(entry and entry["supported"])

    def _import(self, proto: Any, data: bytes) -> bool:  # noqa: ANN401 - onnx.ModelProto
        from seg_perception.inference.tensorrt.conformance import check_model, target_for

        net = self._network
        if net.has_implicit_batch_dimension:
            self._errors.append(ParserError(
                ErrorCode.INVALID_VALUE, "Assertion failed: !mImporterCtx.network()->"
                "hasImplicitBatchDimension() && \"This version of the ONNX parser only supports "
                "TensorRT INetworkDefinitions with an explicit batch dimension. Please ensure the "
                "network was created using the EXPLICIT_BATCH NetworkDefinitionCreationFlag.\"",
                -1, "importModel"))
            return False
        index = {n.name: i for i, n in enumerate(proto.graph.node)}
        ok = True
        for v in check_model(proto, [target_for(__version__)]):
            ok = False
            i = index.get(v.node, -1)
            self._errors.append(ParserError(ErrorCode.UNSUPPORTED_NODE, v.rule, i, "parseGraph",
                                            v.node if i >= 0 else "", v.op if i >= 0 else ""))
        if not ok:
            return False
        inits = {t.name for t in proto.graph.initializer}
        net._inputs = [self._tensor(v, True) for v in proto.graph.input if v.name not in inits]
        net._outputs = [self._tensor(v, False) for v in proto.graph.output]
        net._model, net._onnx, net._nodes = proto, data, len(proto.graph.node)
        _log(self._logger, _Severity.INFO, f"ONNX IR version: {proto.ir_version}, opset "
                                          f"{proto.opset_import[0].version}")
        return True

    def _tensor(self, v: Any, is_input: bool) -> ITensor:  # noqa: ANN401 - ValueInfoProto
        tt = v.type.tensor_type
        name = _trt_tables.ONNX_TO_TRT.get(tt.elem_type, "FLOAT")
        if name == "INT64" and not _TEN:
            name = "INT32"  # 8.6 casts INT64 down to INT32
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        return ITensor(v.name, DataType.__members__[name], shape, is_input)

    __enter__, __exit__ = _deprecated_enter, _exit


def get_nv_onnx_parser_version() -> int:
    return _VERSION[0] * 1000 + _VERSION[1] * 100 + _VERSION[2]


# -- builder ------------------------------------------------------------------------------------
if _T.progress_monitor:
    class IProgressMonitor(_Strict, metaclass=TrampolineMeta):
        _trampoline_base = True

        def __init__(self) -> None:
            self._pybind_initialised = True

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            raise RuntimeError('Tried to call pure virtual function "IProgressMonitor::phaseStart"')

        def step_complete(self, phase_name: str, step: int) -> bool:
            raise RuntimeError('Tried to call pure virtual function '
                               '"IProgressMonitor::stepComplete"')

        def phase_finish(self, phase_name: str) -> None:
            raise RuntimeError('Tried to call pure virtual function '
                               '"IProgressMonitor::phaseFinish"')


class IOptimizationProfile(_Strict):
    def __init__(self) -> None:
        self._shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002, ANN401
        check("set_shape", "(self, input: str, min: tensorrt.Dims, opt: tensorrt.Dims, max: "
              "tensorrt.Dims) -> None", input, str)
        lo, mid, hi = dims("set_shape", min), dims("set_shape", opt), dims("set_shape", max)
        # IOptimizationProfile::setDimensions fails for negative dims or ranks that disagree.
        for which, d, prev in (("min", lo, None), ("opt", mid, lo), ("max", hi, mid)):
            if any(x < 0 for x in d) or (prev is not None and len(prev) != len(d)):
                raise RuntimeError(f"Shape provided for {which} is inconsistent with other "
                                   "shapes.")
        self._shapes[input] = (lo, mid, hi)

    def get_shape(self, input: str) -> list[Dims]:  # noqa: A002
        s = self._shapes.get(input)
        return [] if s is None else [Dims(x) for x in s]

    def __bool__(self) -> bool:
        return all(all(a <= b <= c for a, b, c in zip(*s, strict=True))
                   for s in self._shapes.values())


class ITimingCache(_Strict):
    def __init__(self, env: dict[str, Any], entries: dict[str, Any]) -> None:
        self._env = env
        self._entries = dict(entries)

    def serialize(self) -> IHostMemory:
        return IHostMemory(_plan.write_cache(self._env, self._entries))

    def combine(self, input_cache: ITimingCache, ignore_mismatch: bool) -> bool:
        check("combine", "(self, input_cache: tensorrt.ITimingCache, ignore_mismatch: bool)",
              input_cache, ITimingCache)
        if input_cache._env != self._env and not ignore_mismatch:
            return False
        self._entries.update(input_cache._entries)
        return True

    def reset(self) -> bool:
        self._entries.clear()
        return True


class IBuilderConfig(_Strict):
    def __init__(self, builder: Builder) -> None:
        self._builder = builder
        self._flags = 1 << int(BuilderFlag.TF32)  # "kTF32 ... Enabled by default"
        self._pools = {int(MemoryPoolType.WORKSPACE): _GPU.devices[0].total_memory}
        self._default_device_type = DeviceType.GPU
        self._dla_core = -1
        self._profiles: list[IOptimizationProfile] = []
        self._timing_cache: ITimingCache | None = None
        self._calibrator: Any = None
        self._monitor: Any = None

    # flags
    @property
    def flags(self) -> int:
        return self._flags

    @flags.setter
    def flags(self, value: int) -> None:
        check("flags", "(self, arg0: int) -> None", value, int)
        self._flags = value

    def _flag(self, fn: str, flag: Any) -> int:  # noqa: ANN401
        check(fn, f"(self, flag: tensorrt.BuilderFlag) -> {'bool' if fn == 'get_flag' else 'None'}",
              flag, BuilderFlag)
        return 1 << int(flag)

    def set_flag(self, flag: Any) -> None:  # noqa: ANN401
        self._flags |= self._flag("set_flag", flag)

    def clear_flag(self, flag: Any) -> None:  # noqa: ANN401
        self._flags &= ~self._flag("clear_flag", flag)

    def get_flag(self, flag: Any) -> bool:  # noqa: ANN401
        return _builtins.bool(self._flags & self._flag("get_flag", flag))

    # memory pools
    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:  # noqa: ANN401
        check("set_memory_pool_limit", "(self, pool: tensorrt.MemoryPoolType, pool_size: int) "
              "-> None", pool, MemoryPoolType)
        check("set_memory_pool_limit", "(self, pool: tensorrt.MemoryPoolType, pool_size: int) "
              "-> None", pool_size, int)
        if pool_size < 0:
            raise TypeError("set_memory_pool_limit(): pool_size must be a non-negative size_t")
        self._pools[int(pool)] = pool_size

    def get_memory_pool_limit(self, pool: Any) -> int:  # noqa: ANN401
        check("get_memory_pool_limit", "(self, pool: tensorrt.MemoryPoolType) -> int", pool,
              MemoryPoolType)
        return self._pools.get(int(pool), 0)

    # devices
    @property
    def default_device_type(self) -> Any:  # noqa: ANN401
        return self._default_device_type

    @default_device_type.setter
    def default_device_type(self, value: Any) -> None:  # noqa: ANN401
        check("default_device_type", "(self, arg0: tensorrt.DeviceType) -> None", value,
              DeviceType)
        self._default_device_type = value

    @property
    def DLA_core(self) -> int:  # noqa: N802 - the bindings' name
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, value: int) -> None:  # noqa: N802
        check("DLA_core", "(self, arg0: int) -> None", value, int)
        self._dla_core = value

    # INT8 calibration (deprecated in 10.1, pyCore.cpp utils::deprecateMember; gone in 11.0)
    if _T.int8_calibrator:
        @property
        def int8_calibrator(self) -> Any:  # noqa: ANN401
            if _TEN:
                warnings.warn("Deprecated in TensorRT 10.1. Superseded by explicit quantization.",
                              DeprecationWarning, stacklevel=2)
            return self._calibrator

        @int8_calibrator.setter
        def int8_calibrator(self, value: Any) -> None:  # noqa: ANN401
            if _TEN:
                warnings.warn("Deprecated in TensorRT 10.1. Superseded by explicit quantization.",
                              DeprecationWarning, stacklevel=2)
            self._calibrator = value

    # profiles
    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        check("add_optimization_profile", "(self, profile: tensorrt.IOptimizationProfile) -> int",
              profile, IOptimizationProfile)
        if not profile or not profile._shapes:
            _error(self._builder._logger, 3, "IBuilderConfig::addOptimizationProfile",
                   "API Usage Error", "Parameter check failed, condition: profile->isValid().")
            return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._profiles)

    # timing cache
    def create_timing_cache(self, serialized_timing_cache: Any) -> ITimingCache | None:  # noqa: ANN401
        data = _buffer("create_timing_cache", serialized_timing_cache)
        if not data:
            return ITimingCache(self._builder._env(), {})
        try:
            env, entries = _plan.read_cache(data)
        except _plan.PlanError as exc:
            # Assumption: an unreadable blob gives nullptr (None in Python) and an error.
            _error(self._builder._logger, 1, "IBuilderConfig::createTimingCache",
                   "Serialization", f"Serialization assertion failed: timing cache blob is "
                                    f"invalid: {exc} (stand-in)")
            return None
        return ITimingCache(env, entries)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        check("set_timing_cache", "(self, cache: tensorrt.ITimingCache, ignore_mismatch: bool) "
              "-> bool", cache, ITimingCache)
        if cache._env != self._builder._env() and not ignore_mismatch:
            _error(self._builder._logger, 1, "IBuilderConfig::setTimingCache", "Serialization",
                   "Serialization assertion failed: timing cache was created for another device "
                   "or TensorRT version (stand-in)")
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._timing_cache

    if _T.progress_monitor:
        @property
        def progress_monitor(self) -> Any:  # noqa: ANN401
            return self._monitor

        @progress_monitor.setter
        def progress_monitor(self, value: Any) -> None:  # noqa: ANN401
            check("progress_monitor", "(self, arg0: tensorrt.IProgressMonitor) -> None", value,
                  IProgressMonitor, allow_none=True)
            self._monitor = value

    __enter__, __exit__ = _deprecated_enter, _exit


_PRECISION_FLAGS = ("FP16", "INT8", "BF16", "FP8", "INT4", "FP4")


class Builder(_Strict):
    def __init__(self, logger: ILogger) -> None:
        check("__init__", "tensorrt.Builder(logger: tensorrt.ILogger)", logger, ILogger)
        self._logger = _global_logger(self, logger, "createInferBuilder")
        self._max_threads = 1

    @property
    def max_threads(self) -> int:
        return self._max_threads

    @max_threads.setter
    def max_threads(self, value: int) -> None:
        check("max_threads", "(self, arg0: int) -> None", value, int)
        self._max_threads = value

    def _env(self) -> dict[str, Any]:
        ctx = _GPU.current() or _GPU.primary[0]
        return {"trt_version": __version__, "device": _device(ctx).name, "cc": _cc(ctx)}

    @property
    def logger(self) -> ILogger:
        return self._logger

    if _T.platform_has_fast:  # gone in 11.0
        @property
        def platform_has_fast_fp16(self) -> bool:
            return True

        @property
        def platform_has_fast_int8(self) -> bool:
            return True

    @property
    def num_DLA_cores(self) -> int:  # noqa: N802 - the bindings' name
        ctx = _GPU.current() or _GPU.primary[0]
        return _device(ctx).dla_cores

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        check("create_network", "(self, flags: int = 0) -> tensorrt.INetworkDefinition", flags,
              int)
        if flags < 0 or flags >= 1 << 32:
            raise TypeError("create_network(): flags must fit a uint32 bit mask")
        known = 0
        for m in NetworkDefinitionCreationFlag.__members__.values():
            known |= 1 << int(m)
        if flags & ~known:
            _log(self._logger, _Severity.ERROR, f"createNetworkV2: unknown flags {flags:#x} "
                                               "(stand-in)")
        return INetworkDefinition(self, flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig(self)

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def is_network_supported(self, network: INetworkDefinition, config: IBuilderConfig) -> bool:
        return network._model is not None

    def build_serialized_network(self, network: INetworkDefinition,
                                 config: IBuilderConfig) -> IHostMemory | None:
        check("build_serialized_network", "(self, network: tensorrt.INetworkDefinition, config: "
              "tensorrt.IBuilderConfig) -> tensorrt.IHostMemory", network, INetworkDefinition)
        check("build_serialized_network", "(self, network: tensorrt.INetworkDefinition, config: "
              "tensorrt.IBuilderConfig) -> tensorrt.IHostMemory", config, IBuilderConfig)
        ctx = _context("IBuilder::buildSerializedNetwork")
        _CONTROLS.build_calls += 1
        why = self._refuse(network, config, ctx)
        if why is not None:
            code, what, text = why
            _error(self._logger, code, "IBuilder::buildSerializedNetwork", what, text)
            if not _TEN:
                _error(self._logger, 2, "IBuilder::buildSerializedNetwork", "Internal Error",
                       "Assertion engine != nullptr failed. ",
                       "builder.cpp::buildSerializedNetwork::609")
            return None
        if _CONTROLS.build_delay_s:
            time.sleep(_CONTROLS.build_delay_s)
        if not self._progress(config):
            _error(self._logger, 2, "IBuilder::buildSerializedNetwork", "Internal Error",
                   "Build was cancelled by the progress monitor. (stand-in)")
            return None
        hits = self._tactics(network, config)
        flags = sorted(m.name for m in BuilderFlag.__members__.values()
                       if config._flags & (1 << int(m)))
        header = {
            "trt_version": __version__, "device": _device(ctx).name,
            "compute_capability": _cc(ctx), "strongly_typed": network._strongly_typed,
            "flags": flags, "dla_core": config._dla_core
            if config._default_device_type == DeviceType.DLA else -1,
            "profiles": [{k: [list(x) for x in v] for k, v in p._shapes.items()}
                         for p in config._profiles],
            "io": [{"name": t.name, "mode": mode, "dtype": t.dtype.name, "shape": list(t.shape)}
                   for mode, ts in (("INPUT", network._inputs), ("OUTPUT", network._outputs))
                   for t in ts],
            "timing_cache_hits": hits, "built_at": time.time(),
        }
        return IHostMemory(_plan.write_plan(header, network._onnx))

    def _refuse(self, network: INetworkDefinition, config: IBuilderConfig,
                ctx: _g.PrimaryContext) -> tuple[int, str, str] | None:
        """(error code, kind, text) of the first rule this build breaks, or None."""
        from seg_perception.inference.tensorrt.conformance import check_profile, target_for

        if network._model is None or not network._outputs:
            return 4, "Internal Error", "Network must have at least one output"
        on = {m.name for m in BuilderFlag.__members__.values() if config._flags & (1 << int(m))}
        if network._strongly_typed:
            for name in _PRECISION_FLAGS:
                if name in on:
                    return 3, "API Usage Error", f"Parameter check failed, condition: " \
                                                 f"!config.getFlag(BuilderFlag::k{name}). "
        inputs = {t.name: t for t in network._inputs}
        dynamic = [t.name for t in network._inputs if -1 in tuple(t.shape)]
        if dynamic and not config._profiles:
            return 4, "Internal Error", "Network has dynamic or shape inputs, but no " \
                                        "optimization profile has been defined."
        for k, p in enumerate(config._profiles):
            for name in p._shapes:
                if name not in inputs:
                    return 4, "Internal Error", f"optimization profile {k} has values for " \
                                                f"'{name}', which is not a network input " \
                                                "(stand-in)"
            for name in dynamic:
                if name not in p._shapes:
                    return 4, "Internal Error", f"optimization profile {k} does not define " \
                                                f"dimensions for network input '{name}' " \
                                                "(stand-in)"
                found = check_profile(network._model, name, *p._shapes[name],
                                      target=target_for(__version__))
                if found:
                    return 4, "Internal Error", "; ".join(str(v) for v in found)
        has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear")
                      for n in network._model.graph.node)
        if "INT8" in on and not has_qdq and config._calibrator is None:
            _log(self._logger, _Severity.WARNING, "Calibrator is not being used. Users must "
                 "provide dynamic range for all tensors that are not Int32 or Bool.")
            return 4, "Internal Error", "Calibration failure occurred with no scaling factors " \
                                        "detected. This could be due to no int8 calibrator or " \
                                        "insufficient custom scales for network layers. Please " \
                                        "see int8 sample to setup calibration correctly."
        if has_qdq and not network._strongly_typed and "INT8" not in on:
            return 4, "Internal Error", "Network contains Q/DQ layers (explicit quantization) " \
                                        "but BuilderFlag.INT8 is not set (stand-in)"
        if config._default_device_type == DeviceType.DLA:
            cores = _device(ctx).dla_cores
            if not 0 <= config._dla_core < cores:
                return 3, "API Usage Error", f"Parameter check failed, condition: dlaCore < " \
                                             f"getNbDLACores(). DLA core {config._dla_core} " \
                                             f"requested, the device has {cores} (stand-in)"
            uint8_io = [t.name for t in network._inputs + network._outputs
                        if t.dtype == DataType.UINT8]
            if has_qdq and "GPU_FALLBACK" not in on:
                return 2, "Internal Error", "DLA does not run explicitly quantized (Q/DQ) " \
                                            "layers and GPU fallback is not enabled (stand-in)"
            if uint8_io and "GPU_FALLBACK" not in on:
                return 2, "Internal Error", f"DLA cannot run the layers using UINT8 tensors " \
                                            f"{uint8_io} and GPU fallback is not enabled " \
                                            "(stand-in)"
            if not network._strongly_typed and not {"FP16", "INT8"} & on:
                return 2, "Internal Error", "DLA supports only FP16 and Int8 precision; set " \
                                            "BuilderFlag.FP16 or INT8 (stand-in)"
        return None

    def _progress(self, config: IBuilderConfig) -> bool:
        """Reports three phases to the progress monitor; False when it cancels."""
        mon = config._monitor if _T.progress_monitor else None
        if mon is None:
            return True

        def call(name: str, *args: Any) -> Any:  # noqa: ANN401 - the PyProgressMonitor trampoline
            try:
                return getattr(mon, name)(*args)
            except Exception as exc:  # noqa: BLE001 - printed, and step_complete -> cancel
                print(f"[ERROR] Exception caught in {name}(): {exc}", file=sys.stderr)
                return False

        call("phase_start", "Building engine", None, 2)
        for step, phase in enumerate(("Optimizing network", "Selecting tactics")):
            call("phase_start", phase, "Building engine", 3)
            for k in range(3):
                if not call("step_complete", phase, k):  # PyProgressMonitor: bool(result)
                    call("phase_finish", phase)
                    call("phase_finish", "Building engine")
                    return False
            call("phase_finish", phase)
            if not call("step_complete", "Building engine", step):
                call("phase_finish", "Building engine")
                return False
        call("phase_finish", "Building engine")
        return True

    def _tactics(self, network: INetworkDefinition, config: IBuilderConfig) -> int:
        """Records one timing-cache entry per layer signature; returns how many were hits."""
        cache = config._timing_cache
        if cache is None:
            return 0
        hits = 0
        for n in network._model.graph.node:
            key = hashlib.sha256(f"{n.op_type}|{list(n.input)}|{config._flags}".encode())
            k = key.hexdigest()[:16]
            if k in cache._entries:
                hits += 1
            cache._entries[k] = n.op_type
        return hits

    __enter__, __exit__ = _deprecated_enter, _exit


# -- runtime, engine, execution context ---------------------------------------------------------
class Runtime(_Strict):
    def __init__(self, logger: ILogger) -> None:
        check("__init__", "tensorrt.Runtime(logger: tensorrt.ILogger)", logger, ILogger)
        self._logger = _global_logger(self, logger, "createInferRuntime")
        self._dla_core = -1

    @property
    def logger(self) -> ILogger:
        return self._logger

    @property
    def num_DLA_cores(self) -> int:  # noqa: N802 - the bindings' name
        ctx = _GPU.current() or _GPU.primary[0]
        return _device(ctx).dla_cores

    @property
    def DLA_core(self) -> int:  # noqa: N802
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, value: int) -> None:  # noqa: N802
        check("DLA_core", "(self, arg0: int) -> None", value, int)
        if not 0 <= value < self.num_DLA_cores:
            _error(self._logger, 3, "IRuntime::setDLACore", "API Usage Error",
                   f"Parameter check failed, condition: dlaCore < getNbDLACores(). DLA core "
                   f"{value} of {self.num_DLA_cores}")
            return
        self._dla_core = value

    def deserialize_cuda_engine(self, serialized_engine: Any) -> ICudaEngine | None:  # noqa: ANN401
        data = _buffer("deserialize_cuda_engine", serialized_engine)
        ctx = _context("IRuntime::deserializeCudaEngine")
        _CONTROLS.deserialize_calls += 1
        api, site = "IRuntime::deserializeCudaEngine", "runtime.cpp::deserializeCudaEngine::65"
        if _CONTROLS.reject_deserialize > 0:
            _CONTROLS.reject_deserialize -= 1
            _error(self._logger, 1, api, "Cuda Runtime", "out of memory (stand-in fault)", site)
            return None
        try:
            plan = _plan.read_plan(data, __version__, _cc(ctx))
        except _plan.PlanError as exc:
            if exc.kind in ("version", "device"):
                _error(self._logger, 6, api, "API Usage Error", str(exc), site)
            else:
                tag = "magicTagRead == kMAGIC_TAG" if exc.kind == "magic" else "sizeRead == size"
                _error(self._logger, 1, api, "Serialization",
                       f"Serialization assertion {tag} failed.{exc}",
                       "stdArchiveReader.cpp::StdArchiveReader::32")
            if not _TEN:
                _error(self._logger, 4, api, "Internal Error", "Engine deserialization failed.",
                       site)
            return None
        return ICudaEngine(plan, ctx, self._logger)

    __enter__, __exit__ = _deprecated_enter, _exit


class ICudaEngine(_DeviceObject):
    _kind = "ICudaEngine"

    def __init__(self, plan: _plan.Plan, ctx: _g.PrimaryContext, logger: ILogger) -> None:
        self._plan = plan
        self._logger = logger
        self._io = plan.header["io"]
        self._names = [t["name"] for t in self._io]
        self._hold(ctx, 1 << 16)  # the weights
        self._session: Any = None
        self._session_lock = threading.Lock()

    def _tensor(self, fn: str, name: str) -> dict[str, Any] | None:
        check(fn, "(self, name: str) -> ...", name, str)
        for t in self._io:
            if t["name"] == name:
                return t
        _error(self._logger, 3, f"ICudaEngine::{fn}", "API Usage Error",
               f"Parameter check failed, condition: tensor '{name}' is not an I/O tensor of the "
               "engine.")
        return None

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._plan.header["profiles"])

    @property
    def name(self) -> str:
        return "Unnamed Network 0"

    _DEVICE_MEMORY = 1 << 20  # what an execution context allocates

    if _T.device_memory_size:  # gone in 11.0
        @property
        def device_memory_size(self) -> int:
            return ICudaEngine._DEVICE_MEMORY

    if _TEN:
        @property
        def device_memory_size_v2(self) -> int:
            return ICudaEngine._DEVICE_MEMORY

    def get_tensor_name(self, index: int) -> str | None:
        check("get_tensor_name", "(self, index: int) -> str", index, int)
        return self._names[index] if 0 <= index < len(self._names) else None

    def get_tensor_mode(self, name: str) -> Any:  # noqa: ANN401
        t = self._tensor("get_tensor_mode", name)
        return TensorIOMode.NONE if t is None else TensorIOMode.__members__[t["mode"]]

    def get_tensor_shape(self, name: str) -> Dims:
        t = self._tensor("get_tensor_shape", name)
        return Dims(()) if t is None else Dims(t["shape"])

    def get_tensor_dtype(self, name: str) -> Any:  # noqa: ANN401
        t = self._tensor("get_tensor_dtype", name)
        return DataType.FLOAT if t is None else DataType.__members__[t["dtype"]]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        t = self._tensor("get_tensor_profile_shape", name)
        check("get_tensor_profile_shape", "(self, name: str, profile_index: int) -> "
              "List[tensorrt.Dims]", profile_index, int)
        profiles = self._plan.header["profiles"]
        if t is None or t["mode"] != "INPUT" or not 0 <= profile_index < len(profiles) or \
                name not in profiles[profile_index]:
            return [Dims(()), Dims(()), Dims(())]
        return [Dims(x) for x in profiles[profile_index][name]]

    def serialize(self) -> IHostMemory:
        return IHostMemory(_plan.write_plan({k: v for k, v in self._plan.header.items()
                                             if k != "onnx_bytes"}, self._plan.onnx))

    def create_execution_context(self, *args: Any, **kwargs: Any) -> IExecutionContext:  # noqa: ANN401
        # 8.6: no arguments; 10.x: py::arg("strategy") = STATIC, positional or keyword. (11.1's
        # runtime_config overload is not emulated: the project does not use it.)
        given = [*args, *kwargs.values()]
        if (not _TEN and given) or len(given) > 1 or set(kwargs) - {"strategy"} or \
                (given and not isinstance(given[0], ExecutionContextAllocationStrategy)):
            raise TypeError("create_execution_context(): incompatible function arguments")
        return IExecutionContext(self, _context("ICudaEngine::createExecutionContext"))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._session_lock:
            if self._session is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                self._session = ort.InferenceSession(self._plan.onnx, opts,
                                                     providers=["CPUExecutionProvider"])
            outs = [t["name"] for t in self._io if t["mode"] == "OUTPUT"]
            return dict(zip(outs, self._session.run(outs, feeds), strict=True))

    __enter__, __exit__ = _deprecated_enter, _exit


class IExecutionContext(_DeviceObject):
    _kind = "IExecutionContext"

    def __init__(self, engine: ICudaEngine, ctx: _g.PrimaryContext) -> None:
        self._engine = engine  # keep_alive<0, 1>: the context keeps its engine
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}
        self._out_shapes: dict[tuple[tuple[str, tuple[int, ...]], ...], dict[str, tuple]] = {}
        self._hold(ctx, engine._DEVICE_MEMORY)

    @property
    def engine(self) -> ICudaEngine:
        return self._engine

    def set_input_shape(self, name: str, shape: Any) -> bool:  # noqa: ANN401
        d = dims("set_input_shape", shape)
        t = self._engine._tensor("set_input_shape", name)
        if t is None:
            return False
        logger = self._engine._logger
        if t["mode"] != "INPUT":
            _error(logger, 3, "IExecutionContext::setInputShape", "API Usage Error",
                   f"Parameter check failed, condition: engineDims.nbDims >= 0. {name} is not an "
                   "input tensor.")
            return False
        lo, _, hi = self._engine._plan.header["profiles"][0].get(name, (t["shape"],) * 3)
        fixed_ok = all(n < 0 or n == x for n, x in zip(t["shape"], d, strict=False))
        if len(d) != len(t["shape"]) or not fixed_ok or \
                not all(a <= x <= b for a, x, b in zip(lo, d, hi, strict=True)):
            _error(logger, 3, "IExecutionContext::setInputShape", "API Usage Error",
                   f"Parameter check failed, condition: satisfyProfile. Set dimension "
                   f"[{','.join(map(str, d))}] for tensor {name} does not satisfy any optimization "
                   f"profiles. Valid range for profile 0: [{','.join(map(str, lo))}]..["
                   f"{','.join(map(str, hi))}].")
            return False
        self._shapes[name] = d
        return True

    def _all_shapes(self) -> dict[str, tuple[int, ...]] | None:
        out = {}
        for t in self._engine._io:
            if t["mode"] != "INPUT":
                continue
            s = self._shapes.get(t["name"], tuple(t["shape"]))
            if -1 in s:
                return None
            out[t["name"]] = s
        return out

    def _output_shapes(self, inputs: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        key = tuple(sorted(inputs.items()))
        if key not in self._out_shapes:
            feeds = {n: np.zeros(s, nptype(self._engine.get_tensor_dtype(n)))
                     for n, s in inputs.items()}
            self._out_shapes[key] = {n: a.shape for n, a in self._engine._run(feeds).items()}
        return self._out_shapes[key]

    def get_tensor_shape(self, name: str) -> Dims:
        t = self._engine._tensor("get_tensor_shape", name)
        if t is None:
            return Dims(())
        if t["mode"] == "INPUT":
            return Dims(self._shapes.get(name, tuple(t["shape"])))
        inputs = self._all_shapes()
        return Dims(t["shape"] if inputs is None else self._output_shapes(inputs)[name])

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if not hasattr(memory, "__index__") or isinstance(memory, _builtins.bool):
            raise TypeError("set_tensor_address(): incompatible function arguments. The "
                            "following argument types are supported:\n    1. (self: "
                            "tensorrt.IExecutionContext, name: str, memory: int) -> bool\n\n"
                            f"Invoked with: {name!r}, {memory!r}")
        if self._engine._tensor("set_tensor_address", name) is None:
            return False
        if _CONTROLS.fail_addresses > 0:
            _CONTROLS.fail_addresses -= 1
            _error(self._engine._logger, 3, "IExecutionContext::setTensorAddress",
                   "API Usage Error", "Parameter check failed, condition: the address is "
                   "aligned (stand-in fault)")
            return False
        self._addresses[name] = int(memory.__index__())
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        check("execute_async_v3", "(self, stream_handle: int) -> bool", stream_handle, int)
        eng, logger = self._engine, self._engine._logger

        def fail(code: int, what: str, text: str) -> bool:
            _error(logger, code, "IExecutionContext::enqueueV3", what, text)
            return False

        ctx = _GPU.current()
        if ctx is None or ctx is not self._ctx:
            return fail(1, "Cuda Runtime", "invalid device context (the execution context's "
                        "CUDA context is not current)")
        try:
            stream = _GPU.stream(stream_handle, ctx, "enqueueV3")
        except _g.CudaError as exc:
            return fail(1, "Cuda Runtime", f"invalid resource handle ({exc})")
        if stream is None:
            _log(logger, _Severity.WARNING, "Using default stream in enqueueV3() may lead to "
                 "performance issues due to additional calls to cudaStreamSynchronize() by "
                 "TensorRT to ensure correct synchronization. Please use non-default stream "
                 "instead.")
        inputs = self._all_shapes()
        if inputs is None:
            return fail(3, "API Usage Error", "Parameter check failed, condition: "
                        "mContext.getAllInputDimensionsSpecified(). Not all input dimensions "
                        "are specified.")
        shapes = {**inputs, **self._output_shapes(inputs)}
        plan: list[tuple[str, int, int, np.dtype]] = []
        for t in eng._io:
            name = t["name"]
            addr = self._addresses.get(name)
            if not addr:
                return fail(3, "API Usage Error", f"Parameter check failed, condition: "
                            f"mContext.profileObliviousBindings.at(profileObliviousIndex) != "
                            f"nullptr. Address is not set for {t['mode'].lower()} tensor {name}. "
                            f"Call setInputTensorAddress or setTensorAddress before "
                            f"enqueue/execute.")
            dt = np.dtype(nptype(DataType.__members__[t["dtype"]]))
            nbytes = int(np.prod(shapes[name])) * dt.itemsize
            try:
                _GPU.find(addr, nbytes, "enqueueV3")
            except _g.CudaError as exc:
                return fail(1, "Cuda Runtime", f"{_g.CUDA_ERROR_ILLEGAL_ADDRESS} ({exc})")
            plan.append((name, addr, nbytes, dt))
        if _CONTROLS.fail_executes > 0:
            _CONTROLS.fail_executes -= 1
            return fail(1, "Cuda Runtime", "an illegal instruction was encountered (stand-in "
                        "fault)")
        modes = {t["name"]: t["mode"] for t in eng._io}

        def kernel() -> None:
            feeds = {n: _GPU.read(a, b, "enqueueV3").view(dt).reshape(shapes[n])
                     for n, a, b, dt in plan if modes[n] == "INPUT"}
            results = eng._run(feeds)
            for n, a, _b, dt in plan:
                if modes[n] == "OUTPUT":
                    _GPU.write(a, np.ascontiguousarray(results[n], dtype=dt), "enqueueV3")

        _GPU.enqueue(stream, kernel)
        return True

    __enter__, __exit__ = _deprecated_enter, _exit


del _alias, _dt, _name, _member
