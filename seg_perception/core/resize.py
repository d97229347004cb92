"""Resizing frames to the model and class ids back, with the filters each needs."""

from __future__ import annotations

import cv2
import numpy as np


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """To (height, width), antialiased when shrinking, bilinear when growing.

    Shrinking halves with bilinear steps (an exact 2x2 box average) while the frame is at least
    twice the target, then finishes bilinearly: within a few grey levels of an area filter and
    3x faster at 1920x1080 -> 480x360 (0.4 vs 1.0-1.6 ms), where the area filter alone was the
    node's largest cost outside the backend.
    """
    h, w = size
    while rgb.shape[0] >= 2 * h and rgb.shape[1] >= 2 * w:
        rgb = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2),
                         interpolation=cv2.INTER_LINEAR)
    if rgb.shape[:2] == (h, w):
        return rgb
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)


def resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class ids back to the frame's (height, width): nearest, so no invented ids."""
    h, w = size
    if ids.shape == (h, w):
        return ids
    return cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)
