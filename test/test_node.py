"""The node through real rclpy and Fast DDS: in-process and as `python -m seg_perception.node`."""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from standin_fixtures import trt_standin_fixture  # noqa: F401 - provides `trt_standin`

from rostools import (
    BEST_EFFORT,
    RELIABLE,
    ROOT,
    Recorder,
    compressed_msg,
    image_msg,
    ros_session,
    stamp_ns,
    start_node_process,
    stop_process,
    wait_for,
)
from seg_perception.core.classes import CAMVID
from seg_perception.inference.factory import create_backend
from seg_perception.inference.segmenter import Segmenter
from seg_perception.node.node import SegmentationNode

pytestmark = pytest.mark.ros
OUT_TOPICS = {f"/segmentation/{o}": Image
              for o in ("mask", "color", "overlay", "drivable", "obstacles")}


def frame(rng: np.random.Generator, h: int = 120, w: int = 160) -> np.ndarray:
    """A smooth synthetic scene (noise alone makes every model predict one class)."""
    base = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    return base


def arr(msg: Image) -> np.ndarray:
    a = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    c = 3 if msg.encoding == "rgb8" else 1
    return a[:, : msg.width * c].reshape(msg.height, msg.width, c).squeeze()


def make_node(ctx, model, **params) -> SegmentationNode:
    overrides = [Parameter("model", value=str(model))]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return SegmentationNode(context=ctx, parameter_overrides=overrides)


@contextmanager
def served(model, topics: dict, in_type=Image, in_topic="/camera/image_raw", in_qos=RELIABLE,
           **params):
    """A node in-process plus a peer publishing its input and recording ``topics``, discovered."""
    with ros_session() as (ctx, ex):
        node = make_node(ctx, model, **params)
        # Ten seconds pass between grid builds, so tests that change the calibration at once
        # are not held by the rebuild limit (its own test steps the clock itself).
        node._grid_clock = itertools.count(0.0, 10.0).__next__
        peer = Node("peer", context=ctx)
        ex.add_node(node)
        ex.add_node(peer)
        rec = Recorder(peer, topics)
        pub = peer.create_publisher(in_type, in_topic, in_qos)
        pubs = {**{f"/segmentation/{o}": p for o, p in node._pubs.items()},
                "/segmentation/camera_info": node._info_pub,
                "/segmentation/mask/compressed": node._png_pub,
                "/segmentation/grid": node._grid_pub}
        outs = [pubs[t] for t in topics if t.startswith("/segmentation/")]
        # Readers of an earlier test in this domain are gone before this one starts: the
        # node computes only what is subscribed, so a leftover reader would change its work.
        unread = [p for t, p in pubs.items() if p is not None and t not in topics]
        assert wait_for(lambda: pub.get_subscription_count() > 0
                        and all(o.get_subscription_count() > 0 for o in outs)
                        and all(o.get_subscription_count() == 0 for o in unread), 10)
        try:
            yield node, pub, rec
        finally:
            node.close()


def test_all_outputs_match_offline_pipeline(tiny_onnx, rng):
    topics = {**OUT_TOPICS, "/diagnostics": DiagnosticArray}
    with served(tiny_onnx, topics, publish_overlay=True, overlay_alpha=0.4) as (node, pub, rec):
        frames = [frame(rng) for _ in range(4)]
        for i, f in enumerate(frames):
            pub.publish(image_msg(f, "rgb8", 1_000_000_000 + i * 33_000_000, "cam_front"))
            assert wait_for(lambda i=i: all(rec.count(t) > i for t in OUT_TOPICS), 10)
        assert wait_for(lambda: rec.count("/diagnostics") > 0, 3)
        offline = Segmenter(create_backend(tiny_onnx))
        lut = CAMVID.palette_array()
        drivable = CAMVID.ids_of(CAMVID.drivable)
        obstacles = CAMVID.ids_of(CAMVID.obstacles)
        for i, f in enumerate(frames):
            msgs = {t: rec.msgs[t][i][1] for t in OUT_TOPICS}
            for t, m in msgs.items():
                assert stamp_ns(m) == 1_000_000_000 + i * 33_000_000, t
                assert m.header.frame_id == "cam_front"
                assert (m.height, m.width) == (120, 160)
            mask = arr(msgs["/segmentation/mask"])
            assert msgs["/segmentation/mask"].encoding == "mono8"
            np.testing.assert_array_equal(mask, offline.predict(f))
            assert mask.max() < CAMVID.num_classes
            assert msgs["/segmentation/color"].encoding == "rgb8"
            np.testing.assert_array_equal(arr(msgs["/segmentation/color"]), lut[mask])
            np.testing.assert_array_equal(arr(msgs["/segmentation/drivable"]),
                                          np.isin(mask, drivable) * 255)
            np.testing.assert_array_equal(arr(msgs["/segmentation/obstacles"]),
                                          np.isin(mask, obstacles) * 255)
            blend = cv2.addWeighted(lut[mask], 0.4, f, 0.6, 0)
            np.testing.assert_array_equal(arr(msgs["/segmentation/overlay"]), blend)
        # A diagnostics message sent after the fourth publish (one may have left before it).
        def after_all() -> dict | None:
            for _, m in reversed(rec.msgs["/diagnostics"]):
                values = {kv.key: kv.value for kv in m.status[0].values}
                if values.get("total_published") == "4":
                    return values
            return None

        assert wait_for(lambda: after_all() is not None, 5)
        values = after_all()
        assert values["backend"] == "onnxruntime" and values["precision"] == "fp32"
        assert rec.msgs["/diagnostics"][-1][1].status[0].hardware_id == "/camera/image_raw"


def test_unsubscribed_outputs_are_not_computed(tiny_onnx, rng):
    with served(tiny_onnx, {"/segmentation/drivable": Image}) as (node, pub, rec):
        calls: list[list[str]] = []
        original = node._renderer.iter_render
        node._renderer.iter_render = lambda wanted, *a: (  # type: ignore[method-assign]
            calls.append(sorted(wanted)), original(wanted, *a))[1]
        pub.publish(image_msg(frame(rng), "rgb8", 5))
        assert wait_for(lambda: rec.count("/segmentation/drivable") == 1, 10)
        assert calls == [["drivable"]]


def test_output_qos_follows_ros_qos_overrides(tiny_onnx):
    """ROS 2's start-up QoS overrides reach the outputs (a recorder that wants transient-local
    masks, a best-effort link); the input's stay with qos_reliability/qos_depth, and say so."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    mask = "qos_overrides./segmentation/mask.publisher."
    with ros_session() as (ctx, _):
        node = make_node(ctx, tiny_onnx, publish_grid=True,
                         **{f"{mask}reliability": "best_effort",
                            f"{mask}depth": 3, f"{mask}durability": "transient_local",
                            # a Nav2 static layer subscribes transient-local by default
                            "qos_overrides./segmentation/grid.publisher.durability":
                                "transient_local"})
        try:
            q = node._pubs["mask"].qos_profile
            assert q.reliability == ReliabilityPolicy.BEST_EFFORT and q.depth == 3
            assert q.durability == DurabilityPolicy.TRANSIENT_LOCAL
            assert node._pubs["color"].qos_profile.reliability == ReliabilityPolicy.RELIABLE
            assert node._pubs["color"].qos_profile.durability == DurabilityPolicy.VOLATILE
            assert node._grid_pub.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        finally:
            node.close()


def test_frames_nobody_reads_are_checked_not_inferred(tiny_onnx, rng):
    """With no reader on any output the backend stays idle (a Jetson's GPU, a laptop's cores):
    frames are still decoded, so a bad one is counted; diagnostics say idle, not stalled; the
    first reader brings inference back."""
    with served(tiny_onnx, {"/diagnostics": DiagnosticArray}, qos_reliability="reliable",
                diagnostics_period=0.2) as (node, pub, rec):
        runs: list[int] = []
        original = node.segmenter.run
        node.segmenter.run = lambda *a: (runs.append(1), original(*a))[1]  # type: ignore
        for n in range(1, 4):
            pub.publish(image_msg(frame(rng), "rgb8", n))
            assert wait_for(lambda n=n: node.stats.totals["unsubscribed"] == n, 10)
        assert wait_for(lambda: any(s.message.startswith("idle: no output has a subscriber")
                                    for _, m in rec.msgs["/diagnostics"] for s in m.status), 5)
        bad = image_msg(frame(rng), "rgb8", 4)
        bad.step += 1  # the data no longer matches step * height
        pub.publish(bad)
        assert wait_for(lambda: node.stats.totals["bad"] == 1, 10)
        assert runs == [] and node.stats.totals["published"] == 0
        assert not any("publishing nothing" in s.message
                       for _, m in rec.msgs["/diagnostics"] for s in m.status)
        masks = Recorder(node, {"/segmentation/mask": Image})
        assert wait_for(lambda: node._pubs["mask"].get_subscription_count() > 0, 10)
        pub.publish(image_msg(frame(rng), "rgb8", 5))
        assert wait_for(lambda: masks.count("/segmentation/mask") == 1, 10)
        assert runs == [1] and node.stats.totals["published"] == 1


def test_burst_leaves_no_backlog(tiny_onnx, rng):
    """Frames arriving while the backend is busy replace each other: once it is free, the node
    serves the newest one and drops the rest; nothing queues. The backend is held by a gate,
    so what is pinned does not depend on how fast this machine is."""
    with served(tiny_onnx, {"/segmentation/mask": Image}, in_qos=BEST_EFFORT,
                max_frame_age=60.0) as (node, pub, rec):  # waiting is not staleness here
        backend = node.segmenter.backend
        fast = backend.infer
        busy, release = threading.Event(), threading.Event()

        def gated_infer(x):  # a backend that holds the first frame until released
            busy.set()
            release.wait(30)
            return fast(x)

        backend.infer = gated_infer  # type: ignore[method-assign]
        img = frame(rng, 360, 480)
        pub.publish(image_msg(img, "rgb8", 1_000))
        assert wait_for(busy.is_set, 10)
        for i in range(1, 41):
            pub.publish(image_msg(img, "rgb8", 1_000 + i))
        # the newest frame reaches the node (keep-last-1 replaces older ones on the way)
        assert wait_for(lambda: (f := node._slot.peek()) is not None
                        and stamp_ns(f.msg) == 1_040, 10)
        release.set()
        assert wait_for(lambda: node.stats.totals["published"] + node.stats.totals["dropped"]
                        == node.stats.totals["received"] and rec.count("/segmentation/mask")
                        == node.stats.totals["published"], 10)
        totals = dict(node.stats.totals)
        assert totals["published"] == 2, totals  # the one held, then the newest
        assert totals["dropped"] == totals["received"] - 2, totals  # replaced in the slot
        assert [stamp_ns(m[1]) for m in rec.msgs["/segmentation/mask"]] == [1_000, 1_040]


def _bad(f: np.ndarray, **fields) -> Image:
    msg = image_msg(f, "rgb8", 1)
    for k, v in fields.items():
        setattr(msg, k, v)
    return msg


BAD = {
    "unknown encoding": lambda f: _bad(f, encoding="xyz16"),
    "step too small": lambda f: _bad(f, step=100),
    "truncated data": lambda f: _bad(f, data=image_msg(f, "rgb8", 1).data[:-7]),
    "empty data": lambda f: _bad(f, data=image_msg(f, "rgb8", 1).data[:0]),
    "zero size": lambda f: _bad(f, height=0, width=0, step=0,
                                data=image_msg(f, "rgb8", 1).data[:0]),
    "odd yuv width": lambda f: _bad(f, encoding="yuv422", width=159, step=318,
                                    data=image_msg(f, "rgb8", 1).data[:318 * 120]),
}


def test_malformed_frames_do_not_stop_the_node(tiny_onnx, rng):
    with served(tiny_onnx, {"/segmentation/mask": Image}, qos_reliability="reliable",
                qos_depth=10) as (node, pub, rec):
        f = frame(rng)
        for n, (name, make) in enumerate(BAD.items(), start=1):
            pub.publish(make(f))
            assert wait_for(lambda n=n: node.stats.totals["bad"] == n, 5), name
            pub.publish(image_msg(f, "rgb8", 100 + n))
            assert wait_for(lambda n=n: rec.count("/segmentation/mask") == n, 5), \
                f"no output after {name}"
        assert node.stats.totals["errors"] == 0


def test_a_frame_in_flight_when_a_signal_shuts_the_context_is_no_error(tiny_onnx, rng):
    """rclpy's signal handler shuts the context down while the worker is inside a frame
    (before main closes the node): publishing then raises, which is the shutdown, so nothing
    is counted or logged as an inference error."""
    import rclpy
    from rclpy.context import Context

    from seg_perception.node.node import Frame

    ctx = Context()
    rclpy.init(context=ctx)
    node = make_node(ctx, tiny_onnx)
    try:
        run = node.segmenter.run

        def signalled_mid_frame(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            out = run(*a, **kw)
            ctx.shutdown()  # what SIGINT's handler does while the backend runs
            return out

        node.segmenter.run = signalled_mid_frame  # type: ignore[method-assign]
        node._serve(Frame(image_msg(frame(rng), "rgb8", 1), time.monotonic()))
        assert node.stats.totals["errors"] == 0 and node.stats.totals["published"] == 0
    finally:
        node.close()
        with contextlib.suppress(Exception):
            node.destroy_node()
        if ctx.ok():
            rclpy.shutdown(context=ctx)


def test_frames_without_stamp_or_frame_id_are_served_and_counted(tiny_onnx, rng):
    """A zero stamp or an empty frame_id breaks tf and time pairing downstream: the frame is
    still served with its header as sent, and counted in bad_headers (not as a bad frame)."""
    with served(tiny_onnx, {"/segmentation/mask": Image}, qos_reliability="reliable",
                qos_depth=10) as (node, pub, rec):
        f = frame(rng)
        pub.publish(image_msg(f, "rgb8", 0))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 1, 10)
        pub.publish(image_msg(f, "rgb8", 5, frame_id=""))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 2, 10)
        pub.publish(image_msg(f, "rgb8", 6))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 3, 10)
        first, second = (rec.msgs["/segmentation/mask"][i][1] for i in (0, 1))
        assert stamp_ns(first) == 0 and first.header.frame_id == "cam"
        assert stamp_ns(second) == 5 and second.header.frame_id == ""
        assert node.stats.totals["bad_headers"] == 2 and node.stats.totals["bad"] == 0


def test_compressed_input_and_corrupt_jpeg(tiny_onnx, rng):
    with served(tiny_onnx, {"/segmentation/mask": Image}, CompressedImage,
                in_topic="/camera/image_raw/compressed", input_transport="compressed",
                qos_reliability="reliable", qos_depth=10) as (node, pub, rec):
        f = frame(rng)
        png = cv2.imencode(".png", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes()
        jpg = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes()
        # One at a time: the node keeps only the newest frame, so a burst would be thinned.
        pub.publish(compressed_msg(png, "png", 1))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 1, 10)
        pub.publish(compressed_msg(jpg[: len(jpg) // 3] + b"\x00" * 50, "jpeg", 2))
        assert wait_for(lambda: node.stats.totals["bad"] == 1, 5)
        pub.publish(compressed_msg(b"", "jpeg", 3))
        assert wait_for(lambda: node.stats.totals["bad"] == 2, 5)
        pub.publish(compressed_msg(jpg, "rgb8; jpeg compressed bgr8", 4))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 2, 10)
        first = arr(rec.msgs["/segmentation/mask"][0][1])
        np.testing.assert_array_equal(first, Segmenter(create_backend(tiny_onnx)).predict(f))


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8"]


def test_node_process_with_shipped_config(tiny_onnx, rng):
    """As users run it: separate process, the shipped params file, several encodings."""
    proc = start_node_process("--params-file", str(ROOT / "config" / "segmentation.yaml"),
                              "-p", f"model:={tiny_onnx}", "-p", "qos_reliability:=reliable",
                              "-p", "qos_depth:=10")
    try:
        with ros_session() as (ctx, ex):
            peer = Node("peer", context=ctx)
            ex.add_node(peer)
            rec = Recorder(peer, {"/segmentation/mask": Image, "/diagnostics": DiagnosticArray})
            pub = peer.create_publisher(Image, "/camera/image_raw", RELIABLE)
            assert wait_for(lambda: pub.get_subscription_count() > 0
                            and rec.matched("/segmentation/mask"), 20)
            time.sleep(0.3)
            f = frame(rng)
            conv = {"rgb8": f, "bgr8": f[..., ::-1],
                    "rgba8": np.dstack([f, np.full_like(f[..., 0], 9)]),
                    "bgra8": np.dstack([f[..., ::-1], np.zeros_like(f[..., 0])])}
            for i, enc in enumerate(ENCODINGS):
                pub.publish(image_msg(conv[enc], enc, 10 + i))
                assert wait_for(lambda i=i: rec.count("/segmentation/mask") == i + 1, 10), enc
            masks = [arr(m) for _, m in rec.msgs["/segmentation/mask"]]
            for m in masks[1:]:
                np.testing.assert_array_equal(m, masks[0])
            grey = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
            pub.publish(image_msg(grey, "mono8", 20))
            assert wait_for(lambda: rec.count("/segmentation/mask") == 5, 10)
            assert wait_for(lambda: rec.count("/diagnostics") > 0, 3)
    finally:
        assert stop_process(proc) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_the_node_cleanly(tiny_onnx, rng, sig):
    """Ctrl-C or a supervisor's SIGTERM while frames flow: exit 0, no traceback."""
    proc = start_node_process("-p", f"model:={tiny_onnx}", "-p", "qos_reliability:=reliable")
    try:
        with ros_session() as (ctx, ex):
            peer = Node("peer", context=ctx)
            ex.add_node(peer)
            rec = Recorder(peer, {"/segmentation/mask": Image})
            pub = peer.create_publisher(Image, "/camera/image_raw", RELIABLE)
            assert wait_for(lambda: pub.get_subscription_count() > 0
                            and rec.matched("/segmentation/mask"), 20)
            img, stamps = frame(rng), iter(range(1, 1000))

            def flowing() -> bool:  # frames flow until one comes back, as from a camera
                pub.publish(image_msg(img, "rgb8", next(stamps)))
                return rec.count("/segmentation/mask") > 0
            assert wait_for(flowing, 20, step=0.1)
            proc.send_signal(sig)
            assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)  # the reader thread takes the last lines
    out = "".join(proc.output)
    assert "Traceback" not in out and "[ERROR]" not in out, out


@pytest.mark.parametrize(("param", "value"), [
    ("backend", "cuda"),
    ("precision", "int4"),
    ("model", "/nonexistent/model.onnx"),
    ("drivable_classes", "[Road, Runway]"),
    ("input_size", "[8, 8]"),
    ("input_transport", "theora"),
    ("max_input_pixels", "100"),
    ("threads", "two"),
    ("threads", "0"),
    ("input_size", "360x480"),
    ("drivable_classes", "[]"),
    ("image_topic", "/bad//topic"),
    ("image_topic", "/1cam/image"),
    ("camera_info_topic", "/a//b"),
    ("max_input_pixels", "9223372036854775807"),
    ("overlay_alpha", "2.0"),
    ("output_resolution", "half"),
    ("camera_pose", "[0.0, 1.0]"),
    ("camera_pose", "[0.0, 0.0, -1.5, 0.0, 0.1, 0.0]"),  # below the ground: a sign slip
    ("grid_x_range", "[10.0, 0.0]"),
    ("grid_resolution", "0.0"),
    ("dla_core", "0"),  # at the default fp32, which DLA lacks (auto fell back, ignoring it)
    ("qos_overrides./segmentation/mask.publisher.reliability", "sometimes"),
])
def test_bad_configuration_fails_at_start_naming_the_parameter(tiny_onnx, param, value):
    args = ["-p", f"model:={tiny_onnx}"] if param != "model" else []
    r = subprocess.run([sys.executable, "-m", "seg_perception.node", "--ros-args", *args,
                        "-p", f"{param}:={value}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"parameter '{param}'" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_mask_too_wide_for_png_is_counted_and_the_rest_still_published(tiny_onnx, rng):
    """A 1 x 1,000,001 frame is within max_input_pixels, but libpng takes at most 1,000,000
    pixels a side: at output_resolution: input its PNG mask is an error, counted, and the raw
    mask still goes out; the next frame's PNG does too."""
    topics = {"/segmentation/mask": Image, "/segmentation/mask/compressed": CompressedImage}
    with served(tiny_onnx, topics, qos_reliability="reliable", qos_depth=10,
                publish_mask_compressed=True, output_resolution="input") as (node, pub, rec):
        wide = np.tile(frame(rng, 1, 1000)[:, :, 0], (1, 1001))[:, :1_000_001]
        pub.publish(image_msg(wide, "mono8", 1))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 1, 20)
        assert rec.msgs["/segmentation/mask"][0][1].width == 1_000_001
        assert wait_for(lambda: node.stats.totals["errors"] == 1, 5)
        pub.publish(image_msg(frame(rng), "rgb8", 2))
        assert wait_for(lambda: rec.count("/segmentation/mask/compressed") == 1, 10)
        assert stamp_ns(rec.msgs["/segmentation/mask/compressed"][0][1]) == 2
        assert node.stats.totals["errors"] == 1 and node.stats.totals["bad"] == 0


def test_run_time_parameter_changes_pass_the_start_up_check(tiny_onnx):
    """overlay_alpha is the one parameter that changes at run time: a value start-up refuses
    (rclpy's range test lets 1e-6 beyond the bound through) is refused with the reason, a
    good one taken, and the read-only ones stay refused by rclpy."""
    with ros_session() as (ctx, _):
        node = make_node(ctx, tiny_onnx)
        try:
            over, ok, ro = node.set_parameters([Parameter("overlay_alpha", value=1.0000009)]
                                               + [Parameter("overlay_alpha", value=0.7)]
                                               + [Parameter("threads", value=1)])
            assert not over.successful and "overlay_alpha" in over.reason
            assert "0..1" in over.reason
            assert ok.successful and node.get_parameter("overlay_alpha").value == 0.7
            assert not ro.successful and "read-only" in ro.reason
        finally:
            node.close()
            node.destroy_node()


@pytest.mark.parametrize(("remap", "params", "image", "info"), [
    (["-r", "/camera/image_raw:=/front/image_raw"], {}, "/front/image_raw", "/front/camera_info"),
    (["-r", "__ns:=/left"], {"image_topic": "image_raw"}, "/left/image_raw", "/left/camera_info"),
    (["-r", "/camera/image_raw:=/front/image_raw"], {"camera_info_topic": "/calib/info"},
     "/front/image_raw", "/calib/info"),  # a camera_info_topic given is taken as given
])
def test_camera_info_follows_the_image_topic_as_remapped(tiny_onnx, remap, params, image, info):
    """As image_transport's camera subscriber: the calibration is the sibling of the image
    topic after remapping and namespacing, so moving the frames moves it too."""
    with ros_session() as (ctx, _):
        node = SegmentationNode(
            context=ctx, cli_args=["--ros-args", *remap], use_global_arguments=False,
            parameter_overrides=[Parameter("model", value=str(tiny_onnx)),
                                 *(Parameter(k, value=v) for k, v in params.items())])
        try:
            assert (node._sub.topic_name, node._info_sub.topic_name) == (image, info)
        finally:
            node.close()
            node.destroy_node()


def test_a_grid_too_large_to_count_fails_at_start(tiny_onnx):
    """Each bound is finite but the cell count is not: exit 2 with the grid named, not the
    OverflowError int() raises (even with publish_grid off, the grid is checked at start)."""
    r = subprocess.run([sys.executable, "-m", "seg_perception.node", "--ros-args",
                        "-p", f"model:={tiny_onnx}", "-p", "grid_x_range:=[-1.0e+308, 1.0e+308]"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "parameter 'grid_resolution'" in r.stderr and "too large" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_engine_dir_is_a_configuration_error(trt_standin, tiny_onnx, tmp_path):
    """TensorRT writes engines beside the model unless told: a folder it cannot create is
    a ConfigError naming engine_dir (exit 2 in main), not an OSError traceback."""
    from seg_perception.core.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with ros_session() as (ctx, _), pytest.raises(ConfigError, match="engine_dir") as err:
        make_node(ctx, tiny_onnx, backend="tensorrt", engine_dir=str(blocker / "engines"))
    assert "writable folder" in str(err.value)


def test_decompression_bombs_and_opencv_limit_cannot_stop_the_node(tiny_onnx, rng):
    from test_codec import _jpeg_declaring, _png_declaring

    with served(tiny_onnx, {"/segmentation/mask": Image}, CompressedImage,
                in_topic="/camera/image_raw/compressed", input_transport="compressed",
                qos_reliability="reliable", qos_depth=10) as (node, pub, rec):
        f = frame(rng)
        bgr = cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
        bombs = [(_jpeg_declaring(bgr, 16000, 16000), "jpeg"),  # the 629-byte kind
                 (_png_declaring(bgr, 20000, 20000), "png"),
                 (_jpeg_declaring(bgr, 65000, 65000), "jpeg"),  # beyond OpenCV's 2^30
                 (cv2.imencode(".bmp", bgr)[1].tobytes(), "jpeg")]  # not what it says
        good = cv2.imencode(".png", bgr)[1].tobytes()
        for n, (data, fmt) in enumerate(bombs, start=1):
            pub.publish(compressed_msg(data, fmt, n))
            assert wait_for(lambda n=n: node.stats.totals["bad"] == n, 5), n
            pub.publish(compressed_msg(good, "png", 100 + n))
            assert wait_for(lambda n=n: rec.count("/segmentation/mask") == n, 10), n
        assert node.stats.totals["errors"] == 0 and node._worker.is_alive()


class _Boom(Exception):
    pass


def test_worker_survives_any_exception_from_a_frame(tiny_onnx, rng):
    with served(tiny_onnx, {"/segmentation/mask": Image}, qos_reliability="reliable",
                qos_depth=10) as (node, pub, rec):
        f = frame(rng)
        decode, infer = node._decode, node.segmenter.backend.infer
        faults = [("decode", _Boom("decoder fault")), ("infer", MemoryError("no memory")),
                  ("infer", KeyError("odd"))]

        def flaky(where):
            def call(*a):
                if faults and faults[0][0] == where:
                    raise faults.pop(0)[1]
                return (decode if where == "decode" else infer)(*a)
            return call

        node._decode = flaky("decode")  # type: ignore[method-assign]
        node.segmenter.backend.infer = flaky("infer")  # type: ignore[method-assign]
        pub.publish(image_msg(f, "rgb8", 1))
        assert wait_for(lambda: node.stats.totals["bad"] == 1, 5)
        for n in (2, 3):
            pub.publish(image_msg(f, "rgb8", n))
            assert wait_for(lambda n=n: node.stats.totals["errors"] == n - 1, 5)
        pub.publish(image_msg(f, "rgb8", 4))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 1, 10)
        assert node._worker.is_alive()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_turns_diagnostics_error_and_is_restarted(tiny_onnx, rng):
    with served(tiny_onnx, {"/segmentation/mask": Image, "/diagnostics": DiagnosticArray},
                qos_reliability="reliable", qos_depth=10,
                diagnostics_period=0.2) as (node, pub, rec):
        serve = node._serve

        def die(frame_):
            node._serve = serve  # type: ignore[method-assign]  # the restarted worker is sound
            raise SystemExit("worker killed")  # ends the thread, as no Exception handler sees it

        node._serve = die  # type: ignore[method-assign]
        first = node._worker
        f = frame(rng)
        pub.publish(image_msg(f, "rgb8", 1))
        assert wait_for(lambda: not first.is_alive(), 5)

        def restarted():
            return any(s.level == DiagnosticStatus.ERROR and "worker thread ended" in s.message
                       for _, m in rec.msgs.get("/diagnostics", []) for s in m.status)

        assert wait_for(restarted, 5)
        assert node._worker is not first and node._worker.is_alive()
        assert node.stats.totals["worker_restarts"] == 1
        pub.publish(image_msg(f, "rgb8", 2))
        assert wait_for(lambda: rec.count("/segmentation/mask") >= 1, 10)


def _camera_info(w: int, h: int, stamp: int = 0):
    from sensor_msgs.msg import CameraInfo

    f = 0.8 * w
    ci = CameraInfo(width=w, height=h, distortion_model="plumb_bob")
    ci.k = [f, 0.0, (w - 1) / 2, 0.0, f, (h - 1) / 2, 0.0, 0.0, 1.0]
    ci.p = [f, 0.0, (w - 1) / 2, 0.0, 0.0, f, (h - 1) / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    ci.d = [0.0] * 5
    return ci


def test_planner_outputs_camera_info_png_mask_and_grid(tiny_onnx, rng):
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import CameraInfo

    topics = {"/segmentation/mask": Image, "/segmentation/camera_info": CameraInfo,
              "/segmentation/mask/compressed": CompressedImage,
              "/segmentation/grid": OccupancyGrid, "/diagnostics": DiagnosticArray}
    with served(tiny_onnx, topics, qos_reliability="reliable", qos_depth=10,
                publish_mask_compressed=True, publish_grid=True, diagnostics_period=0.2,
                camera_pose=[0.0, 0.0, 1.5, 0.0, 0.2, 0.0], grid_resolution=0.5,
                grid_x_range=[0.0, 20.0], grid_y_range=[-5.0, 5.0]) as (node, pub, rec):
        f = frame(rng, 240, 320)  # the tiny model runs at 96x128: outputs are enlarged
        pub.publish(image_msg(f, "rgb8", 1))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 1, 10)
        # Without camera_info: no grid, no camera_info out, and diagnostics say why.
        assert rec.count("/segmentation/grid") == 0 and rec.count("/segmentation/camera_info") == 0
        assert wait_for(lambda: any("no camera_info" in kv.value
                                    for _, m in rec.msgs["/diagnostics"] for s in m.status
                                    for kv in s.values if kv.key == "grid"), 5)
        info_pub = node.create_publisher(CameraInfo, "/camera/camera_info", RELIABLE)
        info_pub.publish(_camera_info(320, 240))
        assert wait_for(lambda: node._camera_info is not None, 5)
        pub.publish(image_msg(f, "rgb8", 2))
        assert wait_for(lambda: rec.count("/segmentation/grid") == 1, 10)
        assert wait_for(lambda: rec.count("/segmentation/mask/compressed") == 2, 10)
        mask = arr(rec.msgs["/segmentation/mask"][-1][1])
        png = rec.msgs["/segmentation/mask/compressed"][-1][1]
        assert png.format == "mono8; png compressed"
        decoded = cv2.imdecode(np.frombuffer(bytes(png.data), np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(decoded, mask)  # lossless: exactly the mask
        assert stamp_ns(png) == stamp_ns(rec.msgs["/segmentation/mask"][-1][1])
        ci = rec.msgs["/segmentation/camera_info"][-1][1]
        assert (ci.width, ci.height) == (320, 240) and ci.k[0] == pytest.approx(256.0)
        grid = rec.msgs["/segmentation/grid"][-1][1]
        assert grid.header.frame_id == "base_link" and stamp_ns(grid) == 2
        assert (grid.info.width, grid.info.height, grid.info.resolution) == (40, 20, 0.5)
        assert grid.info.origin.position.x == 0.0 and grid.info.origin.position.y == -5.0
        cells = np.array(grid.data, np.int8)
        assert set(np.unique(cells)) <= {-1, 0, 100} and len(cells) == 800
        # The same grid from the functional core, at the model's resolution.
        from seg_perception.core.geometry import GridSpec, GroundGrid, Intrinsics

        small = node.segmenter.infer_small(f)
        intr = Intrinsics.from_fields(_camera_info(320, 240).k, _camera_info(320, 240).p, [],
                                      320, 240).scaled(128, 96)
        ref = GroundGrid(intr, [0.0, 0.0, 1.5, 0.0, 0.2, 0.0], GridSpec(0.5, (0, 20), (-5, 5)))
        np.testing.assert_array_equal(
            cells.reshape(20, 40), ref.render(small, node._renderer.luts["drivable"],
                                              node._renderer.luts["obstacles"]))


def test_a_calibration_changing_every_frame_holds_the_grid_not_the_masks(tiny_onnx, rng):
    """A camera_info whose K changes with every frame would cost each frame a grid build in
    the worker: one new grid per second of the node's clock; in between the masks go out,
    no grid of another calibration does, and diagnostics say why."""
    now = [0.0]
    with grid_served(tiny_onnx) as (node, pub, rec, info_pub):
        node._grid_clock = lambda: now[0]
        f = frame(rng, 240, 320)
        for n in range(1, 5):
            ci = _camera_info(320, 240)
            ci.k[0] = ci.p[0] = 256.0 + n  # a new focal length each frame
            info_pub.publish(ci)
            assert wait_for(lambda ci=ci: node._camera_info is not None
                            and node._camera_info.k[0] == ci.k[0], 5)
            pub.publish(image_msg(f, "rgb8", n))
            assert wait_for(lambda n=n: rec.count("/segmentation/mask") == n, 10)
            now[0] += 0.3
        # Built at 0.0 only (0.3-0.9 fall inside its second); every frame had its mask.
        assert rec.count("/segmentation/grid") == 1 and len(node._grids) == 1
        assert "faster than one grid build per 1 s" in node._grid_note
        now[0] = 1.0  # a second after the last build: the newest calibration's grid
        pub.publish(image_msg(f, "rgb8", 5))
        assert wait_for(lambda: rec.count("/segmentation/grid") == 2, 10)
        assert node._grid_note.startswith("ok") and len(node._grids) == 2
        assert node.stats.totals["errors"] == 0 and node.stats.totals["bad_camera_info"] == 0


@contextmanager
def grid_served(model, **params):
    """A node with the grid on, recording mask, camera_info and grid, and a camera_info
    publisher."""
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import CameraInfo

    topics = {"/segmentation/mask": Image, "/segmentation/camera_info": CameraInfo,
              "/segmentation/grid": OccupancyGrid}
    with served(model, topics, qos_reliability="reliable", qos_depth=10, publish_grid=True,
                camera_pose=[0.0, 0.0, 1.5, 0.0, 0.2, 0.0], **params) as (node, pub, rec):
        yield node, pub, rec, node.create_publisher(CameraInfo, "/camera/camera_info", RELIABLE)


def test_bad_camera_info_stops_the_grid_not_the_masks(tiny_onnx, rng):
    """A distortion OpenCV refuses, then another camera's aspect ratio: masks keep flowing,
    no grid goes out (nor camera_info for the wrong aspect; K and P scale without D), each bad
    message is counted (not each frame) and diagnostics say why; a good camera_info brings the
    grid back."""
    with grid_served(tiny_onnx) as (node, pub, rec, info_pub):
        f = frame(rng, 240, 320)
        bad_d = _camera_info(320, 240)
        bad_d.d = [0.1, 0.0, 0.0]
        wide = _camera_info(640, 360)
        n = 0
        for ci, why in ((bad_d, "3 coefficients"), (wide, "another aspect ratio")):
            info_pub.publish(ci)
            assert wait_for(lambda ci=ci: node._camera_info is not None
                            and list(node._camera_info.d) == list(ci.d)
                            and node._camera_info.width == ci.width, 5)
            for _ in range(3):
                n += 1
                pub.publish(image_msg(f, "rgb8", n))
                assert wait_for(lambda n=n: rec.count("/segmentation/mask") == n, 10)
            assert why in node._grid_note
        assert rec.count("/segmentation/grid") == 0
        assert rec.count("/segmentation/camera_info") == 3  # bad_d's frames only
        assert node.stats.totals["bad_camera_info"] == 2
        assert node.stats.totals["errors"] == 0
        info_pub.publish(_camera_info(320, 240))
        assert wait_for(lambda: node._camera_info.width == 320 and not any(node._camera_info.d),
                        5)
        pub.publish(image_msg(f, "rgb8", n + 1))
        assert wait_for(lambda: rec.count("/segmentation/grid") == 1
                        and rec.count("/segmentation/camera_info") == 4, 10)
        assert node._grid_note.startswith("ok")
        # Calibrations that alternate are built once each and then looked up.
        good = node._grid
        for k, ci in enumerate((bad_d, _camera_info(320, 240)), start=2):
            info_pub.publish(ci)
            assert wait_for(lambda ci=ci: list(node._camera_info.d) == list(ci.d), 5)
            pub.publish(image_msg(f, "rgb8", n + k))
            assert wait_for(lambda k=k: rec.count("/segmentation/mask") == n + k, 10)
        assert node._grid is good and rec.count("/segmentation/grid") == 2
        # Counted each time the camera_info in use turns bad: the first bad one came back.
        assert node.stats.totals["bad_camera_info"] == 3 and len(node._grids) == 3
        # And the last bad one again, after a good one (it was remembered as counted).
        info_pub.publish(bad_d)
        assert wait_for(lambda: list(node._camera_info.d) == list(bad_d.d), 5)
        pub.publish(image_msg(f, "rgb8", n + 4))
        assert wait_for(lambda: rec.count("/segmentation/mask") == n + 4, 10)
        assert node.stats.totals["bad_camera_info"] == 4


def _grid_of(node, f: np.ndarray, intr) -> np.ndarray:
    """The grid the functional core makes of frame ``f`` with these intrinsics (full size)."""
    from seg_perception.core.geometry import GridSpec, GroundGrid

    small = node.segmenter.infer_small(f)
    h, w = small.shape
    ref = GroundGrid(intr.scaled(w, h), [0.0, 0.0, 1.5, 0.0, 0.2, 0.0],
                     GridSpec(0.1, (0.0, 30.0), (-10.0, 10.0)))
    return ref.render(small, node._renderer.luts["drivable"], node._renderer.luts["obstacles"])


def test_a_rectified_fisheye_stream_gets_its_grid_from_p(tiny_onnx, rng):
    """image_rect's camera_info still describes the raw lens (here a fisheye, which this
    geometry cannot undo): with image_rectified the grid is P's pinhole camera, and
    camera_info goes out scaled, D as sent. Without it the same stream has no grid."""
    from seg_perception.core.geometry import Intrinsics

    fish = _camera_info(320, 240)
    fish.distortion_model = "equidistant"
    fish.d = [0.1, 0.01, 0.0, 0.0]
    fish.p = [200.0, 0.0, 161.0, 0.0, 0.0, 200.0, 118.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    f = frame(rng, 240, 320)
    for rectified in (False, True):
        with grid_served(tiny_onnx, image_rectified=rectified) as (node, pub, rec, info_pub):
            info_pub.publish(fish)
            assert wait_for(lambda: node._camera_info is not None, 5)
            pub.publish(image_msg(f, "rgb8", 1))
            assert wait_for(lambda: rec.count("/segmentation/camera_info") == 1, 10)
            ci = rec.msgs["/segmentation/camera_info"][-1][1]
            assert list(ci.d) == list(fish.d) and list(ci.k) == list(fish.k)
            if not rectified:
                assert rec.count("/segmentation/grid") == 0 and "equidistant" in node._grid_note
                assert node.stats.totals["bad_camera_info"] == 1
                continue
            assert wait_for(lambda: rec.count("/segmentation/grid") == 1, 10)
            pinhole = Intrinsics.from_fields([200.0, 0, 161.0, 0, 200.0, 118.0, 0, 0, 1], [],
                                             [], 320, 240)
            cells = np.array(rec.msgs["/segmentation/grid"][-1][1].data, np.int8)
            np.testing.assert_array_equal(cells.reshape(200, 300), _grid_of(node, f, pinhole))
            assert node.stats.totals["bad_camera_info"] == 0


def test_a_region_of_interest_is_the_camera_of_that_region(tiny_onnx, rng):
    """K refers to the full sensor; a roi frame is a window of it (not the full image scaled
    down, which the aspect check let through for a centred 16:9 window of a 16:9 sensor)."""
    from seg_perception.core.geometry import Intrinsics

    full = _camera_info(640, 480)
    full.roi.x_offset, full.roi.y_offset, full.roi.width, full.roi.height = 160, 120, 320, 240
    f = frame(rng, 240, 320)
    with grid_served(tiny_onnx) as (node, pub, rec, info_pub):
        info_pub.publish(full)
        assert wait_for(lambda: node._camera_info is not None, 5)
        pub.publish(image_msg(f, "rgb8", 1))
        assert wait_for(lambda: rec.count("/segmentation/grid") == 1
                        and rec.count("/segmentation/camera_info") == 1, 10)
        ci = rec.msgs["/segmentation/camera_info"][-1][1]
        # Same focal length (no scaling), principal point moved by the offsets.
        assert (ci.width, ci.height) == (320, 240)
        assert ci.k[0] == pytest.approx(full.k[0]) and ci.k[2] == pytest.approx(full.k[2] - 160)
        assert ci.p[6] == pytest.approx(full.p[6] - 120) and ci.roi.width == 0
        window = Intrinsics.from_fields(full.k, full.p, [], 640, 480).cropped(160, 120, 320, 240)
        cells = np.array(rec.msgs["/segmentation/grid"][-1][1].data, np.int8)
        np.testing.assert_array_equal(cells.reshape(200, 300), _grid_of(node, f, window))
        outside = _camera_info(640, 480)
        outside.roi.x_offset, outside.roi.width, outside.roi.height = 400, 320, 240
        info_pub.publish(outside)
        assert wait_for(lambda: node._camera_info.roi.x_offset == 400, 5)
        pub.publish(image_msg(f, "rgb8", 2))
        assert wait_for(lambda: rec.count("/segmentation/mask") == 2, 10)
        assert "not inside the 640x480 image" in node._grid_note
        assert rec.count("/segmentation/grid") == 1 and node.stats.totals["bad_camera_info"] == 1


def test_a_nan_camera_info_counts_once_and_its_correction_brings_the_grid_back(tiny_onnx, rng):
    """NaN never equals itself, so a repeated NaN calibration once looked new on every frame
    (counted each time), and a P left out of the grid's key kept a refused grid refused after
    the driver corrected P (and kept a good grid after P turned NaN)."""
    from sensor_msgs.msg import CameraInfo

    nan = float("nan")
    with grid_served(tiny_onnx) as (node, pub, rec, info_pub):
        f = frame(rng, 240, 320)
        n = 0

        def send(ci: CameraInfo, frames: int) -> None:
            nonlocal n
            info_pub.publish(ci)
            want = bytes(np.asarray(ci.p, np.float64)) + bytes(np.asarray(ci.d, np.float64))
            assert wait_for(lambda: node._camera_info is not None and want == bytes(
                np.asarray(node._camera_info.p, np.float64)) + bytes(
                np.asarray(node._camera_info.d, np.float64)), 5)
            for _ in range(frames):
                n += 1
                pub.publish(image_msg(f, "rgb8", n))
                assert wait_for(lambda k=n: rec.count("/segmentation/mask") == k, 10)

        nan_p = _camera_info(320, 240)
        nan_p.p = [nan] * 12
        send(nan_p, 3)
        assert rec.count("/segmentation/grid") == 0 and "non-finite" in node._grid_note
        assert node.stats.totals["bad_camera_info"] == 1
        send(_camera_info(320, 240), 1)  # P corrected, K and D as before
        assert wait_for(lambda: rec.count("/segmentation/grid") == 1
                        and rec.count("/segmentation/camera_info") == 1, 10)
        assert node._grid_note.startswith("ok")
        nan_d = _camera_info(320, 240)
        nan_d.d = [nan] * 5
        send(nan_d, 3)
        assert rec.count("/segmentation/grid") == 1  # no grid from a NaN distortion
        assert node.stats.totals["bad_camera_info"] == 2


def test_outputs_at_model_resolution(tiny_onnx, rng):
    from sensor_msgs.msg import CameraInfo

    topics = {"/segmentation/mask": Image, "/segmentation/color": Image,
              "/segmentation/camera_info": CameraInfo}
    with served(tiny_onnx, topics, qos_reliability="reliable", qos_depth=10,
                output_resolution="model") as (node, pub, rec):
        info_pub = node.create_publisher(CameraInfo, "/camera/camera_info", RELIABLE)
        info_pub.publish(_camera_info(640, 480))
        assert wait_for(lambda: node._camera_info is not None, 5)
        f = frame(rng, 480, 640)
        pub.publish(image_msg(f, "rgb8", 7))
        assert wait_for(lambda: rec.count("/segmentation/color") == 1
                        and rec.count("/segmentation/camera_info") == 1, 10)
        mask = rec.msgs["/segmentation/mask"][0][1]
        assert (mask.height, mask.width) == (96, 128)  # the tiny model's input size
        np.testing.assert_array_equal(arr(mask), node.segmenter.infer_small(f))
        ci = rec.msgs["/segmentation/camera_info"][0][1]
        assert (ci.width, ci.height) == (128, 96) and stamp_ns(ci) == 7
        assert ci.k[0] == pytest.approx(512 * 128 / 640)
        # A new calibration is picked up (the scaled one is cached per content).
        info_pub.publish(_camera_info(1280, 960))
        assert wait_for(lambda: node._camera_info.width == 1280, 5)
        pub.publish(image_msg(f, "rgb8", 8))
        assert wait_for(lambda: rec.count("/segmentation/camera_info") == 2, 10)
        ci = rec.msgs["/segmentation/camera_info"][1][1]
        assert stamp_ns(ci) == 8 and ci.k[0] == pytest.approx(1024 * 128 / 1280)


@pytest.mark.parametrize(("content", "extra"), [("x: [\n", ()), (None, ()),
                                               ("{}\n", ("-p", "threads:=[1,")),
                                               ("{}\n", ("-p", "model"))])
def test_unreadable_params_file_is_one_line_and_exit_2(tmp_path, content, extra):
    """Only our line: rcl's own "Failed to parse global arguments" log line is held back."""
    f = tmp_path / "params.yaml"
    if content is not None:
        f.write_text(content)
    r = subprocess.run([sys.executable, "-m", "seg_perception.node", "--ros-args",
                        "--params-file", str(f), *extra], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "[segmentation_node] error: ROS arguments or params file rejected: "), r.stderr


@pytest.mark.parametrize(("override", "message"), [
    ("threads:=abc", "parameter 'threads': must be an integer; got 'abc'"),
    ("threads:=2.5", "parameter 'threads': must be an integer; got 2.5"),
    ("publish_mask:=maybe", "parameter 'publish_mask': must be true or false; got 'maybe'"),
    ("segmentation_node:max_frame_age:=soon",
     "parameter 'max_frame_age': must be a number; got 'soon'"),
])
def test_a_wrong_typed_override_of_a_params_file_value_is_exit_2(tiny_onnx, tmp_path, override,
                                                                  message):
    """rcl merges -p into the file's values and, types differing, rclpy reads the file's: the
    override used to vanish and the node ran on the file's value."""
    f = tmp_path / "params.yaml"
    f.write_text(f"/**:\n  ros__parameters:\n    model: {tiny_onnx}\n    threads: 1\n"
                 "    publish_mask: true\n    max_frame_age: 0.5\n")
    r = subprocess.run([sys.executable, "-m", "seg_perception.node", "--ros-args",
                        "--params-file", str(f), "-p", override], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[segmentation_node] error")]
    assert lines == [f"[segmentation_node] error: {message}"], r.stderr


def start_until_ready(*ros_args: str) -> str:
    """The node's output up to its ready line (or its first error), the node stopped after."""
    proc = subprocess.Popen([sys.executable, "-m", "seg_perception.node", "--ros-args",
                             *ros_args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        seen = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            seen += line
            if "segmentation node ready" in line or "error" in line:
                break
        return seen
    finally:
        proc.terminate()
        proc.wait(30)


def test_an_integer_for_a_seconds_parameter_is_taken(tiny_onnx, tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text(f"/**:\n  ros__parameters:\n    model: {tiny_onnx}\n    threads: 1\n"
                 "    max_frame_age: 0.5\n")
    seen = start_until_ready("--params-file", str(f), "-p", "max_frame_age:=2",
                             "-p", "diagnostics_period:=1")
    assert "segmentation node ready" in seen, seen


def test_misspelt_parameter_is_reported(tiny_onnx, tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text(f"/**:\n  ros__parameters:\n    model: {tiny_onnx}\n    thraeds: 1\n"
                 "    input_size: [0, 0]\n    treads: 3\n")
    seen = start_until_ready("--params-file", str(f))
    assert "unknown parameters ignored: thraeds, treads" in seen


def test_confidence_output(tiny_onnx, rng):
    topics = {"/segmentation/mask": Image, "/segmentation/confidence": Image}
    with served(tiny_onnx, topics, qos_reliability="reliable", qos_depth=10,
                publish_confidence=True) as (node, pub, rec):
        f = frame(rng, 192, 256)
        pub.publish(image_msg(f, "rgb8", 5))
        assert wait_for(lambda: rec.count("/segmentation/confidence") == 1, 10)
        msg = rec.msgs["/segmentation/confidence"][0][1]
        assert (msg.encoding, msg.height, msg.width) == ("mono8", 192, 256)
        assert stamp_ns(msg) == 5
        _, ids, small, _ = node.segmenter.run(f)
        want = cv2.resize(small, (256, 192), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(arr(msg), want)
        np.testing.assert_array_equal(arr(rec.msgs["/segmentation/mask"][0][1]),
                                      cv2.resize(ids, (256, 192),
                                                 interpolation=cv2.INTER_NEAREST))


def test_confidence_needs_a_model_that_has_it(tiny_onnx, tmp_path):
    import onnx

    m = onnx.load(str(tiny_onnx))
    keep = [o for o in m.graph.output if o.name != "confidence"]
    del m.graph.output[:]
    m.graph.output.extend(keep)
    old = tmp_path / "old.onnx"
    onnx.save(m, str(old))
    r = subprocess.run([sys.executable, "-m", "seg_perception.node", "--ros-args", "-p",
                        f"model:={old}", "-p", "publish_confidence:=true"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "parameter 'publish_confidence'" in r.stderr


def test_an_rmw_without_the_message_lost_event_still_subscribes():
    """rclpy raises UnsupportedEventTypeError for an event the RMW lacks (rmw_zenoh before
    mid-2024, rmw_ecal); the node subscribes without it and says losses are not counted."""
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError

    from seg_perception.node.node import subscribe_counting_losses

    with ros_session() as (ctx, ex):
        peer = Node("no_lost_event", context=ctx)
        ex.add_node(peer)
        got: list[Image] = []
        warned: list[str] = []

        class Log:
            def warning(self, text: str) -> None:
                warned.append(text)

        def create(**kw: object) -> object:
            if "event_callbacks" in kw:  # what such an RMW answers
                raise UnsupportedEventTypeError("provided event_type 7 is not supported")
            return peer.create_subscription(Image, "/no_lost/image", got.append, RELIABLE)

        sub, counted = subscribe_counting_losses(
            create, SubscriptionEventCallbacks(message_lost=lambda _i: None), Log())
        assert not counted and sub.topic_name == "/no_lost/image"
        assert warned == ["this RMW reports no lost messages: /diagnostics says lost is n/a"]
        pub = peer.create_publisher(Image, "/no_lost/image", RELIABLE)
        assert wait_for(lambda: pub.get_subscription_count() > 0, 10)
        pub.publish(Image())
        assert wait_for(lambda: len(got) == 1, 10)
        _, counted2 = subscribe_counting_losses(
            lambda **kw: peer.create_subscription(Image, "/no_lost/other", got.append,
                                                  RELIABLE, **kw),
            SubscriptionEventCallbacks(message_lost=lambda _i: None), Log())
        assert counted2 and len(warned) == 1  # Fast DDS has the event
