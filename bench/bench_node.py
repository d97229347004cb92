"""Node overhead: receipt-to-publish latency minus the backend's own inference time.

A separate process plays the camera (rgb8 frames at a rate the node can sustain, so nothing is
dropped) and consumes all four default outputs; the node runs alone in this process with the
chosen model. Prints a table; no pass/fail.

  python bench/bench_node.py [--model engines/seglite_camvid.onnx] [--frames 40] [--rate 4]
"""

from __future__ import annotations

import argparse
import os
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

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from seg_perception.modelinfo import default_model_path  # noqa: E402
from seg_perception.node import SegmentationNode  # noqa: E402

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
    for i in range(n):
        msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=data)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(1.0 / rate)
    time.sleep(0.5)
    ex.shutdown()
    spin.join()
    node.destroy_node()
    rclpy.shutdown()
""")


def run(model: str, h: int, w: int, frames: int, rate: float, threads: int,
        outputs: str = "mask,color,drivable,obstacles") -> dict:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = SegmentationNode(context=ctx, parameter_overrides=[
        Parameter("model", value=model), Parameter("threads", value=threads),
        Parameter("backend", value="onnxruntime"), Parameter("diagnostics_period", value=3600.0)])
    ex = SingleThreadedExecutor(context=ctx)  # as rclpy.spin(node) in the node's main()
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    cam = subprocess.Popen([sys.executable, "-c", CAMERA, str(h), str(w), str(frames), str(rate),
                            outputs])
    warm = 5
    while node.stats.totals["published"] < warm:  # the consumers subscribe before frames flow
        time.sleep(0.05)
    node.stats.roll()  # discard warm-up
    cam.wait()
    time.sleep(1.0)
    r = node.stats.roll()
    node.close()
    ex.shutdown(timeout_sec=2.0)
    spin.join(timeout=2.0)
    node.destroy_node()
    rclpy.shutdown(context=ctx)
    return {"size": f"{w}x{h}", "frames": r.totals["published"] - warm,
            "dropped": r.totals["dropped"], "e2e_p50": r.latency_p50_ms,
            "e2e_p95": r.latency_p95_ms, "backend_p50": r.backend_p50_ms,
            "backend_p95": r.backend_p95_ms, "overhead_p50": r.overhead_p50_ms}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(default_model_path()))
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--rate", type=float, default=4.0, help="camera Hz (below node capacity)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--outputs", nargs="+",
                   default=["mask,color,drivable,obstacles", "mask", "drivable,obstacles"],
                   help="output sets the consumer subscribes to, one run each")
    a = p.parse_args()
    print(f"node overhead benchmark: model={a.model}, onnxruntime CPU, {a.threads} threads, "
          f"{os.cpu_count()} cores; camera and consumers in another process; "
          f"overhead = receipt-to-publish minus backend time, median per frame")
    print(f"{'frame':>10} {'outputs':>30} {'n':>4} {'drop':>4} {'e2e p50':>8} {'e2e p95':>8} "
          f"{'backend p50':>11} {'overhead p50':>12} {'share':>6}")
    for h, w in ((360, 480), (1080, 1920)):
        for outputs in a.outputs:
            r = run(a.model, h, w, a.frames, a.rate, a.threads, outputs)
            over = r["overhead_p50"]
            print(f"{r['size']:>10} {outputs:>30} {r['frames']:>4} {r['dropped']:>4} "
                  f"{r['e2e_p50']:>6.1f}ms {r['e2e_p95']:>6.1f}ms {r['backend_p50']:>9.1f}ms "
                  f"{over:>10.1f}ms {100 * over / r['e2e_p50']:>5.1f}%", flush=True)


if __name__ == "__main__":
    main()
