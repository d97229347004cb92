"""Decoding sensor_msgs/Image and CompressedImage payloads to RGB.

Plain functions on fields (encoding, size, step, bytes) so they are tested without ROS. Every
failure is a ``FrameError`` with a message fit for a throttled log line.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from seg_perception.core.errors import FrameError

if TYPE_CHECKING:
    from typing_extensions import Buffer  # bytes, bytearray, memoryview, array.array

DEFAULT_MAX_PIXELS = 4096 * 4096
"""Largest frame decoded (a 4096x4096 camera); bigger declared sizes are refused unread, so one
hostile message cannot take the node's memory (a 629-byte JPEG can declare 16000x16000)."""
SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}


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


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise FrameError(f"zero-size image ({width}x{height})")
    if width * height > max_pixels:
        raise FrameError(f"image of {width}x{height} = {width * height} pixels exceeds "
                         f"max_input_pixels {max_pixels}")


def decode_raw(encoding: str, height: int, width: int, step: int, data: object,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 (H x W x 3) from an Image message's fields; ``data`` is any byte buffer.

    The result may share memory with ``data`` (rgb8 with a dense step): do not write into it.
    """
    enc = encoding.lower()
    bpp = bytes_per_pixel(enc)
    _check_size(width, height, max_pixels)
    row = width * bpp
    if step < row:
        raise FrameError(f"step {step} is smaller than width*{bpp} = {row} for {encoding}")
    # why the ignore below: ROS message data: bytes, array.array or list; numpy reads each
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
    if enc == "rgb8":
        return img if step == row else np.ascontiguousarray(img)
    if enc in ("bgr8", "8uc3"):  # 8UC3 names no order: cv_bridge's passthrough of OpenCV BGR
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if enc == "rgba8":
        return cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    if enc == "bgra8":
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)  # mono8 / 8UC1


def compressed_header(data: Buffer) -> tuple[str, int, int]:
    """(kind, width, height) as the payload's own header declares them, nothing decoded.

    Only JPEG and PNG pass, recognised by their signatures (not by the message's ``format``
    text), so BMP, TIFF, WebP, PPM or HDR payloads never reach a decoder.
    """
    from PIL import Image, UnidentifiedImageError

    head = bytes(memoryview(data)[:8])
    kind = next((k for sig, k in SIGNATURES.items() if head.startswith(sig)), None)
    if kind is None:
        raise FrameError(f"not a JPEG or PNG payload (starts with {head[:4].hex()})")
    try:
        with warnings.catch_warnings():  # a bomb is refused by size below, not warned about
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(data)),
                            formats=[kind.upper()]) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:  # Pillow's own ceiling, far above ours
        raise FrameError(f"{kind} declares a size that exceeds max_input_pixels and Pillow's "
                         f"bomb limit: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FrameError(f"corrupt {kind} header: {exc}") from exc
    return kind, int(width), int(height)


def decode_compressed(fmt: str, data: object,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 from a CompressedImage (jpeg or png; ``format`` as image_transport writes it).

    The declared size is checked against ``max_pixels`` before any pixel is decoded.
    """
    f = fmt.lower()
    if f and not any(k in f for k in ("jpeg", "jpg", "png")):
        raise FrameError(f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    buf = np.frombuffer(data, np.uint8)  # type: ignore[call-overload]  # as above
    if buf.size == 0:
        raise FrameError("empty compressed image")
    kind, width, height = compressed_header(buf)
    _check_size(width, height, max_pixels)
    if kind == "jpeg":
        rgb = _decode_jpeg_strict(buf)
        if rgb is not None:
            return _same_size(rgb, kind, width, height)
    try:
        # The pixels as the sensor laid them out, which camera_info describes: an EXIF
        # orientation (no camera driver writes one) would otherwise rotate them.
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:  # OpenCV's own limits (more than 2^30 pixels) raise, not return
        raise FrameError(f"{kind} cannot be decoded: {exc.err or exc}") from exc
    if img is None or img.size == 0:
        raise FrameError(f"corrupt {kind} data ({buf.size} bytes)")
    return _same_size(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), kind, width, height)


def _same_size(img: np.ndarray, kind: str, width: int, height: int) -> np.ndarray:
    if img.shape[:2] != (height, width):
        raise FrameError(f"{kind} decoded to {img.shape[1]}x{img.shape[0]}, header says "
                         f"{width}x{height}")
    return img


def _decode_jpeg_strict(buf: np.ndarray) -> np.ndarray | None:
    """RGB from a JPEG, refusing what libjpeg only warns about (None without simplejpeg).

    OpenCV and Pillow decode a JPEG whose scan ends early by filling the rest with grey: a
    3 KB frame with a patched header became a 4096x4096 "image", published as valid. libjpeg-
    turbo's stop-on-warning (simplejpeg's ``strict``) refuses it; pixels are OpenCV's exactly.
    No EXIF orientation is applied, as with OpenCV's IMREAD_IGNORE_ORIENTATION.
    """
    try:
        import simplejpeg
    except ImportError:  # a ROS workspace without it: OpenCV, lenient (README says so)
        return None
    try:
        return np.asarray(simplejpeg.decode_jpeg(buf, colorspace="RGB", strict=True))
    except ValueError as exc:
        raise FrameError(f"corrupt jpeg data ({buf.size} bytes): {exc}") from exc


def decode_message(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB from a sensor_msgs Image or CompressedImage, rclpy's or rosbags' (by their fields):
    the one decoder the node, evaluation and INT8 calibration share, so a padded row or a
    hostile payload is treated the same everywhere."""
    if hasattr(msg, "encoding"):
        return decode_raw(msg.encoding, msg.height, msg.width, msg.step,
                          msg.data, max_pixels)
    if hasattr(msg, "format"):
        return decode_compressed(msg.format, msg.data, max_pixels)
    raise FrameError(f"not an image message: {type(msg).__name__}")
