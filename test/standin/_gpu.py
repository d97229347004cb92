"""The emulated GPU shared by the pycuda and TensorRT stand-ins of one test.

State a real GPU keeps and that the project's code must treat correctly:

* one primary context per device with a retain count (``Device.retain_primary_context`` retains,
  ``Context.detach`` releases), and a context stack per thread (``push``/``pop``);
* device memory: host byte buffers keyed by address; addresses are never reused, so a freed
  allocation stays detectable (use-after-free and double free raise);
* streams whose work (async copies from pinned memory, TensorRT enqueues) is queued and only runs
  at ``synchronize``, in order, so a missing synchronisation reads stale host buffers as on a GPU;
* a record of everything that would be a bug on real hardware but that pycuda/TensorRT only warn
  about or silently leak (``problems``), for the tests to assert empty.

Error texts follow pycuda's ``error::make_message`` ("<routine> failed: <cuGetErrorString>[ - msg]",
pycuda ``src/cpp/cuda.hpp`` at tag v2025.1.2, commit 42cd5a0caf8559d9e51e9611dd480c481dc735f0).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# cuGetErrorString texts of the CUresult codes used here.
CUDA_ERROR_INVALID_VALUE = "invalid argument"
CUDA_ERROR_OUT_OF_MEMORY = "out of memory"
CUDA_ERROR_NOT_INITIALIZED = "initialization error"
CUDA_ERROR_INVALID_DEVICE = "invalid device ordinal"
CUDA_ERROR_INVALID_CONTEXT = "invalid device context"
CUDA_ERROR_INVALID_HANDLE = "invalid resource handle"
CUDA_ERROR_ILLEGAL_ADDRESS = "an illegal memory access was encountered"


class CudaError(Exception):
    """pycuda._driver.Error"""


class CudaMemoryError(CudaError):
    """pycuda._driver.MemoryError"""


class CudaLogicError(CudaError):
    """pycuda._driver.LogicError"""


class CudaLaunchError(CudaError):
    """pycuda._driver.LaunchError"""


class CudaRuntimeError(CudaError):
    """pycuda._driver.RuntimeError"""


for _cls, _name in ((CudaError, "Error"), (CudaMemoryError, "MemoryError"),
                    (CudaLogicError, "LogicError"), (CudaLaunchError, "LaunchError"),
                    (CudaRuntimeError, "RuntimeError")):
    _cls.__module__, _cls.__name__, _cls.__qualname__ = "pycuda._driver", _name, _name


def cuda_error(routine: str, code: str, msg: str | None = None) -> CudaError:
    """pycuda's translate_cuda_error: out of memory -> MemoryError, the rest used here -> Logic."""
    text = f"{routine} failed: {code}" + (f" - {msg}" if msg else "")
    return CudaMemoryError(text) if code == CUDA_ERROR_OUT_OF_MEMORY else CudaLogicError(text)


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    compute_capability: tuple[int, int]
    total_memory: int = 8 << 30
    dla_cores: int = 0
    multiprocessors: int = 8


@dataclass
class PrimaryContext:
    """The CUcontext of one device (shared by every pycuda Context wrapper that retained it)."""

    device: int
    handle: int
    retains: int = 0


@dataclass
class Allocation:
    base: int
    size: int
    data: np.ndarray  # uint8
    ctx: PrimaryContext
    owner: str  # "pycuda" or "tensorrt:<what>"
    freed: bool = False


@dataclass
class StreamState:
    handle: int
    ctx: PrimaryContext
    queue: list[Callable[[], None]] = field(default_factory=list)
    destroyed: bool = False


class EmulatedGpu:
    """One machine's CUDA driver state. Thread-safe; everything is guarded by one lock."""

    ADDRESS_BASE = 0x7F00_0000_0000
    ALIGN = 512

    def __init__(self, devices: list[DeviceSpec]) -> None:
        self.devices = list(devices)
        self.initialised = False
        self.lock = threading.RLock()
        self.primary = [PrimaryContext(i, 0x5C0000 + 0x100 * i) for i in range(len(devices))]
        self._stacks: dict[int, list[Any]] = {}  # thread ident -> pycuda Context wrappers
        self._thread_names: dict[int, str] = {}
        self._next_address = self.ADDRESS_BASE
        self.allocations: dict[int, Allocation] = {}
        self.streams: dict[int, StreamState] = {}
        self._next_stream = 0x51_0000
        self.pinned: dict[int, tuple[int, int]] = {}  # id(allocation) -> (address, nbytes)
        self.problems: list[str] = []

    # -- context stacks -----------------------------------------------------------------------
    def stack(self) -> list[Any]:
        ident = threading.get_ident()
        with self.lock:
            self._thread_names[ident] = threading.current_thread().name
            return self._stacks.setdefault(ident, [])

    def current_wrapper(self) -> Any:  # noqa: ANN401 - a pycuda Context wrapper or None
        with self.lock:
            st = self.stack()
            return st[-1] if st else None

    def current(self) -> PrimaryContext | None:
        w = self.current_wrapper()
        return None if w is None else w._primary

    def require_context(self, routine: str) -> PrimaryContext:
        ctx = self.current()
        if ctx is None:
            raise cuda_error(routine, CUDA_ERROR_INVALID_CONTEXT)
        return ctx

    def stacks(self) -> dict[str, int]:
        """Depth of every thread's context stack that is not empty (name -> depth)."""
        with self.lock:
            return {f"{self._thread_names.get(k, k)}#{k}": len(v)
                    for k, v in self._stacks.items() if v}

    def pushed_anywhere(self, wrapper: Any) -> list[str]:  # noqa: ANN401
        with self.lock:
            return [f"{self._thread_names.get(k, k)}#{k}" for k, v in self._stacks.items()
                    if any(w is wrapper for w in v)]

    # -- device memory ------------------------------------------------------------------------
    def alloc(self, nbytes: int, ctx: PrimaryContext, owner: str) -> Allocation:
        with self.lock:
            base = self._next_address
            self._next_address += (nbytes + 2 * self.ALIGN - 1) // self.ALIGN * self.ALIGN
            # Fresh device memory holds garbage, not zeros.
            data = np.frombuffer(np.random.default_rng(base).bytes(nbytes), np.uint8).copy()
            a = Allocation(base, nbytes, data, ctx, owner)
            self.allocations[base] = a
            return a

    def find(self, address: int, nbytes: int, routine: str) -> tuple[Allocation, int]:
        """The live allocation holding [address, address + nbytes), and the offset in it."""
        with self.lock:
            for a in self.allocations.values():
                if a.base <= address < a.base + max(a.size, 1):
                    if a.freed:
                        raise cuda_error(routine, CUDA_ERROR_ILLEGAL_ADDRESS,
                                         f"address {address:#x} is in freed {a.owner} memory")
                    if address + nbytes > a.base + a.size:
                        raise cuda_error(routine, CUDA_ERROR_INVALID_VALUE,
                                         f"{nbytes} bytes at {address:#x} overrun a {a.size}-byte "
                                         "allocation")
                    return a, address - a.base
            raise cuda_error(routine, CUDA_ERROR_INVALID_VALUE,
                             f"{address:#x} is not device memory")

    def read(self, address: int, nbytes: int, routine: str) -> np.ndarray:
        a, off = self.find(address, nbytes, routine)
        return a.data[off:off + nbytes].copy()

    def write(self, address: int, data: bytes | np.ndarray, routine: str) -> None:
        raw = np.frombuffer(memoryview(data).cast("B"), np.uint8)
        a, off = self.find(address, raw.size, routine)
        a.data[off:off + raw.size] = raw

    def live_allocations(self, owner_prefix: str = "") -> list[Allocation]:
        with self.lock:
            return [a for a in self.allocations.values()
                    if not a.freed and a.owner.startswith(owner_prefix)]

    # -- streams ------------------------------------------------------------------------------
    def new_stream(self, ctx: PrimaryContext) -> StreamState:
        with self.lock:
            self._next_stream += 0x40
            s = StreamState(self._next_stream, ctx)
            self.streams[s.handle] = s
            return s

    def stream(self, handle: int, ctx: PrimaryContext, routine: str) -> StreamState | None:
        """The stream for ``handle`` (None: the default stream), checked against ``ctx``."""
        if handle == 0:
            return None
        with self.lock:
            s = self.streams.get(int(handle))
        if s is None or s.destroyed or s.ctx is not ctx:
            raise cuda_error(routine, CUDA_ERROR_INVALID_HANDLE,
                             f"stream {int(handle):#x} is not a live stream of the current context")
        return s

    def enqueue(self, s: StreamState | None, work: Callable[[], None]) -> None:
        """Work on a stream runs at its synchronize; on the default stream it runs now, after
        everything queued in that context (the legacy default stream synchronises with all)."""
        if s is None:
            self.flush_all()
            work()
        else:
            with self.lock:
                s.queue.append(work)

    def synchronize(self, s: StreamState) -> None:
        with self.lock:
            work, s.queue = s.queue, []
        for w in work:
            w()

    def flush_all(self) -> None:
        with self.lock:
            live = [s for s in self.streams.values() if not s.destroyed]
        for s in live:
            self.synchronize(s)

    def live_streams(self) -> list[StreamState]:
        with self.lock:
            return [s for s in self.streams.values() if not s.destroyed]

    # -- pinned host memory -------------------------------------------------------------------
    def is_pinned(self, arr: Any) -> bool:  # noqa: ANN401 - any buffer
        try:
            a = np.asarray(arr)
        except Exception:  # noqa: BLE001 - not an array at all
            return False
        ptr = a.__array_interface__["data"][0]
        with self.lock:
            return any(base <= ptr and ptr + a.nbytes <= base + n
                       for base, n in self.pinned.values())

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def summary(self) -> dict[str, Any]:
        """What is still held: the tests assert all of it is empty after ``close()``."""
        return {"stacks": self.stacks(),
                "allocations": [f"{a.owner} {a.size} B @ {a.base:#x}"
                                for a in self.live_allocations()],
                "streams": [f"{s.handle:#x}" for s in self.live_streams()],
                "pinned": len(self.pinned),
                "retains": {p.device: p.retains for p in self.primary if p.retains},
                "problems": list(self.problems)}
