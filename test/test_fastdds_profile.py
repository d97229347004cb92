"""The shipped Fast DDS profile carries 480x360 rgb8 frames (over 512 KB) between processes
without best-effort loss. The publisher is a separate process, as a camera driver is.

Delivery alone does not prove the profile was applied (an idle machine may deliver fragmented
UDP intact), so the test also checks the publisher's shared-memory segment: 16 MB with the
profile, 512 KB without."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from rostools import ROOT, Recorder, ros_session, wait_for

pytestmark = pytest.mark.ros

PUBLISHER = textwrap.dedent("""
    import sys, time, array
    import numpy as np, rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("fake_camera")
    pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    n = int(sys.argv[1])
    img = np.random.default_rng(0).integers(0, 255, (360, 480, 3), dtype=np.uint8)
    t0 = time.monotonic()
    for i in range(n):
        msg = Image(height=360, width=480, encoding="rgb8", step=1440)
        msg.header.stamp.nanosec = i
        data = array.array("B"); data.frombytes(img.data); msg.data = data
        pub.publish(msg)
        time.sleep(max(0.0, t0 + (i + 1) / 30 - time.monotonic()))
    time.sleep(1.0)
    rclpy.shutdown()
""")


def shm_segments() -> dict[str, int]:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm on this system")
    # Fast DDS 3 (Kilted) names its segments fastdds_*, Fast DDS 2.x (Humble, Jazzy) fastrtps_*.
    return {p.name: p.stat().st_size for p in (*shm.glob("fastdds_*"), *shm.glob("fastrtps_*"))
            if not p.name.endswith("_el")}


def test_large_frames_arrive_with_shipped_profile():
    n = 90
    # PUBLISHER_PROFILE=other.xml compares another profile for the camera side.
    profile = os.environ.get("PUBLISHER_PROFILE", str(ROOT / "config" / "fastdds_shm.xml"))
    from seg_perception.node.dds import FASTDDS, FASTRTPS, profile_env

    env = {k: v for k, v in os.environ.items() if k not in (FASTDDS, FASTRTPS)}
    env.update(profile_env(profile))  # the one name this ROS 2's Fast DDS reads
    with ros_session() as (ctx, ex):
        peer = Node("reader", context=ctx)
        ex.add_node(peer)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=n,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        rec = Recorder(peer, {"/camera/image_raw": Image}, qos)
        before = set(shm_segments())
        proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(n)], env=env)
        try:
            wait_for(lambda: rec.count("/camera/image_raw") >= n, 30)
            # the publisher is still alive (it sleeps 1 s after its last frame)
            new = {p: s for p, s in shm_segments().items() if p not in before}
            wait_for(lambda: proc.poll() is not None, 10)
        finally:
            proc.kill()
        assert new, "the publisher created no Fast DDS shared-memory segment"
        assert max(new.values()) >= 16 << 20, f"segments {new}: profile not applied"
        got = rec.count("/camera/image_raw")
        print(f"best-effort 480x360 rgb8 frames received: {got}/{n}")
        assert got >= n - 1, f"lost {n - got} of {n} frames with the shipped profile"
