"""make-bag: what lands in the bag (topics, types, stamps, pixels, ignore mapping), both storages,
and the errors for bad folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader

from evaltools import START_NS, make_bag, make_dataset
from seg_perception.cli import main as cli
from seg_perception.core.classes import CAMVID
from seg_perception.core.codec import decode_message
from seg_perception.datasets.bag import bag_size, typestore
from seg_perception.datasets.camvid import read_label
from seg_perception.evaluation.inputs import decode_ids, header_stamp


def read_all(bag: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([bag], default_typestore=typestore()) as r:
        for c, t, raw in r.messages():
            out.setdefault(c.topic, []).append((t, r.deserialize(raw, c.msgtype)))
        types = {c.topic: c.msgtype for c in r.connections}
    out["_types"] = types  # type: ignore[assignment]
    return out


def source_frames(ds: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    files = sorted((ds / "val").iterdir())
    rgb = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    labs = [read_label(ds / "valannot" / f.name, CAMVID) for f in files]
    return rgb, labs


def test_raw_mcap_round_trip(tmp_path):
    bag = make_bag(tmp_path, n=5, rate_hz=20.0)
    assert (bag / "bag.mcap").is_file() and (bag / "metadata.yaml").is_file()
    msgs = read_all(bag)
    assert msgs["_types"] == {"/camera/image_raw": "sensor_msgs/msg/Image",
                              "/camera/labels": "sensor_msgs/msg/Image"}
    imgs, labs = msgs["/camera/image_raw"], msgs["/camera/labels"]
    assert len(imgs) == len(labs) == 5
    rgb_src, lab_src = source_frames(tmp_path / "bag_data")
    for i, ((ti, im), (tl, lb)) in enumerate(zip(imgs, labs, strict=True)):
        expect = START_NS + i * 50_000_000  # 20 Hz
        assert ti == tl == header_stamp(im) == header_stamp(lb) == expect
        assert im.encoding == "rgb8" and lb.encoding == "mono8"
        np.testing.assert_array_equal(decode_message(im), rgb_src[i])
        ids = decode_ids(lb)
        np.testing.assert_array_equal(ids, lab_src[i])
        assert (ids[:2] == 255).all() and ids[2:].max() <= 10  # void 11 -> 255


def test_compressed_images_go_to_the_image_transport_topic(tmp_path):
    bag = make_bag(tmp_path, n=3, compressed=True, jpeg_quality=95)
    msgs = read_all(bag)
    assert msgs["_types"]["/camera/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert "/camera/image_raw" not in msgs
    rgb_src, _ = source_frames(tmp_path / "bag_data")
    for i, (_, m) in enumerate(msgs["/camera/image_raw/compressed"]):
        assert "jpeg" in m.format
        rgb = decode_message(m)
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb_src[i], cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 95])
        expect = cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(rgb, expect)  # the source, JPEG-encoded at quality 95


def test_sqlite3_storage_and_metadata_version(tmp_path):
    bag = make_bag(tmp_path, n=2, storage="sqlite3")
    assert (bag / "bag.db3").is_file()
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == "sqlite3"
    for t in meta["topics_with_message_count"]:
        qos = yaml.safe_load(t["topic_metadata"]["offered_qos_profiles"])  # v8: a YAML string
        assert qos[0]["reliability"] == 1 and qos[0]["history"] == 1
    assert len(read_all(bag)["/camera/labels"]) == 2


def test_chunk_compression_shrinks_mcap(tmp_path):
    plain = make_bag(tmp_path, "plain", n=4, chunk_compression=False)
    packed = make_bag(tmp_path, "packed", n=4)
    assert bag_size(packed) < 0.8 * bag_size(plain)
    a, b = read_all(plain), read_all(packed)
    np.testing.assert_array_equal(decode_ids(a["/camera/labels"][3][1]),
                                  decode_ids(b["/camera/labels"][3][1]))


def test_cli_with_folders_every_and_limit(tmp_path, capsys):
    ds = make_dataset(tmp_path / "ds", n=7)
    out = tmp_path / "b"
    rc = cli(["make-bag", "--images", str(ds / "val"), "--labels", str(ds / "valannot"),
              "--out", str(out), "--every", "2", "--limit", "3", "--rate", "10"])
    assert rc == 0
    assert "3 frames at 10 Hz" in capsys.readouterr().out
    imgs = read_all(out)["/camera/image_raw"]
    assert [t for t, _ in imgs][1] - imgs[0][0] == 100_000_000


def test_cli_errors(tmp_path, capsys):
    ds = make_dataset(tmp_path / "ds", n=3)
    (ds / "valannot" / "f001.png").unlink()
    assert cli(["make-bag", "--dataset", str(ds), "--out", str(tmp_path / "b")]) == 1
    assert "have no label" in capsys.readouterr().err
    assert cli(["make-bag", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "b")]) == 1
    assert "not found" in capsys.readouterr().err
    assert cli(["make-bag", "--out", str(tmp_path / "b")]) == 1
    assert "--dataset" in capsys.readouterr().err
    existing = tmp_path / "exists"
    existing.mkdir()
    assert cli(["make-bag", "--dataset", str(ds), "--out", str(existing)]) == 1
    assert "exists already" in capsys.readouterr().err


def test_size_mismatch_leaves_no_half_bag(tmp_path, capsys):
    ds = make_dataset(tmp_path / "ds", n=3)
    cv2.imwrite(str(ds / "valannot" / "f002.png"), np.zeros((10, 10), np.uint8))
    out = tmp_path / "b"
    assert cli(["make-bag", "--dataset", str(ds), "--out", str(out)]) == 1
    assert "f002.png" in capsys.readouterr().err
    assert not out.exists()


def test_rejects_bad_rate_and_storage(tmp_path):
    from seg_perception.datasets.bag import pair_folders, write_bag

    ds = make_dataset(tmp_path / "ds", n=1)
    pairs = pair_folders(ds / "val", ds / "valannot")
    with pytest.raises(ValueError, match="rate"):
        write_bag(pairs, tmp_path / "x", classes=CAMVID, rate_hz=0, progress=False)
    with pytest.raises(ValueError, match="storage"):
        write_bag(pairs, tmp_path / "x", classes=CAMVID, storage="bag", progress=False)
