"""The functional core of the node: frame in, class ids at the frame's resolution out."""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from seg_perception.core.errors import OptionError
from seg_perception.core.resize import resize_ids, resize_rgb
from seg_perception.inference.backend import Backend


class Segmented(NamedTuple):
    """One frame through the model, everything at the model's input size."""

    rgb: np.ndarray  # the resized frame (outputs at model resolution reuse it)
    ids: np.ndarray
    confidence: np.ndarray | None  # None unless asked for
    backend_s: float  # the backend's own time, without resizing


class Segmenter:
    """Resizes to the model's input size, runs the backend, resizes ids back."""

    def __init__(self, backend: Backend, input_size: tuple[int, int] | None = None) -> None:
        self.backend = backend
        self.input_size = tuple(input_size) if input_size else backend.info.input_size
        if len(self.input_size) != 2 or min(self.input_size) < 16:
            raise OptionError("input_size", f"input_size must be [height, width] >= 16, got "
                              f"{self.input_size}")

    def infer_small(self, rgb: np.ndarray) -> np.ndarray:
        """Ids at the model's input size."""
        return self.run(rgb, False).ids

    def run(self, rgb: np.ndarray, confidence: bool = True) -> Segmented:
        """The frame resized, its ids and (if asked) confidence, and the backend's time."""
        # why the ignore below: input_size is set (not None) once the backend is open
        x = resize_rgb(rgb, self.input_size)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        if confidence:
            ids, conf = self.backend.infer_with_confidence(x)
        else:
            ids, conf = self.backend.infer(x), None
        return Segmented(x, ids, conf, time.perf_counter() - t0)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """Ids at the frame's size."""
        return resize_ids(self.infer_small(rgb), rgb.shape[:2])
