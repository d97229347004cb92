"""Pure parts of the node: configuration rules, the one-slot mailbox, stats, masks, pipeline."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from seg_perception.core.classes import CAMVID, ClassSet
from seg_perception.core.errors import ConfigError
from seg_perception.core.masks import apply_lut, colourize, group_lut, overlay, packed_palette
from seg_perception.core.resize import resize_ids, resize_rgb
from seg_perception.inference.factory import create_backend
from seg_perception.inference.segmenter import Segmenter
from seg_perception.node.config import validate
from seg_perception.node.slot import LatestSlot
from seg_perception.node.stats import NodeStats

GOOD = {
    "model": "m.onnx", "backend": "auto", "precision": "fp32", "input_size": [0, 0], "threads": 2,
    "engine_dir": "", "force_rebuild": False, "dla_core": -1, "image_topic": "/camera/image_raw",
    "input_transport": "raw", "qos_reliability": "best_effort", "qos_depth": 1,
    "overlay_alpha": 0.5, "diagnostics_period": 1.0, "max_frame_age": 0.5,
    "warn_latency_ms": 100.0, "drivable_classes": ["Road"], "obstacle_classes": ["Car", "Pole"],
    "publish_mask": True, "publish_color": False, "publish_overlay": True,
    "publish_drivable": True, "publish_obstacles": False,
}


def test_valid_config():
    cfg = validate(GOOD, CAMVID)
    assert cfg.input_size is None
    assert cfg.drivable_ids == (3,)
    assert cfg.obstacle_ids == (8, 2)
    assert cfg.outputs == {"mask", "overlay", "drivable"}
    assert validate({**GOOD, "input_size": [180, 240]}, CAMVID).input_size == (180, 240)


@pytest.mark.parametrize(("param", "value"), [
    ("backend", "cuda"), ("precision", "bf16"), ("input_size", [10, 10]),
    ("input_size", [1, 2, 3]), ("threads", 0), ("qos_depth", 0), ("overlay_alpha", 1.5),
    ("input_transport", "ffmpeg"), ("qos_reliability", "sometimes"),
    ("drivable_classes", ["Runway"]), ("obstacle_classes", ["Car", "Dragon"]),
    ("image_topic", ""), ("max_frame_age", 0.0), ("diagnostics_period", -1.0),
])
def test_bad_config_names_parameter(param, value):
    with pytest.raises(ConfigError, match=f"parameter '{param}'") as err:
        validate({**GOOD, param: value}, CAMVID)
    assert err.value.param == param


def test_slot_keeps_only_newest_and_counts_replacements():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.take(0.01) == 3
    assert slot.take(0.01) is None


def test_slot_wakes_consumer_and_closes():
    slot: LatestSlot[int] = LatestSlot()
    got: list[int | None] = []
    t = threading.Thread(target=lambda: got.append(slot.take(5)))
    t.start()
    time.sleep(0.05)
    slot.put(7)
    t.join(1)
    assert got == [7]
    slot.close()
    assert slot.take(5) is None


def test_stats_window():
    s = NodeStats()
    for _ in range(4):
        s.count("received")
    s.count("dropped")
    s.published(0.010, 0.008)
    s.published(0.030, 0.020)
    r = s.roll()
    assert r.dropped == 1 and r.totals["received"] == 4 and r.totals["published"] == 2
    assert r.latency_p50_ms == pytest.approx(20.0)
    r2 = s.roll()
    assert r2.dropped == 0 and np.isnan(r2.latency_p50_ms) and r2.totals["published"] == 2


def test_masks():
    ids = np.array([[0, 3, 8], [2, 255, 3]], np.uint8)
    np.testing.assert_array_equal(apply_lut(ids, group_lut([3])),
                                  [[0, 255, 0], [0, 0, 255]])
    np.testing.assert_array_equal(apply_lut(ids, group_lut([8, 2])),
                                  [[0, 0, 255], [255, 0, 0]])
    colour = apply_lut(ids, CAMVID.palette_array())
    assert colour.shape == (2, 3, 3)
    assert tuple(colour[0, 1]) == CAMVID.palette[3] and tuple(colour[1, 1]) == (0, 0, 0)
    packed = packed_palette(CAMVID.palette_array())
    np.testing.assert_array_equal(colourize(ids, packed), colour)
    big = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)
    out = np.empty((37, 53, 3), np.uint8)
    assert colourize(big, packed, out=out) is out
    np.testing.assert_array_equal(out, CAMVID.palette_array()[big])
    rgb = np.full((2, 3, 3), 100, np.uint8)
    np.testing.assert_array_equal(overlay(rgb, colour, 0.0), rgb)
    np.testing.assert_array_equal(overlay(rgb, colour, 1.0), colour)


def test_class_set_rules(tmp_path):
    with pytest.raises(ValueError, match="palette"):
        ClassSet(names=("a", "b"), palette=((0, 0, 0),))
    with pytest.raises(ValueError, match="unknown class"):
        ClassSet(names=("a",), palette=((0, 0, 0),), drivable=("b",))
    with pytest.raises(ValueError, match=r"palette colour 1 \('b'\).*0\.\.255"):
        ClassSet(names=("a", "b"), palette=((0, 0, 0), (0, 256, 0)))
    with pytest.raises(ValueError, match="palette colour 0"):
        ClassSet(names=("a",), palette=((0, 0),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 255"):  # ids are uint8, 255 is 'not scored'
        ClassSet(names=tuple(f"c{i}" for i in range(256)), palette=((0, 0, 0),) * 256)
    full = ClassSet(names=tuple(f"c{i}" for i in range(255)), palette=((0, 0, 0),) * 255)
    assert full.palette_array().shape == (256, 3)
    f = tmp_path / "c.json"
    f.write_text('{"names": ["road", "car"], "palette": [[1,2,3],[4,5,6]], "ignore_id": 9}')
    cs = ClassSet.load(f)
    assert cs.num_classes == 2 and cs.ignore_id == 9
    f.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ClassSet.load(f)


def test_segmenter_returns_ids_at_frame_size(tiny_onnx, rng):
    seg = Segmenter(create_backend(tiny_onnx))
    assert seg.input_size == (96, 128)
    frame = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    ids = seg.predict(frame)
    assert ids.shape == (200, 300) and ids.dtype == np.uint8 and ids.max() < 11
    assert set(np.unique(resize_ids(ids, (50, 75)))) <= set(np.unique(ids))
    with pytest.raises(ValueError, match="input_size"):
        Segmenter(seg.backend, (8, 8))


def test_resize_shrinks_like_an_area_filter(rng):
    """The halving cascade must stay antialiased: close to INTER_AREA, far from plain bilinear."""
    noise = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(noise, (0, 0), 1.0)  # detail finer than the target's pixels
    area = cv2.resize(texture, (480, 360), interpolation=cv2.INTER_AREA).astype(int)
    ours = resize_rgb(texture, (360, 480))
    assert ours.shape == (360, 480, 3) and ours.dtype == np.uint8
    plain = cv2.resize(texture, (480, 360), interpolation=cv2.INTER_LINEAR).astype(int)
    err, aliased = np.abs(ours - area).mean(), np.abs(plain - area).mean()
    assert err < 0.3 * aliased, (err, aliased)
    # An exact 2x shrink is a 2x2 box average (rounding aside).
    half = resize_rgb(noise[:720, :960], (360, 480)).astype(int)
    box = noise[:720, :960].reshape(360, 2, 480, 2, 3).astype(int).mean(axis=(1, 3))
    assert np.abs(half - box).max() <= 1
    # Growing and same size.
    assert resize_rgb(noise[:90, :120], (360, 480)).shape == (360, 480, 3)
    same = noise[:360, :480]
    assert resize_rgb(same, (360, 480)) is same
    assert resize_rgb(noise[:200, :900], (360, 480)).shape == (360, 480, 3)  # one axis grows


def test_node_runtime_imports_stay_light(tiny_onnx):
    """The node on ONNX Runtime must not pay for torch (or matplotlib) at start-up."""
    import subprocess
    import sys

    code = ("import sys, seg_perception.node.node\n"
            "from seg_perception.inference.factory import create_backend\n"
            f"create_backend({str(tiny_onnx)!r}, 'onnxruntime').infer("
            "__import__('numpy').zeros((96, 128, 3), 'uint8'))\n"
            "heavy = [m for m in ('torch', 'matplotlib', 'tensorrt') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_stamp_gaps_count_frames_never_seen():
    from seg_perception.node.stats import StampGaps

    period = 33_333_333  # 30 Hz
    g = StampGaps()
    stamps = [i * period for i in range(20)]  # learns the period
    assert sum(g.add(s) for s in stamps) == 0
    # 2 frames lost, then 1, then 20 % late (no loss), then 10 lost in a row: each counted
    # when the next one-period gap confirms the period.
    later = [23, 25, 26, 27, 38, 39]
    got = [g.add(s * period + (period // 5 if s == 26 else 0)) for s in [20, *later]]
    assert got == [0, 0, 0, 3, 0, 0, 10]
    assert g.add(40 * period + 2_000_000_000) == 0  # a 2 s pause: camera stopped, no loss
    assert g.add(5 * period) == 0  # stamps went back (bag loop): no count, new reference
    assert g.add(6 * period) == 0


def test_stamp_gaps_learn_no_period_from_stamps_too_close_for_a_camera():
    """Stamps 1 ns apart, then a 0.9 s gap closed by a 1 ns one: no 9e8 lost frames."""
    from seg_perception.node.stats import StampGaps

    g = StampGaps()
    t = 1_000_000_000
    for _ in range(9):
        t += 1
        assert g.add(t) == 0
    assert g.add(t + 900_000_000) == 0 and g.add(t + 900_000_001) == 0
    # a 1 kHz camera is still one: its lost frame is counted
    g = StampGaps()
    for k in range(1, 20):
        g.add(k * 1_000_000)
    assert g.add(21 * 1_000_000) == 0 and g.add(22 * 1_000_000) == 1


def test_stamp_gaps_take_jitter_and_a_slower_camera_as_no_loss():
    from seg_perception.node.stats import StampGaps

    p = 20_000_000  # 50 Hz
    g = StampGaps()
    t = 0
    for _ in range(20):
        t += p
        g.add(t)
    # A publisher that stamps late then early (1.7 periods, then 0.3): nothing was lost.
    found = 0
    for _ in range(10):
        found += g.add(t + int(1.7 * p))
        t += 2 * p
        found += g.add(t)
    assert found == 0
    # The camera halves its rate (50 -> 25 Hz): a new period, not a stream of lost frames.
    found = sum(g.add(t + k * 2 * p) for k in range(1, 41))
    t += 40 * 2 * p
    assert found == 0
    # ... and a real loss at the new rate is still seen (one 25 Hz frame).
    assert g.add(t + 4 * p) == 0 and g.add(t + 6 * p) == 1


def test_never_seen_frames_reach_the_diagnostics_window():
    s = NodeStats()
    s.count("never_seen", 4)
    r = s.roll()
    assert r.never_seen == 4 and r.totals["never_seen"] == 4
    assert s.roll().never_seen == 0
