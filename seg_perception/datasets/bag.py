"""``seg-perception make-bag``: a rosbag2 of camera frames and their ground-truth labels.

Replay evaluation needs frames and labels that share header stamps, so accuracy can be scored
against whatever the node publishes. The bag is written with the pure-Python ``rosbags`` library
(no ROS install needed) in rosbag2 format version 8, which ``ros2 bag`` reads from Humble on
(see docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from tqdm import tqdm

from seg_perception.core.classes import IGNORE_LABEL, ClassSet
from seg_perception.datasets.camvid import dataset_classes, list_images, read_label, read_rgb

IMAGE_TOPIC = "/camera/image_raw"
LABEL_TOPIC = "/camera/labels"
COMPRESSED_SUFFIX = "/compressed"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
BAG_VERSION: Final = 8
"""Metadata v8 stores QoS as a YAML string, the form Humble, Jazzy and Kilted all parse
(v9 changed it to a list that Humble and Jazzy reject)."""
STORAGES = ("mcap", "sqlite3")


@lru_cache(maxsize=1)
def typestore():  # noqa: ANN201 - rosbags Typestore; imported lazily
    """Humble's message definitions: Image/CompressedImage/Header are unchanged (same RIHS01
    hash) through Kilted, so one store serves every distribution."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _offered_qos() -> list:
    """A camera driver's offer (reliable, volatile, keep last 10): ``ros2 bag play`` re-offers it,
    and Humble's player needs a non-empty profile list to parse."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return [Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE, zero,
                zero, QosLiveliness.AUTOMATIC, zero, False)]


def pair_folders(images: str | Path, labels: str | Path) -> list[tuple[Path, Path]]:
    """(image, label) pairs matched by file stem; every image must have a label."""
    imgs = list_images(images)
    labs = {p.stem: p for p in list_images(labels)}
    if not imgs:
        raise ValueError(f"no images (png/jpg/bmp) in {images}")
    missing = [p.name for p in imgs if p.stem not in labs]
    if missing:
        raise ValueError(f"{len(missing)} of {len(imgs)} images in {images} have no label in "
                         f"{labels}, e.g. {missing[:3]}")
    return [(p, labs[p.stem]) for p in imgs]


def stamp_ns(sec: int, nanosec: int) -> int:
    return int(sec) * 1_000_000_000 + int(nanosec)


def image_message(rgb: np.ndarray, t_ns: int, frame_id: str, compressed: bool,
                  jpeg_quality: int = 90) -> object:
    """A rosbags sensor_msgs Image (rgb8) or CompressedImage (jpeg) for one RGB frame."""
    ts = typestore()
    header = _header(t_ns, frame_id)
    if compressed:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        # image_transport's compressed format string: "<encoding>; jpeg compressed <target>".
        return ts.types[COMPRESSED_TYPE](header=header, format="rgb8; jpeg compressed bgr8",
                                         data=buf.reshape(-1))
    h, w = rgb.shape[:2]
    return ts.types[IMAGE_TYPE](header=header, height=h, width=w, encoding="rgb8",
                                is_bigendian=0, step=w * 3,
                                data=np.ascontiguousarray(rgb, np.uint8).reshape(-1))


def label_message(ids: np.ndarray, t_ns: int, frame_id: str) -> object:
    """mono8 class ids; ``IGNORE_LABEL`` (255) marks pixels that are not scored."""
    h, w = ids.shape
    return typestore().types[IMAGE_TYPE](
        header=_header(t_ns, frame_id), height=h, width=w, encoding="mono8", is_bigendian=0,
        step=w, data=np.ascontiguousarray(ids, np.uint8).reshape(-1))


def _header(t_ns: int, frame_id: str) -> object:
    ts = typestore()
    stamp = ts.types["builtin_interfaces/msg/Time"](sec=t_ns // 1_000_000_000,
                                                    nanosec=t_ns % 1_000_000_000)
    return ts.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


@dataclass
class BagSummary:
    path: Path
    frames: int
    storage: str
    image_topic: str
    label_topic: str
    start_ns: int
    duration_s: float
    bytes: int


def bag_size(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def write_bag(pairs: list[tuple[Path, Path]], out: str | Path, *, classes: ClassSet,
              rate_hz: float = 30.0, compressed: bool = False, storage: str = "mcap",
              chunk_compression: bool = True, jpeg_quality: int = 90,
              start_ns: int | None = None, frame_id: str = "camera",
              image_topic: str = IMAGE_TOPIC, label_topic: str = LABEL_TOPIC,
              progress: bool = True) -> BagSummary:
    """Writes one image and one label message per pair, both stamped (header and bag time)
    ``start_ns + i / rate_hz``.

    With ``compressed`` the images go to ``<image_topic>/compressed`` as JPEG CompressedImage,
    the topic image_transport uses, so ``ros2 bag play`` feeds a compressed subscriber directly.
    ``chunk_compression`` zstd-compresses mcap chunks (labels shrink ~20x; readers decompress
    transparently). On error the half-written bag is removed.
    """
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
    from rosbags.rosbag2.errors import WriterError

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
    if not pairs:
        raise ValueError("no frames to write")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg quality must be 1..100, got {jpeg_quality}")
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists already; rosbag2 bags are never overwritten")
    start = int(time.time() * 1e9) if start_ns is None else int(start_ns)
    period = 1e9 / rate_hz
    img_topic = image_topic + COMPRESSED_SUFFIX if compressed else image_topic
    ts = typestore()

    writer = Writer(out, version=BAG_VERSION, storage_plugin=StoragePlugin[storage.upper()])
    if storage == "mcap" and chunk_compression:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    try:
        writer.open()
    except WriterError as exc:
        raise ValueError(f"cannot create bag {out}: {exc}") from exc
    done = False
    try:
        qos = _offered_qos()
        img_conn = writer.add_connection(img_topic, COMPRESSED_TYPE if compressed else IMAGE_TYPE,
                                         typestore=ts, offered_qos_profiles=qos)
        lab_conn = writer.add_connection(label_topic, IMAGE_TYPE, typestore=ts,
                                         offered_qos_profiles=qos)
        for i, (img_path, lab_path) in enumerate(tqdm(pairs, desc="make-bag", unit="frame",
                                                      disable=not progress)):
            rgb = read_rgb(img_path)
            ids = read_label(lab_path, classes)
            if ids.shape != rgb.shape[:2]:
                raise ValueError(f"label {lab_path.name} is {ids.shape[1]}x{ids.shape[0]}, "
                                 f"image {img_path.name} is {rgb.shape[1]}x{rgb.shape[0]}")
            t = start + round(i * period)
            msg = image_message(rgb, t, frame_id, compressed, jpeg_quality)
            writer.write(img_conn, t, ts.serialize_cdr(msg, img_conn.msgtype))
            writer.write(lab_conn, t, ts.serialize_cdr(label_message(ids, t, frame_id),
                                                       IMAGE_TYPE))
        writer.close()
        done = True
    finally:
        if not done:
            import shutil

            writer.abort()
            shutil.rmtree(out, ignore_errors=True)
    return BagSummary(out, len(pairs), storage, img_topic, label_topic, start,
                      (len(pairs) - 1) * period / 1e9, bag_size(out))


def add_args(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("frames (either --dataset or --images with --labels)")
    src.add_argument("--dataset", type=Path,
                     help="CamVid-layout root: uses SPLIT/ and SPLITannot/ (and classes.json)")
    src.add_argument("--split", default="val", help="split under --dataset (default: val)")
    src.add_argument("--images", type=Path, help="folder of RGB images")
    src.add_argument("--labels", type=Path,
                     help="folder of 8-bit label images with the same file stems")
    src.add_argument("--classes", type=Path,
                     help="class file (JSON) defining the dataset's ignore id; default: the "
                          "dataset's classes.json, else CamVid (void = 11)")
    parser.add_argument("--out", "-o", type=Path, required=True,
                        help="bag folder to create (must not exist)")
    parser.add_argument("--rate", type=float, default=30.0,
                        help="frame rate in Hz for the stamps (default: 30)")
    parser.add_argument("--compressed", action="store_true",
                        help="JPEG CompressedImage on IMAGE_TOPIC/compressed instead of raw rgb8")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--storage", choices=STORAGES, default="mcap")
    parser.add_argument("--no-chunk-compression", action="store_true",
                        help="mcap only: store chunks uncompressed (default: zstd)")
    parser.add_argument("--every", type=int, default=1, help="take every N-th frame")
    parser.add_argument("--limit", type=int, default=0, help="at most N frames (0: all)")
    parser.add_argument("--start-ns", type=int, default=None,
                        help="stamp of the first frame in ns since the epoch (default: now)")
    parser.add_argument("--frame-id", default="camera")
    parser.add_argument("--image-topic", default=IMAGE_TOPIC)
    parser.add_argument("--label-topic", default=LABEL_TOPIC)


def run(args: argparse.Namespace) -> int:
    if Path(args.out).exists():
        raise ValueError(f"{args.out} exists already; rosbag2 bags are never overwritten")
    if args.dataset is not None:
        if args.images is not None or args.labels is not None:
            raise ValueError("give either --dataset or --images/--labels, not both")
        root = Path(args.dataset)
        images, labels = root / args.split, root / f"{args.split}annot"
        classes = dataset_classes(root)
    elif args.images is not None and args.labels is not None:
        images, labels = args.images, args.labels
        classes = dataset_classes(Path(images).parent)
    else:
        raise ValueError("need --dataset ROOT, or both --images and --labels")
    if args.classes is not None:
        classes = ClassSet.load(args.classes)
    if args.every < 1 or args.limit < 0:
        raise ValueError("--every must be >= 1 and --limit >= 0")
    pairs = pair_folders(images, labels)[:: args.every]
    if args.limit:
        pairs = pairs[: args.limit]
    s = write_bag(pairs, args.out, classes=classes, rate_hz=args.rate, compressed=args.compressed,
                  storage=args.storage, chunk_compression=not args.no_chunk_compression,
                  jpeg_quality=args.jpeg_quality, start_ns=args.start_ns,
                  frame_id=args.frame_id, image_topic=args.image_topic,
                  label_topic=args.label_topic)
    print(f"wrote {s.path} ({s.storage}, {s.bytes / 1e6:.2f} MB): {s.frames} frames at "
          f"{args.rate:g} Hz on {s.image_topic} and {s.label_topic} "
          f"(label ignore id {classes.ignore_id} -> {IGNORE_LABEL})")
    return 0
