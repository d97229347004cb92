"""Real-rclpy helpers for tests: a private context, a spinning executor, image messages."""

from __future__ import annotations

import array
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

ROOT = Path(__file__).resolve().parent.parent
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                      reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.BEST_EFFORT)


@contextmanager
def ros_session() -> Iterator[tuple[Context, SingleThreadedExecutor]]:
    ctx = Context()
    rclpy.init(context=ctx)
    # Callbacks here only store messages; one thread does (rclpy's multi-threaded executor
    # can busy-spin while a callback runs, starving the node's worker of the GIL).
    ex = SingleThreadedExecutor(context=ctx)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    try:
        yield ctx, ex
    finally:
        nodes = list(ex.get_nodes())
        ex.shutdown(timeout_sec=2.0)
        t.join(timeout=2.0)
        # Destroyed, not left to the garbage collector: a node kept alive keeps its readers
        # matched, and the next test's node would see them as subscribers.
        for n in nodes:
            n.destroy_node()
        rclpy.shutdown(context=ctx)


def image_msg(img: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = "cam") -> Image:
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.height, msg.width = img.shape[:2]
    msg.encoding = encoding
    msg.step = img.shape[1] * (img.shape[2] if img.ndim == 3 else 1)
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(img).data)
    msg.data = data
    return msg


def compressed_msg(payload: bytes, fmt: str, stamp_ns: int) -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = "cam"
    msg.format = fmt
    data = array.array("B")
    data.frombytes(payload)
    msg.data = data
    return msg


def stamp_ns(msg: Image) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Recorder:
    """Subscribes to topics and keeps every message with its arrival time."""

    def __init__(self, node: Node, topics: dict[str, type], qos: QoSProfile = RELIABLE) -> None:
        self.lock = threading.Lock()
        self.msgs: dict[str, list[tuple[float, object]]] = {t: [] for t in topics}
        self.subs = {topic: node.create_subscription(typ, topic, self._cb(topic), qos)
                     for topic, typ in topics.items()}

    def _cb(self, topic: str) -> Callable[[object], None]:
        def cb(msg: object) -> None:
            with self.lock:
                self.msgs[topic].append((time.monotonic(), msg))
        return cb

    def count(self, topic: str) -> int:
        with self.lock:
            return len(self.msgs[topic])

    def matched(self, topic: str) -> bool:
        """Whether a publisher this reader can take from is matched. A count of publishers on the
        topic also counts a stale or QoS-incompatible one (a node of the previous test still
        leaving the graph), and waiting on that lost a first message. ``get_publisher_count`` is
        rclpy's from Iron on; the suites run on Jazzy and Kilted."""
        return self.subs[topic].get_publisher_count() > 0


def wait_for(pred: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def default_sigint() -> None:
    """Popen preexec_fn: Ctrl-C as in a terminal. A suite started in the background by a
    non-interactive shell inherits SIGINT ignored; Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_node_process(*ros_args: str, timeout: float = 60.0) -> subprocess.Popen[str]:
    """``python -m seg_perception.node`` as users run it; returns once it logged 'ready'."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "seg_perception.node", "--ros-args", *ros_args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=default_sigint)
    lines: list[str] = []
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "segmentation node ready" in line:
            # Keeps reading (a full pipe would block the node); the lines stay for the test.
            threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
            proc.output = lines  # type: ignore[attr-defined]
            return proc
    proc.kill()
    raise AssertionError("node did not become ready:\n" + "".join(lines))


def stop_process(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(2)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
