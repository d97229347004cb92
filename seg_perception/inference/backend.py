"""The contract every backend honours, and the names users choose them by.

``Backend.infer(image)`` takes one RGB uint8 frame (H x W x 3, already at the size the backend
runs at) and returns uint8 class ids (H x W).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from seg_perception.inference.modelinfo import ModelInfo

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16", "int8")


class Backend(Protocol):
    name: str
    precision: str
    info: ModelInfo

    def infer(self, image: np.ndarray) -> np.ndarray: ...

    def infer_with_confidence(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, confidence): uint8, 255 = certain; ValueError if the model has no such output."""
        ...

    def close(self) -> None: ...
