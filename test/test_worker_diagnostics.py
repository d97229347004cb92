"""The worker's per-frame step and the diagnostics status, as pure functions: every outcome,
every level and message, survival after a backend error; no ROS, no clock."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.errors import FrameError
from seg_perception.node.diagnostics import LOST_UNREPORTED, Level, health, values
from seg_perception.node.stats import NodeStats, WindowReport
from seg_perception.node.worker import Outcome, serve_frame

RGB = np.zeros((4, 4, 3), np.uint8)


def window(**kw: object) -> WindowReport:
    base: dict = dict(period_s=1.0, input_fps=30.0, output_fps=30.0, latency_p50_ms=20.0,
                      latency_p95_ms=30.0, backend_p50_ms=15.0, backend_p95_ms=20.0,
                      overhead_p50_ms=5.0, dropped=0, bad=0, errors=0, lost=0)
    return WindowReport(**{**base, **kw})


def decode_ok() -> np.ndarray:
    return RGB


def test_a_stale_frame_is_dropped_before_any_work():
    calls: list[str] = []
    r = serve_frame(0.6, 0.5, lambda: calls.append("decode") or RGB,
                    lambda rgb: calls.append("process") or 0.0, lambda: False)
    assert r.outcome is Outcome.STALE and calls == []


def test_a_frame_at_the_age_limit_is_served():
    got: list[np.ndarray] = []
    r = serve_frame(0.5, 0.5, decode_ok, lambda rgb: got.append(rgb) or 0.004, lambda: False)
    assert r.outcome is Outcome.PUBLISHED and r.backend_s == 0.004
    assert got == [RGB]


def test_an_undecodable_frame_is_bad_with_the_reason():
    def bad() -> np.ndarray:
        raise FrameError("truncated data")

    r = serve_frame(0.0, 0.5, bad, lambda rgb: 0.0, lambda: False)
    assert r.outcome is Outcome.BAD and r.detail == "truncated data"


def test_any_decoder_fault_is_bad_not_fatal():
    def broken() -> np.ndarray:
        raise MemoryError("cv2 ran out")

    assert serve_frame(0.0, 0.5, broken, lambda rgb: 0.0, lambda: False).outcome is Outcome.BAD


def test_a_backend_error_is_counted_and_the_next_frame_is_served():
    stats = NodeStats()
    fails = iter([True, False])

    def process(rgb: np.ndarray) -> float:
        if next(fails):
            raise RuntimeError("context is invalid")
        return 0.005

    for _ in range(2):
        r = serve_frame(0.0, 0.5, decode_ok, process, lambda: False)
        stats.count(r.outcome.value) if r.outcome is not Outcome.PUBLISHED \
            else stats.published(0.01, r.backend_s)
    assert stats.totals["errors"] == 1 and stats.totals["published"] == 1


def test_a_frame_nobody_reads_is_decoded_not_inferred():
    calls: list[str] = []
    r = serve_frame(0.0, 0.5, lambda: calls.append("decode") or RGB,
                    lambda rgb: calls.append("process") and None, lambda: False)
    assert r.outcome is Outcome.UNSUBSCRIBED and calls == ["decode", "process"]
    stats = NodeStats()
    stats.count("received")
    stats.count(r.outcome.value)
    w = stats.roll()
    assert w.unsubscribed == 1 and w.stalled_windows == 0 and w.output_fps == 0


def test_an_error_while_closing_is_not_counted_as_one():
    def process(rgb: np.ndarray) -> float:
        raise RuntimeError("context is invalid")

    r = serve_frame(0.0, 0.5, decode_ok, process, lambda: True)
    assert r.outcome is Outcome.SHUTDOWN and r.detail == ""  # nothing to count or log


@pytest.mark.parametrize(("kw", "restarted", "level", "message"), [
    ({}, None, Level.OK, "ok"),
    ({"input_fps": 0.0, "output_fps": 0.0}, None, Level.OK, "waiting for images"),
    ({}, "the segmentation worker thread ended; restarted it", Level.ERROR,
     "the segmentation worker thread ended; restarted it"),
    ({"errors": 3}, None, Level.ERROR, "3 inference errors"),
    ({"output_fps": 0.0, "stalled_windows": 2}, None, Level.ERROR,
     "receiving images but publishing nothing"),
    ({"output_fps": 0.0, "stalled_windows": 1, "totals": {"published": 7}}, None, Level.ERROR,
     "receiving images but publishing nothing"),  # it published before: a stall, at once
    ({"output_fps": 0.0, "stalled_windows": 1}, None, Level.OK,
     "starting: first frames in inference"),  # a stream's first window
    ({"dropped": 6}, None, Level.WARN, "falling behind: dropped 6 frames"),
    ({"dropped": 5}, None, Level.OK, "ok"),  # below 20 % of 30 frames
    ({"latency_p95_ms": 140.0}, None, Level.WARN, "p95 latency 140 ms"),
    ({"bad": 1}, None, Level.WARN, "1 bad, 0 lost and 0 never-seen frames"),
    ({"lost": 2}, None, Level.WARN, "0 bad, 2 lost and 0 never-seen frames"),
    ({"never_seen": 4}, None, Level.WARN, "0 bad, 0 lost and 4 never-seen frames"),
    ({"errors": 1, "dropped": 30, "bad": 2}, None, Level.ERROR, "1 inference errors"),
    # Nobody reads an output: frames are decoded (checked), not inferred; not a stall.
    ({"output_fps": 0.0, "unsubscribed": 30}, None, Level.OK,
     "idle: no output has a subscriber (30 frames decoded, not inferred)"),
    ({"output_fps": 0.0, "unsubscribed": 29, "bad": 1}, None, Level.WARN,
     "1 bad, 0 lost and 0 never-seen frames"),
])
def test_every_level_and_message(kw, restarted, level, message):
    assert health(window(**kw), 100.0, restarted) == (level, message)


def test_stalled_windows_count_input_without_output_in_a_row():
    from seg_perception.node.stats import NodeStats

    s = NodeStats()
    assert s.roll().stalled_windows == 0  # no input: not stalled
    s.count("received")
    assert s.roll().stalled_windows == 1
    s.count("received")
    assert s.roll().stalled_windows == 2
    s.count("received")
    s.published(0.02, 0.01)
    assert s.roll().stalled_windows == 0


def test_values_carry_the_window_and_the_totals():
    kv = values(window(lost=2, totals={"received": 10, "lost": 2}), backend="onnxruntime",
                precision="fp32", model="m.onnx", grid="off", output_resolution="input")
    assert kv["lost"] == "2" and kv["total_lost"] == "2" and kv["total_received"] == "10"
    assert kv["backend"] == "onnxruntime" and kv["grid"] == "off"
    assert all(isinstance(v, str) for v in kv.values())


def test_lost_is_unknown_not_zero_where_the_rmw_cannot_tell():
    kv = values(window(lost=0, totals={"received": 10, "lost": 0}), backend="onnxruntime",
                precision="fp32", model="m.onnx", grid="off", output_resolution="input",
                lost_reported=False)
    assert kv["lost"] == kv["total_lost"] == LOST_UNREPORTED
    assert kv["total_received"] == "10"


def test_levels_are_the_message_constants():
    from diagnostic_msgs.msg import DiagnosticStatus

    assert [bytes([int(x)]) for x in Level] == [DiagnosticStatus.OK, DiagnosticStatus.WARN,
                                                 DiagnosticStatus.ERROR]
