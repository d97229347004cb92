"""Rendering the node's outputs straight into the byte buffers its messages carry.

Each output keeps one ``array.array`` (the type rclpy takes for ``Image.data`` without a
per-element check) and a NumPy view onto it. Outputs are computed from the ids at the model's
size and enlarged with nearest-neighbour resizing directly into that view, so a frame costs one
write per output and no extra copies; rclpy copies the bytes during ``publish``, so the buffer is
free for the next frame when ``publish`` returns.
"""

from __future__ import annotations

import array
import functools
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from seg_perception.core.masks import colourize, group_lut, overlay, packed_palette

MONO = ("mask", "drivable", "obstacles", "confidence")
COLOUR = ("color", "overlay")


class MessageBuffer:
    """A reusable message payload; reallocated only when the frame size changes."""

    def __init__(self) -> None:
        self.data = array.array("B")
        self.array: np.ndarray = np.zeros((0,), np.uint8)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.array.shape != shape:
            self.array = np.zeros((0,), np.uint8)  # drop the old export before reallocating
            self.data = array.array("B", bytes(int(np.prod(shape))))
            self.array = np.frombuffer(self.data, np.uint8).reshape(shape)
        return self.array


def _enlarge(src: np.ndarray, dst: np.ndarray) -> None:
    if src.shape == dst.shape:
        np.copyto(dst, src)
    else:
        cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=cv2.INTER_NEAREST)


def _lut(ids: np.ndarray, lut: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    return cv2.LUT(ids, lut, dst=out)


def _fill(dst: np.ndarray, small_shape: tuple[int, ...],
          compute: Callable[[np.ndarray | None], np.ndarray]) -> None:
    """``compute(out)`` at the model's size, written straight into ``dst`` when that is the size."""
    if dst.shape[:2] == small_shape:
        compute(dst)
    else:
        _enlarge(compute(None), dst)


class OutputRenderer:
    def __init__(self, palette: np.ndarray, drivable_ids: Iterable[int],
                 obstacle_ids: Iterable[int]) -> None:
        self._packed = packed_palette(palette)
        self.luts = {"drivable": group_lut(drivable_ids), "obstacles": group_lut(obstacle_ids)}
        self.buffers = {name: MessageBuffer() for name in (*MONO, *COLOUR)}
        self._scratch = MessageBuffer()

    def payload(self, name: str) -> array.array:
        """The message payload of output ``name``: the memory its rendered view lives in, so a
        message takes it without a copy (valid until the next render at another size)."""
        return self.buffers[name].data

    def iter_render(self, wanted: Iterable[str], small_ids: np.ndarray, rgb: np.ndarray,
                    alpha: float = 0.5, small_conf: np.ndarray | None = None
                    ) -> Iterator[tuple[str, np.ndarray]]:
        """Renders the ``wanted`` outputs one at a time, planner outputs first.

        ``small_ids`` are class ids at the model's size, ``rgb`` the camera frame (output size).
        Yielding lets the node publish the mask before it spends time on the colour images, so a
        planner's latency does not include a visualisation's.
        """
        h, w = rgb.shape[:2]
        wanted = set(wanted)
        for name in MONO:
            if name in wanted:
                if name == "confidence" and small_conf is None:
                    continue
                dst = self.buffers[name].view((h, w))
                if name == "mask":
                    _enlarge(small_ids, dst)
                elif name == "confidence":
                    assert small_conf is not None
                    if small_conf.shape == dst.shape:
                        np.copyto(dst, small_conf)
                    else:  # a probability: bilinear, unlike the ids
                        cv2.resize(small_conf, (w, h), dst=dst, interpolation=cv2.INTER_LINEAR)
                else:
                    lut = self.luts[name]
                    _fill(dst, small_ids.shape, functools.partial(_lut, small_ids, lut))
                yield name, dst
        if wanted & set(COLOUR):
            colour = (self.buffers["color"] if "color" in wanted else self._scratch).view((h, w, 3))
            _fill(colour, small_ids.shape, lambda out: colourize(small_ids, self._packed, out=out))
            if "color" in wanted:
                yield "color", colour
            if "overlay" in wanted:
                dst = self.buffers["overlay"].view((h, w, 3))
                yield "overlay", overlay(rgb, colour, alpha, out=dst)
