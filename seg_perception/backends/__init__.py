"""Interchangeable inference backends with one contract.

``Backend.infer(image)`` takes one RGB uint8 frame (H x W x 3, already at the size the backend
runs at) and returns uint8 class ids (H x W). Heavy imports (onnxruntime, torch, tensorrt) happen
inside the chosen backend only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..modelinfo import ModelInfo

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16", "int8")


class Backend(Protocol):
    name: str
    precision: str
    info: ModelInfo

    def infer(self, image: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def create_backend(model: str | Path, backend: str = "auto", precision: str = "fp32",
                   threads: int = 2, **options: object) -> Backend:
    """Opens ``model`` (a seg_perception ONNX) on the named backend.

    Raises ValueError naming the bad argument, FileNotFoundError for a missing model.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if backend in ("auto", "onnxruntime"):
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, precision=precision, threads=threads)
    raise ValueError(f"backend {backend!r} is not available in this build")
