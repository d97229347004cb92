"""Offline evaluation: every image of the bag through the segmenter, timed, in this process."""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from seg_perception.core.codec import decode_message
from seg_perception.core.errors import FrameError
from seg_perception.evaluation.config import EvalConfig
from seg_perception.evaluation.inputs import BagTopics, bag_messages, decode_ids, header_stamp
from seg_perception.evaluation.tally import Tally
from seg_perception.inference.backend import Backend
from seg_perception.inference.factory import create_backend
from seg_perception.inference.segmenter import Segmenter


def _same(rgb: np.ndarray | None) -> np.ndarray | None:
    return rgb


def run_offline(cfg: EvalConfig, reader: Any, bag: BagTopics, tally: Tally,
                 state: dict, shared: Backend | None = None) -> None:
    """Every image through ``Segmenter.predict`` (resize, backend, resize back), timed.
    ``shared``: an open backend to use and leave open; otherwise one is opened and closed."""
    backend = shared if shared is not None else create_backend(
        cfg.model, cfg.backend, cfg.precision, cfg.threads)
    state["backend"], state["precision"] = backend.name, backend.precision
    seg = Segmenter(backend)
    conns = [c for c in reader.connections
             if c.topic in (bag.image_topic, bag.label_topic)]
    total = bag.image_count + bag.label_count
    busy, inferred = 0.0, 0
    try:
        with tqdm(total=total, desc="evaluate", unit="msg", disable=not cfg.progress) as bar:
            for conn, _, raw in bag_messages(reader, conns, bag.path):
                bar.update(1)
                msg = reader.deserialize(raw, conn.msgtype)
                stamp = header_stamp(msg)
                if conn.topic == bag.label_topic:
                    try:
                        tally.add_label(stamp, decode_ids(msg))
                    except FrameError:
                        tally.bad_labels += 1
                    continue
                if cfg.max_frames and tally.frames >= cfg.max_frames:
                    break  # as live does: labels beyond the last image are not read
                try:
                    rgb: np.ndarray | None = decode_message(msg)
                except FrameError:
                    rgb = None
                tally.add_image(stamp, functools.partial(_same, rgb))
                if rgb is None:
                    tally.bad_frames += 1
                    continue
                t0 = time.perf_counter()
                ids = seg.predict(rgb)
                dt = time.perf_counter() - t0
                busy += dt
                inferred += 1
                tally.add_prediction(stamp, ids, dt * 1000.0)
                state["fps"] = inferred / busy if busy > 0 else None
    finally:
        if shared is None:
            backend.close()
