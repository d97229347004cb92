"""Live replay for ``evaluate --live``: the real node in a subprocess, the bag's frames published
into it over ROS 2, its ``/segmentation/mask`` recorded and paired with labels by header stamp.

The publisher and the recorder share this process and one clock, so latency is publish-to-mask
as a subscriber sees it (transport, decode, inference, encode). Frames go out as the bag's own
serialized CDR bytes, like ``ros2 bag play``, so stamps and payloads are exactly the recorded
ones.
"""

from __future__ import annotations

import collections
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from seg_perception.core.codec import decode_message
from seg_perception.core.errors import FrameError
from seg_perception.datasets.bag import COMPRESSED_SUFFIX, COMPRESSED_TYPE, IMAGE_TYPE, typestore
from seg_perception.evaluation.config import MASK_TOPIC, EvalConfig
from seg_perception.evaluation.inputs import BagTopics, bag_messages, decode_ids, header_stamp
from seg_perception.evaluation.tally import Tally
from seg_perception.inference.modelinfo import package_share
from seg_perception.node.dds import FASTDDS, FASTRTPS, profile_env, profile_variable

READY_MARK = "segmentation node ready"
DIAGNOSTICS_WAIT_S = 1.5
PROFILE_VARS = (FASTDDS, FASTRTPS)


def shipped_profile() -> Path:
    return package_share() / "config" / "fastdds_shm.xml"


def fastdds_profile(explicit: Path | None) -> Path | None:
    """The Fast DDS profile: explicit, else the environment's, else the shipped one (a 16 MB
    shared-memory segment; the 512 KB default fragments 480x360 frames over UDP and loses
    ~30% of them best-effort)."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"Fast DDS profile not found: {explicit}")
        return Path(explicit).resolve()
    env = os.environ.get(profile_variable()) or os.environ.get(PROFILE_VARS[0])
    if env:
        return Path(env)
    p = shipped_profile()
    return p if p.is_file() else None


def prepare_ros_env(cfg: EvalConfig) -> dict[str, str]:
    """Sets this process's ROS/DDS variables (before rclpy loads) and returns the node's env."""
    profile = fastdds_profile(cfg.fastdds_profile)
    if profile is not None:
        for var in PROFILE_VARS:  # exactly the one this ROS 2 reads
            os.environ.pop(var, None)
        os.environ.update(profile_env(str(profile)))
    if cfg.domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(int(cfg.domain_id))
    # Replay traffic stays on this machine unless the user asked otherwise.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the folder holding seg_perception/
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
    return env


class NodeProcess:
    """``python -m seg_perception.node`` with its output drained to a log file; ready when it
    prints the ready line. Stopped with SIGINT, then SIGTERM, then SIGKILL."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path,
                 command: list[str] | None = None) -> None:
        # ``command``: another node that prints the ready line (a benchmark's baseline).
        self.cmd = command or [sys.executable, "-m", "seg_perception.node", "--ros-args", *args]
        self.log_path = log_path
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.ready = threading.Event()
        self._log: IO[str] = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self._log.write("$ " + " ".join(self.cmd) + "\n")
        self._log.flush()
        # Own session: a Ctrl-C at the terminal reaches us, and we stop the node in order.
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, text=True, bufsize=1,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._drain, name="node-log", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            self.tail.append(line.rstrip())
            if READY_MARK in line:
                self.ready.set()

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def describe_exit(self) -> str:
        tail = "\n".join(list(self.tail)[-15:])
        return (f"the node exited with code {self.proc.returncode}; its last output "
                f"(full log {self.log_path}):\n{tail}")

    def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.returncode is not None:
                raise RuntimeError("node failed to start: " + self.describe_exit())
            if time.monotonic() > end:
                raise RuntimeError(f"node not ready after {timeout:g} s (no {READY_MARK!r} line);"
                                   f" see {self.log_path}")

    def stop(self, timeout: float = 5.0) -> int | None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0),
                              (signal.SIGKILL, 2.0)):
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._reader.join(2.0)
        self._log.close()
        return self.proc.poll()


def _wait_for(cond: object, timeout: float, what: str, node_proc: NodeProcess) -> None:
    end = time.monotonic() + timeout
    # why the ignore below: cond is a zero-argument callable, typed object by the caller
    while not cond():  # type: ignore[operator]
        if node_proc.returncode is not None:
            raise RuntimeError(f"while waiting for {what}: " + node_proc.describe_exit())
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def compatible_offers(node: Any, topic: str, qos: Any) -> int:
    """Publishers on ``topic`` whose offered QoS a reader asking ``qos`` can take from: what
    Humble, whose subscriptions cannot count their matched publishers, can see of a match."""
    from rclpy.qos import QoSCompatibility, qos_check_compatible

    return sum(qos_check_compatible(info.qos_profile, qos)[0] != QoSCompatibility.ERROR
               for info in node.get_publishers_info_by_topic(topic))


def publisher_matched(node: Any, sub: Any, topic: str, qos: Any) -> bool:
    """Whether ``sub`` has a publisher to take from. A plain count of publishers on the topic
    also counts a stale one (the node of the previous run still leaving the graph) or one
    whose QoS does not match, and a first frame sent on that was lost."""
    count = getattr(sub, "get_publisher_count", None)  # rclpy from Iron on
    if callable(count):
        return bool(count() > 0)
    return compatible_offers(node, topic, qos) > 0


def run_live(cfg: EvalConfig, reader: Any, bag: BagTopics, tally: Tally, state: dict) -> None:
    """Starts the node, waits for discovery, replays at the recorded timing (or ``cfg.rate``)
    and waits ``cfg.grace_s`` for the last masks. Fills ``state`` (fps, node details)."""
    env = prepare_ros_env(cfg)
    try:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
    except ImportError as exc:
        raise RuntimeError(f"--live needs ROS 2 (rclpy, sensor_msgs): {exc}; source a ROS 2 "
                           "install or use the project's .venv") from exc

    transport = "compressed" if bag.compressed else "raw"
    pub_topic = bag.base_image_topic + COMPRESSED_SUFFIX if bag.compressed else bag.image_topic
    node_args = _node_args(cfg, bag, transport)
    extra: dict = state["extra"]
    extra.update({"rate_hz": cfg.rate, "rate_source": "--rate" if cfg.rate else "recorded",
                  "input_transport": transport,
                  "qos_reliability": cfg.qos_reliability,
                  "fastdds_profile": os.environ.get(PROFILE_VARS[0]),
                  "ros_domain_id": os.environ.get("ROS_DOMAIN_ID", "0")})

    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx)
    node = rclpy.create_node(f"seg_eval_replay_{os.getpid()}", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set() and ctx.ok():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, name="replay-executor", daemon=True)
    spinner.start()
    ts = typestore()
    diagnostics: dict[str, dict[str, str]] = {}

    def on_mask(raw: bytes) -> None:
        t = time.perf_counter()
        try:
            msg = ts.deserialize_cdr(raw, IMAGE_TYPE)
            tally.received(header_stamp(msg), decode_ids(msg), t)
        except FrameError:
            tally.unexpected_masks += 1

    last_diag = [0.0]

    def on_diagnostics(msg: Any) -> None:
        for st in msg.status:
            if "segmentation" in st.name:
                diagnostics[st.name] = {kv.key: kv.value for kv in st.values}
                last_diag[0] = time.perf_counter()

    extra["node_log"] = str(cfg.out / "node.log")
    proc: NodeProcess | None = None
    published = [0]  # frames sent so far, kept by _replay even when it raises
    try:
        proc = NodeProcess(node_args, env, cfg.out / "node.log")
        extra["node_pid"] = proc.proc.pid
        proc.wait_ready(cfg.startup_timeout_s)
        pub_qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
        pub = node.create_publisher(CompressedImage if bag.compressed else Image, pub_topic,
                                    pub_qos)
        _wait_for(lambda: pub.get_subscription_count() > 0 and
                  node.count_publishers(MASK_TOPIC) > 0, 20.0,
                  f"the node to subscribe to {pub_topic} and advertise {MASK_TOPIC}", proc)
        offers = node.get_publishers_info_by_topic(MASK_TOPIC)
        reliable = any(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in offers)
        # Reliable when the node offers it (nothing lost between node and recorder); a reliable
        # request would not match a best-effort offer at all.
        sub_qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE if reliable
                             else ReliabilityPolicy.BEST_EFFORT)
        sub = node.create_subscription(Image, MASK_TOPIC, on_mask, sub_qos, raw=True)
        try:
            from diagnostic_msgs.msg import DiagnosticArray

            node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
        except ImportError:
            pass
        _wait_for(lambda: publisher_matched(node, sub, MASK_TOPIC, sub_qos), 20.0,
                  f"{MASK_TOPIC} to match the recorder", proc)
        time.sleep(0.5)  # let both ends finish matching before the first frame

        bag0, bag1 = _replay(cfg, reader, bag, tally, pub, proc, published)
        if cfg.rate is None and published[0] > 1 and bag1 > bag0:
            extra["rate_hz"] = round((published[0] - 1) / ((bag1 - bag0) / 1e9), 3)
        end = time.perf_counter() + cfg.grace_s
        while time.perf_counter() < end and len(tally.predicted) < published[0]:
            if proc.returncode is not None:
                break
            time.sleep(0.02)
        tally.stop_receiving()  # what comes while diagnostics are collected is too late
        # One more /diagnostics (period 1 s) so the node's own counters cover the whole replay.
        done_at = time.perf_counter()
        end = done_at + DIAGNOSTICS_WAIT_S
        while diagnostics and last_diag[0] < done_at and time.perf_counter() < end:
            time.sleep(0.02)
    finally:
        _record_node(state, diagnostics, tally)
        extra["published"] = published[0]
        extra["unexpected_masks"] = tally.unexpected_masks
        extra["late_masks"] = tally.late_masks
        stop.set()
        spinner.join(2.0)
        extra["node_exit_code"] = proc.stop() if proc is not None else None
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        if ctx.ok():
            rclpy.shutdown(context=ctx)


def _node_args(cfg: EvalConfig, bag: BagTopics, transport: str) -> list[str]:
    """The node's ROS arguments for this replay."""
    return [
        "-p", f"model:={Path(cfg.model).resolve()}", "-p", f"backend:={cfg.backend}",
        "-p", f"precision:={cfg.precision}", "-p", f"image_topic:={bag.base_image_topic}",
        "-p", f"input_transport:={transport}", "-p", f"qos_reliability:={cfg.qos_reliability}",
        "-p", f"threads:={cfg.threads}",
    ]


def _replay(cfg: EvalConfig, reader: Any, bag: BagTopics, tally: Tally, pub: Any,
            proc: NodeProcess, counter: list[int]) -> tuple[int, int]:
    """Publishes the bag's images at the recorded timing (or ``cfg.rate``) and tallies its
    labels; ``counter[0]`` counts what was published, even when this raises. Returns the bag
    times (ns) of the first and last image published."""
    total = min(bag.image_count, cfg.max_frames) if cfg.max_frames else bag.image_count
    conns = [c for c in reader.connections if c.topic in (bag.image_topic, bag.label_topic)]
    raw_ok = bool(getattr(reader, "is2", True))
    ts = typestore()
    wall0: float | None = None
    bag0 = last_t = 0
    with tqdm(total=total, desc="replay", unit="frame", disable=not cfg.progress) as bar:
        for conn, t, raw in bag_messages(reader, conns, bag.path):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == bag.label_topic:
                try:
                    tally.add_label(header_stamp(msg), decode_ids(msg))
                except FrameError:
                    tally.bad_labels += 1
                continue
            if counter[0] >= total:
                break
            if wall0 is None:
                wall0, bag0 = time.perf_counter(), t
            offset = counter[0] / cfg.rate if cfg.rate else (t - bag0) / 1e9
            delay = wall0 + offset - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if proc.returncode is not None:
                raise RuntimeError("during replay: " + proc.describe_exit())
            last_t = t
            stamp = header_stamp(msg)
            tally.add_image(stamp, functools.partial(decode_message, msg))
            data = bytes(raw) if raw_ok else bytes(ts.serialize_cdr(
                msg, COMPRESSED_TYPE if bag.compressed else IMAGE_TYPE))
            tally.published(stamp, time.perf_counter())
            pub.publish(data)
            counter[0] += 1
            bar.update(1)
            bar.set_postfix(masks=len(tally.predicted), refresh=False)
    return bag0, last_t


def _record_node(state: dict, diagnostics: dict[str, dict[str, str]], tally: Tally) -> None:
    """What the node said about itself (its last /diagnostics) into the run's state."""
    extra: dict = state["extra"]
    state["fps"] = tally.output_fps()
    for status in diagnostics.values():
        if "backend" in status:
            state["backend"] = status["backend"]
        if "precision" in status:
            state["precision"] = status["precision"]
    extra["node_diagnostics"] = diagnostics
    for status in diagnostics.values():
        counters = {k[len("total_"):]: int(v) for k, v in status.items()
                    if k.startswith("total_") and v.isdigit()}
        if counters:
            extra["node_counters"] = counters
