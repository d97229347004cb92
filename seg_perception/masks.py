"""From class ids to what a planner and a person consume: group masks, colours, overlays.

All are single lookups into 256-entry tables built once, so a frame costs one pass per output.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np


def group_lut(class_ids: Iterable[int]) -> np.ndarray:
    """256-entry table: 255 for ids in the group, else 0."""
    lut = np.zeros(256, np.uint8)
    for i in class_ids:
        lut[int(i)] = 255
    return lut


def apply_lut(ids: np.ndarray, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """ids (H x W uint8) through a (256,) or (256, 3) table."""
    return np.take(lut, ids, axis=0, out=out)


def apply_lut_fast(ids: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """OpenCV's SIMD lookup for a (256,) table: several times faster than ``np.take``."""
    return cv2.LUT(ids, lut)


def colour_at(ids_small: np.ndarray, palette: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Colours at (height, width) from ids at the model's resolution.

    Nearest-neighbour resizing commutes with a per-pixel lookup, so colouring the small map and
    enlarging it equals colouring the enlarged ids, at a fraction of the memory traffic.
    """
    small = apply_lut(ids_small, palette)
    h, w = size
    if small.shape[:2] == (h, w):
        return small
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def overlay(rgb: np.ndarray, colour: np.ndarray, alpha: float) -> np.ndarray:
    """Colours blended over the camera image; alpha is the colour's weight."""
    return cv2.addWeighted(colour, float(alpha), rgb, 1.0 - float(alpha), 0.0)
