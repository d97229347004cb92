"""The launch file: its camera expansion always; the LaunchDescription where launch_ros imports;
and what it starts (one node per camera namespace) through real node processes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from rclpy.node import Node
from sensor_msgs.msg import Image

from rostools import (
    RELIABLE,
    ROOT,
    Recorder,
    image_msg,
    ros_session,
    start_node_process,
    stop_process,
    wait_for,
)

spec = importlib.util.spec_from_file_location("camera_launch", ROOT / "launch" / "camera.launch.py")
camera_launch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(camera_launch)


def test_single_camera_defaults():
    # No camera_topic: the params file's image_topic (or the node's default) is not overridden.
    assert camera_launch.camera_nodes("", "", "") == [("", {})]
    assert camera_launch.camera_nodes("car", "", "/front/image", "tensorrt", "int8") == [
        ("car", {"image_topic": "/front/image", "backend": "tensorrt", "precision": "int8"})]


def test_several_cameras_get_a_namespace_each():
    nodes = camera_launch.camera_nodes("", "front, left", "", cpus=2)
    assert nodes == [("front", {"image_topic": "/front/image_raw", "threads": 1}),
                     ("left", {"image_topic": "/left/image_raw", "threads": 1})]
    nodes = camera_launch.camera_nodes("car", "front", "/sensors/{camera}/rgb")
    assert nodes == [("car/front", {"image_topic": "/sensors/front/rgb"})]


def test_cameras_share_the_cores():
    assert [o["threads"] for _, o in camera_launch.camera_nodes("", "a,b,c", "", cpus=8)] == \
        [2, 2, 2]
    assert [o["threads"] for _, o in camera_launch.camera_nodes("", "a,b,c", "", cpus=2)] == \
        [1, 1, 1]
    assert [o["threads"] for _, o in camera_launch.camera_nodes("", "a,b", "", threads="3",
                                                                cpus=2)] == [3, 3]
    assert "threads" not in camera_launch.camera_nodes("", "", "", cpus=8)[0][1]


def test_launch_description_builds():
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; "
                        "this runs in a ROS 2 install (rosdep + colcon)")
    ld = camera_launch.generate_launch_description()
    names = [a.name for a in ld.entities if hasattr(a, "name")]
    assert {"camera_topic", "params_file", "backend", "namespace", "cameras"} <= set(names)


@pytest.mark.ros
def test_two_cameras_as_the_launch_file_starts_them(tiny_onnx):
    procs = []
    try:
        for ns, params in camera_launch.camera_nodes("", "front,left", ""):
            procs.append(start_node_process(
                "-r", f"__ns:=/{ns}", "--params-file", str(ROOT / "config" / "segmentation.yaml"),
                "-p", f"model:={tiny_onnx}", "-p", f"image_topic:={params['image_topic']}",
                "-p", "qos_reliability:=reliable"))
        with ros_session() as (ctx, ex):
            peer = Node("peer", context=ctx)
            ex.add_node(peer)
            rec = Recorder(peer, {"/front/segmentation/mask": Image,
                                  "/left/segmentation/mask": Image})
            pubs = {c: peer.create_publisher(Image, f"/{c}/image_raw", RELIABLE)
                    for c in ("front", "left")}
            assert wait_for(lambda: all(p.get_subscription_count() == 1 for p in pubs.values())
                            and all(rec.matched(t) for t in rec.subs), 20)
            img = np.zeros((60, 80, 3), np.uint8)
            pubs["front"].publish(image_msg(img, "rgb8", 1, "front"))
            assert wait_for(lambda: rec.count("/front/segmentation/mask") == 1, 10)
            assert rec.count("/left/segmentation/mask") == 0
            pubs["left"].publish(image_msg(img, "rgb8", 2, "left"))
            assert wait_for(lambda: rec.count("/left/segmentation/mask") == 1, 10)
            assert rec.msgs["/left/segmentation/mask"][0][1].header.frame_id == "left"
    finally:
        for p in procs:
            assert stop_process(p) == 0


@pytest.mark.parametrize(("distro", "var"), [
    ("humble", "FASTRTPS_DEFAULT_PROFILES_FILE"), ("jazzy", "FASTRTPS_DEFAULT_PROFILES_FILE"),
    ("kilted", "FASTDDS_DEFAULT_PROFILES_FILE"), ("rolling", "FASTDDS_DEFAULT_PROFILES_FILE"),
])
def test_exactly_the_profile_variable_the_distro_reads(distro, var):
    from seg_perception.node.dds import profile_env

    assert profile_env("/p.xml", distro) == {var: "/p.xml"}
    for off in ("none", "off", "", "false"):
        assert profile_env(off, distro) == {}


def test_profile_variable_of_the_installed_wheels(monkeypatch):
    from importlib import metadata

    from seg_perception.node.dds import profile_variable

    monkeypatch.delenv("ROS_DISTRO", raising=False)
    try:  # Kilted's wheels: Fast DDS 3 as ros-fastdds; Jazzy's: Fast DDS 2.14 as ros-fastrtps
        major = int(metadata.version("ros-fastdds").split(".")[0])
    except metadata.PackageNotFoundError:
        major = int(metadata.version("ros-fastrtps").split(".")[0])
    assert profile_variable() == ("FASTDDS_DEFAULT_PROFILES_FILE" if major >= 3
                                  else "FASTRTPS_DEFAULT_PROFILES_FILE")
