"""Node overhead: receipt-to-publish latency minus the backend's own inference time.

A separate process plays the camera (rgb8 frames at a rate the node can sustain, so nothing is
dropped) and consumes the outputs of each setting; the node runs alone in this process with the
chosen model. Prints a table; no pass/fail. ``--floor`` adds rows with parts of the node's work
skipped, to show what receiving and publishing cost on their own.

  python bench/bench_node.py [--model engines/seglite_camvid.onnx] [--frames 60] [--rounds 3]
  python bench/bench_node.py --floor --sizes 1920x1080 --outputs mask
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_shm.xml"))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from seg_perception.inference.modelinfo import default_model_path  # noqa: E402
from seg_perception.inference.segmenter import Segmented  # noqa: E402
from seg_perception.node.node import SegmentationNode  # noqa: E402
from seg_perception.node.outputs import COLOUR  # noqa: E402

CAMERA = textwrap.dedent("""
    import sys, time, array
    import numpy as np, cv2, rclpy, rclpy.executors
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    h, w, n, rate = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    import threading
    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    # The consumers of the outputs live here too, outside the node's process, as in a vehicle.
    for o in sys.argv[5].split(","):
        node.create_subscription(Image, f"/segmentation/{o}", lambda m: None,
                                 qos_profile_sensor_data)
    ex = rclpy.executors.SingleThreadedExecutor()
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin)
    spin.start()
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8), (w, h))
    data = array.array("B"); data.frombytes(img.data)
    # A fixed schedule, as a camera's clock: publishing a 6 MB frame takes milliseconds, so
    # sleeping a period after each publish would run the camera slower than asked.
    t0 = time.monotonic()
    for i in range(n):
        msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=data)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    print(f"camera_hz {n / (time.monotonic() - t0):.3f}", flush=True)
    time.sleep(0.5)
    ex.shutdown()
    spin.join()
    node.destroy_node()
    rclpy.shutdown()
""")


def strip_node(node: SegmentationNode, stage: str) -> None:
    """For the floor rows only: skip parts of the node's work to see what the rest costs.

    ``no-backend``: fixed ids instead of resize + inference (outputs still rendered and
    published); ``publish-only``: also no rendering (the buffers go out as they are), which
    leaves receiving, waking the worker and rclpy/Fast DDS publishing.
    """
    seg, renderer = node.segmenter, node._renderer
    ids = np.random.default_rng(0).integers(0, 11, seg.input_size, dtype=np.uint8)

    def fixed_ids(rgb: np.ndarray, confidence: bool = False) -> Segmented:  # noqa: ARG001
        return Segmented(rgb, ids, None, 0.0)

    seg.run = fixed_ids  # type: ignore[method-assign]
    if stage == "publish-only":
        def as_they_are(wanted, small_ids, rgb, alpha=0.5, small_conf=None):  # noqa: ANN001, ANN202, ARG001
            for name in wanted:
                depth = (3,) if name in COLOUR else ()
                yield name, renderer.buffers[name].view(rgb.shape[:2] + depth)

        renderer.iter_render = as_they_are  # type: ignore[method-assign]


def run(model: str, h: int, w: int, frames: int, rate: float, threads: int,
        outputs: str = "mask,color,drivable,obstacles", stage: str = "full",
        resolution: str = "input") -> dict:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = SegmentationNode(context=ctx, parameter_overrides=[
        Parameter("model", value=model), Parameter("threads", value=threads),
        Parameter("backend", value="onnxruntime"), Parameter("diagnostics_period", value=3600.0),
        Parameter("output_resolution", value=resolution)])
    if stage != "full":
        strip_node(node, stage)
    ex = SingleThreadedExecutor(context=ctx)  # as rclpy.spin(node) in the node's main()
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    cam = subprocess.Popen([sys.executable, "-c", CAMERA, str(h), str(w), str(frames), str(rate),
                            outputs], stdout=subprocess.PIPE, text=True)
    warm = 5
    while node.stats.totals["published"] < warm:  # the consumers subscribe before frames flow
        time.sleep(0.05)
    node.stats.roll()  # discard warm-up
    cam_out, _ = cam.communicate()
    camera_hz = float(cam_out.split("camera_hz", 1)[1].split()[0])
    time.sleep(1.0)
    r = node.stats.roll()
    node.close()
    ex.shutdown(timeout_sec=2.0)
    spin.join(timeout=2.0)
    node.destroy_node()
    rclpy.shutdown(context=ctx)
    return {"size": f"{w}x{h}", "frames": r.totals["published"] - warm, "camera_hz": camera_hz,
            # The camera's rate times the share of its frames that came out: timing the camera
            # process instead would count its start and shutdown as time without outputs.
            "delivered_hz": camera_hz * (r.totals["published"] - warm) / (frames - warm),
            "dropped": r.totals["dropped"], "e2e_p50": r.latency_p50_ms,
            "e2e_p95": r.latency_p95_ms, "backend_p50": r.backend_p50_ms,
            "backend_p95": r.backend_p95_ms, "overhead_p50": r.overhead_p50_ms}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(default_model_path()))
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--rate", type=float, default=4.0, help="camera Hz (below node capacity)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3,
                   help="runs per setting, interleaved; a shared VM drifts between runs")
    p.add_argument("--sizes", nargs="+", default=["480x360", "1920x1080"])
    p.add_argument("--floor", action="store_true",
                   help="also run the node without resize + inference, and without rendering "
                        "too, to show what receiving and publishing alone cost")
    p.add_argument("--resolutions", nargs="+", default=["input"], choices=("input", "model"),
                   help="output_resolution settings, one run each")
    p.add_argument("--outputs", nargs="+",
                   default=["mask,color,drivable,obstacles", "mask", "drivable,obstacles"],
                   help="output sets the consumer subscribes to, one run each")
    a = p.parse_args()
    print(f"node overhead benchmark: model={a.model}, onnxruntime CPU, {a.threads} threads, "
          f"{os.cpu_count()} cores; camera and consumers in another process; overhead = "
          f"receipt-to-publish minus backend time, median per frame; {a.rounds} interleaved "
          f"rounds, table = median over rounds (overhead range over rounds in brackets)")
    stages = ["full", "no-backend", "publish-only"] if a.floor else ["full"]
    settings = [(tuple(int(v) for v in size.split("x"))[::-1], outputs, stage, res)
                for stage in stages for size in a.sizes for outputs in a.outputs
                for res in a.resolutions]
    runs: dict[int, list[dict]] = {i: [] for i in range(len(settings))}
    for k in range(a.rounds):
        for i, ((h, w), outputs, stage, res) in enumerate(settings):
            r = run(a.model, h, w, a.frames, a.rate, a.threads, outputs, stage, res)
            runs[i].append(r)
            print(f"  round {k + 1}: {stage} {r['size']} {outputs} out={res}: "
                  f"camera {r['camera_hz']:.1f} Hz, {r['delivered_hz']:.1f} outputs/s, "
                  f"e2e {r['e2e_p50']:.1f} ms, "
                  f"backend {r['backend_p50']:.1f} ms, overhead {r['overhead_p50']:.2f} ms",
                  flush=True)
    print(f"{'stage':>12} {'frame':>10} {'out':>5} {'outputs':>30} {'n':>4} {'drop':>4} "
          f"{'cam Hz':>6} {'out/s':>6} {'e2e p50':>8} "
          f"{'e2e p95':>8} {'backend p50':>11} {'overhead p50':>12} {'share':>6}  "
          "overhead over rounds")
    for i, (_, outputs, stage, res) in enumerate(settings):
        rs = runs[i]

        def med(key: str, rs: list[dict] = rs) -> float:
            return float(statistics.median(r[key] for r in rs))

        over = med("overhead_p50")
        # Floor rows have no backend, so their share of their own latency says nothing.
        share = f"{100 * over / med('e2e_p50'):.1f}%" if stage == "full" else "-"
        spread = ", ".join(f"{r['overhead_p50']:.1f}" for r in rs)
        print(f"{stage:>12} {rs[0]['size']:>10} {res:>5} {outputs:>30} "
              f"{sum(r['frames'] for r in rs):>4} {sum(r['dropped'] for r in rs):>4} "
              f"{med('camera_hz'):>6.1f} {med('delivered_hz'):>6.1f} {med('e2e_p50'):>6.1f}ms "
              f"{med('e2e_p95'):>6.1f}ms {med('backend_p50'):>9.1f}ms {over:>10.2f}ms "
              f"{share:>6}  [{spread}]", flush=True)


if __name__ == "__main__":
    main()
