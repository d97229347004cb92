"""Start seg_perception's segmentation node for one camera or several.

  ros2 launch seg_perception camera.launch.py
  ros2 launch seg_perception camera.launch.py camera_topic:=/front/image_raw backend:=tensorrt
  ros2 launch seg_perception camera.launch.py cameras:=front,left,right
      (one node per camera, in namespace <camera>, reading /<camera>/image_raw by default;
       outputs on /<camera>/segmentation/...)

Sets the shipped Fast DDS profile (16 MB shared-memory segment) for the node unless
fastdds_profile:=none is given; give the camera driver the same profile.
"""

from __future__ import annotations

import os

PACKAGE = "seg_perception"


def camera_nodes(namespace: str, cameras: str, camera_topic: str, backend: str = "",
                 precision: str = "", model: str = "", threads: str = "",
                 cpus: int | None = None) -> list[tuple[str, dict]]:
    """(namespace, parameter overrides) for each node to start; pure so it is testable.

    Several cameras share the CPU: unless ``threads`` is given, each node gets its share of the
    cores (two nodes with two threads each on two cores fell to 14-22 frames/s at 30 Hz; with
    one thread each both kept 30).
    """
    names = [c.strip().strip("/") for c in cameras.split(",") if c.strip()]
    overrides: dict = {}
    if threads:
        overrides["threads"] = int(threads)
    elif len(names) > 1:
        overrides["threads"] = max(1, (cpus or os.cpu_count() or 1) // len(names))
    if backend:
        overrides["backend"] = backend
    if precision:
        overrides["precision"] = precision
    if model:
        overrides["model"] = model
    if not names:  # the topic from camera_topic, else from params_file, else the node's own
        return [(namespace, {**overrides, **({"image_topic": camera_topic} if camera_topic
                                             else {})})]
    topic = camera_topic or "/{camera}/image_raw"
    return [(f"{namespace.rstrip('/')}/{n}" if namespace else n,
             {**overrides, "image_topic": topic.replace("{camera}", n)}) for n in names]


def _launch_setup(context: object) -> list:
    from launch.actions import SetEnvironmentVariable
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def get(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    from seg_perception.node.dds import profile_env

    # Only the variable this ROS 2's Fast DDS reads (the other one warns or loads it twice).
    actions: list = [SetEnvironmentVariable(k, v)
                     for k, v in profile_env(get("fastdds_profile")).items()]
    for ns, overrides in camera_nodes(get("namespace"), get("cameras"), get("camera_topic"),
                                      get("backend"), get("precision"),
                                      get("model"), get("threads")):
        actions.append(Node(
            package=PACKAGE, executable="segmentation_node", name="segmentation_node",
            namespace=ns, output="screen", emulate_tty=True,
            parameters=[get("params_file"), overrides]))
    return actions


def generate_launch_description() -> object:
    # launch imports stay here so camera_nodes() is importable (and tested) without launch.
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchDescription

    share = get_package_share_directory(PACKAGE)
    args = [
        DeclareLaunchArgument("camera_topic", default_value="",
                              description="input image topic (default: params file's "
                                          "image_topic; with cameras:=..., a pattern with "
                                          "{camera}, default /{camera}/image_raw)"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "segmentation.yaml")),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | tensorrt | onnxruntime | torch "
                                          "(default: params file)"),
        DeclareLaunchArgument("precision", default_value="",
                              description="fp32 | fp16 | int8 (default: params file)"),
        DeclareLaunchArgument("model", default_value="", description="ONNX model path"),
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("threads", default_value="",
                              description="CPU threads per node (default: the params file for one "
                                          "camera; the cores divided among several)"),
        DeclareLaunchArgument("cameras", default_value="",
                              description="comma-separated camera names: one node each"),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=os.path.join(share, "config", "fastdds_shm.xml"),
                              description="Fast DDS profile XML for the nodes; none: leave the "
                                          "environment as it is"),
    ]
    return LaunchDescription([*args, OpaqueFunction(function=_launch_setup)])
