"""The node against a naive one, seen from outside: camera stamp to mask received.

The naive node is what a first ROS 2 segmentation node looks like: one subscription callback
that decodes, resizes, runs ONNX Runtime, resizes back and publishes, with the QoS most examples
use (depth 10, reliable) or sensor-data QoS (best effort, keep last 1). Both nodes run the same
ONNX file, threads and Fast DDS profile, each in its own process; this process is the camera
(rgb8 on a fixed schedule, reliable depth 10, as most drivers offer) and the planner (subscribes to
``/segmentation/mask`` only). Latency is the receipt time minus the frame's header stamp, one
clock; "stale" counts outputs older than two camera periods. Prints a table; no pass/fail.

``node-spin`` is the node with ``spin_wait:=true`` (ONNX Runtime's threads busy-wait between
operators, as the naive node's default session does); ``--load N`` runs N busy processes beside
the nodes for the whole run: the robot's other work competing for the cores.

    python bench/bench_naive.py [--rates 10 30 60] [--sizes 480x360 1280x720] [--frames 150]
        [--kinds node node-spin naive-10 naive-sensor] [--load 1]
"""

from __future__ import annotations

import argparse
import array
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 50))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from seg_perception.evaluation.replay import READY_MARK, NodeProcess, shipped_profile  # noqa: E402
from seg_perception.inference.modelinfo import default_model_path, read_model_info  # noqa: E402
from seg_perception.node.dds import profile_env  # noqa: E402

NAIVE = textwrap.dedent("""
    import sys
    import cv2, numpy as np, onnxruntime as ort, rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    model, qos = sys.argv[1], sys.argv[5]
    threads, h, w = (int(v) for v in sys.argv[2:5])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rclpy.init()
    node = rclpy.create_node("naive_segmentation")
    pub = node.create_publisher(Image, "/segmentation/mask", 10)

    def callback(msg):
        rgb = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        ids = sess.run(None, {name: small[None]})[0][0]
        out = cv2.resize(ids, (msg.width, msg.height), interpolation=cv2.INTER_NEAREST)
        pub.publish(Image(header=msg.header, height=msg.height, width=msg.width,
                          encoding="mono8", step=msg.width, data=out.tobytes()))

    node.create_subscription(Image, "/camera/image_raw", callback,
                             qos_profile_sensor_data if qos == "sensor" else 10)
    sess.run(None, {name: np.zeros((1, h, w, 3), np.uint8)})
    print("%s (naive)", flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
""") % READY_MARK


def naive(model: str, threads: int, qos: str, env: dict[str, str], log: Path) -> NodeProcess:
    """The naive node in a process, logged and stopped as the real one is."""
    h, w = read_model_info(model).input_size
    return NodeProcess([], env, log, command=[sys.executable, "-c", NAIVE, model, str(threads),
                                              str(h), str(w), qos])


class Camera:
    """Publishes rgb8 frames on a fixed schedule and records each mask's age on receipt."""

    def __init__(self, ctx: rclpy.Context) -> None:
        self.node = rclpy.create_node("bench_camera_planner", context=ctx)
        # Reliable, depth 10: what most camera drivers offer (usb_cam, v4l2_camera), and the one
        # offer both a best-effort and a reliable subscriber match.
        self.pub = self.node.create_publisher(Image, "/camera/image_raw", 10)
        self.ages: list[float] = []
        self.stamps: set[int] = set()
        self.lock = threading.Lock()
        self.node.create_subscription(Image, "/segmentation/mask", self._mask,
                                      qos_profile_sensor_data)
        self.ex = SingleThreadedExecutor(context=ctx)
        self.ex.add_node(self.node)
        self.spin = threading.Thread(target=self.ex.spin, daemon=True)
        self.spin.start()

    def _mask(self, msg: Image) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.ages.append((now - stamp) / 1e6)
            self.stamps.add(stamp)

    def play(self, h: int, w: int, frames: int, rate: float) -> float:
        img = cv2.resize(np.random.default_rng(0).integers(0, 256, (9, 12, 3), dtype=np.uint8),
                         (w, h))
        data = array.array("B")
        data.frombytes(img.tobytes())
        t0 = time.monotonic()
        for i in range(frames):
            msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=data)
            ns = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
            self.pub.publish(msg)
            time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        return frames / (time.monotonic() - t0)

    def reset(self) -> None:
        with self.lock:
            self.ages.clear()
            self.stamps.clear()

    def close(self) -> None:
        self.ex.shutdown(timeout_sec=2.0)
        self.spin.join(timeout=2.0)
        self.node.destroy_node()


KINDS = ("node", "node-spin", "naive-10", "naive-sensor")
BUSY = "import time\nwhile True:\n    time.monotonic()"


def start(kind: str, a: argparse.Namespace, env: dict[str, str], log: Path) -> NodeProcess:
    if kind.startswith("node"):
        return NodeProcess(["-p", f"model:={a.model}", "-p", f"threads:={a.threads}", "-p",
                            "backend:=onnxruntime", "-p", "diagnostics_period:=3600.0", "-p",
                            f"spin_wait:={'true' if kind == 'node-spin' else 'false'}"],
                           env, log)
    return naive(a.model, a.threads, kind.split("-")[1], env, log)


def run_one(cam: Camera, proc: NodeProcess, h: int, w: int, frames: int, rate: float) -> dict:
    proc.wait_ready(120.0)
    end = time.monotonic() + 20.0
    while cam.pub.get_subscription_count() == 0:
        if time.monotonic() > end:
            raise RuntimeError(f"no subscriber matched the camera; see {proc.log_path}")
        time.sleep(0.05)
    cam.play(h, w, 10, min(rate, 10.0))  # warm-up: discovery, first allocations
    time.sleep(1.0)
    cam.reset()
    hz = cam.play(h, w, frames, rate)
    time.sleep(1.5)  # the last outputs drain
    with cam.lock:
        ages = sorted(cam.ages)
    proc.stop()
    if not ages:
        return {"hz": hz, "out": 0, "p50": float("nan"), "p95": float("nan"),
                "max": float("nan"), "stale": 0}
    return {"hz": hz, "out": len(ages), "p50": ages[len(ages) // 2],
            "p95": ages[min(len(ages) - 1, int(0.95 * len(ages)))], "max": ages[-1],
            "stale": sum(a > 2000.0 / rate for a in ages)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(default_model_path()))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0, 60.0])
    p.add_argument("--sizes", nargs="+", default=["480x360", "1280x720"])
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds per setting")
    p.add_argument("--kinds", nargs="+", default=["node", "naive-10", "naive-sensor"],
                   choices=KINDS)
    p.add_argument("--load", type=int, default=0,
                   help="busy processes beside the nodes (the robot's other work)")
    a = p.parse_args()
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT),
               **profile_env(str(shipped_profile())))
    os.environ.update(profile_env(str(shipped_profile())))
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    cam = Camera(ctx)
    logs = Path(tempfile.mkdtemp(prefix="bench_naive_"))
    print(f"node vs naive node: {a.model}, onnxruntime CPU {a.threads} threads, "
          f"{os.cpu_count()} cores; camera + planner in this process; {a.frames} frames per run, "
          f"{a.rounds} interleaved rounds; {a.load} busy processes beside; "
          f"latency = mask receipt - frame stamp; logs in {logs}")
    results: dict[tuple[str, str, float], list[dict]] = {}
    load: list[subprocess.Popen[bytes]] = []
    try:
        load += [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(a.load)]
        for k in range(a.rounds):
            for size in a.sizes:
                w, h = (int(v) for v in size.split("x"))
                for rate in a.rates:
                    for kind in a.kinds:
                        log = logs / f"{kind}_{size}_{rate:g}_{k}.log"
                        proc = start(kind, a, env, log)
                        try:
                            r = run_one(cam, proc, h, w, a.frames, rate)
                        finally:
                            proc.stop()
                        results.setdefault((kind, size, rate), []).append(r)
                        print(f"  round {k + 1} {kind:>12} {size:>9} {rate:4g} Hz: "
                              f"{r['out']:4d} outputs, p50 {r['p50']:7.1f} ms, "
                              f"p95 {r['p95']:7.1f} ms, max {r['max']:7.1f} ms, "
                              f"stale {r['stale']}", flush=True)
    finally:
        for b in load:
            b.kill()
            b.wait()
        cam.close()
        rclpy.shutdown(context=ctx)
    print(f"{'node':>12} {'frame':>9} {'cam Hz':>6} {'outputs':>9} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'max ms':>8} {'stale':>6}   p50 per round")
    for (kind, size, rate), rs in results.items():
        def med(key: str, rs: list[dict] = rs) -> float:
            return float(statistics.median(r[key] for r in rs))
        print(f"{kind:>12} {size:>9} {rate:6g} {sum(r['out'] for r in rs):>4}/"
              f"{a.frames * len(rs):<4} {med('p50'):8.1f} {med('p95'):8.1f} {med('max'):8.1f} "
              f"{sum(r['stale'] for r in rs):>6}   "
              + ", ".join(f"{r['p50']:.1f}" for r in rs), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
