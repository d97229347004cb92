"""The photometric changes shared by training augmentation and bench_shift."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.datasets import photometric as ph
from seg_perception.datasets.camvid import Augment


@pytest.fixture
def frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(20, 236, (24, 32, 3)).astype(np.uint8)


def test_gamma_darkens_or_lifts_mid_tones_and_keeps_the_ends():
    f = np.array([0.0, 64.0, 128.0, 255.0], np.float32)
    dusk, glare = ph.gamma(f, 1.8), ph.gamma(f, 0.55)
    assert dusk[0] == glare[0] == 0 and dusk[-1] == glare[-1] == 255
    assert (dusk[1:3] < f[1:3]).all() and (glare[1:3] > f[1:3]).all()


def test_contrast_keeps_the_mean_and_saturation_zero_is_grey(frame):
    f = frame.astype(np.float32)
    assert ph.contrast(f, 1.3).mean() == pytest.approx(f.mean(), rel=1e-5)
    grey = ph.saturation(f, 0.0)
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])


def test_colour_cast_scales_each_channel(frame):
    out = ph.colour_cast(frame.astype(np.float32), (1.0, 0.5, 2.0))
    assert np.allclose(out[..., 1], frame[..., 1] * 0.5)
    assert np.allclose(out[..., 2], frame[..., 2] * 2.0)
    assert ph.to_uint8(out).max() == 255  # clipped, not wrapped


def test_noise_is_seeded_and_blur_smooths(frame):
    a = ph.noise(frame, 8.0, np.random.default_rng(1))
    b = ph.noise(frame, 8.0, np.random.default_rng(1))
    assert a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, frame)
    assert ph.blur(frame, 1.5).astype(np.float32).std() < frame.astype(np.float32).std()


@pytest.mark.parametrize("mode", ["basic", "strong"])
def test_augment_changes_pixels_never_labels(frame, mode):
    """Photometric changes leave the label where the geometry put it: with scale 1 and a full
    crop, the label is the input's or its mirror."""
    lab = np.random.default_rng(2).integers(0, 11, frame.shape[:2]).astype(np.uint8)
    aug = Augment((24, 32), (1.0, 1.0), seed=0, photometric=mode)
    for _ in range(8):
        img, out = aug(frame, lab)
        assert img.shape == frame.shape and img.dtype == np.uint8
        assert np.array_equal(out, lab) or np.array_equal(out, lab[:, ::-1])


def test_augment_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="photometric"):
        Augment((8, 8), photometric="extreme")
