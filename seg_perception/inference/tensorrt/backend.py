"""TensorRT backend: the production path on Jetson and NVIDIA GPUs.

Name-based I/O (TensorRT 8.5+ / 10 / 11), device and pinned host buffers and one CUDA stream
through pycuda. ROS callbacks, the node's worker thread and shutdown run on different threads, so
the CUDA context is the device's *primary* context, retained once and pushed/popped around every
use; the push/pop pairs always balance, and ``close`` frees everything inside the context before
detaching, so pycuda never reports 'context stack not empty' at exit.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.fileio import file_sha256
from seg_perception.inference.modelinfo import ModelInfo, read_model_info
from seg_perception.inference.tensorrt.build import build_serialized, plan_build, trt_logger
from seg_perception.inference.tensorrt.cache import (
    EngineKey,
    Resolved,
    obtain_engine,
    timing_cache_path,
)
from seg_perception.model.contract import CONFIDENCE_NAME, LABELS_NAME


class CudaContext:
    """The retained primary context of one GPU, made current only while in use."""

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() <= device:
            raise RuntimeError(f"CUDA device {device} not present ({cuda.Device.count()} found)")
        self.cuda = cuda
        self.device = cuda.Device(device)
        self.ctx = self.device.retain_primary_context()
        self._lock = threading.RLock()
        self._closed = False

    @contextmanager
    def current(self) -> Iterator[None]:
        """Pushes the context on this thread and pops it again, whatever happens inside."""
        with self._lock:
            if self._closed:
                raise RuntimeError("CUDA context already released")
            self.ctx.push()
            try:
                yield
            finally:
                self.cuda.Context.pop()

    @property
    def closed(self) -> bool:
        return self._closed

    def identity(self) -> tuple[str, str, str]:
        """Name, compute capability and size ('14SM 29GiB') of the GPU, as engines are keyed:
        an engine is tuned for one device type, and Jetson Orin modules differ only in size."""
        d = self.device
        sms = int(d.get_attribute(self.cuda.device_attribute.MULTIPROCESSOR_COUNT))
        return (d.name(), "{}.{}".format(*d.compute_capability()),
                f"{sms}SM {int(d.total_memory()) >> 30}GiB")

    def release(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.ctx.detach()


class DeviceBuffers:
    """Pinned host arrays, device allocations and a stream for a fixed set of named tensors."""

    def __init__(self, cuda_ctx: CudaContext,
                 specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        cuda = cuda_ctx.cuda
        self._ctx = cuda_ctx
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, Any] = {}
        with cuda_ctx.current():
            self.stream = cuda.Stream()
            for name, (shape, dtype) in specs.items():
                self.host[name] = cuda.pagelocked_empty(shape, dtype)
                self.device[name] = cuda.mem_alloc(max(self.host[name].nbytes, 1))

    def address(self, name: str) -> int:
        return int(self.device[name])

    def upload(self, name: str, data: np.ndarray) -> None:
        """Async copy via the pinned buffer (the caller holds the context current)."""
        np.copyto(self.host[name], data.reshape(self.host[name].shape), casting="same_kind")
        self._ctx.cuda.memcpy_htod_async(self.device[name], self.host[name], self.stream)

    def download(self, name: str) -> None:
        self._ctx.cuda.memcpy_dtoh_async(self.host[name], self.device[name], self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self) -> None:
        """Frees device memory, pinned memory and the stream inside the context, in that order."""
        if not self.device and not self.host:
            return
        with self._ctx.current():
            self.stream.synchronize()
            for d in self.device.values():
                d.free()
            for h in self.host.values():
                base = getattr(h, "base", None)
                if base is not None and hasattr(base, "free"):
                    base.free()
            self.device.clear()
            self.host.clear()
            del self.stream


_NP_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
             "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}


def _np_dtype(trt: Any, dt: Any) -> np.dtype:  # noqa: ANN401 - tensorrt module / DataType
    """NumPy's type for an engine tensor; TypeError naming it for types NumPy has not
    (BF16, FP8, INT4, FP4: no seg_perception model has them at its inputs or outputs)."""
    try:
        return np.dtype(trt.nptype(dt))
    except (TypeError, KeyError):
        name = str(dt).rsplit(".", 1)[-1]
        if name not in _NP_TYPES:
            raise TypeError(f"engine tensor type {name} has no NumPy type; this backend reads "
                            f"{', '.join(_NP_TYPES)}") from None
        return np.dtype(_NP_TYPES[name])


def engine_key(info: ModelInfo, network_onnx: Path, precision: str,
               input_shape: tuple[int, int, int, int], dla_core: int, trt_version: str,
               gpu: tuple[str, str, str], build_plan: str = "") -> EngineKey:
    """``gpu``: name, compute capability, size (``CudaContext.identity``)."""
    return EngineKey(model_sha256=info.sha256, network_sha256=file_sha256(network_onnx),
                     trt_version=trt_version, gpu_name=gpu[0], compute_capability=gpu[1],
                     precision=precision, input_shape=input_shape, dla_core=int(dla_core),
                     build_plan=build_plan, gpu_detail=gpu[2])


def obtain(model: str | Path, precision: str, input_size: tuple[int, int] | None,
           engine_dir: str | Path | None, dla_core: int, force_rebuild: bool,
           cuda_ctx: CudaContext, progress: bool = True,
           workspace_mb: int = 1024) -> tuple[Resolved[Any], ModelInfo, Any]:
    """Finds or builds the engine for this model/GPU/precision/shape and deserialises it."""
    import tempfile

    import tensorrt as trt

    info = read_model_info(model)
    size = tuple(input_size) if input_size else info.input_size
    engine_dir = Path(engine_dir) if engine_dir else info.path.parent
    gpu = cuda_ctx.identity()
    logger = trt_logger(trt)
    runtime = trt.Runtime(logger)
    if dla_core >= 0:
        runtime.DLA_core = int(dla_core)
    with tempfile.TemporaryDirectory(prefix="seg_trt_") as work:
        # why the ignore below: size is a (height, width) pair; tuple() loses the length
        plan = plan_build(info, precision, size, trt.__version__, dla_core, work)  # type: ignore[arg-type]
        # A network converted here (fp16) is a function of the model and of the conversion
        # recipe (converter version, op list), which the plan's key text names: key it by the
        # model, so the converter's byte-level noise never forces a rebuild but a new recipe does.
        net = info.path if plan.network_onnx.parent == Path(work) else plan.network_onnx
        key = engine_key(info, net, precision, plan.input_shape, dla_core, trt.__version__, gpu,
                         plan.key_text())
        path = engine_dir / key.file_name(info.path.name.removesuffix(".onnx"))

        def build() -> bytes:
            with cuda_ctx.current():
                return build_serialized(plan, timing_cache_path(engine_dir, key), workspace_mb,
                                        progress)

        def load(data: bytes) -> Any:  # noqa: ANN401 - ICudaEngine
            with cuda_ctx.current():
                return runtime.deserialize_cuda_engine(data)

        extra = {"model": info.path.name, "classes": list(info.classes.names),
                 "tensorrt": trt.__version__, "build": plan.describe(),
                 # a build-time limit only: the engine runs the same whatever it was
                 "workspace_mb": int(workspace_mb)}
        resolved = obtain_engine(path, key, build, load, force_rebuild, extra)
    return resolved, info, runtime


def resolve_engine(onnx_path: str | Path, precision: str = "fp16",
                   input_size: tuple[int, int] | None = None, engine_dir: str | Path | None = None,
                   dla_core: int = -1, force_rebuild: bool = False, progress: bool = True,
                   workspace_mb: int = 1024) -> Path:
    """Path of a valid engine for ``onnx_path`` on this GPU, building it when missing or invalid."""
    ctx = CudaContext()
    try:
        resolved, _, _ = obtain(onnx_path, precision, input_size, engine_dir, dla_core,
                                force_rebuild, ctx, progress, workspace_mb)
        with ctx.current():
            del resolved.loaded
        return resolved.path
    finally:
        ctx.release()


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model: str | Path, precision: str = "fp16",
                 input_size: tuple[int, int] | None = None, engine_dir: str | Path | None = None,
                 dla_core: int = -1, force_rebuild: bool = False, device: int = 0,
                 progress: bool = False) -> None:
        import tensorrt as trt

        self._trt = trt
        self._lock = threading.Lock()
        self._buffers: DeviceBuffers | None = None
        self._ctx = CudaContext(device)
        try:
            resolved, self.info, self._runtime = obtain(
                model, precision, input_size, engine_dir, int(dla_core), bool(force_rebuild),
                self._ctx, progress)
            self.engine_path = resolved.path
            self.precision = precision
            self._engine = resolved.loaded
            del resolved  # self is the engine's only owner, so close() frees it in the context
            self._setup()
        except BaseException as exc:
            # The traceback keeps the failed calls' frames, whose locals may still hold the
            # engine or device buffers: drop them, so close() frees all of it in the context.
            traceback.clear_frames(exc.__traceback__)
            self.close()
            raise

    def _setup(self) -> None:
        trt = self._trt
        eng = self._engine
        with self._ctx.current():
            self._context = eng.create_execution_context()
            names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
            inputs = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            if len(inputs) != 1 or LABELS_NAME not in names:
                raise ValueError(f"engine {self.engine_path} has inputs {inputs} and tensors "
                                 f"{names}; expected one image input and a 'labels' output")
            self.input_name = inputs[0]
            shape = tuple(eng.get_tensor_shape(self.input_name))
            if -1 in shape:  # dynamic engine (built elsewhere): its profile's opt shape
                shape = tuple(eng.get_tensor_profile_shape(self.input_name, 0)[1])
            if not self._context.set_input_shape(self.input_name, shape):
                raise ValueError(f"engine {self.engine_path} refuses input shape {shape} for "
                                 f"{self.input_name!r} (TensorRT's log says why)")
            self.input_shape = shape
            specs = {n: (tuple(self._context.get_tensor_shape(n)),
                         _np_dtype(trt, eng.get_tensor_dtype(n))) for n in names}
            self._buffers = DeviceBuffers(self._ctx, specs)
            for n in names:
                if not self._context.set_tensor_address(n, self._buffers.address(n)):
                    raise ValueError(f"engine {self.engine_path} refuses the address of "
                                     f"tensor {n!r} (TensorRT's log says why)")
            self._outputs = [n for n in names if n != self.input_name]

    def infer(self, image: np.ndarray) -> np.ndarray:
        return self._run(image, confidence=False)[0]

    def infer_with_confidence(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if CONFIDENCE_NAME not in self._outputs:
            raise ValueError(f"engine {self.engine_path.name} has no {CONFIDENCE_NAME!r} output")
        ids, conf = self._run(image, confidence=True)
        assert conf is not None
        return ids, conf

    def _run(self, image: np.ndarray, confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        want = self.input_shape[1:3]
        if image.shape[:2] != tuple(want):
            raise ValueError(f"frame is {image.shape[:2]}, engine {self.engine_path.name} runs "
                             f"at {tuple(want)}")
        buf = self._buffers
        if buf is None:
            raise RuntimeError(f"TensorRT backend for {self.engine_path.name} is closed")
        with self._lock, self._ctx.current():
            buf.upload(self.input_name, image[None])
            if not self._context.execute_async_v3(buf.stream.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            buf.download(LABELS_NAME)
            if confidence:
                buf.download(CONFIDENCE_NAME)
            buf.synchronize()
            # Copies: the pinned buffers are overwritten by the next frame while this one is used.
            ids = buf.host[LABELS_NAME][0].astype(np.uint8, copy=True)
            conf = buf.host[CONFIDENCE_NAME][0].astype(np.uint8, copy=True) if confidence \
                else None
            return ids, conf

    def close(self) -> None:
        """Frees buffers, execution context and engine inside the CUDA context, then detaches."""
        with self._lock:
            ctx = getattr(self, "_ctx", None)
            if ctx is None:
                return
            if self._buffers is not None:
                self._buffers.free()
                self._buffers = None
            if not ctx.closed:
                with ctx.current():
                    for attr in ("_context", "_engine", "_runtime"):
                        if hasattr(self, attr):
                            delattr(self, attr)
            ctx.release()
            # why the ignore below: released: close() makes the context unusable on purpose
            self._ctx = None  # type: ignore[assignment]
