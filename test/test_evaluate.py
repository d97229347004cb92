"""evaluate: make-bag -> evaluate round trips (offline and live through the real node), the
metrics against a direct computation, and every bad input the issue lists."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaltools import START_NS, make_bag, make_dataset
from rostools import default_sigint
from seg_perception.cli import main as cli
from seg_perception.core.classes import CAMVID
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.datasets.bag import (
    IMAGE_TYPE,
    image_message,
    label_message,
    pair_folders,
    typestore,
)
from seg_perception.datasets.camvid import read_label, read_rgb
from seg_perception.evaluation.evaluate import EvalConfig, evaluate

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"miou", "per_class_iou", "pixel_accuracy", "frames", "frames_scored", "dropped",
        "latency_ms", "fps", "backend", "precision", "model"}


def direct_confusion(model: Path, ds: Path) -> ConfusionMatrix:
    """The expected answer: the same model on the source PNGs, no bag, no node."""
    from seg_perception.inference.factory import create_backend
    from seg_perception.inference.segmenter import Segmenter

    seg = Segmenter(create_backend(model, "onnxruntime", "fp32", 1))
    cm = ConfusionMatrix(CAMVID.num_classes)
    for img, lab in pair_folders(ds / "val", ds / "valannot"):
        cm.update(seg.predict(read_rgb(img)), read_label(lab, CAMVID))
    return cm


def load(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def check_report(out: Path, n_overlays: int) -> str:
    text = (out / "report.md").read_text()
    for png in ("iou.png", "confusion.png", "latency.png"):
        assert f"({png})" in text
        assert (out / png).stat().st_size > 5000
    assert len(list((out / "overlays").glob("frame_*.png"))) == n_overlays
    return text


def test_offline_round_trip_matches_direct_inference(tmp_path, tiny_onnx, capsys):
    bag = make_bag(tmp_path, n=6)
    out = tmp_path / "eval"
    assert cli(["evaluate", "--bag", str(bag), "--out", str(out), "--model", str(tiny_onnx)]) == 0
    assert "6/6 frames scored" in capsys.readouterr().out
    m = load(out)
    assert KEYS <= set(m)
    assert m["frames"] == m["frames_scored"] == 6 and m["dropped"] == 0
    assert m["complete"] is True and m["error"] is None and m["mode"] == "offline"
    assert m["backend"] == "onnxruntime" and m["precision"] == "fp32"
    assert list(m["per_class_iou"]) == list(CAMVID.names)
    cm = direct_confusion(tiny_onnx, tmp_path / "bag_data")
    assert m["confusion_matrix"] == cm.mat.tolist()
    assert m["scored_pixels"] == cm.scored_pixels == 6 * (96 - 2) * 128  # void rows skipped
    assert m["miou"] == pytest.approx(cm.miou(), abs=1e-6)
    assert m["pixel_accuracy"] == pytest.approx(cm.pixel_accuracy(), abs=1e-6)
    lat = m["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert m["fps"] > 0
    text = check_report(out, 4)
    assert f"| mIoU | {m['miou']:.3f} |" in text


def test_offline_compressed_bag_resolves_topic(tmp_path, tiny_onnx):
    bag = make_bag(tmp_path, n=3, compressed=True, storage="sqlite3")
    m = evaluate(EvalConfig(bag=bag, out=tmp_path / "e", model=tiny_onnx, overlays=1,
                            progress=False))
    assert m["image_topic"] == "/camera/image_raw/compressed"
    assert m["frames_scored"] == 3


def test_offline_max_frames_reads_no_labels_beyond_them(tmp_path, tiny_onnx, capsys):
    """As live: the labels of frames past --max-frames are not read, so they are not
    reported as labels without an image."""
    bag = make_bag(tmp_path, n=5)
    m = evaluate(EvalConfig(bag=bag, out=tmp_path / "e", model=tiny_onnx, overlays=0,
                            max_frames=2, progress=False))
    assert m["frames"] == 2 and m["frames_scored"] == 2 and m["labels_without_image"] == 0
    assert "no matching image" not in capsys.readouterr().out


def test_missing_topic_lists_the_bag_topics(tmp_path, tiny_onnx, capsys):
    bag = make_bag(tmp_path, n=1)
    rc = cli(["evaluate", "--bag", str(bag), "--out", str(tmp_path / "e"), "--model",
              str(tiny_onnx), "--image-topic", "/front/image"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "image topic /front/image not found" in err
    assert "/camera/image_raw (sensor_msgs/msg/Image, 1 msgs)" in err
    assert "/camera/labels (sensor_msgs/msg/Image, 1 msgs)" in err
    rc = cli(["evaluate", "--bag", str(bag), "--out", str(tmp_path / "e"), "--model",
              str(tiny_onnx), "--label-topic", "/gt"])
    assert rc == 1 and "label topic /gt not found" in capsys.readouterr().err


def test_wrong_label_type_is_named(tmp_path, tiny_onnx):
    bag = make_bag(tmp_path, n=1, compressed=True)
    with pytest.raises(ValueError, match="has type sensor_msgs/msg/CompressedImage"):
        evaluate(EvalConfig(bag=bag, out=tmp_path / "e", model=tiny_onnx, progress=False,
                            label_topic="/camera/image_raw/compressed"))


def write_unpaired_bag(path: Path, ds: Path) -> None:
    """4 paired frames, 2 labels whose stamps match no image, 1 image with no label."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = typestore()
    pairs = pair_folders(ds / "val", ds / "valannot")
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        ci = w.add_connection("/camera/image_raw", IMAGE_TYPE, typestore=ts)
        cl = w.add_connection("/camera/labels", IMAGE_TYPE, typestore=ts)
        for i, (img, lab) in enumerate(pairs):
            t = START_NS + i * 33_000_000
            if i < 5:
                w.write(ci, t, ts.serialize_cdr(image_message(read_rgb(img), t, "c", False),
                                                IMAGE_TYPE))
            ids = read_label(lab, CAMVID)
            if i != 4:
                lt = t if i < 4 else t + 1  # i = 5, 6: no image at this stamp
                w.write(cl, lt, ts.serialize_cdr(label_message(ids, lt, "c"), IMAGE_TYPE))


def test_labels_without_image_are_counted_and_reported(tmp_path, tiny_onnx, capsys):
    ds = make_dataset(tmp_path / "ds", n=7)
    bag = tmp_path / "bag"
    write_unpaired_bag(bag, ds)
    out = tmp_path / "e"
    assert cli(["evaluate", "--bag", str(bag), "--out", str(out), "--model",
                str(tiny_onnx)]) == 0
    assert "2 labels had no matching image" in capsys.readouterr().out
    m = load(out)
    assert m["frames"] == 5 and m["frames_scored"] == 4
    assert m["labels_without_image"] == 2 and m["images_without_label"] == 1
    assert m["dropped"] == 0
    assert "| labels without a matching image | 2 |" in (out / "report.md").read_text()


@pytest.mark.parametrize("kind", ["missing", "not_a_bag", "garbage_metadata", "garbage_mcap"])
def test_unreadable_bag_gives_a_clear_error(tmp_path, tiny_onnx, capsys, kind):
    bag = tmp_path / "bag"
    expect = {"missing": "bag not found", "not_a_bag": "is not a rosbag2 bag",
              "garbage_metadata": "cannot read bag", "garbage_mcap": "cannot read bag"}[kind]
    if kind == "not_a_bag":
        bag.mkdir()
        (bag / "notes.txt").write_text("hello")
    elif kind == "garbage_metadata":
        bag.mkdir()
        (bag / "metadata.yaml").write_text("just a string\n")
    elif kind == "garbage_mcap":
        good = make_bag(tmp_path, "good", n=1)
        bag = good / "good.mcap"
        bag.write_bytes(b"\x89MCAP0\r\n" + os.urandom(2000))
    rc = cli(["evaluate", "--bag", str(bag), "--out", str(tmp_path / "e"), "--model",
              str(tiny_onnx)])
    err = capsys.readouterr().err
    assert rc == 1 and expect in err and "Traceback" not in err


def test_bag_corrupt_midway_keeps_what_was_measured(tmp_path, tiny_onnx, capsys):
    """Chunk 3 of 4 has a broken zstd frame: the first chunks are scored and written out."""
    ds = make_dataset(tmp_path / "ds", n=12, size=(240, 320))
    bag = tmp_path / "bag"
    from seg_perception.datasets.bag import write_bag

    write_bag(pair_folders(ds / "val", ds / "valannot"), bag, classes=CAMVID, progress=False)
    f = bag / "bag.mcap"
    data = bytearray(f.read_bytes())
    magic = b"\x28\xb5\x2f\xfd"  # zstd frame magic, one per chunk
    starts = [i for i in range(len(data) - 3) if data[i:i + 4] == magic]
    assert len(starts) >= 3
    data[starts[2]:starts[2] + 4] = b"\0\0\0\0"
    f.write_bytes(bytes(data))
    out = tmp_path / "e"
    rc = cli(["evaluate", "--bag", str(bag), "--out", str(out), "--model", str(tiny_onnx)])
    err = capsys.readouterr().err
    assert rc == 1 and "became unreadable after" in err and "Traceback" not in err
    m = load(out)
    assert m["complete"] is False and "unreadable" in m["error"]
    assert 0 < m["frames_scored"] == m["frames"] < 12
    assert "Incomplete run" in (out / "report.md").read_text()


# ---------------------------------------------------------------------------------------------
# Live: the real node in a subprocess, real rclpy and Fast DDS.


@pytest.mark.ros
@pytest.mark.slow
def test_live_round_trip_through_the_node(tmp_path, tiny_onnx):
    bag = make_bag(tmp_path, n=8)
    out = tmp_path / "live"
    m = evaluate(EvalConfig(bag=bag, out=out, model=tiny_onnx, live=True, rate=10.0,
                            backend="onnxruntime",
                            qos_reliability="reliable", threads=1, overlays=2, progress=False))
    assert m["mode"] == "live" and m["complete"] is True
    assert m["frames"] == m["published"] == 8
    assert m["dropped"] == 0 and m["frames_scored"] == 8
    # Same model, same frames: the node's masks score exactly like direct inference.
    assert m["confusion_matrix"] == direct_confusion(tiny_onnx, tmp_path / "bag_data").mat.tolist()
    lat = m["latency_ms"]
    assert 0 < lat["p50"] <= lat["max"]
    assert m["fps"] > 0  # its value is the machine's; every frame answered is pinned above
    assert m["backend"] == "onnxruntime"
    assert m["node_counters"]["received"] == m["node_counters"]["published"] == 8
    assert m["node_exit_code"] == 0  # stopped cleanly with SIGINT
    assert "segmentation node ready" in (out / "node.log").read_text()
    check_report(out, 2)


@pytest.mark.ros
@pytest.mark.slow
def test_live_compressed_sqlite3_bag_at_its_recorded_timing(tmp_path, tiny_onnx):
    """The other live path: a sqlite3 bag of JPEG/PNG CompressedImage, replayed at its recorded
    timing (no --rate); the node takes the compressed transport and answers every frame."""
    bag = make_bag(tmp_path, n=4, compressed=True, storage="sqlite3")
    m = evaluate(EvalConfig(bag=bag, out=tmp_path / "live", model=tiny_onnx, live=True,
                            backend="onnxruntime", qos_reliability="reliable", threads=1,
                            overlays=0, progress=False))
    assert m["complete"] is True and m["input_transport"] == "compressed"
    assert m["image_topic"] == "/camera/image_raw/compressed"
    assert m["frames"] == m["published"] == 4 and m["frames_scored"] == 4
    assert m["dropped"] == 0 and m["late_masks"] == 0 and m["latency_ms"]["n"] == 4
    assert m["rate_hz"] > 0 and m["node_exit_code"] == 0
    # The node decodes the payloads as the offline path does: the same masks, the same counts.
    off = evaluate(EvalConfig(bag=bag, out=tmp_path / "off", model=tiny_onnx, overlays=0,
                              progress=False))
    assert m["confusion_matrix"] == off["confusion_matrix"]


@pytest.mark.ros
@pytest.mark.slow
def test_live_node_that_cannot_start_is_reported(tmp_path, tiny_onnx):
    bag = make_bag(tmp_path, n=2)
    out = tmp_path / "live"
    with pytest.raises(RuntimeError, match="node failed to start"):
        evaluate(EvalConfig(bag=bag, out=out, model=tiny_onnx, live=True, threads=0,
                            progress=False))
    m = load(out)
    assert m["complete"] is False and "node failed to start" in m["error"]
    assert m["frames"] == 0 and (out / "report.md").is_file()


@pytest.mark.ros
@pytest.mark.slow
def test_live_interrupted_writes_partial_results(tmp_path, tiny_onnx):
    bag = make_bag(tmp_path, n=30)
    out = tmp_path / "live"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seg_perception", "evaluate", "--bag", str(bag), "--out",
         str(out), "--model", str(tiny_onnx), "--live", "--rate", "4", "--threads", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint)
    log = out / "node.log"
    end = time.monotonic() + 60
    while time.monotonic() < end and not (log.is_file() and "ready" in log.read_text()):
        time.sleep(0.1)
    time.sleep(2.5)  # a few frames at 4 Hz
    proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    m = load(out)
    assert m["complete"] is False and m["error"] == "KeyboardInterrupt"
    # Interrupted before the end; how many frames had arrived by then depends on the machine's
    # load (none, on a busy one), so only the partial run's bookkeeping is pinned.
    assert m["frames"] < 30 and m["frames_scored"] <= m["frames"]
    assert m["node_exit_code"] is not None
    with pytest.raises(ProcessLookupError):
        os.kill(m["node_pid"], 0)  # the node did not outlive the evaluation
    assert "Incomplete run" in (out / "report.md").read_text()



def test_a_match_counts_only_offers_the_recorder_can_take():
    """Humble's route to 'the node's mask reaches the recorder': a best-effort offer (a node of
    another run, say) is on the topic but never delivers to a reliable reader."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from rostools import ros_session, wait_for
    from seg_perception.evaluation.replay import compatible_offers, publisher_matched

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    with ros_session() as (ctx, ex):
        peer = Node("offers", context=ctx)
        ex.add_node(peer)
        sub = peer.create_subscription(Image, "/offers/mask", lambda _m: None, reliable)
        peer.create_publisher(Image, "/offers/mask", best_effort)
        assert wait_for(lambda: peer.count_publishers("/offers/mask") == 1, 10)
        assert compatible_offers(peer, "/offers/mask", reliable) == 0
        assert compatible_offers(peer, "/offers/mask", best_effort) == 1
        assert not publisher_matched(peer, sub, "/offers/mask", reliable)
        peer.create_publisher(Image, "/offers/mask", reliable)
        assert wait_for(lambda: compatible_offers(peer, "/offers/mask", reliable) == 1, 10)
        assert wait_for(lambda: publisher_matched(peer, sub, "/offers/mask", reliable), 10)
