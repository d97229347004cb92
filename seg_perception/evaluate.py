"""``seg-perception evaluate``: how well and how fast frames from a bag are segmented.

Offline mode runs the backend on every image of the bag. ``--live`` starts the real node, replays
the bag into it over ROS 2 and scores what it publishes on ``/segmentation/mask``, so the figures
include transport, the node's own overhead and the frames it drops. Predictions and labels are
paired by header stamp. Whatever happens, ``DIR/metrics.json`` and ``DIR/report.md`` describe what
was measured up to that point (``complete: false`` and ``error`` when cut short).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from .bag import (
    COMPRESSED_SUFFIX,
    COMPRESSED_TYPE,
    IMAGE_TOPIC,
    IMAGE_TYPE,
    LABEL_TOPIC,
    stamp_ns,
    typestore,
)
from .classes import IGNORE_LABEL, ClassSet
from .codec import FrameError, decode_message
from .metrics import ConfusionMatrix

if TYPE_CHECKING:
    from .backends import Backend

IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
MASK_TOPIC = "/segmentation/mask"
PENDING_LIMIT = 256
"""Unpaired predictions/labels kept waiting for their partner; older ones are let go (they are
still counted, from the stamp sets, just not scored)."""


# ---------------------------------------------------------------------------------------------
# Bag input


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


def resolve_topics(reader: object, path: Path, image_topic: str, label_topic: str) -> BagTopics:
    """Finds the image stream (raw, or compressed on IMAGE_TOPIC/compressed) and the labels;
    a missing or mistyped topic raises with the list of topics the bag has."""
    topics: dict[str, tuple[str, int]] = {}
    for c in reader.connections:  # type: ignore[attr-defined]
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


def header_stamp(msg: object) -> int:
    s = msg.header.stamp  # type: ignore[attr-defined]
    return stamp_ns(s.sec, s.nanosec)


def decode_image(msg: object, msgtype: str) -> np.ndarray:  # noqa: ARG001 - kept for callers
    """RGB from a rosbags Image/CompressedImage, with the node's own decoder."""
    return decode_message(msg)


def decode_ids(msg: object) -> np.ndarray:
    """Class ids from a mono8 (8UC1) Image, honouring ``step``."""
    enc = str(msg.encoding).lower()  # type: ignore[attr-defined]
    if enc not in ("mono8", "8uc1"):
        raise FrameError(f"class-id image must be mono8, got {msg.encoding!r}")  # type: ignore[attr-defined]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)  # type: ignore[attr-defined]
    buf = np.frombuffer(msg.data, np.uint8)  # type: ignore[attr-defined]
    if h <= 0 or w <= 0 or step < w or buf.size != h * step:
        raise FrameError(f"malformed mono8 image {w}x{h} step {step} with {buf.size} bytes")
    return buf.reshape(h, step)[:, :w]


def bag_messages(reader: object, connections: list, path: Path) -> Iterator[tuple]:
    """(connection, time, raw) in time order; a read failure mid-way becomes a ValueError that
    says how far it got."""
    n = 0
    it = reader.messages(connections=connections)  # type: ignore[attr-defined]
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


# ---------------------------------------------------------------------------------------------
# Pairing and tallies


@dataclass
class OverlayFrame:
    index: int
    stamp: int
    rgb: np.ndarray
    pred: np.ndarray | None = None
    label: np.ndarray | None = None
    confidence: np.ndarray | None = None  # at the model's input size
    grid: np.ndarray | None = None  # occupancy cells, rows along y, columns along x


# A plausible camera for CamVid's 480x360 frames (the data set publishes no calibration): a
# 62-degree horizontal field of view, mounted 1.3 m up, looking level. For the report's
# pictures only; the node takes its intrinsics from camera_info and its pose from camera_pose.
CAMVID_K = (400.0, 0.0, 239.5, 0.0, 400.0, 179.5, 0.0, 0.0, 1.0)
CAMVID_POSE = (0.0, 0.0, 1.3, 0.0, 0.02, 0.0)


def planner_views(model: Path, frames: Sequence[OverlayFrame], backend: str = "onnxruntime",
                  threads: int = 2) -> None:
    """Fills each frame's confidence and flat-ground grid, for the report's pictures."""
    from .backends import create_backend
    from .geometry import GridSpec, GroundGrid, Intrinsics
    from .masks import group_lut
    from .modelinfo import CONFIDENCE_NAME
    from .pipeline import Segmenter

    if not frames:
        return
    b = create_backend(model, backend, "fp32", threads)
    try:
        with_conf = CONFIDENCE_NAME in b.info.outputs
        seg = Segmenter(b)
        h, w = seg.input_size
        groups = b.info.classes
        drivable = group_lut(groups.ids_of(groups.drivable))
        obstacles = group_lut(groups.ids_of(groups.obstacles))
        grid = GroundGrid(Intrinsics.from_fields(CAMVID_K, [], [], 480, 360).scaled(w, h),
                          CAMVID_POSE, GridSpec(0.1, (0.0, 30.0), (-10.0, 10.0)))
        for f in frames:
            _, ids, conf = seg.run_with_confidence(f.rgb, with_conf)
            f.confidence = conf
            f.grid = grid.render(ids, drivable, obstacles).copy()
    finally:
        b.close()


@dataclass
class Tally:
    """Pairs predictions and labels by stamp and accumulates everything metrics.json reports.

    Thread-safe: in live mode labels arrive from the replay loop and masks from the executor.
    """

    classes: ClassSet
    overlay_indices: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.cm = ConfusionMatrix(self.classes.num_classes, IGNORE_LABEL)
        self.lock = threading.Lock()
        self.frames = 0  # image messages read (offline) or published (live)
        self.bad_frames = 0  # images that could not be decoded
        self.bad_labels = 0
        self.size_mismatch = 0
        self.scored = 0
        self.image_stamps: set[int] = set()
        self.label_stamps: set[int] = set()
        self.predicted: set[int] = set()
        self.duplicate_images = 0
        self.latencies_ms: list[float] = []
        self.publish_time: dict[int, float] = {}
        self.first_publish: float | None = None
        self.first_receive: float | None = None
        self.last_receive: float | None = None
        self.unexpected_masks = 0
        self._labels: dict[int, np.ndarray] = {}
        self._preds: dict[int, np.ndarray] = {}
        self.overlays: dict[int, OverlayFrame] = {}

    # -- inputs -------------------------------------------------------------------------------
    def add_image(self, stamp: int, rgb_fn: Callable[[], np.ndarray | None] | None = None) -> int:
        """Counts one image; keeps its RGB (``rgb_fn()``, decoded only when needed) if it is one
        of the overlay frames."""
        with self.lock:
            i = self.frames
            self.frames += 1
            if stamp in self.image_stamps:
                self.duplicate_images += 1
            self.image_stamps.add(stamp)
        if i in self.overlay_indices and rgb_fn is not None:
            try:
                rgb = rgb_fn()
            except FrameError:
                rgb = None
            if rgb is not None:
                with self.lock:
                    self.overlays[stamp] = OverlayFrame(i, stamp, np.array(rgb))
        return i

    def add_label(self, stamp: int, ids: np.ndarray) -> None:
        with self.lock:
            self.label_stamps.add(stamp)
            pred = self._preds.pop(stamp, None)
            if pred is not None:
                self._score(stamp, pred, ids)
            else:
                self._labels[stamp] = np.array(ids)
                _evict(self._labels)

    def add_prediction(self, stamp: int, ids: np.ndarray, latency_ms: float | None) -> None:
        with self.lock:
            if latency_ms is not None:
                self.latencies_ms.append(float(latency_ms))
            self.predicted.add(stamp)
            lab = self._labels.pop(stamp, None)
            if lab is not None:
                self._score(stamp, ids, lab)
            else:
                self._preds[stamp] = np.array(ids)
                _evict(self._preds)
            if stamp in self.overlays:
                self.overlays[stamp].pred = np.array(ids)

    def published(self, stamp: int, t: float) -> None:
        with self.lock:
            self.publish_time[stamp] = t
            if self.first_publish is None:
                self.first_publish = t

    def received(self, stamp: int, ids: np.ndarray, t: float) -> None:
        """A mask from the node: latency from our publish of the same stamp."""
        with self.lock:
            sent = self.publish_time.get(stamp)
            if sent is None or stamp in self.predicted:
                self.unexpected_masks += 1
                return
            self.last_receive = t
            if self.first_receive is None:
                self.first_receive = t
        self.add_prediction(stamp, ids, (t - sent) * 1000.0)

    def _score(self, stamp: int, pred: np.ndarray, label: np.ndarray) -> None:
        if pred.shape != label.shape:
            self.size_mismatch += 1
            return
        self.cm.update(pred, label)
        self.scored += 1
        if stamp in self.overlays:
            self.overlays[stamp].label = np.array(label)

    # -- outputs ------------------------------------------------------------------------------
    def output_fps(self) -> float | None:
        """Masks per second between the first and the last mask (live)."""
        with self.lock:
            n = len(self.latencies_ms)
            if n < 2 or self.first_receive is None or self.last_receive is None:
                return None
            span = self.last_receive - self.first_receive
        return (n - 1) / span if span > 0 else None

    def counts(self) -> dict:
        with self.lock:
            return {
                "labels_without_image": len(self.label_stamps - self.image_stamps),
                "images_without_label": len(self.image_stamps - self.label_stamps),
                "dropped": len(self.image_stamps - self.predicted),
            }


def _evict(d: dict[int, np.ndarray]) -> None:
    while len(d) > PENDING_LIMIT:
        d.pop(min(d))


def percentile_summary(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max/mean in ms; None for no samples (JSON null, not NaN)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(values, np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "p99": round(float(p99), 3), "max": round(float(a.max()), 3),
            "mean": round(float(a.mean()), 3)}


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 6)


def build_metrics(t: Tally, *, mode: str, bag: BagTopics | None, bag_path: Path, backend: str,
                  precision: str, model: Path, fps: float | None, complete: bool,
                  error: str | None, extra: dict | None = None) -> dict:
    """The metrics.json document; mIoU from the confusion matrix over all scored pixels."""
    iou = t.cm.iou()
    counts = t.counts()
    m = {
        "miou": _num(t.cm.miou()),
        "per_class_iou": {n: _num(v) for n, v in zip(t.classes.names, iou, strict=True)},
        "pixel_accuracy": _num(t.cm.pixel_accuracy()),
        "frames": t.frames,
        "frames_scored": t.scored,
        "dropped": counts["dropped"],
        "latency_ms": percentile_summary(t.latencies_ms),
        "fps": _num(fps) if fps is not None else None,
        "backend": backend,
        "precision": precision,
        "model": str(model),
        "mode": mode,
        "complete": complete,
        "error": error,
        "bag": str(bag_path),
        "image_topic": bag.image_topic if bag else None,
        "label_topic": bag.label_topic if bag else None,
        "labels_without_image": counts["labels_without_image"],
        "images_without_label": counts["images_without_label"],
        "bad_frames": t.bad_frames,
        "bad_labels": t.bad_labels,
        "size_mismatch": t.size_mismatch,
        "duplicate_image_stamps": t.duplicate_images,
        "scored_pixels": t.cm.scored_pixels,
        "class_names": list(t.classes.names),
        "confusion_matrix": t.cm.mat.tolist(),
    }
    if extra:
        m.update(extra)
    return m


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class EvalConfig:
    bag: Path
    out: Path
    model: Path
    image_topic: str = IMAGE_TOPIC
    label_topic: str = LABEL_TOPIC
    backend: str = "auto"
    precision: str = "fp32"
    threads: int = 2
    live: bool = False
    rate: float | None = None  # Hz; None: the recorded timing
    max_frames: int = 0
    overlays: int = 4
    qos_reliability: str = "best_effort"
    grace_s: float = 2.0
    startup_timeout_s: float = 60.0
    fastdds_profile: Path | None = None
    domain_id: int | None = None
    progress: bool = True


def choose_overlays(n_images: int, k: int) -> set[int]:
    """k frame indices spread over the bag (first, last and evenly between)."""
    if n_images <= 0 or k <= 0:
        return set()
    return {int(round(v)) for v in np.linspace(0, n_images - 1, min(k, n_images))}


def evaluate(cfg: EvalConfig, backend: Backend | None = None,
             on_tally: Callable[[Tally], None] | None = None) -> dict:
    """Runs the evaluation and writes metrics.json and report.md into ``cfg.out``, even when it
    is interrupted or fails part-way (then ``complete`` is false and the error is recorded).

    ``backend``: an already open backend for offline mode, used and left open (a fleet worker
    opens one for all its bags). ``on_tally``: called with the run's Tally as soon as it exists,
    so a caller still has the raw latencies when the run fails part-way.
    """
    from .modelinfo import read_model_info
    from .report import write_report

    model = Path(cfg.model).resolve()
    info = read_model_info(model)  # the classes, without loading a runtime
    reader = open_bag(cfg.bag)
    try:
        bag = resolve_topics(reader, Path(cfg.bag), cfg.image_topic, cfg.label_topic)
        n_images = bag.image_count if not cfg.max_frames else min(bag.image_count, cfg.max_frames)
        tally = Tally(info.classes, choose_overlays(n_images, cfg.overlays))
        if on_tally is not None:
            on_tally(tally)
        cfg.out.mkdir(parents=True, exist_ok=True)
        state: dict = {"backend": cfg.backend, "precision": cfg.precision, "fps": None,
                       "extra": {}}
        error: str | None = None
        complete = False
        try:
            if cfg.live:
                from .replay import run_live

                run_live(cfg, reader, bag, tally, state)
            else:
                _run_offline(cfg, reader, bag, tally, state, backend)
            complete = True
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise
        finally:
            metrics = build_metrics(
                tally, mode="live" if cfg.live else "offline", bag=bag, bag_path=Path(cfg.bag),
                backend=state["backend"], precision=state["precision"], model=model,
                fps=state["fps"], complete=complete, error=error, extra=state["extra"])
            (cfg.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            try:
                shown = sorted(tally.overlays.values(), key=lambda o: o.index)
                planner_views(model, shown, threads=cfg.threads)
                write_report(cfg.out, metrics, tally.cm.mat, tally.latencies_ms, info.classes,
                             shown)
            except Exception as rexc:  # noqa: BLE001 - never hide the error that stopped the run
                if error is None:
                    raise
                print(f"warning: report.md not written: {rexc}", file=sys.stderr)
    finally:
        reader.close()
    return metrics


def _run_offline(cfg: EvalConfig, reader: object, bag: BagTopics, tally: Tally,
                 state: dict, shared: Backend | None = None) -> None:
    """Every image through ``Segmenter.predict`` (resize, backend, resize back), timed.
    ``shared``: an open backend to use and leave open; otherwise one is opened and closed."""
    from .backends import create_backend
    from .pipeline import Segmenter

    backend = shared if shared is not None else create_backend(
        cfg.model, cfg.backend, cfg.precision, cfg.threads)
    state["backend"], state["precision"] = backend.name, backend.precision
    seg = Segmenter(backend)
    conns = [c for c in reader.connections  # type: ignore[attr-defined]
             if c.topic in (bag.image_topic, bag.label_topic)]
    total = bag.image_count + bag.label_count
    busy = 0.0
    try:
        with tqdm(total=total, desc="evaluate", unit="msg", disable=not cfg.progress) as bar:
            for conn, _, raw in bag_messages(reader, conns, bag.path):
                bar.update(1)
                msg = reader.deserialize(raw, conn.msgtype)  # type: ignore[attr-defined]
                stamp = header_stamp(msg)
                if conn.topic == bag.label_topic:
                    try:
                        tally.add_label(stamp, decode_ids(msg))
                    except FrameError:
                        tally.bad_labels += 1
                    continue
                if cfg.max_frames and tally.frames >= cfg.max_frames:
                    continue
                try:
                    rgb: np.ndarray | None = decode_image(msg, conn.msgtype)
                except FrameError:
                    rgb = None
                tally.add_image(stamp, lambda rgb=rgb: rgb)
                if rgb is None:
                    tally.bad_frames += 1
                    continue
                t0 = time.perf_counter()
                ids = seg.predict(rgb)
                dt = time.perf_counter() - t0
                busy += dt
                tally.add_prediction(stamp, ids, dt * 1000.0)
                state["fps"] = len(tally.latencies_ms) / busy if busy > 0 else None
    finally:
        if shared is None:
            backend.close()


# ---------------------------------------------------------------------------------------------
# Command line


def add_args(parser: argparse.ArgumentParser) -> None:
    from .backends import BACKENDS, PRECISIONS

    parser.add_argument("--bag", type=Path, action="append", default=[],
                        help="rosbag2 folder (mcap or sqlite3); repeat it for a fleet of bags")
    parser.add_argument("--bags", default=None, metavar="DIR_OR_GLOB",
                        help="a fleet: every rosbag2 folder (one with metadata.yaml) under DIR, "
                             "or those a glob matches; combinable with --bag")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for metrics.json, report.md and pictures (a fleet: the "
                             "pooled report, and each bag's own in bags/NAME/)")
    parser.add_argument("--image-topic", default=IMAGE_TOPIC,
                        help=f"Image or CompressedImage topic (default {IMAGE_TOPIC}; "
                             f"TOPIC{COMPRESSED_SUFFIX} is used if only that exists)")
    parser.add_argument("--label-topic", default=LABEL_TOPIC,
                        help=f"mono8 class-id Image topic (default {LABEL_TOPIC})")
    parser.add_argument("--model", type=Path, default=None,
                        help="seg_perception ONNX (default: the bundled model)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="as the node's backend parameter (default: auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--threads", type=int, default=None,
                        help="inference threads (default 2; a fleet: the cores per worker)")
    parser.add_argument("--live", action="store_true",
                        help="replay through the real ROS 2 node and score what it publishes")
    parser.add_argument("--rate", type=float, default=None,
                        help="live: publish at this many frames per second instead of the "
                             "recorded timing")
    parser.add_argument("--qos-reliability", choices=("reliable", "best_effort"),
                        default="best_effort",
                        help="live: the node's image subscription QoS (default: best_effort, "
                             "the node's own default)")
    parser.add_argument("--grace", type=float, default=2.0,
                        help="live: seconds to wait for masks after the last frame")
    parser.add_argument("--startup-timeout", type=float, default=60.0,
                        help="live: seconds to wait for the node to be ready")
    parser.add_argument("--fastdds-profile", type=Path, default=None,
                        help="live: Fast DDS profile XML (default: $FASTDDS_DEFAULT_PROFILES_FILE, "
                             "else the shipped config/fastdds_shm.xml)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="live: ROS_DOMAIN_ID for the replay (default: inherited)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N images (0: all)")
    parser.add_argument("--overlays", type=int, default=4, help="overlay frames in the report")
    fleet = parser.add_argument_group("fleet (several bags, in parallel on Dask workers)")
    fleet.add_argument("--workers", type=int, default=None,
                       help="Dask worker processes, each evaluating whole bags with its own "
                            "backend (and live: its own node on ROS_DOMAIN_ID base + worker "
                            "index); default: the CPU cores here (with --scheduler-address: "
                            "all its workers), at most one per bag")
    fleet.add_argument("--scheduler-address", default=None, metavar="ADDR",
                       help="use the workers of this Dask scheduler (e.g. tcp://head:8786) "
                            "instead of starting a local cluster; the project, the bags, the "
                            "model and --out must be at the same paths on its workers")
    fleet.add_argument("--gpus-per-worker", type=float, default=None,
                       help="GPUs per worker (default: the GPUs shared out, at most 1 each; 0 "
                            "where there are none): here through each worker's "
                            "CUDA_VISIBLE_DEVICES, on a scheduler's workers their Dask "
                            "resource GPU (dask worker --resources GPU=1)")


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    from .modelinfo import default_model_path

    threads = 2 if args.threads is None else args.threads
    if args.max_frames < 0 or args.overlays < 0 or threads < 1:
        raise ValueError("--max-frames and --overlays must be >= 0, --threads >= 1")
    if args.rate is not None and not args.rate > 0:
        raise ValueError(f"--rate must be > 0, got {args.rate}")
    bags = args.bag if isinstance(args.bag, list) else [args.bag]
    if len(bags) != 1:
        raise ValueError(f"one --bag expected here, got {len(bags)}")
    return EvalConfig(
        bag=bags[0], out=args.out, model=args.model or default_model_path(),
        image_topic=args.image_topic, label_topic=args.label_topic, backend=args.backend,
        precision=args.precision, threads=threads, live=args.live, rate=args.rate,
        max_frames=args.max_frames, overlays=args.overlays, qos_reliability=args.qos_reliability,
        grace_s=args.grace, startup_timeout_s=args.startup_timeout,
        fastdds_profile=args.fastdds_profile, domain_id=args.domain_id)


def summary_line(m: dict) -> str:
    def f(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    lat = m["latency_ms"]
    s = (f"{m['mode']}: mIoU {f(m['miou'], '.3f')}, pixel accuracy {f(m['pixel_accuracy'], '.3f')}"
         f", {m['frames_scored']}/{m['frames']} frames scored, {m['dropped']} dropped, latency "
         f"p50 {f(lat['p50'], '.1f')} / p95 {f(lat['p95'], '.1f')} / p99 {f(lat['p99'], '.1f')}"
         f" ms, {f(m['fps'], '.1f')} fps ({m['backend']} {m['precision']})")
    if m["labels_without_image"]:
        s += f"; {m['labels_without_image']} labels had no matching image"
    if not m["complete"]:
        s += f"; INCOMPLETE: {m['error']}"
    return s


def is_fleet(args: argparse.Namespace) -> bool:
    """A fleet run: ``--bags``, or ``--bag`` given more than once. One ``--bag`` is the
    single-bag run, with its output layout unchanged."""
    bags = args.bag if isinstance(args.bag, list) else [args.bag]
    return getattr(args, "bags", None) is not None or len(bags) > 1


def run(args: argparse.Namespace) -> int:
    if is_fleet(args):
        from .fleet import run_fleet

        return run_fleet(args)
    if not args.bag:
        raise ValueError("give a bag: --bag PATH (repeatable) or --bags DIR_OR_GLOB")
    cfg = config_from_args(args)
    m = evaluate(cfg)
    print(summary_line(m))
    print(f"wrote {cfg.out / 'metrics.json'} and {cfg.out / 'report.md'}")
    return 0
