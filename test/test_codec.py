"""Decoding every supported encoding to the same RGB, and every kind of bad frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from seg_perception.core.codec import decode_compressed, decode_raw
from seg_perception.core.errors import FrameError


@pytest.fixture()
def rgb(rng):
    return cv2.resize(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), (40, 30),
                      interpolation=cv2.INTER_LINEAR)


def raw(img: np.ndarray) -> tuple[int, int, int, bytes]:
    h, w = img.shape[:2]
    c = img.shape[2] if img.ndim == 3 else 1
    return h, w, w * c, np.ascontiguousarray(img).tobytes()


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3"])
def test_colour_encodings_decode_to_identical_rgb(rgb, enc):
    """8UC3 is what cv_bridge.cv2_to_imgmsg sends for an OpenCV (BGR) image by default; read as
    RGB, red and blue swapped silently."""
    conv = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "8UC3": rgb[..., ::-1],
            "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
            "bgra8": np.dstack([rgb[..., ::-1], np.zeros(rgb.shape[:2], np.uint8)])}[enc]
    np.testing.assert_array_equal(decode_raw(enc, *raw(conv)), rgb)


def test_padded_rows_are_honoured(rgb):
    h, w = rgb.shape[:2]
    padded = np.zeros((h, w * 3 + 8), np.uint8)
    padded[:, : w * 3] = rgb.reshape(h, -1)
    np.testing.assert_array_equal(decode_raw("rgb8", h, w, w * 3 + 8, padded.tobytes()), rgb)


def test_mono8_becomes_grey_rgb(rgb):
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = decode_raw("mono8", *raw(grey))
    assert out.shape == rgb.shape
    np.testing.assert_array_equal(out[..., 0], grey)
    np.testing.assert_array_equal(out[..., 2], grey)


def _yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    # BT.601 video range, as cameras send it and OpenCV's YUV422 conversions expect
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = np.clip(16 + 0.257 * r + 0.504 * g + 0.098 * b, 0, 255).round()
    u_full = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v_full = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u = np.clip((u_full[:, 0::2] + u_full[:, 1::2]) / 2, 0, 255).round()
    v = np.clip((v_full[:, 0::2] + v_full[:, 1::2]) / 2, 0, 255).round()
    out = np.zeros((rgb.shape[0], rgb.shape[1] * 2), np.uint8)
    if order == "uyvy":
        out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = y[:, 0::2], u, y[:, 1::2], v
    return out


@pytest.mark.parametrize(("enc", "order"), [("yuv422", "uyvy"), ("uyvy", "uyvy"),
                                            ("yuyv", "yuyv"), ("yuv422_yuy2", "yuyv")])
def test_yuv422_variants(rgb, enc, order):
    packed = _yuv422(rgb, order)
    h, w = rgb.shape[:2]
    out = decode_raw(enc, h, w, w * 2, packed.tobytes())
    # chroma is subsampled: compare within a tolerance
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 6


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    chan = {"r": 0, "g": 1, "b": 2}
    out = np.zeros(rgb.shape[:2], np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, chan[pattern[k]]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns(pattern):
    flat = np.zeros((32, 32, 3), np.uint8)
    flat[...] = (200, 100, 30)  # a uniform colour survives demosaicing exactly away from borders
    out = decode_raw(f"bayer_{pattern}8", *raw(_mosaic(flat, pattern)))
    np.testing.assert_array_equal(out[4:-4, 4:-4], flat[4:-4, 4:-4])


def test_compressed_png_is_lossless_and_jpeg_close(rgb):
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    png = cv2.imencode(".png", bgr)[1].tobytes()
    np.testing.assert_array_equal(decode_compressed("png", png), rgb)
    jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert np.abs(decode_compressed("rgb8; jpeg compressed bgr8", jpg).astype(int)
                  - rgb.astype(int)).mean() < 4


@pytest.mark.parametrize(("args", "message"), [
    (("rgb16", 2, 2, 12, bytes(24)), "unsupported encoding"),
    (("rgb8", 0, 4, 12, b""), "zero-size"),
    (("rgb8", 2, 4, 8, bytes(16)), "step 8 is smaller"),
    (("rgb8", 2, 4, 12, bytes(20)), "truncated"),
    (("rgb8", 2, 4, 12, bytes(30)), "oversized"),
    (("rgb8", 2, 4, 12, b""), "truncated"),
    (("yuv422", 2, 3, 6, bytes(12)), "even width"),
])
def test_bad_raw_frames(args, message):
    with pytest.raises(FrameError, match=message):
        decode_raw(*args)


def test_bad_compressed_frames(rgb):
    jpg = cv2.imencode(".jpg", rgb)[1].tobytes()
    with pytest.raises(FrameError, match="empty"):
        decode_compressed("jpeg", b"")
    with pytest.raises(FrameError, match="corrupt"):
        decode_compressed("jpeg", b"\xff\xd8\xff" + bytes(100))
    with pytest.raises(FrameError, match="corrupt"):
        decode_compressed("jpeg", jpg[:20])
    with pytest.raises(FrameError, match="unsupported compressed format"):
        decode_compressed("theora", jpg)



def test_a_jpeg_whose_scan_ends_early_is_corrupt_not_grey(rgb):
    """OpenCV fills a JPEG whose data runs out with grey and returns it: a 3 KB message with a
    patched header became a 4096x4096 frame, served as valid. Strict decoding refuses it, and
    truncation anywhere in the scan."""
    small = cv2.resize(rgb, (128, 96))
    patched = _jpeg_declaring(small, 4096, 4096)
    assert cv2.imdecode(np.frombuffer(patched, np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(FrameError, match="corrupt jpeg data.*premature end"):
        decode_compressed("jpeg", patched)
    jpg = cv2.imencode(".jpg", small)[1].tobytes()
    for frac in (0.5, 0.9, 0.99):
        with pytest.raises(FrameError, match="corrupt jpeg"):
            decode_compressed("jpeg", jpg[: int(len(jpg) * frac)])


@pytest.mark.parametrize("kind", ["colour", "grey", "progressive", "cmyk"])
def test_strict_jpeg_pixels_are_opencvs(rgb, kind):
    import io

    from PIL import Image

    img = Image.fromarray(rgb)
    img = {"colour": img, "grey": img.convert("L"), "progressive": img,
           "cmyk": img.convert("CMYK")}[kind]
    bio = io.BytesIO()
    img.save(bio, "JPEG", quality=90, progressive=kind == "progressive")
    data = bio.getvalue()
    ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    out = decode_compressed("jpeg", data)
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - ref[..., ::-1].astype(int)).max() <= (2 if kind == "cmyk"
                                                                           else 0)


def test_without_simplejpeg_jpegs_still_decode(rgb, monkeypatch):
    """A ROS workspace without simplejpeg decodes JPEG through OpenCV (lenient, as README says)."""
    import sys

    monkeypatch.setitem(sys.modules, "simplejpeg", None)  # import raises ImportError
    jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY,
                                                                        95])[1].tobytes()
    assert np.abs(decode_compressed("jpeg", jpg).astype(int) - rgb.astype(int)).mean() < 4


def _jpeg_declaring(rgb: np.ndarray, width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header claims another size (the 629-byte bomb's trick)."""
    data = bytearray(cv2.imencode(".jpg", rgb)[1].tobytes())
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):  # walk markers to the start-of-frame
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    data[i + 5:i + 7] = height.to_bytes(2, "big")
    data[i + 7:i + 9] = width.to_bytes(2, "big")
    return bytes(data)


def _png_declaring(rgb: np.ndarray, width: int, height: int) -> bytes:
    import struct
    import zlib

    data = bytearray(cv2.imencode(".png", rgb)[1].tobytes())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_decompression_bombs_are_refused_before_decoding(rgb, kind):
    make = _jpeg_declaring if kind == "jpeg" else _png_declaring
    bomb = make(rgb, 16000, 16000)
    with pytest.raises(FrameError, match="exceeds max_input_pixels"):
        decode_compressed(kind, bomb)
    # The limit is a parameter: a frame within it still decodes.
    assert decode_compressed(kind, make(rgb, 40, 30), max_pixels=40 * 30).shape == (30, 40, 3)
    with pytest.raises(FrameError, match="exceeds max_input_pixels"):
        decode_compressed(kind, make(rgb, 40, 30), max_pixels=40 * 30 - 1)


def test_beyond_opencv_limit_is_a_frame_error_not_a_crash(rgb):
    """More than 2^30 pixels makes cv2.imdecode raise cv2.error; with the limit lifted that must
    still be a FrameError (the worker counts it and goes on)."""
    with pytest.raises(FrameError):
        decode_compressed("jpeg", _jpeg_declaring(rgb, 65000, 65000), max_pixels=2**40)


@pytest.mark.parametrize("ext", [".bmp", ".tiff", ".webp", ".ppm", ".hdr"])
@pytest.mark.parametrize("fmt", ["jpeg", "png", ""])
def test_other_image_formats_never_reach_a_decoder(rgb, ext, fmt):
    ok, enc = cv2.imencode(ext, rgb.astype(np.float32) if ext == ".hdr" else rgb)
    assert ok
    with pytest.raises(FrameError, match="not a JPEG or PNG"):
        decode_compressed(fmt, enc.tobytes())


def test_raw_frames_have_the_same_size_limit():
    with pytest.raises(FrameError, match="exceeds max_input_pixels"):
        decode_raw("mono8", 5000, 5000, 5000, b"")  # refused before the data is even looked at
    assert decode_raw("mono8", 2, 2, 2, bytes(4), max_pixels=4).shape == (2, 2, 3)


def test_one_decoder_for_messages_of_either_kind(rgb):
    """The node, evaluation and calibration all decode through decode_message: a padded row is
    honoured and a hostile payload refused the same way everywhere."""
    from types import SimpleNamespace

    from seg_perception.core.codec import decode_message

    h, w = rgb.shape[:2]
    padded = np.zeros((h, w * 3 + 8), np.uint8)
    padded[:, : w * 3] = rgb.reshape(h, -1)
    raw = SimpleNamespace(encoding="rgb8", height=h, width=w, step=w * 3 + 8,
                          data=padded.tobytes())
    np.testing.assert_array_equal(decode_message(raw), rgb)
    png = SimpleNamespace(format="png", data=cv2.imencode(".png", rgb[..., ::-1])[1].tobytes())
    np.testing.assert_array_equal(decode_message(png), rgb)
    with pytest.raises(FrameError, match="exceeds max_input_pixels"):
        decode_message(raw, max_pixels=10)
    with pytest.raises(FrameError, match="not an image message"):
        decode_message(SimpleNamespace(data=b""))


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 EXIF segment whose IFD0 holds only Orientation (tag 0x0112)."""
    import struct

    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def test_exif_orientation_is_ignored():
    """A JPEG saying 'rotate 90' decodes as its pixels lie (as camera_info describes them)."""
    from seg_perception.core.codec import decode_compressed

    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = (255, 0, 0)
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    tagged = _with_exif_orientation(enc.tobytes(), 6)
    assert cv2.imdecode(np.frombuffer(tagged, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (40, 20)
    out = decode_compressed("jpeg", tagged)
    assert out.shape == (20, 40, 3) and out[10, 5, 0] > 200 and out[10, 35, 0] < 50
