"""Pairing predictions with labels by stamp, and everything metrics.json reports about them."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seg_perception.core.classes import IGNORE_LABEL, ClassSet
from seg_perception.core.errors import FrameError
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.evaluation.inputs import BagTopics

PENDING_LIMIT = 256
"""Unpaired predictions/labels kept waiting for their partner; older ones are let go, counted
in ``evicted`` (not scored, and said so in metrics.json and the summary line)."""


@dataclass
class OverlayFrame:
    index: int
    stamp: int
    rgb: np.ndarray
    pred: np.ndarray | None = None
    label: np.ndarray | None = None
    confidence: np.ndarray | None = None  # at the model's input size
    grid: np.ndarray | None = None  # occupancy cells, rows along y, columns along x


@dataclass
class Tally:
    """Pairs predictions and labels by stamp and accumulates everything metrics.json reports.

    Thread-safe: in live mode labels arrive from the replay loop and masks from the executor.
    """

    classes: ClassSet
    overlay_indices: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        # 255 (make-bag's) and the class set's own ignore id: a bag may carry either
        self.cm = ConfusionMatrix(self.classes.num_classes,
                                  (IGNORE_LABEL, self.classes.ignore_id))
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
        self.duplicate_labels = 0
        # Stamps on more than one image or label: pairing by stamp cannot tell which mask goes
        # with which label (or, live, which publish timed it), so none of them is scored.
        self.ambiguous: set[int] = set()
        self.repeated_images: set[int] = set()  # live: their publish time is the last one
        self.evicted: set[int] = set()  # stamps let go from the pending buffers
        self.accepting = True  # live: False once the grace after the replay is over
        self.late_masks = 0
        self.latencies_ms: list[float] = []
        self.publish_time: dict[int, float] = {}
        self.first_publish: float | None = None
        self.first_receive: float | None = None
        self.last_receive: float | None = None
        self.masks_received = 0  # live: masks taken between the first and the last receipt
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
                self.repeated_images.add(stamp)
                self._ambiguous(stamp)
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
            if stamp in self.label_stamps:
                self.duplicate_labels += 1
                self._ambiguous(stamp)
            self.label_stamps.add(stamp)
            if stamp in self.ambiguous:
                return
            pred = self._preds.pop(stamp, None)
            if pred is not None:
                self._score(stamp, pred, ids)
            else:
                self._labels[stamp] = np.array(ids)
                self.evicted.update(_evict(self._labels))

    def add_prediction(self, stamp: int, ids: np.ndarray, latency_ms: float | None) -> None:
        """``latency_ms`` is timed whatever the stamp (offline: the inference itself); a repeated
        stamp leaves the frame unscored, not untimed."""
        with self.lock:
            self.predicted.add(stamp)
            if latency_ms is not None:
                self.latencies_ms.append(float(latency_ms))
            if stamp in self.ambiguous:
                return
            lab = self._labels.pop(stamp, None)
            if lab is not None:
                self._score(stamp, ids, lab)
            else:
                self._preds[stamp] = np.array(ids)
                self.evicted.update(_evict(self._preds))
            if stamp in self.overlays:
                self.overlays[stamp].pred = np.array(ids)

    def published(self, stamp: int, t: float) -> None:
        with self.lock:
            self.publish_time[stamp] = t
            if self.first_publish is None:
                self.first_publish = t

    def _ambiguous(self, stamp: int) -> None:
        """A repeated stamp: whatever waits under it is let go. A pair completed before the
        repeat arrived stays scored (it was unambiguous then)."""
        self.ambiguous.add(stamp)
        self._labels.pop(stamp, None)
        self._preds.pop(stamp, None)

    def stop_receiving(self) -> None:
        """Live: the grace after the replay is over; later masks count as dropped frames."""
        with self.lock:
            self.accepting = False

    def received(self, stamp: int, ids: np.ndarray, t: float) -> None:
        """A mask from the node: latency from our publish of the same stamp."""
        with self.lock:
            if not self.accepting:
                self.late_masks += 1
                return
            sent = self.publish_time.get(stamp)
            if sent is None or stamp in self.predicted:
                self.unexpected_masks += 1
                return
            self.last_receive = t
            if self.first_receive is None:
                self.first_receive = t
            self.masks_received += 1
            # An image stamp published twice keeps the last publish time: no latency from it (a
            # stamp repeated on labels only was published once and is timed).
            latency = None if stamp in self.repeated_images else (t - sent) * 1000.0
        self.add_prediction(stamp, ids, latency)

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
            n = self.masks_received
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
                # frames with both an image and a label whose pair was let go unscored
                "evicted": len(self.evicted & self.image_stamps & self.label_stamps
                               & self.predicted),
            }


def _evict(d: dict[int, np.ndarray]) -> list[int]:
    gone = []
    while len(d) > PENDING_LIMIT:
        gone.append(min(d))
        d.pop(gone[-1])
    return gone


def percentile_summary(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max/mean in ms and ``n``, the samples they rest on (numpy's linear
    interpolation between closest ranks: p99 of 100 lies between the two largest, p99 of 101 is
    the second largest); None for no samples (JSON null, not NaN)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None, "n": 0}
    a = np.asarray(values, np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "p99": round(float(p99), 3), "max": round(float(a.max()), 3),
            "mean": round(float(a.mean()), 3), "n": len(a)}


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
        "duplicate_label_stamps": t.duplicate_labels,
        "unscored_repeated_stamps": len(t.ambiguous),
        "unscored_evicted": counts["evicted"],
        "scored_pixels": t.cm.scored_pixels,
        "label_pixels_out_of_range": t.cm.out_of_range,
        "class_names": list(t.classes.names),
        "confusion_matrix": t.cm.mat.tolist(),
    }
    if extra:
        m.update(extra)
    return m


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
    if m.get("size_mismatch"):
        s += (f"; {m['size_mismatch']} frames not scored: label and mask sizes differ (labels "
              "must be at the image's size)")
    if m.get("bad_labels"):
        s += f"; {m['bad_labels']} labels could not be decoded"
    if m.get("label_pixels_out_of_range"):
        s += (f"; {m['label_pixels_out_of_range']} label pixels not scored: ids outside the "
              f"{len(m['class_names'])} classes and not the ignore id (another class set?)")
    if m.get("unscored_repeated_stamps"):
        s += (f"; {m['unscored_repeated_stamps']} stamps repeated on images or labels: their "
              "frames are not scored")
    if m.get("unscored_evicted"):
        s += (f"; {m['unscored_evicted']} frames not scored: their label was more than "
              f"{PENDING_LIMIT} messages from their image")
    if not m["complete"]:
        s += f"; INCOMPLETE: {m['error']}"
    return s
