"""Photometric changes, one function each, with their amounts given.

Training augmentation draws the amounts at random; ``bench/bench_shift.py`` applies fixed ones
to measure how a model's score falls under other light. Both call these, so the shift the bench
measures is the change the model trained on, only at chosen strength.

The colour functions work on float32 RGB in 0..255 and leave clipping to ``to_uint8`` (clipping
between steps would change the result); ``blur`` and ``noise`` take and return uint8 frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def brightness(f: np.ndarray, k: float) -> np.ndarray:
    return f * k


def contrast(f: np.ndarray, k: float) -> np.ndarray:
    """Scales the distance from the frame's mean grey level."""
    mean = f.mean()
    return (f - mean) * k + mean


def saturation(f: np.ndarray, k: float) -> np.ndarray:
    """Scales each pixel's distance from its own grey."""
    grey = f.mean(axis=2, keepdims=True)
    return (f - grey) * k + grey


def colour_cast(f: np.ndarray, gains: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-channel gains: a white balance or a tint of the light."""
    return f * np.asarray(gains, np.float32)


def gamma(f: np.ndarray, g: float) -> np.ndarray:
    """g > 1 darkens the mid-tones (dusk), g < 1 lifts them (glare, overexposure)."""
    return 255.0 * (np.clip(f, 0, 255) / 255.0) ** g


def to_uint8(f: np.ndarray) -> np.ndarray:
    return np.clip(f, 0, 255).astype(np.uint8)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Soft focus or motion smear, as a Gaussian of ``sigma`` pixels."""
    return cv2.GaussianBlur(img, (0, 0), sigma)


def noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise: Gaussian, ``sigma`` grey levels."""
    n = rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8)
