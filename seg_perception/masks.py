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


def overlay(rgb: np.ndarray, colour: np.ndarray, alpha: float,
            out: np.ndarray | None = None) -> np.ndarray:
    """Colours blended over the camera image; alpha is the colour's weight."""
    return cv2.addWeighted(colour, float(alpha), rgb, 1.0 - float(alpha), 0.0, dst=out)
