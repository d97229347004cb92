"""Reading a labelled bag: which topics hold the images and labels, and their messages in
time order, decoded by the node's own decoder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.errors import FrameError
from seg_perception.datasets.bag import (
    COMPRESSED_SUFFIX,
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    stamp_ns,
    typestore,
)

IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)


@dataclass
class BagTopics:
    """The resolved image and label streams of a bag."""

    path: Path
    image_topic: str
    image_type: str
    label_topic: str
    image_count: int
    label_count: int
    all_topics: dict[str, tuple[str, int]]

    @property
    def compressed(self) -> bool:
        return self.image_type == COMPRESSED_TYPE

    @property
    def base_image_topic(self) -> str:
        """The topic name a node is configured with (image_transport appends /compressed)."""
        t = self.image_topic
        if self.compressed and t.endswith(COMPRESSED_SUFFIX):
            return t[: -len(COMPRESSED_SUFFIX)]
        return t


def _describe_topics(topics: dict[str, tuple[str, int]]) -> str:
    if not topics:
        return "the bag has no topics"
    return "the bag has: " + ", ".join(f"{t} ({ty}, {n} msgs)" for t, (ty, n) in
                                       sorted(topics.items()))


def open_bag(path: str | Path):  # noqa: ANN201 - an open rosbags AnyReader
    """An open AnyReader; missing or unreadable bags raise errors that say which and why."""
    from rosbags.highlevel import AnyReader

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag not found: {p}")
    try:
        reader = AnyReader([p], default_typestore=typestore())
        reader.open()
    except FileNotFoundError as exc:
        raise ValueError(f"{p} is not a rosbag2 bag (a folder with metadata.yaml, or a .mcap "
                         f"file): {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - rosbags, sqlite3, yaml and zstd raise their own
        raise ValueError(f"cannot read bag {p}: {type(exc).__name__}: {exc}") from exc
    return reader


def resolve_topics(reader: Any, path: Path, image_topic: str, label_topic: str) -> BagTopics:
    """Finds the image stream (raw, or compressed on IMAGE_TOPIC/compressed) and the labels;
    a missing or mistyped topic raises with the list of topics the bag has."""
    topics: dict[str, tuple[str, int]] = {}
    for c in reader.connections:
        ty, n = topics.get(c.topic, (c.msgtype, 0))
        topics[c.topic] = (ty, n + c.msgcount)
    img = image_topic
    if img not in topics and img + COMPRESSED_SUFFIX in topics:
        img = img + COMPRESSED_SUFFIX
    if img not in topics:
        raise ValueError(f"image topic {image_topic} not found in {path}; "
                         f"{_describe_topics(topics)}")
    if topics[img][0] not in IMAGE_TYPES:
        raise ValueError(f"image topic {img} has type {topics[img][0]}, expected one of "
                         f"{', '.join(IMAGE_TYPES)}")
    if label_topic not in topics:
        raise ValueError(f"label topic {label_topic} not found in {path}; "
                         f"{_describe_topics(topics)}")
    if topics[label_topic][0] != IMAGE_TYPE:
        raise ValueError(f"label topic {label_topic} has type {topics[label_topic][0]}, "
                         f"expected {IMAGE_TYPE} (mono8 class ids)")
    return BagTopics(path, img, topics[img][0], label_topic, topics[img][1],
                     topics[label_topic][1], topics)


def header_stamp(msg: Any) -> int:
    s = msg.header.stamp
    return stamp_ns(s.sec, s.nanosec)


def decode_ids(msg: Any) -> np.ndarray:
    """Class ids from a mono8 (8UC1) Image, honouring ``step``."""
    enc = str(msg.encoding).lower()
    if enc not in ("mono8", "8uc1"):
        raise FrameError(f"class-id image must be mono8, got {msg.encoding!r}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(msg.data, np.uint8)
    if h <= 0 or w <= 0 or step < w or buf.size != h * step:
        raise FrameError(f"malformed mono8 image {w}x{h} step {step} with {buf.size} bytes")
    return buf.reshape(h, step)[:, :w]


def bag_messages(reader: Any, connections: list, path: Path) -> Iterator[tuple]:
    """(connection, time, raw) in time order; a read failure mid-way becomes a ValueError that
    says how far it got."""
    n = 0
    it = reader.messages(connections=connections)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - zstd, sqlite3 or rosbags errors on bad data
            raise ValueError(f"bag {path} became unreadable after {n} messages: "
                             f"{type(exc).__name__}: {exc}") from exc
        n += 1
        yield item
