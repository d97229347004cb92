"""Decoding sensor_msgs/Image and CompressedImage payloads to RGB.

Plain functions on fields (encoding, size, step, bytes) so they are tested without ROS. Every
failure is a ``FrameError`` with a message fit for a throttled log line.
"""

from __future__ import annotations

import cv2
import numpy as np


class FrameError(ValueError):
    """A frame that cannot be used; the node counts it and keeps serving."""


# encoding -> (bytes per pixel, converter to RGB or None for a direct view)
_BAYER = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,  # OpenCV names Bayer patterns from the 2nd row
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
_YUV = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,  # ROS 'yuv422' is UYVY
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "8uc3": 3}
SUPPORTED_ENCODINGS = tuple(_CHANNELS) + tuple(_YUV) + tuple(_BAYER)


def bytes_per_pixel(encoding: str) -> int:
    if encoding in _CHANNELS:
        return _CHANNELS[encoding]
    if encoding in _YUV:
        return 2
    if encoding in _BAYER:
        return 1
    raise FrameError(f"unsupported encoding {encoding!r}; "
                     f"supported: {', '.join(SUPPORTED_ENCODINGS)}")


def decode_raw(encoding: str, height: int, width: int, step: int, data: object) -> np.ndarray:
    """RGB uint8 (H x W x 3) from an Image message's fields; ``data`` is any byte buffer.

    The result may share memory with ``data`` (rgb8 with a dense step): do not write into it.
    """
    enc = encoding.lower()
    bpp = bytes_per_pixel(enc)
    if height <= 0 or width <= 0:
        raise FrameError(f"zero-size image ({width}x{height})")
    row = width * bpp
    if step < row:
        raise FrameError(f"step {step} is smaller than width*{bpp} = {row} for {encoding}")
    buf = np.frombuffer(data, np.uint8)  # type: ignore[call-overload]
    need = step * height
    if buf.size != need:
        what = "truncated" if buf.size < need else "oversized"
        raise FrameError(f"{what} data: {buf.size} bytes, expected step*height = {need}")
    img = buf.reshape(height, step)[:, :row]
    if enc in _YUV:
        if width % 2:
            raise FrameError(f"{encoding} needs an even width, got {width}")
        return cv2.cvtColor(np.ascontiguousarray(img).reshape(height, width, 2), _YUV[enc])
    if enc in _BAYER:
        return cv2.cvtColor(np.ascontiguousarray(img), _BAYER[enc])
    img = img.reshape(height, width, bpp)
    if enc in ("rgb8", "8uc3"):
        return img if step == row else np.ascontiguousarray(img)
    if enc == "bgr8":
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if enc == "rgba8":
        return cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    if enc == "bgra8":
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)  # mono8 / 8UC1


def decode_compressed(fmt: str, data: object) -> np.ndarray:
    """RGB uint8 from a CompressedImage (jpeg or png; ``format`` as image_transport writes it)."""
    f = fmt.lower()
    if f and not any(k in f for k in ("jpeg", "jpg", "png")):
        raise FrameError(f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    buf = np.frombuffer(data, np.uint8)  # type: ignore[call-overload]
    if buf.size == 0:
        raise FrameError("empty compressed image")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise FrameError(f"corrupt {fmt or 'compressed'} data ({buf.size} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

