"""Outputs rendered into reusable message buffers equal the straightforward full-size versions."""

from __future__ import annotations

import cv2
import numpy as np

from seg_perception.core.classes import CAMVID
from seg_perception.node.outputs import OutputRenderer


def setup(rng):
    small = cv2.resize(rng.integers(0, 11, (6, 8), dtype=np.uint8), (128, 96),
                       interpolation=cv2.INTER_NEAREST)
    rgb = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    r = OutputRenderer(CAMVID.palette_array(), [3], [8, 9, 10, 2, 7, 6])
    return small, rgb, r


ALL = ["mask", "color", "overlay", "drivable", "obstacles"]


def render(r: OutputRenderer, *args: object) -> dict[str, np.ndarray]:
    return dict(r.iter_render(*args))  # type: ignore[arg-type]


def check_against_reference(r: OutputRenderer, out: dict, ids: np.ndarray,
                            rgb: np.ndarray) -> None:
    """Every output equals its straightforward version from full-size ids (alpha 0.3)."""
    np.testing.assert_array_equal(out["mask"], ids)
    np.testing.assert_array_equal(out["drivable"], (ids == 3) * 255)
    np.testing.assert_array_equal(out["obstacles"], np.isin(ids, [8, 9, 10, 2, 7, 6]) * 255)
    colour = CAMVID.palette_array()[ids]
    np.testing.assert_array_equal(out["color"], colour)
    np.testing.assert_array_equal(out["overlay"], cv2.addWeighted(colour, 0.3, rgb, 0.7, 0))
    for name, view in out.items():  # written into the buffers that get published
        assert bytes(r.buffers[name].data) == view.tobytes()


def test_every_output_matches_full_size_reference(rng):
    small, rgb, r = setup(rng)
    out = render(r, ALL, small, rgb, 0.3)
    check_against_reference(r, out, cv2.resize(small, (400, 300),
                                                interpolation=cv2.INTER_NEAREST), rgb)


def test_views_are_the_message_buffers_and_are_reused(rng):
    small, rgb, r = setup(rng)
    first = render(r, ["mask", "overlay"], small, rgb)
    data = r.buffers["mask"].data
    assert bytes(data) == first["mask"].tobytes()  # the view writes into what gets published
    assert set(first) == {"mask", "overlay"}  # colour went to scratch, not published
    second = render(r, ["mask"], np.zeros_like(small), rgb)
    assert r.buffers["mask"].data is data  # same size: no reallocation
    assert bytes(data) == bytes(len(data)) and second["mask"].max() == 0
    render(r, ["mask"], small, rgb[:100, :200])
    assert len(r.buffers["mask"].data) == 100 * 200  # a new frame size gets a new buffer


def test_same_size_frames_are_written_without_resizing(rng):
    small, _, r = setup(rng)
    rgb = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    check_against_reference(r, render(r, ALL, small, rgb, 0.3), small, rgb)


def test_planner_outputs_come_before_colour_images(rng):
    """The node publishes each output as it is yielded: masks must not wait for colours."""
    small, rgb, r = setup(rng)
    order = [name for name, _ in r.iter_render(["overlay", "color", "obstacles", "mask",
                                                "drivable"], small, rgb)]
    assert order == ["mask", "drivable", "obstacles", "color", "overlay"]
