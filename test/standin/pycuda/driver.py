"""Stand-in for ``pycuda.driver`` on the emulated GPU of ``standin._gpu`` (tests only).

Loaded only by ``standin.install``, which executes a fresh copy of this file as ``pycuda.driver``
with ``_STANDIN_GPU`` preset; imported any other way it raises ImportError.

Checked against pycuda tag v2025.1.2 (commit 42cd5a0caf8559d9e51e9611dd480c481dc735f0):
``src/wrapper/wrap_cudadrv.cpp`` (names and Boost.Python keyword names: ``init(flags=0)``,
``Device`` with static ``count``, ``name``, ``compute_capability``, ``total_memory``,
``make_context(flags=0)``, ``retain_primary_context``; ``Context.push``/``detach``, static
``pop``/``get_device``/``synchronize``/``get_current``; ``Stream(flags=0)`` with ``handle``,
``synchronize``, ``is_done``; ``pagelocked_empty(shape, dtype, order="C", mem_flags=0)``;
``mem_alloc(bytes)`` (positional only); ``memcpy_htod_async(dest, src, stream=None)``,
``memcpy_dtoh_async(dest, src, stream=None)``, ``memcpy_htod(dest, src)``,
``memcpy_dtoh(dest, src)``; ``DeviceAllocation.__int__/__index__/free/as_buffer``;
``PagelockedHostAllocation.free/get_flags``; exceptions ``Error``, ``MemoryError``,
``LogicError``, ``LaunchError``, ``RuntimeError``) and ``src/cpp/cuda.hpp`` (semantics: the
per-thread context stack, ``context::pop`` "cannot pop non-current context", ``detach`` of a
context created on another thread silently does nothing, context-dependent objects need a current
context at creation ("no currently active context?") and re-activate their own context to be freed
on its creating thread, else warn "... in out-of-thread context could not be cleaned up", a second
``free`` is CUDA_ERROR_INVALID_HANDLE).

Stricter than pycuda, on purpose (each would be a bug on a real GPU or a leak pycuda hides):
``detach`` of a context still pushed on some thread raises LogicError; out-of-thread cleanups and
leaked retains are also recorded in ``_STANDIN_GPU.problems``.
"""

from __future__ import annotations

import enum
import threading
import warnings
from typing import Any

import numpy as np

try:
    _GPU = _STANDIN_GPU  # type: ignore[name-defined]  # noqa: F821 - injected by install()
except NameError:
    raise ImportError("the pycuda stand-in is only loaded by the test fixture "
                      "(standin.install)") from None

from standin import _gpu as _g  # noqa: E402 - after the guard

Error = _g.CudaError
MemoryError = _g.CudaMemoryError  # noqa: A001 - pycuda's own name
LogicError = _g.CudaLogicError
LaunchError = _g.CudaLaunchError
RuntimeError = _g.CudaRuntimeError  # noqa: A001 - pycuda's own name


def init(flags: int = 0) -> None:
    if int(flags) != 0:
        raise _g.cuda_error("cuInit", _g.CUDA_ERROR_INVALID_VALUE)
    _GPU.initialised = True


def _need_init(routine: str) -> None:
    if not _GPU.initialised:
        raise _g.cuda_error(routine, _g.CUDA_ERROR_NOT_INITIALIZED)


def get_version() -> tuple[int, int, int]:
    return (12, 2, 0)


def get_driver_version() -> int:
    return 12020


class device_attribute(enum.IntEnum):  # noqa: N801 - pycuda's name; a few of CUdevice_attribute
    MULTIPROCESSOR_COUNT = 16
    INTEGRATED = 18
    COMPUTE_CAPABILITY_MAJOR = 75
    COMPUTE_CAPABILITY_MINOR = 76


class Device:
    def __init__(self, number: int) -> None:
        _need_init("cuDeviceGet")
        if not isinstance(number, int) or not 0 <= number < len(_GPU.devices):
            raise _g.cuda_error("cuDeviceGet", _g.CUDA_ERROR_INVALID_DEVICE)
        self._ordinal = number

    @staticmethod
    def count() -> int:
        _need_init("cuDeviceGetCount")
        return len(_GPU.devices)

    def name(self) -> str:
        return _GPU.devices[self._ordinal].name

    def compute_capability(self) -> tuple[int, int]:
        return tuple(_GPU.devices[self._ordinal].compute_capability)  # type: ignore[return-value]

    def total_memory(self) -> int:
        return _GPU.devices[self._ordinal].total_memory

    def get_attribute(self, attr: device_attribute) -> int:
        if not isinstance(attr, device_attribute):
            raise TypeError("get_attribute(): incompatible function arguments")
        spec = _GPU.devices[self._ordinal]
        return {device_attribute.MULTIPROCESSOR_COUNT: spec.multiprocessors,
                device_attribute.COMPUTE_CAPABILITY_MAJOR: spec.compute_capability[0],
                device_attribute.COMPUTE_CAPABILITY_MINOR: spec.compute_capability[1],
                device_attribute.INTEGRATED: int(spec.name.startswith("Orin"))}[attr]

    def retain_primary_context(self) -> Context:
        p = _GPU.primary[self._ordinal]
        with _GPU.lock:
            p.retains += 1
        return Context(p)

    def make_context(self, flags: int = 0) -> Context:
        raise NotImplementedError("the stand-in emulates primary contexts only "
                                  "(the project uses retain_primary_context)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other._ordinal == self._ordinal

    def __hash__(self) -> int:
        return hash(("Device", self._ordinal))


class Context:
    """A pycuda context wrapper (``primary_context``): the thread that made it owns it."""

    def __init__(self, primary: _g.PrimaryContext) -> None:
        self._primary = primary
        self._valid = True
        self._thread = threading.get_ident()
        self._thread_name = threading.current_thread().name

    @property
    def handle(self) -> int:
        return self._primary.handle

    def push(self) -> None:
        if not self._valid:
            raise _g.cuda_error("cuCtxPushCurrent", _g.CUDA_ERROR_INVALID_CONTEXT)
        _GPU.stack().append(self)

    @staticmethod
    def pop() -> None:
        st = _GPU.stack()
        if not st:
            raise _g.cuda_error("context::pop", _g.CUDA_ERROR_INVALID_CONTEXT,
                                "cannot pop non-current context")
        st.pop()

    @staticmethod
    def get_current() -> Context | None:
        return _GPU.current_wrapper()

    @staticmethod
    def get_device() -> Device:
        ctx = _GPU.require_context("cuCtxGetDevice")
        return Device(ctx.device)

    @staticmethod
    def synchronize() -> None:
        _GPU.require_context("cuCtxSynchronize")
        _GPU.flush_all()

    def detach(self) -> None:
        if not self._valid:
            raise _g.cuda_error("context::detach", _g.CUDA_ERROR_INVALID_CONTEXT,
                                "cannot detach from invalid context")
        where = _GPU.pushed_anywhere(self)
        if where:
            raise _g.cuda_error("context::detach", _g.CUDA_ERROR_INVALID_CONTEXT,
                                f"context still pushed on {', '.join(where)} (pop it first)")
        self._valid = False
        if threading.get_ident() != self._thread:
            # pycuda skips the release for a context made on another thread: the retain leaks.
            _GPU.problem(f"primary context of device {self._primary.device} retained on thread "
                         f"{self._thread_name} and detached from "
                         f"{threading.current_thread().name}: the retain is never released")
            return
        with _GPU.lock:
            self._primary.retains -= 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and other._primary is self._primary

    def __hash__(self) -> int:
        return hash(("Context", self._primary.handle, id(self)))


class _ContextDependent:
    """pycuda's context_dependent: the current context at creation is the object's ward."""

    _kind = "object"

    def _acquire(self) -> None:
        ward = _GPU.current_wrapper()
        if ward is None:
            raise _g.cuda_error("explicit_context_dependent", _g.CUDA_ERROR_INVALID_CONTEXT,
                                "no currently active context?")
        self._ward = ward

    def _activate_for_cleanup(self) -> bool:
        """scoped_context_activation: True when the cleanup may run now; out-of-thread cleanup
        warns and leaks, cleanup in a dead context is implicit (both as pycuda does)."""
        ward = self._ward
        if not ward._valid:
            _GPU.problem(f"{self._kind} freed after its context was detached")
            return False
        if _GPU.current_wrapper() is ward:
            return True
        if threading.get_ident() != ward._thread:
            warnings.warn(f"{self._kind} in out-of-thread context could not be cleaned up",
                          UserWarning, stacklevel=3)
            _GPU.problem(f"{self._kind} in out-of-thread context could not be cleaned up")
            return False
        return True  # pycuda pushes the ward for the call and pops it again


class DeviceAllocation(_ContextDependent):
    _kind = "device_allocation"

    def __init__(self, nbytes: int) -> None:
        ctx = _GPU.require_context("cuMemAlloc")
        if nbytes <= 0:
            raise _g.cuda_error("cuMemAlloc", _g.CUDA_ERROR_INVALID_VALUE)
        self._acquire()
        self._alloc = _GPU.alloc(nbytes, ctx, "pycuda")
        self._valid = True

    def __int__(self) -> int:
        return self._alloc.base

    __index__ = __int__

    def free(self) -> None:
        if not self._valid:
            raise _g.cuda_error("device_allocation::free", _g.CUDA_ERROR_INVALID_HANDLE)
        if self._activate_for_cleanup():
            self._alloc.freed = True
        self._valid = False

    def as_buffer(self, size: int, offset: int = 0) -> memoryview:
        raise NotImplementedError("device memory is not host-addressable")

    def __del__(self) -> None:
        if getattr(self, "_valid", False):
            self.free()


def mem_alloc(bytes: int) -> DeviceAllocation:  # noqa: A002 - pycuda's positional-only name
    return DeviceAllocation(int(bytes))


class PagelockedHostAllocation(_ContextDependent):
    """The ``.base`` of a ``pagelocked_empty`` array; numpy reaches the memory through
    ``__array_interface__``, as pycuda's own arrays reach theirs."""

    _kind = "pagelocked_host_allocation"

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, order: str) -> None:
        _GPU.require_context("cuMemHostAlloc")
        self._acquire()
        self._mem = np.empty(max(int(np.prod(shape)) * dtype.itemsize, 1), np.uint8)
        self._flags = 0
        strides = None
        if order == "F" and len(shape) > 1:
            strides, acc = [], dtype.itemsize
            for n in shape:
                strides.append(acc)
                acc *= n
            strides = tuple(strides)
        self.__array_interface__ = {"shape": tuple(shape), "typestr": dtype.str,
                                    "descr": dtype.descr, "strides": strides,
                                    "data": (self._mem.ctypes.data, False), "version": 3}
        self._valid = True
        with _GPU.lock:
            _GPU.pinned[id(self)] = (self._mem.ctypes.data, self._mem.nbytes)

    def get_flags(self) -> int:
        return self._flags

    def free(self) -> None:
        if not self._valid:
            raise _g.cuda_error("pagelocked_host_allocation::free", _g.CUDA_ERROR_INVALID_HANDLE)
        if self._activate_for_cleanup():
            with _GPU.lock:
                _GPU.pinned.pop(id(self), None)
            self._mem[:] = 0xCD  # what a freed page reads like here: never the old frame
        self._valid = False

    def __del__(self) -> None:
        if getattr(self, "_valid", False):
            self.free()


HostAllocation = PagelockedHostAllocation


def pagelocked_empty(shape: Any, dtype: Any, order: str = "C",  # noqa: ANN401
                     mem_flags: int = 0) -> np.ndarray:
    dims = (int(shape),) if np.isscalar(shape) else tuple(int(n) for n in shape)
    if order not in ("C", "F"):
        raise _g.cuda_error("numpy_empty", _g.CUDA_ERROR_INVALID_VALUE,
                            "unrecognized order specifier")
    alloc = PagelockedHostAllocation(dims, np.dtype(dtype), order)
    alloc._flags = int(mem_flags)
    return np.asarray(alloc)


def pagelocked_zeros(shape: Any, dtype: Any, order: str = "C",  # noqa: ANN401
                     mem_flags: int = 0) -> np.ndarray:
    a = pagelocked_empty(shape, dtype, order, mem_flags)
    a.fill(0)
    return a


class Stream(_ContextDependent):
    _kind = "stream"

    def __init__(self, flags: int = 0) -> None:
        self._acquire()  # the context_dependent base is constructed before cuStreamCreate runs
        self._state = _GPU.new_stream(self._ward._primary)

    @property
    def handle(self) -> int:
        return self._state.handle

    def synchronize(self) -> None:
        _GPU.require_context("cuStreamSynchronize")
        _GPU.synchronize(self._state)

    def is_done(self) -> bool:
        return not self._state.queue

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is None or state.destroyed:
            return
        if self._activate_for_cleanup():
            _GPU.synchronize(state)
            state.destroyed = True


def _parse_stream(stream: Stream | None, routine: str) -> _g.StreamState | None:
    ctx = _GPU.require_context(routine)
    if stream is None:
        return None
    if not isinstance(stream, Stream):
        raise TypeError(f"{routine}: stream must be a pycuda.driver.Stream or None, "
                        f"got {type(stream).__name__}")
    return _GPU.stream(stream.handle, ctx, routine)


def _address(dest: Any, routine: str) -> int:  # noqa: ANN401 - DeviceAllocation or int
    if isinstance(dest, DeviceAllocation):
        return int(dest)
    if isinstance(dest, (int, np.integer)) and not isinstance(dest, bool):
        return int(dest)
    raise TypeError(f"{routine}: expected a DeviceAllocation or an int device pointer, got "
                    f"{type(dest).__name__}")


def _host_buffer(obj: Any, writable: bool, routine: str) -> memoryview:  # noqa: ANN401
    try:
        mv = memoryview(obj)
    except TypeError:
        raise TypeError(f"{routine}: host side must support the buffer protocol, got "
                        f"{type(obj).__name__}") from None
    if not mv.contiguous:
        raise TypeError(f"{routine}: host buffer is not contiguous")
    if writable and mv.readonly:
        raise TypeError(f"{routine}: host buffer is read-only")
    return mv.cast("B")


def memcpy_htod_async(dest: Any, src: Any, stream: Stream | None = None) -> None:  # noqa: ANN401
    routine = "cuMemcpyHtoDAsync"
    s = _parse_stream(stream, routine)
    address, mv = _address(dest, routine), _host_buffer(src, False, routine)
    _GPU.find(address, mv.nbytes, routine)  # bad addresses fail at the call, as CUDA does
    if _GPU.is_pinned(src):
        _GPU.enqueue(s, lambda: _GPU.write(address, mv, routine))
    else:  # pageable memory: CUDA stages the copy before returning
        snapshot = bytes(mv)
        _GPU.enqueue(s, lambda: _GPU.write(address, snapshot, routine))


def memcpy_dtoh_async(dest: Any, src: Any, stream: Stream | None = None) -> None:  # noqa: ANN401
    routine = "cuMemcpyDtoHAsync"
    s = _parse_stream(stream, routine)
    mv, address = _host_buffer(dest, True, routine), _address(src, routine)
    _GPU.find(address, mv.nbytes, routine)

    def copy() -> None:
        mv[:] = _GPU.read(address, mv.nbytes, routine).tobytes()

    _GPU.enqueue(s, copy)
    if s is not None and not _GPU.is_pinned(dest):
        _GPU.synchronize(s)  # pageable destination: the copy completes before the call returns


def memcpy_htod(dest: Any, src: Any) -> None:  # noqa: ANN401
    routine = "cuMemcpyHtoD"
    _GPU.require_context(routine)
    _GPU.flush_all()
    _GPU.write(_address(dest, routine), _host_buffer(src, False, routine), routine)


def memcpy_dtoh(dest: Any, src: Any) -> None:  # noqa: ANN401
    routine = "cuMemcpyDtoH"
    _GPU.require_context(routine)
    _GPU.flush_all()
    mv = _host_buffer(dest, True, routine)
    mv[:] = _GPU.read(_address(src, routine), mv.nbytes, routine).tobytes()


def mem_get_info() -> tuple[int, int]:
    ctx = _GPU.require_context("cuMemGetInfo")
    total = _GPU.devices[ctx.device].total_memory
    used = sum(a.size for a in _GPU.live_allocations() if a.ctx is ctx)
    return total - used, total
