"""Which backend runs a model here, and opening it: ``create_backend``.

Heavy imports (onnxruntime, torch, tensorrt) happen inside the chosen backend only.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from seg_perception.core.errors import OptionError
from seg_perception.inference.backend import BACKENDS, PRECISIONS, Backend
from seg_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
from seg_perception.inference.tensorrt.backend import TensorRTBackend
from seg_perception.inference.tensorrt.build import check_dla
from seg_perception.inference.tensorrt.cache import EngineBuildError
from seg_perception.inference.torch_backend import TorchBackend
from seg_perception.inference.variants import qdq_path_for

_log = logging.getLogger(__name__)




def tensorrt_available() -> tuple[bool, str]:
    """(usable, why not): tensorrt and pycuda import and pycuda sees a GPU."""
    if importlib.util.find_spec("tensorrt") is None:
        return False, "the tensorrt Python package is not installed"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            return False, "no CUDA GPU found"
    except ImportError:
        return False, "pycuda is not installed"
    except Exception as exc:  # noqa: BLE001 - pycuda raises its own LogicError/RuntimeError
        return False, f"CUDA unavailable: {exc}"
    return True, ""


def torch_cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_backend(precision: str, model: Path) -> tuple[str, str, str]:
    """(backend, precision, note) for ``auto``: TensorRT where it can run, else ONNX Runtime.

    fp16 without TensorRT goes to torch on CUDA when there is one; precisions a CPU cannot run
    fall back to fp32 with a note, so ``auto`` always starts.
    """
    ok, why = tensorrt_available()
    if ok:
        return "tensorrt", precision, ""
    return _without_tensorrt(precision, model, f"tensorrt unavailable ({why})")


def ort_gpu_available() -> bool:
    """onnxruntime-gpu with its CUDA provider (a Jetson or desktop fallback when TensorRT fails)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _without_tensorrt(precision: str, model: Path, note: str) -> tuple[str, str, str]:
    if precision == "fp16" and ort_gpu_available():
        return "onnxruntime", "fp16", note
    if precision == "fp16":
        if torch_cuda_available() and model.with_suffix(".pt").is_file():
            return "torch", "fp16", note
        return "onnxruntime", "fp32", f"{note}; fp16 needs a GPU, running fp32"
    if precision == "int8":
        if qdq_path_for(model).is_file():
            return "onnxruntime", "int8", note
        return "onnxruntime", "fp32", f"{note}; no Q/DQ model {qdq_path_for(model).name}, " \
            "running fp32"
    return "onnxruntime", precision, note


def create_backend(model: str | Path, backend: str = "auto", precision: str = "fp32",
                   threads: int = 2, **options: object) -> Backend:
    """Opens ``model`` (a seg_perception ONNX; a .pt checkpoint for torch) on the named backend.

    Options: ``input_size`` (H, W), ``engine_dir``, ``force_rebuild``, ``dla_core`` (tensorrt),
    ``providers`` (onnxruntime: e.g. ["cuda", "cpu"]), ``spin_wait`` (onnxruntime threads
    busy-wait for work), ``device``, ``checkpoint`` (torch).
    What it chose and why goes to the ``seg_perception`` logger (``core.logs``).
    Raises OptionError naming the bad option, FileNotFoundError for a missing model, ModelError
    for a file that is not a seg_perception model.
    """
    if backend not in BACKENDS:
        raise OptionError("backend", f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in PRECISIONS:
        raise OptionError("precision", f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not isinstance(threads, int) or threads < 1:
        raise OptionError("threads", f"threads must be an integer >= 1, got {threads!r}")
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    input_size = options.pop("input_size", None)
    engine_dir = options.pop("engine_dir", None)
    force_rebuild = bool(options.pop("force_rebuild", False))
    # why the ignore below: options are **kwargs: object; validated where used
    dla_core = int(options.pop("dla_core", -1))  # type: ignore[call-overload]
    providers = options.pop("providers", None)
    device = options.pop("device", None)
    checkpoint = options.pop("checkpoint", None)
    spin_wait = bool(options.pop("spin_wait", False))
    if options:
        raise ValueError(f"unknown backend options {sorted(options)}")
    if dla_core >= 0 and backend not in ("auto", "tensorrt"):
        raise OptionError("dla_core",
                          f"dla_core {dla_core} needs backend tensorrt, got {backend!r}")
    try:  # before any backend: auto without TensorRT would otherwise let it pass
        check_dla(dla_core, precision)
    except ValueError as exc:
        raise OptionError("dla_core", str(exc).removeprefix("dla_core: ")) from exc

    chosen, prec = backend, precision
    if backend == "auto":
        chosen, prec, note = choose_backend(precision, path)
        if prec != precision:
            _log.warning(f"backend auto: {note}")
        elif note:
            _log.info(f"backend auto: {note}")
        if providers is None and chosen == "onnxruntime" and ort_gpu_available():
            providers = ("cuda", "cpu")
    b: Backend
    if chosen == "tensorrt":
        ok, why = tensorrt_available()
        if not ok:
            raise OptionError("backend", f"backend tensorrt is unavailable here: {why}")

        try:
            # options are **kwargs: object; the backend validates them
            b = TensorRTBackend(
                path, prec, input_size=input_size,  # type: ignore[arg-type]  # as said above
                engine_dir=engine_dir, dla_core=dla_core,  # type: ignore[arg-type]  # as above
                force_rebuild=force_rebuild)
        except EngineBuildError as exc:
            if backend != "auto":
                raise
            # ``auto`` keeps the node running: ONNX Runtime on the GPU where onnxruntime-gpu is
            # installed, else the CPU, with TensorRT's own error lines in the warning.
            chosen, prec, note = _without_tensorrt(precision, path, "TensorRT engine build failed")
            gpu = ort_gpu_available()
            _log.warning(f"backend auto: {exc}\nfalling back to onnxruntime ({prec}, "
                 f"{'CUDA' if gpu else 'CPU'}): {note}")
            if providers is None and gpu:
                providers = ("cuda", "cpu")
    if chosen == "onnxruntime":
        b = OnnxRuntimeBackend(path, precision=prec, threads=threads,
                               # why the ignore below: as above
                               providers=providers or ("cpu",),  # type: ignore[arg-type]
                               spin_wait=spin_wait)
    elif chosen == "torch":
        b = TorchBackend(path, precision=prec, threads=threads,
                         # why the ignore below: as above
                         device=str(device or "auto"), checkpoint=checkpoint)  # type: ignore[arg-type]
    _log.info(f"inference backend {b.name} ({b.precision}) for {b.info.name}"
        + (f" [requested {backend}/{precision}]" if (backend, precision) != (b.name, b.precision)
           else ""))
    return b
